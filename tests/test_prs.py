"""contig.scores.prs: matching against crafted scoring files, and scores against plink2 --score as the oracle."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.core.errors import InputError
from contig.scores.modality import load_modality
from contig.genotypes.plinkio import write_bfile
from contig.scores.prs import output_paths, polygenic_scores, run_prs
from helpers.plink import PLINK2
from helpers.text_files import write_text

COMPLEMENT = str.maketrans("ACGT", "TGCA")
BASES = np.array(list("ACGT"))
STATUS_COLUMNS = ["n_matched", "n_flipped", "n_strand_flipped", "n_ambiguous", "n_allele_mismatch",
                  "n_multiallelic", "n_duplicate", "n_absent"]


def make_fam(n: int, n_nonfounders: int = 0) -> pl.DataFrame:
    """n samples; the last ``n_nonfounders`` have the first two samples as parents."""
    pat = ["0"] * (n - n_nonfounders) + ["i0"] * n_nonfounders
    mat = ["0"] * (n - n_nonfounders) + ["i1"] * n_nonfounders
    return pl.DataFrame({"FID": [f"f{i}" for i in range(n)], "IID": [f"i{i}" for i in range(n)],
                         "PAT": pat, "MAT": mat, "SEX": [1] * n, "PHENO": ["-9"] * n})


def write_scoring_file(path: Path, rows: list[dict], header: str = "#pgs_id={id}\n#genome_build=GRCh37\n",
                       columns: list[str] | None = None) -> Path:
    """A PGS Catalog-style file: ``#`` metadata, a tab-separated header line, rows (gzip if .gz)."""
    columns = columns or ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele",
                          "effect_weight"]
    score_id = path.name.split(".")[0]
    lines = [header.format(id=score_id) + "\t".join(columns)]
    for row in rows:
        lines.append("\t".join("" if row.get(c) is None else str(row[c]) for c in columns))
    return write_text(path, "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """200 people (20 non-founders) x 400 SNPs on chr1/chr2 with 3% missing calls; three scoring files.

    Returns the bfile prefix, scoring-file paths, and for each score the oracle plink2 score rows
    (.bim ID, the .bim allele the effect allele corresponds to, weight) built from the design.
    """
    tmp = tmp_path_factory.mktemp("prs_cohort")
    rng = np.random.default_rng(7)
    n, m = 200, 400
    freq = rng.uniform(0.02, 0.6, m)
    genotypes = rng.binomial(2, freq[:, None], size=(m, n)).astype(np.int8)
    genotypes[rng.random((m, n)) < 0.03] = -9
    alt = rng.integers(0, 4, m)
    ref = (alt + rng.integers(1, 4, m)) % 4
    bim = pl.DataFrame({
        "CHROM": ["1"] * (m // 2) + ["2"] * (m // 2), "ID": [f"rs{i}" for i in range(m)],
        "CM": [0.0] * m, "POS": np.tile(np.arange(m // 2) * 150 + 10_000, 2),
        "ALT": BASES[alt], "REF": BASES[ref]})
    prefix = tmp / "cohort"
    write_bfile(prefix, make_fam(n, n_nonfounders=20), bim, [genotypes])

    scores, oracle = [], {}
    for s in range(3):
        chosen = rng.choice(m, 250, replace=False)
        rows, expected = [], []
        for v in chosen:
            a, r = BASES[alt[v]], BASES[ref[v]]
            effect_is_alt = rng.random() < 0.5
            effect, other = (a, r) if effect_is_alt else (r, a)
            ambiguous = effect.translate(COMPLEMENT) == other
            if not ambiguous and rng.random() < 0.2:  # reverse strand in the scoring file
                effect, other = effect.translate(COMPLEMENT), other.translate(COMPLEMENT)
            weight = round(float(rng.normal(0, 0.5)), 6)
            chrom = bim["CHROM"][int(v)]
            rows.append({"rsID": f"rs{v}", "chr_name": "chr" + chrom if s == 1 else chrom,
                         "chr_position": int(bim["POS"][int(v)]), "effect_allele": effect,
                         "other_allele": other, "effect_weight": weight})
            if not ambiguous:
                expected.append((f"rs{v}", a if effect_is_alt else r, weight))
        for k in range(10):  # absent: positions not in the .bim
            rows.append({"rsID": f"rsX{k}", "chr_name": "3", "chr_position": 100 + k,
                         "effect_allele": "A", "other_allele": "G", "effect_weight": 0.1})
        name = f"PGS00000{s + 1}" + (".txt.gz" if s == 2 else ".txt")
        scores.append(write_scoring_file(tmp / name, rows))
        oracle[f"PGS00000{s + 1}"] = expected
    return {"prefix": prefix, "scores": scores, "oracle": oracle, "tmp": tmp}


def plink2_score(prefix: Path, rows: list[tuple[str, str, float]], out: Path,
                 mean_imputation: bool) -> pl.DataFrame:
    """Run plink2 --score on ``rows`` (ID, allele, weight); return IID, DENOM, AVG, SUM."""
    score_file = out.with_suffix(".score.txt")
    score_file.write_text("ID\tA1\tW\n" + "".join(f"{i}\t{a}\t{w}\n" for i, a, w in rows))
    modifiers = ["header-read"] + ([] if mean_imputation else ["no-mean-imputation"])
    subprocess.run([PLINK2, "--bfile", str(prefix), "--score", str(score_file), "1", "2", "3",
                    *modifiers, "cols=+scoresums,+denom", "--out", str(out), "--threads", "1"],
                   check=True, capture_output=True, env=os.environ | {"OPENBLAS_NUM_THREADS": "1"})
    return pl.read_csv(out.with_suffix(".sscore"), separator="\t").select("IID", "DENOM", "W_AVG", "W_SUM")


@pytest.mark.plink2
@pytest.mark.parametrize("mean_imputation, threads", [(True, 1), (False, 1), (True, 2)])
def test_scores_equal_plink2(cohort, tmp_path, mean_imputation, threads):
    result = polygenic_scores(cohort["prefix"], cohort["scores"], min_overlap=0.5,
                              mean_imputation=mean_imputation, chunk_size=64, threads=threads)
    assert result.score_ids == ["PGS000001", "PGS000002", "PGS000003"]
    for j, score in enumerate(result.score_ids):
        expected = plink2_score(cohort["prefix"], cohort["oracle"][score], tmp_path / score, mean_imputation)
        assert expected["IID"].to_list() == result.iid.tolist()
        # plink2 prints 6 significant digits: agree to that precision
        np.testing.assert_allclose(result.sums[:, j], expected["W_SUM"].to_numpy(), rtol=5e-6, atol=1e-9)
        np.testing.assert_allclose(result.avg[:, j], expected["W_AVG"].to_numpy(), rtol=5e-6, atol=1e-12)
        np.testing.assert_array_equal(result.denom[:, j], expected["DENOM"].to_numpy())
        summary = result.summary.row(j, named=True)
        assert summary["matched"] == len(cohort["oracle"][score])
        assert summary["n_absent"] == 10
        assert summary["n_ambiguous"] == 250 - len(cohort["oracle"][score])
        assert summary["n_strand_flipped"] > 0 and summary["n_flipped"] > 0


def crafted_bim() -> pl.DataFrame:
    """Eight variants on chr1; positions 500 is a split multi-allelic site."""
    rows = [("1", "v100", 100, "A", "G"), ("1", "v200", 200, "C", "T"), ("1", "v300", 300, "A", "T"),
            ("1", "v400", 400, "G", "A"), ("1", "v500a", 500, "T", "C"), ("1", "v500b", 500, "G", "C"),
            ("1", "v600", 600, "A", "C"), ("2", "rs77", 700, "T", "G")]
    return pl.DataFrame({"CHROM": [r[0] for r in rows], "ID": [r[1] for r in rows],
                         "CM": [0.0] * len(rows), "POS": [r[2] for r in rows],
                         "ALT": [r[3] for r in rows], "REF": [r[4] for r in rows]})


@pytest.fixture
def small_bfile(tmp_path) -> Path:
    rng = np.random.default_rng(3)
    bim = crafted_bim()
    genotypes = rng.integers(0, 3, size=(bim.height, 60)).astype(np.int8)
    prefix = tmp_path / "small"
    write_bfile(prefix, make_fam(60), bim, [genotypes])
    return prefix


CRAFTED_ROWS = [
    {"rsID": "a", "chr_name": "1", "chr_position": 100, "effect_allele": "A", "other_allele": "G",
     "effect_weight": 1.0},  # matched
    {"rsID": "b", "chr_name": "1", "chr_position": 200, "effect_allele": "T", "other_allele": "C",
     "effect_weight": 1.0},  # flipped (effect = REF)
    {"rsID": "c", "chr_name": "1", "chr_position": 300, "effect_allele": "A", "other_allele": "T",
     "effect_weight": 1.0},  # ambiguous
    {"rsID": "d", "chr_name": "1", "chr_position": 400, "effect_allele": "C", "other_allele": "T",
     "effect_weight": 1.0},  # strand_flipped (G/A on the other strand), effect = ALT
    {"rsID": "e", "chr_name": "1", "chr_position": 500, "effect_allele": "T", "other_allele": "C",
     "effect_weight": 1.0},  # multiallelic
    {"rsID": "f", "chr_name": "1", "chr_position": 600, "effect_allele": "A", "other_allele": "G",
     "effect_weight": 1.0},  # allele_mismatch (A/C in the .bim)
    {"rsID": "g", "chr_name": "1", "chr_position": 999, "effect_allele": "A", "other_allele": "G",
     "effect_weight": 1.0},  # absent
    {"rsID": "rs77", "chr_name": None, "chr_position": None, "effect_allele": "C",
     "other_allele": "A", "effect_weight": 1.0},  # rsID fallback: strand_flipped (G/T), effect = REF
]


def test_crafted_match_log_counts(small_bfile, tmp_path):
    path = write_scoring_file(tmp_path / "PGS000010.txt", CRAFTED_ROWS)
    result = polygenic_scores(small_bfile, [path], min_overlap=0.0)
    log = result.match_log
    assert log["status"].to_list() == ["matched", "flipped", "ambiguous", "strand_flipped",
                                       "multiallelic", "allele_mismatch", "absent", "strand_flipped"]
    assert log["effect_is_alt"].to_list() == [True, False, None, True, None, None, None, False]
    assert log["bim_id"].to_list()[:4] == ["v100", "v200", "v300", "v400"]
    assert log["bim_id"][7] == "rs77"
    assert log["row"].to_list() == list(range(4, 12))  # 2 metadata lines + header line
    summary = result.summary.row(0, named=True)
    assert (summary["variants_in_file"], summary["matched"]) == (8, 4)
    assert [summary[c] for c in STATUS_COLUMNS] == [1, 1, 2, 1, 1, 1, 0, 1]


def test_keep_ambiguous_assumes_bim_strand(small_bfile, tmp_path):
    path = write_scoring_file(tmp_path / "PGS000010.txt", CRAFTED_ROWS)
    log = polygenic_scores(small_bfile, [path], min_overlap=0.0, keep_ambiguous=True).match_log
    row = log.row(2, named=True)
    assert (row["status"], row["ambiguous"], row["effect_is_alt"]) == ("matched", True, True)


def test_duplicates_are_all_dropped(small_bfile, tmp_path):
    rows = CRAFTED_ROWS[:2] + [CRAFTED_ROWS[0] | {"rsID": "a2", "effect_weight": 2.0}]
    path = write_scoring_file(tmp_path / "PGS000011.txt", rows)
    result = polygenic_scores(small_bfile, [path], min_overlap=0.0)
    assert result.match_log["status"].to_list() == ["duplicate", "flipped", "duplicate"]
    assert result.summary["n_duplicate"][0] == 2


def test_harmonized_columns_preferred_and_gz_equals_plain(small_bfile, tmp_path):
    columns = ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight",
               "hm_source", "hm_rsID", "hm_chr", "hm_pos", "hm_inferOtherAllele"]
    # author positions are wrong (another build); harmonized ones are right
    rows = [r | {"chr_position": (r["chr_position"] or 0) + 7, "hm_chr": r["chr_name"],
                 "hm_pos": r["chr_position"], "hm_rsID": r["rsID"], "hm_source": "ENSEMBL"}
            for r in CRAFTED_ROWS]
    header = "#pgs_id={id}\n#genome_build=GRCh37\n#HmPOS_build=GRCh38\n"
    plain = write_scoring_file(tmp_path / "PGS000012.txt", rows, header, columns)
    (tmp_path / "gz").mkdir()
    packed = write_scoring_file(tmp_path / "gz" / "PGS000012.txt.gz", rows, header, columns)
    a = polygenic_scores(small_bfile, [plain], min_overlap=0.0, genome_build="GRCh38")
    b = polygenic_scores(small_bfile, [packed], min_overlap=0.0, genome_build="hg38")
    assert a.summary["matched"][0] == 4
    assert a.match_log.equals(b.match_log)
    np.testing.assert_array_equal(a.sums, b.sums)
    with pytest.raises(InputError, match="GRCh38.*differs from --genome-build GRCh37"):
        polygenic_scores(small_bfile, [plain], min_overlap=0.0, genome_build="GRCh37")


def test_zero_overlap_and_min_overlap_name_the_file(small_bfile, tmp_path):
    absent = write_scoring_file(tmp_path / "PGS000013.txt", [CRAFTED_ROWS[6]])
    with pytest.raises(InputError, match=r"PGS000013.txt: score PGS000013: only 0 of 1"):
        polygenic_scores(small_bfile, [absent], min_overlap=0.0)
    half = write_scoring_file(tmp_path / "PGS000014.txt", CRAFTED_ROWS)
    with pytest.raises(InputError, match=r"score PGS000014: only 4 of 8 .* below --min-overlap 0.75"):
        polygenic_scores(small_bfile, [half])


def test_duplicate_score_ids_are_refused(small_bfile, tmp_path):
    a = write_scoring_file(tmp_path / "PGS000015.txt", CRAFTED_ROWS)
    (tmp_path / "copy").mkdir()
    b = write_scoring_file(tmp_path / "copy" / "PGS000015.txt", CRAFTED_ROWS)
    with pytest.raises(InputError, match="score ID PGS000015 is also"):
        polygenic_scores(small_bfile, [a, b], min_overlap=0.0)


CRAFTED_ROWS_TEXT = ("rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\tis_interaction\n"
                     "a\t1\t100\tA\tG\t1.0\n")


def brute_force_scores(genotypes: np.ndarray, weights: dict[int, tuple[bool, float]],
                       founders: np.ndarray, mean_imputation: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-person loop: SUM and DENOM for one score; weights {variant: (effect_is_alt, w)}."""
    n = genotypes.shape[1]
    sums, denom = np.zeros(n), np.zeros(n)
    for v, (is_alt, w) in weights.items():
        founder_calls = [g for g in genotypes[v, founders] if g >= 0]
        p_alt = sum(founder_calls) / (2 * len(founder_calls))
        for i in range(n):
            g = genotypes[v, i]
            if g < 0:
                if not mean_imputation:
                    continue
                dose = 2 * p_alt if is_alt else 2 * (1 - p_alt)
            else:
                dose = g if is_alt else 2 - g
            sums[i] += w * dose
            denom[i] += 2
    return sums, denom


@pytest.mark.parametrize("mean_imputation", [True, False])
def test_scores_equal_brute_force_with_nonfounders(tmp_path, mean_imputation):
    rng = np.random.default_rng(11)
    bim = crafted_bim().filter(pl.col("ID").is_in(["v100", "v200", "v400", "v600", "rs77"]))
    n = 30
    genotypes = rng.integers(0, 3, size=(bim.height, n)).astype(np.int8)
    genotypes[rng.random(genotypes.shape) < 0.15] = -9
    fam = make_fam(n, n_nonfounders=8)
    write_bfile(tmp_path / "g", fam, bim, [genotypes])
    rows = [CRAFTED_ROWS[i] | {"effect_weight": w} for i, w in ((0, 0.5), (1, -1.25), (3, 2.0), (7, 0.75))]
    path = write_scoring_file(tmp_path / "PGS000016.txt", rows)
    result = polygenic_scores(tmp_path / "g", [path], min_overlap=0.0, mean_imputation=mean_imputation,
                              chunk_size=2)
    # .bim rows: v100 (ALT), v200 (REF), v400 (ALT via strand), v600 unused, rs77 (REF via strand)
    weights = {0: (True, 0.5), 1: (False, -1.25), 2: (True, 2.0), 4: (False, 0.75)}
    sums, denom = brute_force_scores(genotypes, weights, np.arange(n - 8), mean_imputation)
    np.testing.assert_allclose(result.sums[:, 0], sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.denom[:, 0], denom)


def test_cli_writes_all_outputs(small_bfile, tmp_path, capsys):
    a = write_scoring_file(tmp_path / "PGS000020.txt", CRAFTED_ROWS)
    b = write_scoring_file(tmp_path / "PGS000021.txt.gz", CRAFTED_ROWS[:4] + CRAFTED_ROWS[7:])
    out = tmp_path / "res" / "prs"
    code = main(["prs", "--bfile", str(small_bfile), "--scores", str(a), str(b), "--out", str(out),
                 "--min-overlap", "0.5"])
    assert code == 0
    paths = output_paths(out)
    assert all(p.exists() for p in paths.values())
    scores = pl.read_csv(paths["scores"], separator="\t")
    assert scores.columns == ["IID", "PGS000020_AVG", "PGS000020_SUM", "PGS000021_AVG", "PGS000021_SUM"]
    modality = load_modality(paths["modality"])
    assert modality.feature.tolist() == ["PGS000020", "PGS000021"]
    avg = scores.select("PGS000020_AVG", "PGS000021_AVG").to_numpy()
    np.testing.assert_allclose(modality.extra["mean"], avg.mean(axis=0))
    np.testing.assert_allclose(modality.X, (avg - avg.mean(0)) / avg.std(0), rtol=1e-5, atol=1e-6)
    with gzip.open(paths["match"], "rt") as handle:
        match = pl.read_csv(handle, separator="\t")
    assert match.height == 8 + 5
    summary = pl.read_csv(paths["summary"], separator="\t")
    assert summary["matched"].to_list() == [4, 4]


@pytest.mark.parametrize("make_bad, message", [
    (lambda p: p.write_text("rs1\t1\t100\tA\tG\t0.5\n"), "no PGS Catalog columns"),
    (lambda p: p.write_text("#pgs_id=X\nSNP\tA1\tBETA\nrs1\tA\t0.5\n"), "no PGS Catalog columns"),
    (lambda p: p.write_text("#pgs_id=X\n"), "no column header line"),
    (lambda p: p.write_text("rsID\teffect_allele\tOR\nrs1\tA\t1.5\n"), "only as OR/HR"),
    (lambda p: p.write_text("rsID\teffect_allele\teffect_weight\nrs1\tA\tbig\n"), r"row 2, column 'effect_weight'"),
    (lambda p: p.write_text("#pgs_id=X\n" + CRAFTED_ROWS_TEXT.replace("1.0\n", "1.0\tTRUE\n", 1)),
     r"row 3, column 'is_interaction': interaction terms are not supported"),
])
def test_cli_bad_scoring_file_exits_2_without_outputs(small_bfile, tmp_path, capsys, make_bad, message):
    bad = tmp_path / "bad.txt"
    make_bad(bad)
    out = tmp_path / "res" / "prs"
    code = main(["prs", "--bfile", str(small_bfile), "--scores", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"contig prs: error: {bad}")
    assert re.search(message, err[-1])
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())



def test_cli_low_overlap_leaves_no_outputs(small_bfile, tmp_path, capsys):
    path = write_scoring_file(tmp_path / "PGS000022.txt", CRAFTED_ROWS)
    out = tmp_path / "res" / "prs"
    assert main(["prs", "--bfile", str(small_bfile), "--scores", str(path), "--out", str(out)]) == 2
    assert "score PGS000022: only 4 of 8" in capsys.readouterr().err
    assert not any(p.exists() for p in output_paths(out).values())


def test_write_is_all_or_nothing(small_bfile, tmp_path, monkeypatch):
    path = write_scoring_file(tmp_path / "PGS000023.txt", CRAFTED_ROWS)
    import contig.scores.prs as prs

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(prs, "save_modality", fail)
    with pytest.raises(RuntimeError):
        run_prs(small_bfile, [path], tmp_path / "o" / "prs", min_overlap=0.0)
    assert list((tmp_path / "o").iterdir()) == []


def test_streamed_match_log_equals_in_memory(small_bfile, tmp_path):
    a = write_scoring_file(tmp_path / "PGS000024.txt", CRAFTED_ROWS)
    b = write_scoring_file(tmp_path / "PGS000025.txt", CRAFTED_ROWS[:2])
    in_memory = polygenic_scores(small_bfile, [a, b], min_overlap=0.0)
    streamed = run_prs(small_bfile, [a, b], tmp_path / "prs", min_overlap=0.0, threads=2)
    with gzip.open(output_paths(tmp_path / "prs")["match"], "rt") as handle:
        written = pl.read_csv(handle, separator="\t", null_values="NA", infer_schema=False)
    expected = in_memory.match_log.drop("bim_idx")
    assert written.height == expected.height == 10
    assert written.columns == expected.columns
    assert written["status"].to_list() == expected["status"].to_list()
    assert written["score"].to_list() == ["PGS000024"] * 8 + ["PGS000025"] * 2
    np.testing.assert_array_equal(streamed.sums, in_memory.sums)


@pytest.mark.plink2
def test_simulated_cohort_scores_equal_plink2(sim_cohort, tmp_path):
    """The simulator's PGS files (flipped, strand-flipped, ambiguous, absent, duplicated rows, half of
    them harmonized) end to end through the CLI; scores checked against plink2 on the used variants."""
    scores = sorted((sim_cohort / "pgs").glob("*.txt*"))
    out = tmp_path / "prs"
    assert main(["prs", "--bfile", str(sim_cohort / "genotypes"), "--scores", *map(str, scores),
                 "--out", str(out), "--min-overlap", "0.5"]) == 0
    paths = output_paths(out)
    summary = pl.read_csv(paths["summary"], separator="\t")
    assert (summary.select(STATUS_COLUMNS).sum_horizontal() == summary["variants_in_file"]).all()
    assert summary["n_flipped"].sum() > 0 and summary["n_strand_flipped"].sum() > 0
    with gzip.open(paths["match"], "rt") as handle:
        match = pl.read_csv(handle, separator="\t", null_values="NA", infer_schema=False)
    bim = pl.read_csv(sim_cohort / "genotypes.bim", separator="\t", has_header=False,
                      new_columns=["CHROM", "ID", "CM", "POS", "ALT", "REF"], infer_schema=False)
    used = match.filter(pl.col("effect_is_alt").is_not_null()).join(
        bim.select(bim_id="ID", alt="ALT", ref="REF"), on="bim_id")
    ours = pl.read_csv(paths["scores"], separator="\t")
    for score in summary["score"]:
        rows = used.filter(pl.col("score") == score)
        oracle = [(i, a if e == "true" else r, w) for i, a, r, e, w in
                  rows.select("bim_id", "alt", "ref", "effect_is_alt", "effect_weight").iter_rows()]
        expected = plink2_score(sim_cohort / "genotypes", oracle, tmp_path / score, True)
        np.testing.assert_allclose(ours[f"{score}_SUM"].to_numpy(), expected["W_SUM"].to_numpy(),
                                   rtol=5e-6, atol=1e-9)


def write_low_overlap_copy(cohort: dict, path: Path, score_id: str) -> Path:
    """A scoring file of ``score_id`` whose rows are the cohort's first score plus 2000 absent ones
    (under 20% matched)."""
    rows = [{"rsID": f"rsY{k}", "chr_name": "4", "chr_position": 500 + k, "effect_allele": "C",
             "other_allele": "T", "effect_weight": 0.2} for k in range(2000)]
    first = pl.read_csv(cohort["scores"][0], separator="\t", comment_prefix="#")
    return write_scoring_file(path, first.to_dicts() + rows,
                              header=f"#pgs_id={score_id}\n#genome_build=GRCh37\n")


@pytest.mark.plink2
def test_low_overlap_score_is_skipped_and_listed(cohort, tmp_path):
    low = write_low_overlap_copy(cohort, tmp_path / "PGS000009.txt", "PGS000009")
    paths = [cohort["scores"][0], low, *cohort["scores"][1:]]
    out = tmp_path / "res" / "prs"
    result = run_prs(cohort["prefix"], paths, out, min_overlap=0.5)
    assert result.score_ids == ["PGS000001", "PGS000002", "PGS000003"]
    summary = pl.read_csv(output_paths(out)["summary"], separator="\t")
    assert summary["score"].to_list() == ["PGS000001", "PGS000009", "PGS000002", "PGS000003"]
    assert summary["status"].to_list() == ["used", "skipped", "used", "used"]
    skipped = summary.row(1, named=True)
    assert skipped["fraction"] < 0.5 and "below --min-overlap 0.5" in skipped["reason"]
    assert load_modality(output_paths(out)["modality"]).feature.tolist() == result.score_ids
    for j, score in enumerate(result.score_ids):
        expected = plink2_score(cohort["prefix"], cohort["oracle"][score], tmp_path / score, True)
        np.testing.assert_allclose(result.sums[:, j], expected["W_SUM"].to_numpy(), rtol=5e-6, atol=1e-9)
        np.testing.assert_array_equal(result.denom[:, j], expected["DENOM"].to_numpy())


def test_every_score_below_overlap_fails_without_outputs(small_bfile, tmp_path, capsys):
    a = write_scoring_file(tmp_path / "PGS000030.txt", CRAFTED_ROWS)
    b = write_scoring_file(tmp_path / "PGS000031.txt", CRAFTED_ROWS)
    out = tmp_path / "res" / "prs"
    code = main(["prs", "--bfile", str(small_bfile), "--scores", str(a), str(b), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"contig prs: error: {a}: score PGS000030: only 4 of 8")
    assert "every score (and the other 1) is below --min-overlap" in err[-1]
    assert not any(p.exists() for p in output_paths(out).values())


def test_on_low_overlap_fail_names_the_file(small_bfile, tmp_path, capsys):
    good = write_scoring_file(tmp_path / "PGS000032.txt", CRAFTED_ROWS)
    low = write_scoring_file(tmp_path / "PGS000033.txt", CRAFTED_ROWS + [
        {**CRAFTED_ROWS[6], "rsID": f"z{k}", "chr_position": 90_000 + k} for k in range(8)])
    out = tmp_path / "res" / "prs"
    argv = ["prs", "--bfile", str(small_bfile), "--scores", str(good), str(low), "--out", str(out),
            "--min-overlap", "0.5"]
    assert main(argv) == 0  # skip (the default): PGS000033 (4 of 16 matched) is left out
    summary = pl.read_csv(output_paths(out)["summary"], separator="\t")
    assert summary["status"].to_list() == ["used", "skipped"]
    assert load_modality(output_paths(out)["modality"]).feature.tolist() == ["PGS000032"]
    out2 = tmp_path / "res2" / "prs"
    assert main(argv[:-3] + [str(out2), "--min-overlap", "0.5", "--on-low-overlap", "fail"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"contig prs: error: {low}: score PGS000033: only 4 of 16")
    assert not any(p.exists() for p in output_paths(out2).values())


def test_threads_report_the_first_bad_file_as_a_sequential_run_does(small_bfile, tmp_path, capsys):
    """With files matched ahead by worker threads, the error is still the first file's in order:
    here the second file repeats the first's score ID and the third does not parse."""
    first = write_scoring_file(tmp_path / "PGS000040.txt", CRAFTED_ROWS)
    again = write_scoring_file(tmp_path / "again.txt", CRAFTED_ROWS, header="#pgs_id=PGS000040\n")
    broken = tmp_path / "broken.txt"
    broken.write_text("rsID\teffect_allele\teffect_weight\nrs1\tA\tbig\n")
    for threads in ("1", "3"):
        out = tmp_path / f"res{threads}" / "prs"
        argv = ["prs", "--bfile", str(small_bfile), "--scores", str(first), str(again), str(broken),
                "--out", str(out), "--min-overlap", "0", "--threads", threads]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"contig prs: error: {again}: score ID PGS000040 is also the ID of {first}")
        assert not any(p.exists() for p in output_paths(out).values())
