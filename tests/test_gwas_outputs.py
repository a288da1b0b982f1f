"""GWAS outputs: the streaming gather against the in-memory writer (byte for byte) and its memory
at 4x the phenotypes; the wide layout, its on-demand export and the readers that use it
(gwas-summary, truth, annotate-loci, h2-ldsc); GWAS-SSF files checked by the GWAS Catalog's own validator
(gwas-sumstats-tools, in .venv-gss made by `make`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.core.errors import InputError
from contig.evaluate.truth import null_lambdas, phenotype_sumstats_paths
from contig.gwas.association import GwasResult
from contig.gwas.gather import gather_gwas_parts
from contig.gwas.summary import summarize_scan
from contig.heritability.ldsc import regression_inputs
from contig.heritability.run import sumstats_files
from contig.loci.annotate import significant_phenotypes
from helpers.gwas import simulate_cohort, write_table
from contig.gwas.sumstats import SCAN_METADATA_KEY, read_gwas_parts, write_gwas_outputs, write_gwas_part

ROOT = Path(__file__).resolve().parent.parent
GSS_BIN = ROOT / ".venv-gss" / "bin"


def synthetic_parts(folder: Path, n_pheno: int, per_chrom: int, chroms: list[str], seed: int = 0,
                    info: bool = False) -> list[Path]:
    """Parts as `contig gwas --part-out` writes them, with random statistics: per chromosome one
    variant untested for every phenotype, one for the first two, one with a `*` allele; with
    ``info``, an INFO column as on dosages."""
    rng = np.random.default_rng(seed)
    names = [f"PC{j + 1}" for j in range(n_pheno)]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for chrom in chroms:
        m = per_chrom
        alleles = rng.choice(["A", "C", "G", "T"], (2, m))
        alleles[1, 2] = "*"
        variants = pl.DataFrame({
            "CHROM": [chrom] * m, "GENPOS": np.arange(1, m + 1) * 1000,
            "ID": [f"rs{i}" if i % 2 else f"{chrom}:{i}" for i in range(m)],
            "ALLELE0": alleles[0], "ALLELE1": alleles[1], "A1FREQ": rng.uniform(0.01, 0.99, m),
            "N": np.full(m, 500)})
        if info:
            variants.insert_column(6, pl.Series("INFO", rng.uniform(0.3, 1, m)))
        beta, se = rng.standard_normal((m, n_pheno)), rng.uniform(0.1, 1, (m, n_pheno))
        log10p = rng.exponential(0.4343, (m, n_pheno))
        beta[0] = se[0] = log10p[0] = np.nan
        log10p[1, :2] = np.nan
        result = GwasResult(variants, names, beta, se, log10p, rng.uniform(0, 3, m),
                            rng.exponential(0.4343, m), 500, 480, {"variants_tested": m, "variants_na": 1})
        path = folder / f"part.{chrom}.parquet"
        write_gwas_part(result, path)
        paths.append(path)
    return paths


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------
# (a) the streaming gather


@pytest.mark.parametrize(("batch_bytes", "info"), [(1, False), (24 * 100 * 3, False), (2**30, False),
                                                  (24 * 100 * 3, True)])
def test_streaming_gather_is_byte_identical_to_the_in_memory_writer(tmp_path, monkeypatch, batch_bytes,
                                                                    info):
    """The reference is write_gwas_outputs on the parts joined in memory (read_gwas_parts): the
    writer of `contig gwas --out` and the gather before streaming. Batches of 1, 3 and all
    phenotypes; parts of a scan on dosages (INFO column)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")  # the GWAS-SSF metadata's date
    parts = synthetic_parts(tmp_path / "parts", 7, 50, ["1", "2", "X"], info=info)
    formats = ["parquet", "tsv.gz", "ssf"]
    reference = write_gwas_outputs(read_gwas_parts(parts), tmp_path / "ref", tmp_path / "ref_dir",
                                   formats=formats)
    streamed, scan = gather_gwas_parts(parts, tmp_path / "new", tmp_path / "new_dir", threads=2,
                                       formats=formats, batch_bytes=batch_bytes)
    assert files_of(tmp_path / "new_dir") == files_of(tmp_path / "ref_dir")
    for key in ("combined.parquet", "combined.tsv"):
        assert streamed[key].read_bytes() == reference[key].read_bytes()
    assert scan.tested["PC1"] == 3 * 48 and scan.n_variants == 150
    assert ("INFO" in pl.read_parquet_schema(tmp_path / "new_dir" / "PC1.parquet")) == info
    assert not list(tmp_path.glob(".*tmp*"))


def test_gather_cli_prefix_layout_matches_the_reference(tmp_path):
    parts = synthetic_parts(tmp_path / "parts", 3, 40, ["1", "2"])
    reference = write_gwas_outputs(read_gwas_parts(parts), tmp_path / "ref")
    assert main(["gwas-gather", "--parts", *map(str, parts), "--out", str(tmp_path / "new")]) == 0
    for key, path in reference.items():
        assert (tmp_path / path.name.replace("ref.", "new.", 1)).read_bytes() == path.read_bytes(), key


def _peak_bytes(function, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        function(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gather_memory_is_flat_in_the_number_of_phenotypes(tmp_path):
    """Peak traced memory (NumPy and Python allocations; polars' own buffers are not traced) of
    the gather at 32 phenotypes over 8, with batches of 2 phenotypes: flat. The in-memory
    reference grows with the phenotypes (the test can see growth)."""
    peaks, reference = {}, {}
    for k in (8, 32):
        parts = synthetic_parts(tmp_path / f"parts{k}", k, 10_000, ["1", "2"], seed=k)
        peaks[k] = _peak_bytes(gather_gwas_parts, parts, tmp_path / f"g{k}", tmp_path / f"d{k}",
                               threads=1, formats=["parquet"], batch_bytes=2 * 24 * 20_000)
        reference[k] = _peak_bytes(lambda p=parts, k=k: write_gwas_outputs(
            read_gwas_parts(p), tmp_path / f"r{k}", tmp_path / f"rd{k}", threads=1, formats=["parquet"]))
    assert peaks[32] < 1.5 * peaks[8], peaks
    assert reference[32] > 2.5 * reference[8], reference
    assert peaks[32] < reference[32] / 4, (peaks, reference)


def test_gather_rejects_disagreeing_parts_without_outputs(tmp_path, capsys):
    one = synthetic_parts(tmp_path / "a", 3, 20, ["1"])
    two = synthetic_parts(tmp_path / "b", 2, 20, ["2"])
    assert main(["gwas-gather", "--parts", str(one[0]), str(two[0]), "--out", str(tmp_path / "g"),
                 "--per-pheno-dir", str(tmp_path / "d"), "--formats", "wide", "ssf"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "part.2.parquet" in line and "disagrees" in line
    assert not list(tmp_path.glob("g*")) and not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------------
# (b) the wide layout


def test_wide_layout_exports_the_same_per_phenotype_files(tmp_path):
    parts = synthetic_parts(tmp_path / "parts", 4, 30, ["1", "2"])
    gather_gwas_parts(parts, tmp_path / "per", tmp_path / "per_dir", formats=["parquet", "tsv.gz", "ssf"])
    gather_gwas_parts(parts, tmp_path / "wide", tmp_path / "wide_dir", formats=["wide"])
    assert [p.name for p in (tmp_path / "wide_dir").iterdir()] == ["all.wide.parquet"]
    wide = tmp_path / "wide_dir" / "all.wide.parquet"
    assert main(["sumstats-export", "--wide", str(wide), "--formats", "parquet", "tsv.gz", "ssf",
                 "--out-dir", str(tmp_path / "export"), "--threads", "2"]) == 0
    assert files_of(tmp_path / "export") == files_of(tmp_path / "per_dir")
    # the wide file of the in-memory writer holds the same table and scan metadata
    memory = write_gwas_outputs(read_gwas_parts(parts), tmp_path / "mem", formats=["wide"])
    assert pl.read_parquet(memory["wide"]).equals(pl.read_parquet(wide))
    assert (pl.read_parquet_metadata(memory["wide"])[SCAN_METADATA_KEY]
            == pl.read_parquet_metadata(wide)[SCAN_METADATA_KEY])


def test_export_of_an_unknown_phenotype_is_a_one_line_error(tmp_path, capsys):
    parts = synthetic_parts(tmp_path / "parts", 2, 20, ["1"])
    paths, _ = gather_gwas_parts(parts, tmp_path / "g", formats=["wide"])
    assert main(["sumstats-export", "--wide", str(paths["wide"]), "--pheno", "PC1", "PC9",
                 "--out-dir", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "PC9" in line and "g.all.wide.parquet" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_summary_and_truth_read_the_wide_layout(tmp_path):
    parts = synthetic_parts(tmp_path / "parts", 3, 60, ["1", "2", "3"])
    per, _ = gather_gwas_parts(parts, tmp_path / "per", tmp_path / "per_dir")
    wide, _ = gather_gwas_parts(parts, tmp_path / "wide", tmp_path / "wide_dir", formats=["wide"])
    expected = summarize_scan(per["combined.parquet"], tmp_path / "per_dir", threshold=0.01)
    assert summarize_scan(wide["combined.parquet"], tmp_path / "wide_dir", threshold=0.01).equals(expected)
    prefix_paths, _ = gather_gwas_parts(parts, tmp_path / "pre", formats=["wide"])
    assert summarize_scan(prefix_paths["combined.parquet"], prefix=tmp_path / "pre",
                          threshold=0.01).equals(expected)
    null = ["2", "3"]
    wide_paths = phenotype_sumstats_paths(tmp_path / "wide_dir")
    per_paths = phenotype_sumstats_paths(tmp_path / "per_dir")
    assert null_lambdas(wide_paths, null).equals(null_lambdas(per_paths, null))
    leads = pl.read_parquet(per["combined.parquet"]).sort("LOG10P", descending=True)["ID"][:5].to_list()
    assert significant_phenotypes(leads, wide_paths, 0.05).equals(significant_phenotypes(leads, per_paths, 0.05))
    # LD score regression's inputs (h2-ldsc)
    ld_table = pl.DataFrame({"SNP": pl.read_parquet(per["combined.parquet"])["ID"], "L2": np.linspace(1, 50, 180)})
    wide_files, per_files = sumstats_files(tmp_path / "wide_dir"), sumstats_files(tmp_path / "per_dir")
    assert list(wide_files) == list(per_files) == ["PC1", "PC2", "PC3"]
    for name in per_files:
        assert regression_inputs(wide_files[name], ld_table, name).equals(
            regression_inputs(per_files[name], ld_table, name))


# ---------------------------------------------------------------------------------------------
# (c) GWAS-SSF, validated by the GWAS Catalog's validator


def gwas_ssf(*args: str) -> subprocess.CompletedProcess:
    """`gwas-ssf` of .venv-gss; fails (never skips) when `make` has not created it."""
    binary = GSS_BIN / "gwas-ssf"
    if not binary.exists():
        pytest.fail(f"{binary} not found: run `make {GSS_BIN.parent.name}/.installed` (`make test` does)")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300)


def test_ssf_files_pass_the_gwas_catalog_validator(tmp_path):
    autosomes = [str(c) for c in range(1, 23)]
    parts = synthetic_parts(tmp_path / "parts", 2, 12, [*autosomes, "X", "MT", "chrUn"])
    paths, scan = gather_gwas_parts(parts, tmp_path / "g", tmp_path / "d", formats=["parquet", "ssf"],
                                    ssf_meta={"genome_assembly": "GRCh37"})
    ssf = tmp_path / "d" / "PC1.ssf.tsv.gz"
    done = gwas_ssf("validate", str(ssf), "--min-rows", "10")
    assert done.returncode == 0 and "Validation status: True" in done.stdout, done.stdout + done.stderr
    # negative control: the regenie-layout text is not GWAS-SSF
    regenie = tmp_path / "regenie.tsv.gz"
    gather_gwas_parts(parts, tmp_path / "r", tmp_path / "rd", formats=["tsv.gz"])
    regenie.write_bytes((tmp_path / "rd" / "PC1.tsv.gz").read_bytes())
    assert gwas_ssf("validate", str(regenie), "--min-rows", "10").returncode != 0
    # the metadata: the validator package's own model reads it; name and md5 describe the file
    check = ("import json, sys; from pathlib import Path; "
             "from gwas_sumstats_tools.interfaces.metadata import init_metadata_from_file; "
             "print(json.dumps(init_metadata_from_file(Path(sys.argv[1])).as_dict(), default=str))")
    done = subprocess.run([str(GSS_BIN / "python"), "-c", check, str(ssf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert meta["data_file_name"] == ssf.name and meta["file_type"] == "GWAS-SSF v1.0"
    assert meta["data_file_md5sum"] == hashlib.md5(ssf.read_bytes()).hexdigest()
    assert meta["genome_assembly"] == "GRCh37" and meta["samples"][0]["sample_size"] == 500
    # the values are those of the parquet; left out: untested, `*` allele, chrUn (X = 23, MT = 25)
    table = pl.read_csv(ssf, separator="\t", null_values="NA")
    parquet = pl.read_parquet(tmp_path / "d" / "PC1.parquet")
    kept = parquet.filter(pl.col("LOG10P").is_not_null(), pl.col("ALLELE1") != "*", pl.col("CHROM") != "chrUn")
    assert len(table) == len(kept) == 24 * 9 and scan.ssf_dropped["PC1"] == 25 * 12 - 24 * 9
    assert np.array_equal(table["beta"].to_numpy(), kept["BETA"].to_numpy())
    assert np.array_equal(table["neg_log_10_p_value"].to_numpy(), kept["LOG10P"].to_numpy())
    assert set(table["chromosome"].unique().to_list()) == set(range(1, 24)) | {25}
    assert table["rsid"].null_count() == 24 * 4  # IDs that are no rsID


@pytest.mark.plink2
def test_ssf_of_a_real_scan_is_valid_and_matches_plink2(tmp_path):
    """`contig gwas --formats wide ssf` on 22 chromosomes: the GWAS Catalog's validator accepts
    the GWAS-SSF file; its effect allele, beta, SE and p are plink2 --glm's (6 printed digits)."""
    c = simulate_cohort(tmp_path / "g", n_samples=300, n_chrom=22, snps_per_chrom=8, seed=3)
    rng = np.random.default_rng(2)
    n = len(c.iid)
    pheno = write_table(tmp_path / "p.tsv", c.iid, {"a": rng.standard_normal(n)})
    covar = write_table(tmp_path / "c.tsv", c.iid, {"c1": rng.standard_normal(n)})
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--out", str(tmp_path / "ours"), "--formats", "wide", "ssf",
                 "--genome-assembly", "GRCh38"]) == 0
    ssf = tmp_path / "ours.a.ssf.tsv.gz"
    done = gwas_ssf("validate", str(ssf), "--min-rows", "100")
    assert done.returncode == 0 and "Validation status: True" in done.stdout, done.stdout + done.stderr
    assert "GRCh38" in Path(f"{ssf}-meta.yaml").read_text()
    for name, table in (("pheno", pl.read_csv(pheno, separator="\t")), ("covar", pl.read_csv(covar, separator="\t"))):
        table.insert_column(0, table["IID"].alias("#FID")).write_csv(tmp_path / f"{name}.plink.tsv", separator="\t")
    subprocess.run(["plink2", "--bfile", str(c.prefix), "--pheno", str(tmp_path / "pheno.plink.tsv"),
                    "--covar", str(tmp_path / "covar.plink.tsv"), "--glm", "hide-covar", "omit-ref",
                    "--threads", "2", "--out", str(tmp_path / "plink")],
                   check=True, capture_output=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    plink = pl.read_csv(tmp_path / "plink.a.glm.linear", separator="\t", null_values="NA")
    ours = pl.read_csv(ssf, separator="\t", null_values="NA")
    assert ours["effect_allele"].to_list() == plink["A1"].to_list()
    assert ours["base_pair_location"].to_list() == plink["POS"].to_list()
    np.testing.assert_allclose(ours["beta"].to_numpy(), plink["BETA"].to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["standard_error"].to_numpy(), plink["SE"].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours["neg_log_10_p_value"].to_numpy(), -np.log10(plink["P"].to_numpy()),
                               rtol=1e-4, atol=1e-5)


def test_parts_of_other_phenotypes_are_refused_naming_the_part(tmp_path):
    """A part scanned with other phenotypes than the first part: both gathers stop with one line
    naming that part and write nothing."""
    first = synthetic_parts(tmp_path / "a", n_pheno=3, per_chrom=20, chroms=["1"])
    other = synthetic_parts(tmp_path / "b", n_pheno=4, per_chrom=20, chroms=["2"])
    parts = first + other
    with pytest.raises(InputError, match=f"part disagrees with {parts[0]}") as caught:
        gather_gwas_parts(parts, tmp_path / "out")
    assert caught.value.path == str(other[0])
    with pytest.raises(InputError, match="part disagrees with"):
        read_gwas_parts(parts)
    assert not list(tmp_path.glob("out*"))
