"""Imputed dosages (PGEN, BGEN v1.2 zlib / v1.3 zstd, 8 and 16 bits): the readers, GWAS step 2
and INFO against plink2 on the same files, the INFO/MAC filters, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from contig.cli import main
from contig.genotypes.sources import DosageSource
from contig.gwas.dosage import DosageFilters, run_dosage_gwas
from helpers.dosages import bgen_compression, export_bgen, make_dosage_cohort
from helpers.gwas import write_table
from helpers.plink import plink_tolerance, run_plink2, with_fid

pytestmark = pytest.mark.plink2


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """300 people, 120 variants on 2 chromosomes, no missing dosage; the same as BGEN 8-bit zlib
    (v1.2), 16-bit zstd (v1.3); phenotypes and covariates for a subset of the people."""
    directory = tmp_path_factory.mktemp("dosages")
    c = make_dosage_cohort(directory, n=300, m=120, seed=3)
    bgen8 = export_bgen(c.pfile, directory / "b8", "1.2", 8)
    zstd16 = export_bgen(c.pfile, directory / "z16", "1.3", 16)
    rng = np.random.default_rng(5)
    people = c.iid[10:]  # 10 people have genotypes only
    n = len(people)
    g = c.dosages[:, 10:]
    pheno = write_table(directory / "p.tsv", people, {"a": rng.standard_normal(n) + 0.4 * g[7],
                                                      "b": rng.standard_normal(n)})
    covar = write_table(directory / "c.tsv", people, {"c1": rng.standard_normal(n),
                                                      "c2": rng.uniform(0, 5, n)})
    return dict(c=c, dir=directory, bgen8=bgen8, zstd16=zstd16, pheno=pheno, covar=covar)


def _sources(cohort) -> dict[str, dict]:
    return {"pgen": dict(pfile=cohort["c"].pfile),
            "bgen8": dict(bgen=cohort["bgen8"], sample=cohort["bgen8"].with_suffix(".sample")),
            "zstd16": dict(bgen=cohort["zstd16"], sample=cohort["zstd16"].with_suffix(".sample"))}


def _plink_source(kwargs: dict) -> list[str]:
    if "pfile" in kwargs:
        return ["--pfile", str(kwargs["pfile"])]
    return ["--bgen", str(kwargs["bgen"]), "ref-first", "--sample", str(kwargs["sample"])]


def test_files_use_the_compressions_uk_biobank_ships(cohort):
    assert bgen_compression(cohort["bgen8"]) == 1  # zlib
    assert bgen_compression(cohort["zstd16"]) == 2  # zstd


@pytest.mark.parametrize("kind", ["pgen", "bgen8", "zstd16"])
def test_dosages_equal_plink2_export(cohort, tmp_path, kind):
    """Dosages of a sample subset, block by block, equal what plink2 exports from the same file."""
    kwargs = _sources(cohort)[kind]
    run_plink2(*_plink_source(kwargs), "--export", "A", "--export-allele", str(_alt_alleles(cohort, tmp_path)),
               "--out", str(tmp_path / "raw"))
    raw = pl.read_csv(tmp_path / "raw.raw", separator="\t", null_values="NA")
    expected = raw[:, 6:].to_numpy().T.astype(float)
    source = DosageSource.open(**kwargs)
    assert source.fam["IID"].to_list() == cohort["c"].iid.tolist()
    assert source.bim.columns[:5] == ["CHROM", "POS", "ID", "REF", "ALT"]
    subset = np.arange(3, 300, 4)
    blocks = [block.copy() for _, block in source.iter_dosages(chunk_size=17, sample_idx=subset)]
    ours = np.concatenate(blocks)
    # plink2 stores dosages in units of 1/16384 and prints 6 significant digits.
    np.testing.assert_allclose(ours, expected[:, subset], atol=1e-4)


def _alt_alleles(cohort, tmp_path: Path) -> Path:
    path = tmp_path / "alt.txt"
    pvar = pl.read_csv(cohort["c"].pfile.with_suffix(".pvar"), separator="\t", comment_prefix="##")
    pvar.select("ID", "ALT").write_csv(path, separator="\t", include_header=False)
    return path


@pytest.mark.parametrize("kind", ["pgen", "bgen8", "zstd16"])
def test_gwas_and_info_equal_plink2(cohort, tmp_path, kind):
    """BETA, SE, P of plink2 --glm on the same dosages, to its printed digits, and INFO = plink2's
    MACH r² (--freq cols=+machr2) among the people used."""
    kwargs = _sources(cohort)[kind]
    source_args = _plink_source(kwargs)
    pheno = with_fid(cohort["pheno"], tmp_path / "pp")
    run_plink2(*source_args, "--pheno", str(pheno), "--covar", str(with_fid(cohort["covar"], tmp_path / "cc")),
               "--glm", "hide-covar", "omit-ref", "--out", str(tmp_path / "plink"))
    run_plink2(*source_args, "--keep", str(pheno), "--freq", "cols=+machr2", "--out", str(tmp_path / "freq"))
    ours = run_dosage_gwas(DosageSource.open(**kwargs), cohort["pheno"], cohort["covar"])
    assert ours.n_samples == 290
    for j, name in enumerate(["a", "b"]):
        table = pl.read_csv(tmp_path / f"plink.{name}.glm.linear", separator="\t", infer_schema=False)
        assert table["ID"].to_list() == ours.variants["ID"].to_list()
        assert table["A1"].to_list() == ours.variants["ALLELE1"].to_list()
        se = ours.se[:, j]
        for column, values, scale in (("BETA", ours.beta[:, j], se), ("SE", se, se),
                                      ("P", 10.0 ** -ours.log10p[:, j], 10.0 ** -ours.log10p[:, j])):
            _assert_printed(table[column].to_list(), values, (kind, name, column), rel[kind] * scale)
    freq = pl.read_csv(tmp_path / "freq.afreq", separator="\t", infer_schema=False)
    _assert_printed(freq["MACH_R2"].to_list(), ours.variants["INFO"].to_numpy(), (kind, "INFO"),
                    rel[kind] * 0.1)
    _assert_printed(freq["ALT_FREQS"].to_list(), ours.variants["A1FREQ"].to_numpy(), (kind, "A1FREQ"),
                    rel[kind] * 0.01)


# plink2 rounds a BGEN's dosages to its 1/16384 units on import (at most 1/32768 from ours, see
# test_bgen_dosages_within_plink2_import_rounding): its statistics on a BGEN then move in the 5th
# significant digit (BETA by up to ~1e-3 of its SE). On a .pgen both read the same stored dosages.
rel = {"pgen": 1e-6, "bgen8": 3e-3, "zstd16": 3e-3}


def _assert_printed(texts: list[str], values: np.ndarray, what, slack) -> None:
    """Each value within half a unit of plink2's last printed digit, plus ``slack`` (scalar or per value)."""
    for text, value, extra in zip(texts, values, np.broadcast_to(slack, len(texts))):
        tolerance = plink_tolerance(text) * 1.001 + extra
        assert abs(value - float(text)) <= tolerance, (what, text, value)


@pytest.mark.parametrize("kind", ["bgen8", "zstd16"])
def test_bgen_dosages_within_plink2_import_rounding(cohort, tmp_path, kind):
    """Our exact BGEN dosages are within half of plink2's dosage unit (1/16384) of plink2's import."""
    kwargs = _sources(cohort)[kind]
    run_plink2(*_plink_source(kwargs), "--make-pgen", "--out", str(tmp_path / "imported"))
    imported = np.concatenate([b.copy() for _, b in DosageSource.open(pfile=tmp_path / "imported").iter_dosages()])
    ours = np.concatenate([b.copy() for _, b in DosageSource.open(**kwargs).iter_dosages()])
    assert np.abs(ours.astype(float) - imported).max() <= 0.5 / 16384 * 1.01


def test_missing_dosages_are_mean_imputed_as_statsmodels(tmp_path):
    c = make_dosage_cohort(tmp_path / "m", n=120, m=30, seed=9, missing=0.05)
    rng = np.random.default_rng(1)
    y, cov = rng.standard_normal(120), rng.standard_normal(120)
    pheno = write_table(tmp_path / "p.tsv", c.iid, {"y": y})
    covar = write_table(tmp_path / "c.tsv", c.iid, {"x": cov})
    ours = run_dosage_gwas(DosageSource.open(pfile=c.pfile), pheno, covar)
    quantized = np.round(c.dosages * 16384) / 16384  # the .pgen's dosage units
    for j, d in enumerate(quantized):
        observed = ~np.isnan(d)
        filled = np.where(observed, d, d[observed].mean())
        fit = sm.OLS(y, np.column_stack([np.ones(120), cov, filled])).fit()
        assert ours.beta[j, 0] == pytest.approx(fit.params[2], rel=1e-9)
        assert ours.se[j, 0] == pytest.approx(fit.bse[2], rel=1e-9)
        assert ours.variants["N"][j] == observed.sum()


def test_info_and_mac_filters_count_what_they_remove(cohort):
    c = cohort["c"]
    source = DosageSource.open(pfile=c.pfile)
    everything = run_dosage_gwas(source, cohort["pheno"], cohort["covar"])
    info = everything.variants["INFO"].to_numpy()
    freq = everything.variants["A1FREQ"].to_numpy()
    mac = np.minimum(freq, 1 - freq) * 2 * everything.variants["N"].to_numpy()
    min_info, min_mac = float(np.median(info)), float(np.quantile(mac, 0.2))
    filtered = run_dosage_gwas(source, cohort["pheno"], cohort["covar"],
                               filters=DosageFilters(min_info=min_info, min_mac=min_mac))
    keep = (info >= min_info) & (mac >= min_mac * (1 - 1e-12))
    assert filtered.variants["ID"].to_list() == everything.variants.filter(pl.Series(keep))["ID"].to_list()
    assert filtered.counts["variants_below_min_mac"] == int((mac < min_mac * (1 - 1e-12)).sum())
    assert filtered.counts["variants_below_min_info"] == int((~keep).sum()) - filtered.counts[
        "variants_below_min_mac"]
    np.testing.assert_array_equal(filtered.beta, everything.beta[keep])


def test_cli_on_bgen_writes_info_column(cohort, tmp_path):
    out = tmp_path / "out"
    assert main(["gwas", "--bgen", str(cohort["zstd16"]), "--sample", str(cohort["zstd16"].with_suffix(".sample")),
                 "--pheno", str(cohort["pheno"]),
                 "--covar", str(cohort["covar"]), "--out", str(out), "--min-info", "0.5"]) == 0
    table = pl.read_csv(f"{out}.a.tsv.gz", separator="\t")
    assert table.columns[:8] == ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "INFO", "N"]
    assert (table["INFO"] >= 0.5).all()


# ---------------------------------------------------------------------------------------------
# bad inputs: one line naming the file, exit 2, no output


def _assert_refused(args: list[str], out: Path, named: Path, capsys) -> None:
    assert main(["gwas", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(named) in err[0], err
    assert not list(out.parent.glob(out.name + "*"))


def test_truncated_bgen(cohort, tmp_path, capsys):
    bad = tmp_path / "cut.bgen"
    data = cohort["bgen8"].read_bytes()
    bad.write_bytes(data[: len(data) - 500])
    _assert_refused(["--bgen", str(bad), "--sample", str(cohort["bgen8"].with_suffix(".sample")),
                     "--pheno", str(cohort["pheno"]), "--covar", str(cohort["covar"])],
                    tmp_path / "out", bad, capsys)


@pytest.mark.parametrize("which", ["bgen8", "zstd16"])
def test_corrupt_bgen_block(cohort, tmp_path, capsys, which):
    """A genotype block whose compressed bytes are damaged: one line naming the file."""
    from contig.genotypes.bgen import index_variants, read_bgen_header

    source = cohort[which]
    _, offsets = index_variants(source, read_bgen_header(source))
    data = bytearray(source.read_bytes())
    start = int(offsets[0]) + 8 + 2  # past the block's length fields and the stream's first bytes
    data[start: start + 40] = bytes(40)
    bad = tmp_path / f"damaged_{which}.bgen"
    bad.write_bytes(bytes(data))
    _assert_refused(["--bgen", str(bad), "--sample", str(source.with_suffix(".sample")),
                     "--pheno", str(cohort["pheno"]), "--covar", str(cohort["covar"])],
                    tmp_path / "out", bad, capsys)


def test_sample_file_with_another_count(cohort, tmp_path, capsys):
    sample = tmp_path / "short.sample"
    lines = cohort["bgen8"].with_suffix(".sample").read_text().splitlines()
    sample.write_text("\n".join(lines[:-1]) + "\n")
    _assert_refused(["--bgen", str(cohort["bgen8"]), "--sample", str(sample), "--pheno", str(cohort["pheno"]),
                     "--covar", str(cohort["covar"])], tmp_path / "out", sample, capsys)


def test_pvar_with_another_count(cohort, tmp_path, capsys):
    prefix = tmp_path / "bad"
    for ext in (".pgen", ".psam"):
        prefix.with_suffix(ext).write_bytes(cohort["c"].pfile.with_suffix(ext).read_bytes())
    lines = cohort["c"].pfile.with_suffix(".pvar").read_text().splitlines()
    prefix.with_suffix(".pvar").write_text("\n".join(lines[:-1]) + "\n")
    _assert_refused(["--pfile", str(prefix), "--pheno", str(cohort["pheno"]), "--covar", str(cohort["covar"])],
                    tmp_path / "out", prefix.with_suffix(".pgen"), capsys)


# ---------------------------------------------------------------------------------------------
# polygenic scores on dosages


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A cohort with 3% missing dosages, its BGEN, and a PGS Catalog file over 60 of its variants
    (half with the REF allele as effect allele); the same rows as a plink2 --score file."""
    directory = tmp_path_factory.mktemp("prs")
    c = make_dosage_cohort(directory, n=200, m=80, seed=11, missing=0.03)
    bgen = export_bgen(c.pfile, directory / "b8", "1.2", 8)
    pvar = pl.read_csv(c.pfile.with_suffix(".pvar"), separator="\t", comment_prefix="##")
    rng = np.random.default_rng(2)
    rows, oracle = [], []
    for j in rng.choice(pvar.height, 60, replace=False):
        chrom, pos, vid, ref, alt = pvar.row(int(j))
        effect, other = (alt, ref) if rng.uniform() < 0.5 else (ref, alt)
        weight = round(float(rng.normal()), 4)
        rows.append(f"{vid}\t{chrom}\t{pos}\t{effect}\t{other}\t{weight}")
        oracle.append(f"{vid}\t{effect}\t{weight}")
    scoring = directory / "PGS900001.txt"
    scoring.write_text("#pgs_id=PGS900001\n#genome_build=GRCh37\nrsID\tchr_name\tchr_position\t"
                       "effect_allele\tother_allele\teffect_weight\n" + "\n".join(rows) + "\n")
    plink_score = directory / "oracle.txt"
    plink_score.write_text("ID\tA1\tW\n" + "\n".join(oracle) + "\n")
    return dict(c=c, bgen=bgen, scoring=scoring, plink_score=plink_score)


@pytest.mark.parametrize("mean_imputation", [True, False])
@pytest.mark.parametrize("kind", ["pgen", "bgen8"])
def test_scores_on_dosages_equal_plink2(scored, tmp_path, kind, mean_imputation):
    from contig.scores.prs import polygenic_scores

    kwargs = ({"pfile": scored["c"].pfile} if kind == "pgen"
              else {"bgen": scored["bgen"], "sample": scored["bgen"].with_suffix(".sample")})
    modifiers = ["header-read", "cols=+scoresums,+denom"] + ([] if mean_imputation else ["no-mean-imputation"])
    run_plink2(*_plink_source(kwargs), "--score", str(scored["plink_score"]), "1", "2", "3", *modifiers,
               "--out", str(tmp_path / "plink"))
    expected = pl.read_csv(tmp_path / "plink.sscore", separator="\t")
    result = polygenic_scores(DosageSource.open(**kwargs), [scored["scoring"]], mean_imputation=mean_imputation,
                              chunk_size=16)
    assert result.iid.tolist() == expected["IID"].to_list()
    # plink2 prints 6 significant digits; on a BGEN it scores its 1/16384-rounded dosages
    atol = 1e-9 if kind == "pgen" else 60 * 0.5 / 16384
    np.testing.assert_allclose(result.sums[:, 0], expected["W_SUM"].to_numpy(), rtol=5e-6, atol=atol)
    np.testing.assert_array_equal(result.denom[:, 0], expected["DENOM"].to_numpy())


# ---------------------------------------------------------------------------------------------
# per-chromosome patterns, the workflow's source arguments, sample matching


def _split_by_chromosome(cohort, out: Path) -> str:
    """Per-chromosome BGEN files ``out/imp_chr{chrom}.bgen`` (plink2 --chr), one shared .sample."""
    for chrom in ("1", "2"):
        run_plink2("--pfile", str(cohort["c"].pfile), "--chr", chrom, "--export", "bgen-1.3", "bits=8",
                   "ref-first", "--out", str(out / f"imp_chr{chrom}"))
    return str(out / "imp_chr{chrom}.bgen")


def test_chromosome_pattern_reads_the_files_in_order_and_only_those_asked(cohort, tmp_path):
    pattern = _split_by_chromosome(cohort, tmp_path)
    sample = str(tmp_path / "imp_chr{chrom}.sample")
    whole = DosageSource.open(pfile=cohort["c"].pfile)
    split = DosageSource.open(bgen=pattern, sample=sample)
    assert split.bim["ID"].to_list() == whole.bim["ID"].to_list()
    second = DosageSource.open(bgen=pattern, sample=sample, chroms=["2"])
    assert len(second.parts) == 1 and set(second.bim["CHROM"]) == {"2"}
    ours = np.concatenate([b.copy() for _, b in split.iter_dosages(chunk_size=50)])
    expected = np.concatenate([b.copy() for _, b in whole.iter_dosages(chunk_size=50)])
    np.testing.assert_allclose(ours, expected, atol=0.5 / 255 + 0.5 / 16384)


def test_workflow_source_files_and_arguments(cohort, tmp_path):
    from contig.genotypes.sources import source_arguments, source_files

    pattern = _split_by_chromosome(cohort, tmp_path)
    sample = str(tmp_path / "imp_chr{chrom}.sample")
    assert source_files(pattern, sample) == [str(tmp_path / f"imp_chr{c}.{e}") for c in "12"
                                             for e in ("bgen", "sample")]
    assert source_files(pattern) == [str(tmp_path / f"imp_chr{c}.bgen") for c in "12"]
    assert source_arguments(pattern, sample) == ["--bgen", pattern, "--sample", sample]
    prefix = str(cohort["c"].pfile)
    assert source_files(prefix) == [prefix + e for e in (".pgen", ".pvar", ".psam")]
    assert source_arguments(prefix + ".pgen") == ["--pfile", prefix]


def test_match_samples_counts_people_in_one_source_only(cohort, tmp_path, caplog):
    from contig.genotypes.plinkio import write_bfile

    iid = cohort["c"].iid
    array = np.concatenate([iid[3:], ["array_only_1"]])  # 3 imputed-only people, 1 array-only
    n = len(array)
    fam = pl.DataFrame({"FID": [f"F{i}" for i in range(n)], "IID": array, "PAT": ["0"] * n,
                        "MAT": ["0"] * n, "SEX": np.zeros(n, dtype=np.int8), "PHENO": ["-9"] * n})
    bim = pl.DataFrame({"CHROM": ["1"], "ID": ["x"], "CM": [0.0], "POS": [1], "ALT": ["A"], "REF": ["G"]})
    write_bfile(tmp_path / "array", fam, bim, [np.zeros((1, n), dtype=np.int8)])
    out = tmp_path / "match.tsv"
    with caplog.at_level("INFO"):
        assert main(["match-samples", "--bfile", str(tmp_path / "array"), "--bgen", str(cohort["bgen8"]),
                     "--sample", str(cohort["bgen8"].with_suffix(".sample")), "--out", str(out)]) == 0
    table = pl.read_csv(out, separator="\t")
    assert dict(zip(table["SOURCE"], table["N"])) == {"both": 297, "array_only": 1, "imputed_only": 3}
    assert "297 in both" in caplog.text


@pytest.mark.parametrize("bits", [1, 3, 8, 10, 16, 23, 32])
def test_probabilities_unpack_at_any_bit_depth(bits):
    """Little-endian bit packing (BGEN layout 2) of integers of any width, packed here by hand."""
    from contig.genotypes.bgen import _unpack_probabilities

    values = np.random.default_rng(bits).integers(0, 2**bits, 37, dtype=np.int64)
    packed = sum(int(v) << (bits * i) for i, v in enumerate(values))
    data = packed.to_bytes((37 * bits + 7) // 8, "little")
    np.testing.assert_array_equal(_unpack_probabilities(data, bits, 37), values)


def test_per_chromosome_files_with_other_samples_are_refused(cohort, tmp_path):
    """Two BGEN files of one {chrom} pattern that list different people: one line naming the
    second file."""
    from contig.core.errors import InputError
    from contig.genotypes.bgen import BgenFile
    from contig.genotypes.sources import DosageSource

    first = BgenFile.open(cohort["bgen8"])
    other = BgenFile.open(cohort["bgen8"])
    other.fam = other.fam.with_columns(pl.Series("IID", [f"x{i}" for i in range(other.fam.height)]))
    with pytest.raises(InputError, match="samples differ from"):
        DosageSource([first, other])
