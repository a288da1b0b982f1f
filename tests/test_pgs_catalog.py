"""contig.scores.pgs_catalog: parsing PGS Catalog scoring files (format v2), errors naming file, row, column."""

from __future__ import annotations


import polars as pl
import pytest

from contig.core.errors import InputError
from contig.scores.pgs_catalog import normalize_build, normalize_chrom, read_scoring_file
from helpers.text_files import write_text

CATALOG_HEADER = """###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional information
#format_version=2.0
##POLYGENIC SCORE (PGS) INFORMATION
#pgs_id=PGS000117
#pgs_name=CVD_EJ2020
#trait_reported=Cardiovascular Disease
#weight_type=NR
#genome_build=GRCh37
#variants_number=3
##SOURCE INFORMATION
#pgp_id=PGP000054
"""
COLUMNS = "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
ROWS = "rs11240779\t1\t808631\ta\tG\t0.00077622\nrs1921\tchr1\t949608\tA\tG\t-0.00583829\nrs99\t23\t5000\tT\tC\t1e-3\n"


def test_reads_catalog_file_plain_and_gz(tmp_path):
    plain = read_scoring_file(write_text(tmp_path / "a.txt", CATALOG_HEADER + COLUMNS + ROWS))
    packed = read_scoring_file(write_text(tmp_path / "b.txt.gz", CATALOG_HEADER + COLUMNS + ROWS))
    assert plain.variants.equals(packed.variants)
    assert (plain.score_id, plain.genome_build, plain.harmonized) == ("PGS000117", "GRCh37", False)
    assert plain.header["format_version"] == "2.0"
    v = plain.variants
    assert v["row"].to_list() == [13, 14, 15]  # 11 metadata lines, header on line 12
    assert v["chrom"].to_list() == ["1", "1", "X"]
    assert v["effect_allele"].to_list() == ["A", "A", "T"]
    assert v["effect_weight"].to_list() == [0.00077622, -0.00583829, 0.001]


def test_harmonized_columns_win_and_missing_positions_fall_back_to_rsid(tmp_path):
    text = ("#pgs_id=PGS000001\n#genome_build=NR\n#HmPOS_build=GRCh38\n"
            "rsID\tchr_name\tchr_position\teffect_allele\teffect_weight\thm_source\thm_rsID\thm_chr\thm_pos"
            "\thm_inferOtherAllele\n"
            "rs1\t1\t100\tA\t0.5\tENSEMBL\trs1\t1\t1100\tG\n"
            "rs2\t1\t200\tC\t0.5\tauthor-reported\trs2b\t\t\tA/T\n")
    scoring = read_scoring_file(write_text(tmp_path / "PGS000001_hmPOS_GRCh38.txt", text), genome_build="GRCh38")
    assert scoring.harmonized and scoring.genome_build == "GRCh38"
    assert scoring.variants["pos"].to_list() == [1100, None]
    assert scoring.variants["rsid"].to_list() == ["rs1", "rs2b"]
    # a single inferred other allele is used; "A/T" (several candidates) is not
    assert scoring.variants["other_allele"].to_list() == ["G", None]


def test_score_id_falls_back_to_file_name(tmp_path):
    scoring = read_scoring_file(write_text(tmp_path / "my_score.txt.gz", COLUMNS + ROWS))
    assert scoring.score_id == "my_score" and scoring.genome_build is None


@pytest.mark.parametrize("text, message", [
    ("#pgs_id=X\n" + ROWS, r"row 2: no PGS Catalog columns"),  # no column header
    ("#pgs_id=X\nSNP\tA1\tBETA\nrs1\tA\t0.1\n", r"row 2: no PGS Catalog columns"),
    ("#pgs_id=X\n", r"row 2: no column header line"),
    ("rsID\teffect_allele\tOR\nrs1\tA\t1.2\n", "missing required column effect_weight .*OR/HR"),
    ("rsID\tother_allele\teffect_weight\nrs1\tA\t1.2\n", "missing required column effect_allele"),
    ("locus_name\teffect_allele\teffect_weight\nAPOE\tA\t1.2\n", "no variant location"),
    (COLUMNS + ROWS.replace("808631", "8e5"), r"row 2, column 'chr_position': value '8e5' is not a number"),
    (COLUMNS + ROWS.replace("-0.00583829", "NaN"), r"row 3, column 'effect_weight'"),
    (COLUMNS + ROWS.replace("\ta\t", "\t\t"), r"row 2, column 'effect_allele': missing effect allele"),
    (COLUMNS + "\t\t\tA\tG\t0.1\n", r"row 2: variant has neither a position nor an rsID"),
    ("rsID\teffect_allele\teffect_weight\tis_haplotype\nrs1\tA\t1\tFALSE\nrs2\tA;G\t1\tTRUE\n",
     r"row 3, column 'is_haplotype': haplotype effect alleles are not supported"),
    ("rsID\teffect_allele\teffect_weight\tis_dominant\tis_recessive\nrs1\tA\t1\tFALSE\tTRUE\n",
     r"row 2, column 'is_recessive': recessive"),
    ("rsID\teffect_allele\teffect_weight\tdosage_0_weight\tdosage_1_weight\tdosage_2_weight\n"
     "rs1\tA\t\t0\t0.1\t0.3\n", r"row 2, column 'dosage_0_weight': genotype-specific dosage weights"),
    (COLUMNS, "no variant rows"),
])
def test_bad_files_raise_one_line_errors(tmp_path, text, message):
    path = write_text(tmp_path / "bad.txt", text)
    with pytest.raises(InputError, match=message) as info:
        read_scoring_file(path)
    assert info.value.path == str(path)
    assert "\n" not in info.value.one_line()


def test_genome_build_mismatch_is_refused(tmp_path):
    path = write_text(tmp_path / "a.txt", CATALOG_HEADER + COLUMNS + ROWS)
    assert read_scoring_file(path, genome_build="hg19").genome_build == "GRCh37"
    with pytest.raises(InputError, match=r"a.txt: genome build GRCh37 \(#genome_build\) differs"):
        read_scoring_file(path, genome_build="GRCh38")
    unknown = write_text(tmp_path / "b.txt", "#genome_build=NR\n" + COLUMNS + ROWS)
    assert read_scoring_file(unknown, genome_build="GRCh38").genome_build is None


def test_unknown_extra_columns_are_ignored_with_a_warning(tmp_path, caplog):
    path = write_text(tmp_path / "a.txt", COLUMNS.replace("\n", "\tmy_note\n") + ROWS.replace("\n", "\tx\n"))
    scoring = read_scoring_file(path)
    assert scoring.variants.height == 3
    assert "my_note" in caplog.text


def test_build_names():
    assert normalize_build("hg38") == normalize_build("GRCh38") == "GRCh38"
    assert normalize_build("NR") is None and normalize_build(None) is None


def test_normalize_chrom_makes_spellings_of_one_chromosome_equal():
    spellings = {" chr1": "1", "CHR01": "1", "1": "1", "10": "10", "chrX": "X", "x": "X", "23": "X",
                 "24": "Y", "chrY": "Y", "25": "XY", "26": "MT", "chrM": "MT", "MT": "MT", "0": "0",
                 "chr22": "22", "HLA": "HLA"}
    table = pl.DataFrame({"c": list(spellings) + [None]})
    assert table.select(normalize_chrom(pl.col("c")))["c"].to_list() == list(spellings.values()) + [None]


def test_by_distinct_values_equals_the_expression_on_every_row():
    """The distinct-value shortcut gives what the expression gives row by row (nulls included)."""
    from contig.scores.pgs_catalog import by_distinct_values
    from contig.scores.prs import complement

    chrom = pl.Series("c", ["chr1", "01", None, "chrX", "23", "1", "chr1", "M", None, " 2 "] * 50)
    alleles = pl.Series("a", ["A", "ACG", "T", None, "I", "gt", "C", "A", "-", "TTA"] * 50)
    for series, expression in ((chrom, normalize_chrom), (alleles, complement)):
        expected = series.to_frame().select(expression(pl.col(series.name))).to_series()
        got = by_distinct_values(series, expression)
        assert got.name == series.name
        assert got.to_list() == expected.to_list()
