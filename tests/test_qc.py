"""Genotype QC against plink2: kept samples/variants, HWE exact p-values, --keep and duplicate IDs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.special import gammaln

from contig.cli import main
from contig.genotypes.plinkio import Genotypes, write_bfile
from contig.genotypes.qc import QCThresholds, hwe_exact_p, read_keep_file, run_qc
from helpers.plink import make_cohort, run_plink2


def make_qc_cohort(prefix, seed: int = 3):
    """A cohort with every kind of QC failure: high-missing samples and variants, rare and
    monomorphic variants, HWE violators, variants with exact-threshold missing counts, and two
    non-founders (so founder-only --hwe/--maf differ from all-sample statistics)."""
    rng = np.random.default_rng(seed)
    g = make_cohort(prefix, n=250, m=1500, seed=seed, missing=0.02)
    n_samples = g.shape[1]
    g[:, :6][rng.uniform(size=(g.shape[0], 6)) < 0.12] = -9  # bad samples
    g[10:40][rng.uniform(size=(30, n_samples)) < 0.08] = -9  # bad variants
    g[50:60] = np.where(g[50:60] < 0, -9, 0)  # monomorphic
    g[60:80] = np.where(rng.uniform(size=(20, n_samples)) < 0.01, 1, 0)  # rare
    g[100:140] = rng.choice(np.array([0, 2], dtype=np.int8), size=(40, n_samples))  # HWE violators
    g[140:170] = np.where(rng.uniform(size=(30, n_samples)) < 0.5, 1, rng.choice([0, 2], size=(30, n_samples)))
    g[200, :] = 0
    g[200, :13] = -9  # exactly 13 missing
    g[200, 13:40] = 1
    g[201, :] = 1
    g[201, :14] = -9
    g[201, 14:] = rng.integers(0, 3, n_samples - 14)
    geno = Genotypes.open(prefix)
    fam = geno.fam.with_columns(
        pl.when(pl.int_range(pl.len()) < 2).then(pl.lit("F7")).otherwise(pl.col("PAT")).alias("PAT"))
    write_bfile(prefix, fam, geno.bim, [g])
    return g


def plink2_kept(tmp_path, prefix, flags: list[str]):
    run_plink2("--bfile", str(prefix), *flags, "--make-bed", "--out", str(tmp_path / "plink"))
    fam = Genotypes.open(tmp_path / "plink").fam["IID"].to_list()
    bim = Genotypes.open(tmp_path / "plink").bim["ID"].to_list()
    return fam, bim


@pytest.mark.plink2
@pytest.mark.parametrize("flags", [
    ["--mind", "0.05", "--geno", "0.05", "--maf", "0.01", "--hwe", "1e-6"],
    ["--mind", "0.1", "--geno", "0.052", "--maf", "0.05", "--hwe", "1e-3"],
    ["--geno", "0.02", "--maf", "0.2"],
    ["--mind", "0.03", "--hwe", "0.05"],
])
@pytest.mark.parametrize("kernel", [False, True], ids=["numpy", "kernel"])
def test_kept_samples_and_variants_equal_plink2(tmp_path, monkeypatch, flags, kernel):
    """Both counting paths: pgenlib + NumPy, and the compiled popcount kernel (forced on)."""
    monkeypatch.setattr("contig.genotypes.qc_counts.KERNEL_MIN_GENOTYPES", 0 if kernel else 10**18)
    make_qc_cohort(tmp_path / "in")
    want_samples, want_variants = plink2_kept(tmp_path, tmp_path / "in", flags)
    assert main(["qc", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "ours"), *flags]) == 0
    ours = Genotypes.open(tmp_path / "ours")
    assert ours.fam["IID"].to_list() == want_samples
    assert ours.bim["ID"].to_list() == want_variants
    # the .bed content is the same too
    assert (tmp_path / "ours.bed").read_bytes() == (tmp_path / "plink.bed").read_bytes()
    table = pl.read_csv(tmp_path / "ours.qc.tsv", separator="\t")
    assert table["step"].to_list() == ["input", "keep", "rm-dup", "mind", "geno", "hwe", "maf"]
    assert table["samples_remaining"][-1] == len(want_samples)
    assert table["variants_remaining"][-1] == len(want_variants)
    removed = table["variants_removed"].sum()
    assert removed == 1500 - len(want_variants)


def test_per_step_counts_follow_plink2_order(tmp_path):
    make_qc_cohort(tmp_path / "in")
    geno = Genotypes.open(tmp_path / "in")
    result = run_qc(geno, QCThresholds(mind=0.05, geno=0.05, maf=0.01, hwe=1e-6))
    rows = {r["step"]: r for r in result.steps.iter_rows(named=True)}
    assert rows["mind"]["samples_removed"] == 6  # the six bad samples
    # the 30 bad-missing variants are counted under --geno even if they also fail later filters
    assert set(result.removed_variants["geno"]) >= {f"rs{j}" for j in range(10, 40)} - set(
        result.removed_variants.get("rm-dup", []))
    # monomorphic variants fail --maf, not --hwe (no rare allele -> p = 1)
    assert {f"rs{j}" for j in range(50, 60)} <= set(result.removed_variants["maf"])


@pytest.mark.plink2
def test_hwe_p_values_equal_plink2_hardy(tmp_path):
    make_qc_cohort(tmp_path / "in")
    run_plink2("--bfile", str(tmp_path / "in"), "--hardy", "--out", str(tmp_path / "h"))
    hardy = pl.read_csv(tmp_path / "h.hardy", separator="\t")
    p = hwe_exact_p(hardy["HET_A1_CT"].to_numpy(), hardy["HOM_A1_CT"].to_numpy(),
                    hardy["TWO_AX_CT"].to_numpy())
    theirs = hardy["P"].to_numpy()
    # plink2 prints 6 significant digits: equal up to half a unit in the 6th digit
    unit = 10.0 ** (np.floor(np.log10(theirs)) - 5)
    assert np.all(np.abs(p - theirs) <= 0.5 * unit + 1e-300)
    assert theirs.min() < 1e-50  # the test covers extreme p-values too


def _brute_force_hwe(het: int, hom1: int, hom2: int) -> float:
    n = het + hom1 + hom2
    rare = 2 * min(hom1, hom2) + het
    k = np.arange(rare % 2, rare + 1, 2)
    hom_rare = (rare - k) // 2
    log_p = k * np.log(2) - gammaln(hom_rare + 1) - gammaln(n - k - hom_rare + 1) - gammaln(k + 1)
    prob = np.exp(log_p - log_p.max())
    prob /= prob.sum()
    observed = prob[k == het][0]
    return float(prob[prob <= observed * (1 + 1e-9)].sum())


def test_hwe_exact_p_matches_brute_force_enumeration():
    rng = np.random.default_rng(5)
    cases = [(0, 0, 0), (0, 10, 0), (1, 0, 0), (15, 1, 68), (17, 0, 67), (2, 0, 1000)]
    for _ in range(300):
        n = int(rng.integers(1, 400))
        f = rng.uniform(0.01, 0.99)
        w = np.array([f * f * rng.uniform(0.2, 3), 2 * f * (1 - f), (1 - f) ** 2])
        hom1, het, hom2 = rng.multinomial(n, w / w.sum())
        cases.append((het, hom1, hom2))
    het, hom1, hom2 = (np.array(c) for c in zip(*cases))
    p = hwe_exact_p(het, hom1, hom2)
    for i, case in enumerate(cases):
        want = 1.0 if sum(case) == 0 else _brute_force_hwe(*case)
        assert p[i] == pytest.approx(want, rel=1e-9, abs=1e-300), case


def test_keep_file_formats(tmp_path):
    (tmp_path / "plink.txt").write_text("F1 S1\nF2 S2\n")
    (tmp_path / "iid.txt").write_text("S1\nS3\n")
    (tmp_path / "header.txt").write_text("#IID\nS4\n")
    (tmp_path / "manifest.tsv").write_text("IID\tpath\teye\nS1\ta.png\tleft\nS1\tb.png\tright\nS9\tc.png\tleft\n")
    assert read_keep_file(tmp_path / "plink.txt").to_dicts() == [{"FID": "F1", "IID": "S1"},
                                                               {"FID": "F2", "IID": "S2"}]
    assert read_keep_file(tmp_path / "iid.txt")["IID"].to_list() == ["S1", "S3"]
    assert read_keep_file(tmp_path / "header.txt")["IID"].to_list() == ["S4"]
    assert read_keep_file(tmp_path / "manifest.tsv")["IID"].to_list() == ["S1", "S9"]


@pytest.mark.plink2
def test_keep_manifest_and_plink_keep_agree(tmp_path, caplog):
    make_cohort(tmp_path / "in", n=60, m=200)
    keep_ids = [f"S{i}" for i in range(0, 60, 3)]
    rows = "".join(f"{iid}\timg/{iid}.png\n" for iid in keep_ids) + "NOT_GENOTYPED\timg/x.png\n"
    (tmp_path / "manifest.tsv").write_text("IID\tpath\n" + rows)
    (tmp_path / "keep.txt").write_text("".join(f"F{iid[1:]} {iid}\n" for iid in keep_ids))
    run_plink2("--bfile", str(tmp_path / "in"), "--keep", str(tmp_path / "keep.txt"), "--maf", "0.05",
               "--make-bed", "--out", str(tmp_path / "plink"))
    with caplog.at_level("INFO"):
        assert main(["qc", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "ours"),
                     "--keep", str(tmp_path / "manifest.tsv"), "--maf", "0.05"]) == 0
    assert (tmp_path / "ours.bed").read_bytes() == (tmp_path / "plink.bed").read_bytes()
    assert Genotypes.open(tmp_path / "ours").fam["IID"].to_list() == keep_ids
    table = pl.read_csv(tmp_path / "ours.qc.tsv", separator="\t")
    assert table.filter(pl.col("step") == "keep")["samples_removed"].item() == 40
    assert "1 IDs in" in caplog.text  # the manifest row without genotypes is reported


def test_duplicate_variant_ids_keep_first_and_report(tmp_path):
    g = make_cohort(tmp_path / "in", n=30, m=20)
    geno = Genotypes.open(tmp_path / "in")
    ids = geno.bim["ID"].to_list()
    ids[5] = ids[2]
    ids[9] = ids[2]
    write_bfile(tmp_path / "dup", geno.fam, geno.bim.with_columns(pl.Series("ID", ids)), [g])
    assert main(["qc", "--bfile", str(tmp_path / "dup"), "--out", str(tmp_path / "out")]) == 0
    out = Genotypes.open(tmp_path / "out")
    assert out.n_variants == 18 and out.bim["ID"].is_unique().all()
    assert np.array_equal(out.read(np.arange(18)), np.delete(g, [5, 9], axis=0))
    table = pl.read_csv(tmp_path / "out.qc.tsv", separator="\t")
    assert table.filter(pl.col("step") == "rm-dup")["variants_removed"].item() == 2


@pytest.mark.parametrize("flag, value", [("--maf", "0.7"), ("--mind", "-0.1"), ("--geno", "1.5"),
                                         ("--hwe", "1"), ("--chunk-size", "0")])
def test_out_of_range_threshold_is_refused(tmp_path, capsys, flag, value):
    make_cohort(tmp_path / "in", n=20, m=20)
    with pytest.raises(SystemExit) as stop:
        main(["qc", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "o"), flag, value])
    assert stop.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err
    assert not list(tmp_path.glob("o*"))


def test_bare_flags_take_plink2_values(tmp_path):
    """``--mind``/``--geno``/``--maf`` without a number mean plink2's 0.1/0.1/0.01."""
    make_qc_cohort(tmp_path / "in")
    assert main(["qc", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                 "--mind", "--geno", "--maf"]) == 0
    table = pl.read_csv(tmp_path / "o.qc.tsv", separator="\t", null_values="NA")
    thresholds = dict(zip(table["step"], table["threshold"]))
    assert (thresholds["mind"], thresholds["geno"], thresholds["maf"]) == (0.1, 0.1, 0.01)
    assert thresholds["hwe"] is None


# ---- the --mind pass: one read for the missing calls and (compiled kernel) the variant counts -------

def _founders_cohort(prefix, non_founders: bool) -> np.ndarray:
    """A cohort --mind 0.5 removes nobody from, with two duplicate variant IDs (rm-dup drops them
    before --mind) and, when asked, two non-founders."""
    g = make_cohort(prefix, n=250, m=1500, seed=4, missing=0.02)
    geno = Genotypes.open(prefix)
    ids = geno.bim["ID"].to_list()
    ids[7] = ids[3]
    ids[900] = ids[899]
    g[100:130] = np.random.default_rng(4).choice(np.array([0, 2], dtype=np.int8), size=(30, 250))
    fam = geno.fam
    if non_founders:
        fam = fam.with_columns(pl.when(pl.int_range(pl.len()) < 2).then(pl.lit("F7"))
                               .otherwise(pl.col("PAT")).alias("PAT"))
    write_bfile(prefix, fam, geno.bim.with_columns(pl.Series("ID", ids)), [g])
    return g


@pytest.mark.plink2
@pytest.mark.parametrize("kernel", [False, True], ids=["numpy", "kernel"])
@pytest.mark.parametrize("case", ["nobody-removed", "nobody-removed-non-founders", "some-removed"])
def test_mind_pass_counts_reused_only_when_nobody_removed(tmp_path, monkeypatch, kernel, case):
    """The kernel's --mind pass also counts the genotypes; they stand for --geno/--hwe/--maf when
    --mind removed nobody (founders are counted apart when not everyone is one). Kept sets and
    .bed bytes equal plink2's on the same input without the duplicate IDs in every case."""
    from contig.genotypes import qc

    monkeypatch.setattr("contig.genotypes.qc_counts.KERNEL_MIN_GENOTYPES", 0 if kernel else 10**18)
    counted = []
    real_counts = qc.genotype_counts
    monkeypatch.setattr(qc, "genotype_counts",
                        lambda genotypes, samples: counted.append(samples) or real_counts(genotypes, samples))
    if case == "some-removed":
        make_qc_cohort(tmp_path / "in")
        flags = ["--mind", "0.05", "--geno", "0.05", "--maf", "0.01", "--hwe", "1e-6"]
    else:
        _founders_cohort(tmp_path / "in", non_founders=case.endswith("non-founders"))
        flags = ["--mind", "0.5", "--geno", "0.05", "--maf", "0.01", "--hwe", "1e-6"]
    # plink2 keeps duplicate IDs: its input is ours after rm-dup
    geno = Genotypes.open(tmp_path / "in")
    unique = np.flatnonzero(geno.bim["ID"].is_first_distinct().to_numpy())
    write_bfile(tmp_path / "unique", geno.fam, geno.bim[unique], [geno.read(unique)])
    want_samples, want_variants = plink2_kept(tmp_path, tmp_path / "unique", flags)
    assert main(["qc", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "ours"), *flags]) == 0
    ours = Genotypes.open(tmp_path / "ours")
    assert ours.fam["IID"].to_list() == want_samples
    assert ours.bim["ID"].to_list() == want_variants
    assert (tmp_path / "ours.bed").read_bytes() == (tmp_path / "plink.bed").read_bytes()
    removed = len(want_samples) < geno.n_samples
    assert removed == (case == "some-removed")
    # (make_qc_cohort's two non-founders are among the people --mind removes)
    founders_apart = case == "nobody-removed-non-founders"
    assert len(counted) == (0 if kernel and not removed else 1) + founders_apart


def test_numpy_missing_counts_equal_brute_force(tmp_path):
    """The vertical counters: 203 samples (a partial last byte), 600 of 700 variants (blocks of
    255 rows, a partial last one, chunks of 255), one sample missing everywhere (counts > 255)."""
    from contig.genotypes.qc_counts import packed_missing_counts

    g = make_cohort(tmp_path / "c", n=203, m=700, seed=21, missing=0.04)
    g[:, 5] = -9
    g[:, 202] = -9
    g[10] = -9
    geno = Genotypes.open(tmp_path / "c")
    write_bfile(tmp_path / "c", geno.fam, geno.bim, [g])
    geno = Genotypes.open(tmp_path / "c")
    rng = np.random.default_rng(0)
    samples = np.sort(rng.choice(203, 150, replace=False))
    variants = np.sort(rng.choice(700, 600, replace=False))
    got = packed_missing_counts(geno, samples, variants, chunk_size=300)
    assert np.array_equal(got, (g[np.ix_(variants, samples)] < 0).sum(axis=0))
    assert np.array_equal(packed_missing_counts(geno, None), (g < 0).sum(axis=0))
    assert packed_missing_counts(geno, None)[5] == 700


def test_qc_imports_no_numba(tmp_path):
    """Plain QC below the kernel threshold never imports Numba (~0.25 s), not even through the
    sample-filter modules (KING, LD) the command's options come from."""
    import subprocess
    import sys

    make_cohort(tmp_path / "in", n=40, m=60)
    script = ("import sys; from contig.cli import main; "
              f"main(['qc', '--bfile', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'o')!r}, "
              "'--mind', '0.1', '--geno', '0.1', '--maf', '0.01', '--hwe', '1e-6']); "
              "print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
