"""contig.scores.burden: burden matrices against a brute-force loop, gene-table errors, the CLI."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from contig.scores.burden import (burden_scores, gene_burden, output_paths, read_gene_table,
                                  write_burden_outputs)
from contig.cli import main
from contig.core.errors import InputError
from contig.scores.modality import load_modality
from contig.genotypes.plinkio import Genotypes, write_bfile

GENES_TSV = ("chrom\tstart\tend\tgene\textra\n"
             "1\t1000\t1900\tG1\tx\n"
             "1\t1500\t3000\tG2\tx\n"       # overlaps G1
             "chr2\t1000\t1400\tG3\tx\n"
             "2\t5000\t6000\tG_empty\tx\n"  # no variants
             "7\t1\t100\tG_nochrom\tx\n")   # chromosome not genotyped


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """80 people x 60 variants (chr1 1000..3950 step 100 by 30, chr2 likewise), mostly rare, with
    some REF-minor variants, a monomorphic one and 5% missing calls."""
    tmp = tmp_path_factory.mktemp("burden")
    rng = np.random.default_rng(5)
    n, m = 80, 60
    freq = rng.choice([0.004, 0.01, 0.02, 0.05, 0.3, 0.99, 0.995], size=m)
    genotypes = rng.binomial(2, freq[:, None], size=(m, n)).astype(np.int8)
    genotypes[3] = 0  # monomorphic
    genotypes[rng.random((m, n)) < 0.05] = -9
    bim = pl.DataFrame({"CHROM": ["1"] * 30 + ["2"] * 30, "ID": [f"v{i}" for i in range(m)],
                        "CM": [0.0] * m, "POS": np.tile(np.arange(30) * 100 + 1000, 2),
                        "ALT": ["A"] * m, "REF": ["G"] * m})
    fam = pl.DataFrame({"FID": [f"f{i}" for i in range(n)], "IID": [f"i{i}" for i in range(n)],
                        "PAT": ["0"] * n, "MAT": ["0"] * n, "SEX": [2] * n, "PHENO": ["-9"] * n})
    prefix = tmp / "cohort"
    write_bfile(prefix, fam, bim, [genotypes])
    genes = tmp / "genes.tsv"
    genes.write_text(GENES_TSV)
    return {"prefix": prefix, "genes": genes, "G": genotypes, "bim": bim}


def brute_force(genotypes: np.ndarray, bim: pl.DataFrame, regions: list[tuple[str, int, int]],
                max_maf: float, mode: str) -> tuple[np.ndarray, list[int], list[int]]:
    """Loop over genes, variants and people: (matrix (n, n_genes), rare variants per gene, missing calls per gene)."""
    n = genotypes.shape[1]
    chroms, positions = bim["CHROM"].to_list(), bim["POS"].to_list()
    out = np.zeros((n, len(regions)))
    n_variants, n_missing = [], []
    for g, (chrom, start, end) in enumerate(regions):
        rare_here = missing_here = 0
        for v in range(genotypes.shape[0]):
            if chroms[v] != chrom or not start <= positions[v] <= end:
                continue
            calls = [int(x) for x in genotypes[v] if x >= 0]
            p = sum(calls) / (2 * len(calls))
            maf = min(p, 1 - p)
            if not 0 < maf <= max_maf:
                continue
            rare_here += 1
            missing_here += n - len(calls)
            minor = [(2 - x if p > 0.5 else x) if x >= 0 else 0 for x in genotypes[v]]
            m_v, n_v = sum(minor), len(calls)
            q = (m_v + 1) / (2 * n_v + 2)
            weight = 1 / math.sqrt(n_v * q * (1 - q))
            for i in range(n):
                if mode == "carrier":
                    out[i, g] = max(out[i, g], 1.0 if minor[i] > 0 else 0.0)
                elif mode == "count":
                    out[i, g] += minor[i]
                else:
                    out[i, g] += minor[i] * weight
        n_variants.append(rare_here)
        n_missing.append(missing_here)
    return out, n_variants, n_missing


REGIONS = [("1", 1000, 1900), ("1", 1500, 3000), ("2", 1000, 1400), ("2", 5000, 6000), ("7", 1, 100)]


@pytest.mark.parametrize("mode", ["carrier", "count", "weighted"])
@pytest.mark.parametrize("max_maf", [0.01, 0.05])
def test_burden_equals_brute_force(cohort, mode, max_maf):
    genes = read_gene_table(cohort["genes"])
    result = burden_scores(Genotypes.open(cohort["prefix"]), genes, max_maf=max_maf, mode=mode,
                           chunk_size=7)
    expected, n_variants, n_missing = brute_force(cohort["G"], cohort["bim"], REGIONS, max_maf, mode)
    np.testing.assert_allclose(result.X.toarray(), expected, rtol=1e-6)
    assert result.genes["n_variants"].to_list() == n_variants
    assert result.genes["n_missing_calls"].to_list() == n_missing
    assert result.genes["n_carriers"].to_list() == list((expected > 0).sum(axis=0))
    assert sum(n_variants[:3]) > 0 and expected.any()


def test_min_carriers_drops_genes(cohort):
    genes = read_gene_table(cohort["genes"])
    result = burden_scores(Genotypes.open(cohort["prefix"]), genes, max_maf=0.05, min_carriers=3)
    carriers = result.genes["n_carriers"].to_numpy()
    assert result.genes["kept"].to_list() == list(carriers >= 3)
    modality = result.kept_modality("carrier")
    assert modality.feature.tolist() == result.genes.filter("kept")["gene"].to_list()


def test_bed_input_equals_tsv(cohort, tmp_path):
    bed = tmp_path / "genes.bed"
    bed.write_text("".join(f"{c}\t{s - 1}\t{e}\t{g}\n" for (c, s, e), g in
                           zip(REGIONS, ["G1", "G2", "G3", "G_empty", "G_nochrom"])))
    assert read_gene_table(bed).drop("row").equals(read_gene_table(cohort["genes"]).drop("row"))


@pytest.mark.parametrize("text, message", [
    ("chrom\tstart\tend\tgene\n1\t10\t5\tA\n", r"row 2, column 'end': end 5 is before start 10"),
    ("chrom\tstart\tend\tgene\n1\t10\t20\tA\n1\tten\t20\tB\n", r"row 3, column 'start': value 'ten'"),
    ("chrom\tstart\tend\tgene\n1\t0\t20\tA\n", r"row 2, column 'start': start 0 is below 1"),
    ("chrom\tstart\tend\tgene\n1\t1\t20\tA\n2\t1\t20\tA\n", r"row 3, column 'gene': gene 'A' appears"),
    ("chrom\tstart\tend\tgene\n1\t1\t20\t\n", r"row 2, column 'gene': empty value"),
    ("chrom\tstart\tstop\tname\n1\t1\t20\tA\n", "missing required column"),
    ("chrom\tstart\tend\tgene\n", "no genes"),
])
def test_gene_table_errors_name_row_and_column(tmp_path, text, message):
    path = tmp_path / "genes.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_gene_table(path)
    assert info.value.path == str(path)


def test_bed_errors_name_row(tmp_path):
    path = tmp_path / "genes.bed"
    path.write_text("1\t0\t100\tA\n1\tx\t200\tB\n")
    with pytest.raises(InputError, match=r"genes.bed, row 2, column 'start'"):
        read_gene_table(path)


def test_cli_writes_sparse_modality_and_gene_table(cohort, tmp_path):
    out = tmp_path / "res" / "burden"
    code = main(["burden", "--bfile", str(cohort["prefix"]), "--genes", str(cohort["genes"]),
                 "--out", str(out), "--max-maf", "0.05", "--mode", "count"])
    assert code == 0
    paths = output_paths(out)
    modality = load_modality(paths["modality"])
    genes = pl.read_csv(paths["genes"], separator="\t")
    assert genes.columns == ["gene", "chrom", "start", "end", "n_variants", "n_carriers",
                             "n_missing_calls", "kept"]
    assert modality.feature.tolist() == ["G1", "G2", "G3"]
    assert modality.X.format == "csr"
    expected, _, _ = brute_force(cohort["G"], cohort["bim"], REGIONS[:3], 0.05, "count")
    np.testing.assert_allclose(modality.X.toarray(), expected)


@pytest.mark.parametrize("args, message", [
    (["--genes", "{tmp}/missing.tsv"], "missing.tsv: file not found"),
    (["--genes", "{tmp}/badstart.tsv"], "badstart.tsv, row 2, column 'start'"),
])
def test_cli_bad_input_exits_2_without_outputs(cohort, tmp_path, capsys, args, message):
    (tmp_path / "badstart.tsv").write_text("chrom\tstart\tend\tgene\n9\t0\t10\tA\n")
    out = tmp_path / "res" / "burden"
    argv = ["burden", "--bfile", str(cohort["prefix"]), "--out", str(out)] + \
        [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("contig burden: error: ") and message in err[-1]
    assert not any(p.exists() for p in output_paths(out).values())



def test_simulated_cohort_burden_equals_brute_force(sim_cohort, tmp_path):
    """The simulator's genes.tsv through the CLI; the first 25 genes checked by the brute-force loop."""
    out = tmp_path / "burden"
    assert main(["burden", "--bfile", str(sim_cohort / "genotypes"), "--genes",
                 str(sim_cohort / "genes.tsv"), "--out", str(out), "--mode", "weighted"]) == 0
    genes = pl.read_csv(output_paths(out)["genes"], separator="\t", schema_overrides={"chrom": pl.String})
    modality = load_modality(output_paths(out)["modality"])
    genotypes = Genotypes.open(sim_cohort / "genotypes")
    bim = genotypes.bim
    first = genes.head(25)
    regions = list(first.select("chrom", "start", "end").iter_rows())
    in_regions = np.flatnonzero(np.isin(bim["CHROM"].to_numpy(), first["chrom"].unique().to_numpy()))
    expected, n_variants, _ = brute_force(genotypes.read(in_regions), bim[in_regions], regions, 0.01,
                                          "weighted")
    assert first["n_variants"].to_list() == n_variants
    kept = dict(zip(modality.feature.tolist(), range(len(modality.feature))))
    for g, gene in enumerate(first["gene"]):
        column = modality.X[:, kept[gene]].toarray().ravel() if gene in kept else np.zeros(len(expected))
        np.testing.assert_allclose(column, expected[:, g], rtol=1e-6)


def test_no_rare_variant_gives_an_empty_modality(cohort, tmp_path, caplog):
    """Common-variant data: with 80 people no polymorphic variant has MAF <= 0.001, so no gene is
    kept; the stage writes a modality with zero features and every person, and warns."""
    expected, n_variants, _ = brute_force(cohort["G"], cohort["bim"], REGIONS, 0.001, "carrier")
    assert not expected.any() and sum(n_variants) == 0  # the oracle agrees nothing is rare
    with caplog.at_level("WARNING", logger="contig.scores.burden"):
        result = gene_burden(cohort["prefix"], cohort["genes"], max_maf=0.001)
    assert "no gene has at least 1 carrier(s) of rare variants (MAF <= 0.001)" in caplog.text
    paths = write_burden_outputs(result, tmp_path / "burden", "carrier")
    modality = load_modality(paths["modality"])
    assert modality.X.shape == (80, 0) and modality.feature.tolist() == []
    assert modality.iid.tolist() == [f"i{i}" for i in range(80)]
    genes = pl.read_csv(paths["genes"], separator="\t")
    assert genes["gene"].to_list() == ["G1", "G2", "G3", "G_empty", "G_nochrom"]
    assert genes["n_variants"].to_list() == n_variants and not genes["kept"].any()
    out = tmp_path / "cli" / "burden"
    assert main(["burden", "--bfile", str(cohort["prefix"]), "--genes", str(cohort["genes"]),
                 "--out", str(out), "--max-maf", "0.001"]) == 0
    assert load_modality(output_paths(out)["modality"]).X.shape == (80, 0)


def test_workflow_runs_burden_only_for_training():
    """Static check of the rule files: the burden rule's outputs are asked for by a full run only
    when ``pretrain.modalities`` names burden, and by no rule except through that list."""
    import re

    from helpers.workflow import ROOT

    rules = {p.name: p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk")}
    body = re.search(r"def final_outputs\(\):\n(.*?)\n\n\n", rules["common.smk"], re.S).group(1)
    assert re.search(r'\["results/scores/burden\.npz"\]\s*if "burden" in config\["pretrain"\]'
                     r'\["modalities"\]', body)
    for name, text in rules.items():
        others = text.replace('"results/scores/burden.npz"', "", 1 if name == "common.smk" else 0)
        if name != "scores.smk":  # the rule itself
            assert "burden.npz" not in others and "burden.genes" not in others, name
