"""The simulator's properties, each measured on a simulated cohort (plink2 and statsmodels as oracles)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from PIL import Image
from scipy.stats import spearmanr

from contig.core.errors import InputError
from contig.genotypes.plinkio import MISSING, Genotypes, read_bim
from contig.simulate import TRAITS, SimulationConfig, read_simulation_json, simulate_cohort
from contig.core.tables import read_tsv

VENV_BIN = Path(sys.executable).parent
COMPLEMENT = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def cohort(sim_cohort):
    """Genotypes (float, NaN missing) and tables of the shared small cohort."""
    geno = Genotypes.open(sim_cohort / "genotypes")
    g = geno.read(np.arange(geno.n_variants)).astype(np.float64)
    g[g == MISSING] = np.nan
    freq = np.nanmean(g, axis=1) / 2
    return {
        "dir": sim_cohort,
        "bim": geno.bim,
        "fam": geno.fam,
        "G": g,  # (n_snps, n_samples)
        "maf": np.minimum(freq, 1 - freq),
        "traits": read_tsv(sim_cohort / "traits.tsv", dtypes={t: pl.Float64 for t in TRAITS}),
        "truth": read_tsv(sim_cohort / "truth.tsv", dtypes={"start": pl.Int64, "end": pl.Int64,
                                                            "chrom": pl.Int64, "effect": pl.Float64}),
        "genes": read_tsv(sim_cohort / "genes.tsv", dtypes={"chrom": pl.Int64, "start": pl.Int64,
                                                            "end": pl.Int64}),
        "config": read_simulation_json(sim_cohort / "simulation.json"),
    }


def imputed(row: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(row), np.nanmean(row), row)


def r2(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1] ** 2)


# ---------------------------------------------------------------- files and formats


def test_files_follow_the_contracts(cohort):
    d = cohort["dir"]
    for name in ("genotypes.bed", "genotypes.bim", "genotypes.fam", "images.tsv", "covariates.tsv",
                 "genes.tsv", "labels.tsv", "truth.tsv", "traits.tsv", "simulation.json"):
        assert (d / name).is_file(), name
    bim, fam = cohort["bim"], cohort["fam"]
    assert bim["CHROM"].unique().cast(int).sort().to_list() == list(range(1, 23))
    assert bim["ID"].str.starts_with("rs").all() and bim["ID"].is_unique().all()
    assert bim["ALT"].is_in(list("ACGT")).all() and bim["REF"].is_in(list("ACGT")).all()
    assert (bim["ALT"] != bim["REF"]).all()
    pairs = (bim["ALT"] + bim["REF"]).to_list()
    ambiguous = sum(p in ("AT", "TA", "CG", "GC") for p in pairs)
    assert 0.05 < ambiguous / len(pairs) < 0.3
    for _, block in bim.group_by("CHROM"):
        assert (np.diff(block["POS"].to_numpy()) > 0).all()

    covariates = read_tsv(d / "covariates.tsv", required=["IID", "age", "sex", "batch"],
                          dtypes={"age": pl.Float64, "sex": pl.Int64})
    assert covariates["IID"].to_list() == fam["IID"].to_list()
    assert covariates["sex"].to_list() == fam["SEX"].cast(pl.Int64).to_list()
    assert set(covariates["sex"].unique()) == {1, 2}
    assert covariates["batch"].n_unique() >= 2

    manifest = read_tsv(d / "images.tsv", required=["IID", "path", "eye"])
    assert manifest.columns == ["IID", "path", "eye"]
    assert set(manifest["eye"]) == {"left", "right"}
    eyes_per_person = manifest.group_by("IID").len()["len"]
    assert set(eyes_per_person) == {1, 2}
    assert 0.45 < (eyes_per_person == 2).mean() < 0.75
    assert set(manifest["IID"]) == set(fam["IID"])
    for path in manifest["path"].sample(20, seed=0):
        with Image.open(d / path) as image:
            assert image.size == (64, 64) and image.mode == "RGB"

    labels = read_tsv(d / "labels.tsv", dtypes={"disease": pl.Int64, "severity": pl.Int64})
    assert labels.columns == ["IID", "disease", "severity"]
    assert set(labels["disease"]) == {0, 1} and set(labels["severity"]) == {0, 1, 2, 3, 4}
    assert cohort["genes"].columns == ["chrom", "start", "end", "gene"]
    assert cohort["truth"].columns[:8] == ["kind", "id", "chrom", "start", "end", "trait", "effect",
                                           "variance_explained"]
    assert cohort["traits"].columns == ["IID", "population", *TRAITS]


# ---------------------------------------------------------------- genotypes


def test_ld_is_high_between_neighbours_and_decays_with_distance(cohort):
    bim, g, maf = cohort["bim"], cohort["G"], cohort["maf"]
    chrom, pos = bim["CHROM"].cast(int).to_numpy(), bim["POS"].to_numpy()
    common = np.flatnonzero(maf > 0.05)
    near, far = [], []
    for a, b in zip(common[:-1], common[1:]):
        if chrom[a] == chrom[b]:
            near.append(r2(g[a], g[b]))
    rng = np.random.default_rng(0)
    while len(far) < 400:
        a, b = rng.choice(common, 2)
        if chrom[a] == chrom[b] and abs(pos[a] - pos[b]) > 1_000_000:
            far.append(r2(g[a], g[b]))
    assert np.mean(near) > 0.2
    assert np.mean(far) < 0.02  # ~1/n sampling noise plus a little structure


def hudson_fst(g: np.ndarray, pop: np.ndarray) -> float:
    """Hudson's Fst (ratio of averages, Bhatia et al. 2013) between populations 0 and 1."""
    p1, p2 = np.nanmean(g[:, pop == 0], 1) / 2, np.nanmean(g[:, pop == 1], 1) / 2
    n1, n2 = 2 * np.sum(~np.isnan(g[:, pop == 0]), 1), 2 * np.sum(~np.isnan(g[:, pop == 1]), 1)
    num = (p1 - p2) ** 2 - p1 * (1 - p1) / (n1 - 1) - p2 * (1 - p2) / (n2 - 1)
    den = p1 * (1 - p2) + p2 * (1 - p1)
    return float(np.sum(num) / np.sum(den))


def test_two_populations_with_fst_near_target_separated_by_pc1(cohort):
    pop = (cohort["traits"]["population"] == "POP2").to_numpy().astype(int)
    assert 0.2 < pop.mean() < 0.8
    assert 0.03 < hudson_fst(cohort["G"], pop) < 0.08
    common = cohort["G"][cohort["maf"] > 0.05]
    z = np.array([imputed(row) for row in common])
    z = (z - z.mean(1, keepdims=True)) / z.std(1, keepdims=True)
    pc1 = np.linalg.svd(z.T, full_matrices=False)[0][:, 0]
    threshold = (pc1[pop == 0].mean() + pc1[pop == 1].mean()) / 2
    agreement = np.mean((pc1 > threshold) == pop.astype(bool))
    accuracy = max(agreement, 1 - agreement)  # the sign of a PC is arbitrary
    assert accuracy > 0.97


def test_spectrum_rare_variants_in_genes_and_missingness(cohort):
    maf, g, bim, genes = cohort["maf"], cohort["G"], cohort["bim"], cohort["genes"]
    assert np.mean(maf < 0.01) >= 0.2
    rare = np.flatnonzero(maf < 0.01)
    chrom, pos = bim["CHROM"].cast(int).to_numpy(), bim["POS"].to_numpy()
    gene_rows = list(genes.iter_rows())
    in_gene = [any(c == chrom[j] and s <= pos[j] <= e for c, s, e, _ in gene_rows) for j in rare]
    assert np.mean(in_gene) > 0.5
    assert 0.005 < np.isnan(g).mean() < 0.02


def plink2_kept(prefix: Path, out: Path, *flags: str) -> tuple[int, int]:
    """(samples, variants) plink2 keeps after ``flags``."""
    subprocess.run(["plink2", "--bfile", str(prefix), *flags, "--make-just-bim", "--make-just-fam",
                    "--threads", "1", "--out", str(out)], check=True, capture_output=True,
                   env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return (len(out.with_suffix(".fam").read_text().splitlines()),
            len(out.with_suffix(".bim").read_text().splitlines()))


@pytest.mark.plink2
def test_plink2_qc_removes_planted_failures_but_no_causal_snp(cohort, tmp_path):
    prefix = cohort["dir"] / "genotypes"
    n, m = cohort["fam"].height, cohort["bim"].height
    kept_n, _ = plink2_kept(prefix, tmp_path / "mind", "--mind", "0.05")
    assert 1 <= n - kept_n <= 0.02 * n
    _, kept_geno = plink2_kept(prefix, tmp_path / "geno", "--geno", "0.05")
    assert 1 <= m - kept_geno <= 0.02 * m
    _, kept_hwe = plink2_kept(prefix, tmp_path / "hwe", "--hwe", "1e-6")
    assert 1 <= m - kept_hwe <= 0.02 * m
    plink2_kept(prefix, tmp_path / "all", "--mind", "0.05", "--geno", "0.05", "--hwe", "1e-6")
    kept_ids = set(read_bim(tmp_path / "all.bim")["ID"])
    causal = cohort["truth"].filter(pl.col("kind") == "snp")["id"]
    assert set(causal) <= kept_ids


# ---------------------------------------------------------------- traits


def ols_pvalue(y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None = None) -> float:
    ok = ~np.isnan(x)
    design = x[ok, None] if covariates is None else np.column_stack([x[ok], covariates[ok]])
    return float(sm.OLS(y[ok], sm.add_constant(design)).fit().pvalues[1])


def test_traits_depend_on_planted_snps_and_not_on_null_chromosomes(cohort):
    truth, traits, bim, g = cohort["truth"], cohort["traits"], cohort["bim"], cohort["G"]
    index = {rsid: k for k, rsid in enumerate(bim["ID"])}
    pop = (traits["population"] == "POP2").to_numpy().astype(float)
    major = truth.filter(pl.col("role") == "major")
    assert major.height == len(TRAITS) * cohort["config"].n_major_snps
    causal_chroms = set(cohort["config"].resolved_causal_chromosomes())
    assert set(truth["chrom"]) <= causal_chroms
    p_major = [ols_pvalue(traits[t].to_numpy(), g[index[i]], pop)
               for i, t in major.select("id", "trait").iter_rows()]
    assert np.median(p_major) < 1e-4 and max(p_major) < 0.01

    chrom = bim["CHROM"].cast(int).to_numpy()
    null = np.flatnonzero(~np.isin(chrom, list(causal_chroms)) & (cohort["maf"] > 0.05))
    y = traits["disc_size"].to_numpy()
    p_null = np.array([ols_pvalue(y, g[j], pop) for j in null[::3]])
    assert np.mean(p_null < 0.01) < 0.03
    assert p_null.min() > 0.05 / len(p_null)


def test_burden_genes_shift_their_trait(cohort):
    truth, traits, bim, g, maf = (cohort[k] for k in ("truth", "traits", "bim", "G", "maf"))
    chrom, pos = bim["CHROM"].cast(int).to_numpy(), bim["POS"].to_numpy()
    genes = truth.filter(pl.col("kind") == "gene")
    assert genes.height == cohort["config"].n_burden_genes
    alt_freq = np.nanmean(g, 1) / 2
    for c, start, end, trait in genes.select("chrom", "start", "end", "trait").iter_rows():
        variants = np.flatnonzero((chrom == c) & (pos >= start) & (pos <= end) & (maf < 0.01))
        minor = np.where(alt_freq[variants, None] < 0.5, g[variants], 2 - g[variants])
        burden = np.nansum(minor, axis=0)
        assert ols_pvalue(traits[trait].to_numpy(), burden) < 0.01


def test_genetic_variance_matches_h2(cohort):
    """R^2 of each trait on its causal SNPs and burden genes (statsmodels OLS) ~ h2."""
    truth, traits, bim, g = cohort["truth"], cohort["traits"], cohort["bim"], cohort["G"]
    index = {rsid: k for k, rsid in enumerate(bim["ID"])}
    h2 = cohort["config"].h2
    for trait in ("disc_size", "vessel_width"):
        snps = truth.filter((pl.col("trait") == trait) & (pl.col("kind") == "snp"))["id"]
        x = np.column_stack([imputed(g[index[i]]) for i in snps])
        effects = truth.filter((pl.col("trait") == trait) & (pl.col("kind") == "snp"))["effect"]
        genetic = x @ effects.to_numpy()
        fit = sm.OLS(traits[trait].to_numpy(), sm.add_constant(genetic)).fit()
        assert h2 - 0.15 < fit.rsquared < h2 + 0.1


def test_labels_follow_image_traits(cohort):
    labels = read_tsv(cohort["dir"] / "labels.tsv", dtypes={"disease": pl.Int64, "severity": pl.Int64})
    lesions = cohort["traits"]["lesion_count"].to_numpy()
    disease, severity = labels["disease"].to_numpy(), labels["severity"].to_numpy()
    assert abs(disease.mean() - cohort["config"].disease_prevalence) < 0.02
    assert np.corrcoef(disease, lesions)[0, 1] > 0.3
    assert spearmanr(severity, lesions).statistic > 0.4


# ---------------------------------------------------------------- images


def load_images(cohort) -> tuple[pl.DataFrame, np.ndarray]:
    manifest = read_tsv(cohort["dir"] / "images.tsv")
    pixels = np.stack([np.asarray(Image.open(cohort["dir"] / p), dtype=np.float64)
                       for p in manifest["path"]])
    return manifest, pixels  # (n_images, 64, 64, 3)


def test_images_are_fundus_like_and_traits_are_measurable_from_pixels(cohort):
    manifest, pixels = load_images(cohort)
    size = pixels.shape[1]
    corners = np.concatenate([pixels[:, :4, :4], pixels[:, :4, -4:], pixels[:, -4:, :4],
                              pixels[:, -4:, -4:]], axis=1)
    assert corners.max() == 0
    centre = pixels[:, size // 2 - 6: size // 2 + 6, size // 2 - 6: size // 2 + 6]
    assert centre.mean() > 40

    traits = manifest.join(cohort["traits"], on="IID", how="left")
    yy, xx = np.mgrid[:size, :size] + 0.5 - size / 2
    field = np.hypot(xx, yy) < 0.4 * size
    mean_red = pixels[:, field, 0].mean(axis=1)
    assert spearmanr(mean_red, traits["pigmentation"]).statistic < -0.6

    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    yellow = (green > 150) & (blue > 95) & (red > 180)
    disc_area = yellow.sum(axis=(1, 2))
    assert spearmanr(disc_area, traits["disc_size"]).statistic > 0.5
    # the optic disc lies on the nasal side: right of the image for right eyes
    disc_x = np.array([xx[m].mean() if m.any() else 0.0 for m in yellow])
    right = (manifest["eye"] == "right").to_numpy()
    assert np.mean(disc_x[right] > 0) > 0.9 and np.mean(disc_x[~right] < 0) > 0.9


def random_conv_features(images: np.ndarray, n_filters: int = 64, grid: int = 4,
                         seed: int = 0) -> np.ndarray:
    """A fixed one-layer random CNN: ``(n, s, s, 3)`` in [0, 1] -> ``(n, 2 f (1 + grid**2))``.

    ``n_filters`` zero-mean random 5x5x3 filters, both half-waves of each response (ReLU of +x
    and -x), averaged over the whole image and over each cell of a ``grid`` x ``grid`` partition.
    """
    weights = np.random.default_rng(seed).standard_normal((3 * 25, n_filters)).astype(np.float32)
    weights -= weights.mean(axis=0)
    windows = np.lib.stride_tricks.sliding_window_view(images, (5, 5), axis=(1, 2))
    side = windows.shape[1] // grid * grid
    features = []
    for start in range(0, len(images), 50):
        batch = windows[start:start + 50, :side, :side]
        response = batch.reshape(*batch.shape[:3], -1) @ weights
        response = np.concatenate([np.maximum(response, 0), np.maximum(-response, 0)], axis=-1)
        cells = response.reshape(len(batch), grid, side // grid, grid, side // grid, -1)
        features.append(np.concatenate([response.mean(axis=(1, 2)),
                                        cells.mean(axis=(2, 4)).reshape(len(batch), -1)], axis=1))
    return np.concatenate(features)


def out_of_fold_r2(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Out-of-fold R^2 ``(n_targets,)`` of ridge regression (alpha per target by GCV), 5 folds.

    ``features`` ``(n, p)`` are used unscaled (all on one scale): standardizing would blow up the
    near-constant ones (black corners).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    model = RidgeCV(alphas=np.logspace(-3, 5, 17), alpha_per_target=True)
    predicted = cross_val_predict(model, features, targets,
                                  cv=KFold(5, shuffle=True, random_state=0))
    residual = ((targets - predicted) ** 2).sum(axis=0)
    return 1 - residual / ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)


def test_every_trait_is_visible_at_the_training_size(tmp_path):
    """Each trait is decodable (out-of-fold R^2 >= 0.5) from 128-px images resized to 64 px by the
    image stage (field crop + Lanczos), by ridge regression on a fixed random-convolution map."""
    from contig.images.cache import preprocess_image

    out = tmp_path / "cohort"
    simulate_cohort(out, SimulationConfig(n_samples=600, n_snps=1100, image_size=128, seed=11,
                                          two_eye_fraction=0.0, n_workers=1))
    manifest = read_tsv(out / "images.tsv").join(
        read_tsv(out / "traits.tsv", dtypes={t: pl.Float64 for t in TRAITS}), on="IID")
    images = np.stack([preprocess_image(out / path, 64)[0] for path in manifest["path"]])
    assert images.shape == (600, 64, 64, 3)
    r2s = out_of_fold_r2(random_conv_features(images.astype(np.float32) / 255),
                         manifest.select(TRAITS).to_numpy())
    report = ", ".join(f"{t} {v:.2f}" for t, v in zip(TRAITS, r2s))
    assert (r2s >= 0.5).all(), f"out-of-fold R^2 from 64-px images: {report}"


# ---------------------------------------------------------------- PGS files


def read_pgs(path: Path) -> tuple[dict[str, str], list[str], pl.DataFrame]:
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    meta = dict(line.lstrip("#").split("=", 1) for line in comments if "=" in line)
    table = pl.read_csv(path, separator="\t", comment_prefix="#", infer_schema_length=0)
    return meta, comments, table


def test_pgs_files_have_catalog_format_and_realistic_defects(cohort):
    files = sorted((cohort["dir"] / "pgs").glob("*.txt.gz"))
    config = cohort["config"]
    assert len(files) == len(config.pgs_traits) + config.n_unrelated_pgs
    bim = cohort["bim"]
    alleles = {i: (a, r) for i, a, r in bim.select("ID", "ALT", "REF").iter_rows()}
    seen = {"ref": 0, "strand": 0, "ambiguous": 0, "absent": 0, "duplicate": 0, "harmonized": 0}
    base = ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight"]
    for path in files:
        meta, comments, table = read_pgs(path)
        assert comments[0].startswith("###PGS CATALOG SCORING FILE")
        assert comments[1] == "#format_version=2.0"
        assert comments[2] == "##POLYGENIC SCORE (PGS) INFORMATION"
        for key in ("pgs_id", "pgs_name", "trait_reported", "genome_build", "variants_number",
                    "weight_type"):
            assert meta.get(key), key
        assert path.name == f"{meta['pgs_id']}.txt.gz"
        assert int(meta["variants_number"]) == table.height
        assert table.columns[:6] == base
        if "HmPOS_build" in meta:
            seen["harmonized"] += 1
            assert "##HARMONIZATION DETAILS" in comments and meta["HmPOS_date"]
            assert table.columns[-7:] == ["hm_source", "hm_rsID", "hm_chr", "hm_pos",
                                          "hm_inferOtherAllele", "hm_match_chr", "hm_match_pos"]
        seen["duplicate"] += table.height - table.unique().height
        for rsid, effect, other in table.select("rsID", "effect_allele", "other_allele").iter_rows():
            if rsid not in alleles:
                seen["absent"] += 1
                continue
            alt, ref = alleles[rsid]
            if {alt, ref} == {alt.translate(COMPLEMENT), ref.translate(COMPLEMENT)}:
                seen["ambiguous"] += 1
            elif (effect, other) == (ref, alt):
                seen["ref"] += 1
            elif {effect, other} == {alt.translate(COMPLEMENT), ref.translate(COMPLEMENT)}:
                seen["strand"] += 1
            else:
                assert (effect, other) == (alt, ref)
    assert all(count > 0 for count in seen.values()), seen


def brute_force_score(table: pl.DataFrame, bim: pl.DataFrame, g: np.ndarray) -> np.ndarray:
    """Sum of weight x effect-allele count over matched, unambiguous, de-duplicated rows."""
    row_of = {rsid: k for k, rsid in enumerate(bim["ID"])}
    score = np.zeros(g.shape[1])
    for rsid, effect, other, weight in table.unique(maintain_order=True).select(
            "rsID", "effect_allele", "other_allele", "effect_weight").iter_rows():
        if rsid not in row_of:
            continue
        j = row_of[rsid]
        alt, ref = bim["ALT"][j], bim["REF"][j]
        if alt == ref.translate(COMPLEMENT):
            continue
        if effect not in (alt, ref):
            effect = effect.translate(COMPLEMENT)
        dosage = imputed(g[j]) if effect == alt else 2 - imputed(g[j])
        score += float(weight) * dosage
    return score


def test_trait_pgs_predicts_its_trait_and_unrelated_pgs_does_not(cohort):
    traits = cohort["traits"]
    for path in sorted((cohort["dir"] / "pgs").glob("*.txt.gz")):
        meta, _, table = read_pgs(path)
        score = brute_force_score(table, cohort["bim"], cohort["G"])
        trait = meta["pgs_name"].removeprefix("SIM_")
        if trait in TRAITS:
            assert np.corrcoef(score, traits[trait])[0, 1] > 0.4, trait
        else:
            assert all(abs(np.corrcoef(score, traits[t])[0, 1]) < 0.2 for t in TRAITS)


# ---------------------------------------------------------------- determinism, CLI, atomicity

TINY = dict(n_samples=150, n_snps=1100, image_size=32)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    simulate_cohort(tmp_path / "a", SimulationConfig(**TINY, seed=5, n_workers=2))
    simulate_cohort(tmp_path / "b", SimulationConfig(**TINY, seed=5, n_workers=1))
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    assert sum(name.endswith(".png") for name in a) > 200  # enough to use the worker pool
    a.pop("simulation.json"), b.pop("simulation.json")  # stores n_workers and timings
    assert a.keys() == b.keys()
    different = [name for name in a if a[name] != b[name]]
    assert not different
    simulate_cohort(tmp_path / "c", SimulationConfig(**TINY, seed=6, images=False))
    c = folder_bytes(tmp_path / "c")
    assert c["genotypes.bed"] != a["genotypes.bed"]
    assert c["traits.tsv"] != a["traits.tsv"]


def test_cli_writes_a_cohort_and_rejects_bad_arguments(tmp_path):
    contig = str(VENV_BIN / "contig")
    out = tmp_path / "cohort"
    done = subprocess.run([contig, "simulate", "--out", str(out), "--n-samples", "60",
                           "--n-snps", "1100", "--image-size", "32", "--seed", "3",
                           "--n-chromosomes", "22", "--h2", "0.4"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "genotypes.bed").is_file() and len(list((out / "images").glob("*.png"))) >= 60
    assert json.loads((out / "simulation.json").read_text())["config"]["h2"] == 0.4

    bad = subprocess.run([contig, "simulate", "--out", str(tmp_path / "bad"), "--n-samples", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--n-samples" in bad.stderr.strip().splitlines()[-1]
    too_few = subprocess.run([contig, "simulate", "--out", str(tmp_path / "bad"), "--n-snps", "200"],
                             capture_output=True, text=True)
    assert too_few.returncode == 2 and "Traceback" not in too_few.stderr
    assert "n_snps" in too_few.stderr.strip().splitlines()[-1]  # 50 per chromosome, checked by validate
    assert not (tmp_path / "bad").exists()


def test_cli_takes_every_default_and_bound_from_the_config(capsys):
    import argparse
    import math

    from contig.cli.simulate import SETTINGS, add_arguments, config_from_args
    from contig.simulate.config import RANGES

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--out", "x"])) == SimulationConfig()
    for flag, (name, _) in SETTINGS.items():
        allowed = RANGES[name]
        step = 1 if isinstance(getattr(SimulationConfig, name), int) else 1e-6
        for bound, closed, outside in ((allowed.low, allowed.include_low, allowed.low - step),
                                       (allowed.high, allowed.include_high, allowed.high + step)):
            if math.isinf(bound):
                continue
            with pytest.raises(SystemExit):
                parser.parse_args(["--out", "x", f"{flag}={outside}"])
            assert f"argument {flag}: {outside} is not in" in capsys.readouterr().err
            with pytest.raises(InputError, match=name):
                SimulationConfig(**{name: outside}).validate()
            if closed:
                assert getattr(parser.parse_args(["--out", "x", f"{flag}={bound}"]), name) == bound
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--h2", "nan"])


def test_failure_leaves_no_cohort_and_no_temporary_files(tmp_path, monkeypatch):
    import contig.simulate.cohort as cohort_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cohort_module, "write_pgs_files", broken)
    with pytest.raises(RuntimeError):
        simulate_cohort(tmp_path / "out", SimulationConfig(**TINY, images=False))
    assert list(tmp_path.iterdir()) == []


def test_rerun_replaces_an_existing_cohort(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    simulate_cohort(out, SimulationConfig(**TINY, images=False))
    assert not (out / "stale.txt").exists() and (out / "genotypes.bed").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("field, value", [("n_samples", 5), ("fst", 0.0), ("h2", 1.5),
                                          ("n_chromosomes", 30), ("pgs_traits", ("height",)),
                                          ("missing_rate", 0.2)])
def test_config_rejects_out_of_range_values(field, value):
    with pytest.raises(InputError, match=field):
        SimulationConfig(**{field: value}).validate()
