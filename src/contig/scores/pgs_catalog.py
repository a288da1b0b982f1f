"""Reading PGS Catalog scoring files (format v2.0, plain or gzip), harmonized or author-reported.

A scoring file is a block of ``#key=value`` metadata lines (``#pgs_id``, ``#genome_build``,
``#format_version``, ``#weight_type``, and in harmonized files ``#HmPOS_build``), one tab-separated
column header line, and one row per variant. What we use:

- location: ``hm_chr``/``hm_pos`` when the file is harmonized (build = ``#HmPOS_build``), otherwise
  ``chr_name``/``chr_position`` (build = ``#genome_build``); rows without a position fall back to the
  rsID (``hm_rsID``, else ``rsID``);
- alleles: ``effect_allele`` (required), ``other_allele`` (or ``hm_inferOtherAllele`` when it names a
  single allele, or the v1 name ``reference_allele``); ``other_allele`` may be absent;
- ``effect_weight`` (required), an additive per-allele weight.

Not supported, and refused with an error naming file, row and column rather than scored wrongly:
haplotype/diplotype rows (``is_haplotype``/``is_diplotype`` TRUE), interaction terms
(``is_interaction`` TRUE), dominant/recessive rows (``is_dominant``/``is_recessive`` TRUE), and
genotype-specific weights (``dosage_0_weight``.. ``dosage_2_weight``). Columns we do not know are
logged and ignored; a file with none of the required columns is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from contig.core.compression import gzip_decompress
from contig.core.errors import InputError

log = logging.getLogger(__name__)

# Column names of the PGS Catalog scoring file schema (v2.0, plus the v1 name reference_allele).
KNOWN_COLUMNS = {
    "rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "reference_allele",
    "locus_name", "is_haplotype", "is_diplotype", "imputation_method", "variant_description",
    "inclusion_criteria", "effect_weight", "is_interaction", "is_dominant", "is_recessive",
    "dosage_0_weight", "dosage_1_weight", "dosage_2_weight", "OR", "HR", "allelefrequency_effect",
    "weight_type", "variant_id", "variant_type",
    "hm_source", "hm_rsID", "hm_chr", "hm_pos", "hm_inferOtherAllele", "hm_match_chr",
    "hm_match_pos",
}
KNOWN_PREFIXES = ("allelefrequency_effect_",)  # per-ancestry frequencies
UNSUPPORTED_FLAGS = {
    "is_haplotype": "haplotype effect alleles",
    "is_diplotype": "diplotype effect alleles",
    "is_interaction": "interaction terms",
    "is_dominant": "dominant per-variant models",
    "is_recessive": "recessive per-variant models",
}
DOSAGE_WEIGHT_COLUMNS = ("dosage_0_weight", "dosage_1_weight", "dosage_2_weight")
TRUE_VALUES = ("TRUE", "True", "true", "T", "1")

BUILD_ALIASES = {
    "grch37": "GRCh37", "hg19": "GRCh37", "37": "GRCh37", "grch37.p13": "GRCh37",
    "grch38": "GRCh38", "hg38": "GRCh38", "38": "GRCh38", "grch38.p14": "GRCh38",
    "grch36": "NCBI36", "ncbi36": "NCBI36", "hg18": "NCBI36", "36": "NCBI36",
}

# Columns of ScoringFile.variants.
VARIANT_SCHEMA = {
    "row": pl.Int64, "variant": pl.String, "chrom": pl.String, "pos": pl.Int64, "rsid": pl.String,
    "effect_allele": pl.String, "other_allele": pl.String, "effect_weight": pl.Float64,
}


@dataclass
class ScoringFile:
    """One parsed scoring file.

    ``variants`` has one row per scoring-file row, columns :data:`VARIANT_SCHEMA`: ``row`` is the
    line number in the file (metadata and header lines counted), ``variant`` the ID shown in logs
    (rsID, else ``chrom:pos``), ``chrom`` normalized (see :func:`normalize_chrom`), ``pos`` 1-based,
    alleles upper-case; ``chrom``/``pos`` are null where the file gives no position.
    """

    path: Path
    score_id: str
    header: dict[str, str]
    genome_build: str | None  # build of the positions actually used; None when not reported
    harmonized: bool
    variants: pl.DataFrame


def normalize_chrom(expr: pl.Expr) -> pl.Expr:
    """Chromosome names as PLINK writes them, so that names from different files compare equal.

    Surrounding spaces and a ``chr`` prefix (any case) go, letters are upper-cased, leading zeros
    of a number go (``chr01`` -> ``1``), and PLINK's numeric codes and ``M`` become names:
    23/24/25/26 -> X/Y/XY/MT, M -> MT. The one implementation used by the scores (.bim against
    scoring files and gene tables) and the evaluation (planted elements against summary statistics).
    Null stays null.
    """
    name = expr.cast(pl.String).str.strip_chars().str.replace(r"(?i)^chr", "").str.to_uppercase()
    name = name.str.replace(r"^0+(\d)", "${1}")
    return name.replace({"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"})


def nulls(name: str, length: int, dtype: pl.DataType) -> pl.Series:
    """A column of ``length`` nulls."""
    return pl.repeat(None, length, dtype=dtype, eager=True).alias(name)


def by_distinct_values(series: pl.Series, expression: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``expression`` (text -> text) evaluated on the distinct values of ``series`` only and mapped
    back to every row: the same result, several times cheaper on columns with few distinct
    values (chromosome names, alleles)."""
    distinct = series.unique()
    mapped = distinct.to_frame("value").select(expression(pl.col("value"))).to_series()
    return series.replace_strict(distinct, mapped, return_dtype=pl.String).alias(series.name)


def normalize_build(build: str | None) -> str | None:
    """``GRCh37``/``GRCh38``/``NCBI36`` for the usual spellings; None for missing or ``NR``."""
    if build is None or build.strip() in ("", "NR", "NA", "None"):
        return None
    return BUILD_ALIASES.get(build.strip().lower(), build.strip())


def read_text(path: Path) -> str:
    """The whole file as text, gunzipped when it starts with the gzip magic bytes."""
    if not path.exists():
        raise InputError("file not found", path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip_decompress(raw)
        except (OSError, EOFError) as error:
            raise InputError(f"corrupt gzip file ({error})", path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a text file (not UTF-8)", path) from None


def split_metadata(text: str) -> tuple[dict[str, str], int, str]:
    """Split off the ``#key=value`` lines: (metadata, number of ``#`` lines, the rest of the text)."""
    metadata: dict[str, str] = {}
    position = 0
    n_lines = 0
    while position < len(text) and text.startswith("#", position):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        line = text[position:end].rstrip("\r").lstrip("#")
        if "=" in line:
            key, value = line.split("=", 1)
            metadata[key.strip()] = value.strip()
        position = end + 1
        n_lines += 1
    return metadata, n_lines, text[position:]


def read_columns(path: Path, body: str, first_line: int) -> pl.DataFrame:
    """Parse the column header and rows as text columns; ``first_line`` is the header's line number."""
    if not body.strip():
        raise InputError("no column header line after the # metadata lines", path, first_line)
    try:
        table = pl.read_csv(body.encode(), separator="\t", infer_schema=False,
                            null_values=["", "NA", "NR"], quote_char=None)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise InputError(f"cannot parse as a tab-separated table ({str(error).splitlines()[0]})",
                         path) from None
    recognised = [c for c in table.columns if c in KNOWN_COLUMNS or c.startswith(KNOWN_PREFIXES)]
    if not recognised:
        raise InputError(
            f"no PGS Catalog columns in the header line ({', '.join(table.columns[:6])}); expected "
            "e.g. rsID chr_name chr_position effect_allele other_allele effect_weight",
            path, first_line)
    unknown = [c for c in table.columns if c not in recognised]
    if unknown:
        log.warning("%s: ignoring column(s) not in the PGS Catalog format: %s", path, ", ".join(unknown))
    return table


def check_required_columns(path: Path, table: pl.DataFrame, header_line: int) -> None:
    """Refuse layouts we cannot score: no effect allele/weight, or no way to locate variants."""
    columns = set(table.columns)
    if "effect_weight" not in columns:
        hint = (" (weights are given only as OR/HR; add effect_weight on the log scale)"
                if columns & {"OR", "HR"} else "")
        raise InputError(f"missing required column effect_weight{hint}", path, header_line)
    if "effect_allele" not in columns:
        raise InputError("missing required column effect_allele", path, header_line)
    has_position = {"chr_name", "chr_position"} <= columns or {"hm_chr", "hm_pos"} <= columns
    if not has_position and not columns & {"rsID", "hm_rsID"}:
        raise InputError("no variant location: need chr_name + chr_position, hm_chr + hm_pos, or rsID",
                         path, header_line)
    for column in DOSAGE_WEIGHT_COLUMNS:
        if column in columns and table[column].is_not_null().any():
            row = int(table[column].is_not_null().arg_true()[0]) + header_line + 1
            raise InputError("genotype-specific dosage weights are not supported (only additive "
                             "effect_weight)", path, row, column)


def check_unsupported_flags(path: Path, table: pl.DataFrame, header_line: int) -> None:
    """Refuse rows flagged as haplotype, interaction, dominant or recessive."""
    for column, what in UNSUPPORTED_FLAGS.items():
        if column not in table.columns:
            continue
        flagged = table[column].is_in(TRUE_VALUES)
        if flagged.any():
            row = int(flagged.arg_true()[0]) + header_line + 1
            raise InputError(f"{what} are not supported (only additive single-variant weights)",
                             path, row, column)


def parse_numbers(path: Path, column: pl.Series, dtype: pl.DataType, header_line: int) -> pl.Series:
    """Cast a text column strictly; a value that does not parse raises with its line number."""
    cast = column.cast(dtype, strict=False)
    bad = cast.is_null() & column.is_not_null()
    if dtype == pl.Float64:
        bad = bad | cast.is_nan() | cast.is_infinite()
    if bad.any():
        index = int(bad.arg_true()[0])
        raise InputError(f"value {column[index]!r} is not a number", path, index + header_line + 1,
                         column.name)
    return cast


def choose_locations(table: pl.DataFrame) -> tuple[pl.Series | None, pl.Series | None, bool]:
    """(chrom, pos as text, harmonized?): ``hm_chr``/``hm_pos`` when present, else ``chr_name``/``chr_position``."""
    if {"hm_chr", "hm_pos"} <= set(table.columns):
        return table["hm_chr"], table["hm_pos"], True
    if {"chr_name", "chr_position"} <= set(table.columns):
        return table["chr_name"], table["chr_position"], False
    return None, None, False


def choose_other_allele(table: pl.DataFrame) -> pl.Series:
    """``other_allele`` (or ``reference_allele``), filled from a single-allele ``hm_inferOtherAllele``."""
    other = nulls("other_allele", table.height, pl.String)
    for name in ("other_allele", "reference_allele"):
        if name in table.columns:
            other = table[name]
            break
    if "hm_inferOtherAllele" in table.columns:
        inferred = table["hm_inferOtherAllele"]
        single = inferred.is_not_null() & ~inferred.str.contains("/", literal=True)
        other = pl.select(pl.when(other.is_null() & single).then(inferred).otherwise(other)).to_series()
    return other.alias("other_allele")


def score_id_of(path: Path, metadata: dict[str, str]) -> str:
    """``#pgs_id``, else the file name without ``.txt``/``.tsv``/``.gz``."""
    if metadata.get("pgs_id"):
        return metadata["pgs_id"]
    name = path.name
    for suffix in (".gz", ".txt", ".tsv"):
        name = name.removesuffix(suffix)
    return name


def read_scoring_file(path: str | Path, genome_build: str | None = None) -> ScoringFile:
    """Parse one PGS Catalog scoring file; ``genome_build`` (if given) must equal the file's build."""
    path = Path(path)
    metadata, n_meta, body = split_metadata(read_text(path))
    header_line = n_meta + 1
    table = read_columns(path, body, header_line)
    check_required_columns(path, table, header_line)
    check_unsupported_flags(path, table, header_line)
    if table.height == 0:
        raise InputError("no variant rows", path)

    chrom, pos_text, harmonized = choose_locations(table)
    file_build = normalize_build(metadata.get("HmPOS_build" if harmonized else "genome_build"))
    wanted = normalize_build(genome_build)
    if wanted is not None and file_build is not None and wanted != file_build:
        key = "#HmPOS_build" if harmonized else "#genome_build"
        raise InputError(f"genome build {file_build} ({key}) differs from --genome-build {wanted}", path)
    if wanted is not None and file_build is None:
        log.warning("%s: genome build not reported; assuming %s", path, wanted)
    weight_type = metadata.get("weight_type", "")
    if weight_type.upper() in ("OR", "HR", "ODDS RATIO", "HAZARD RATIO"):
        log.warning("%s: #weight_type=%s; effect_weight is used as given (it must be on the log scale)",
                    path, weight_type)

    n = table.height
    weight = parse_numbers(path, table["effect_weight"], pl.Float64, header_line)
    effect = table["effect_allele"].str.strip_chars().str.to_uppercase()
    if effect.is_null().any():
        row = int(effect.is_null().arg_true()[0]) + header_line + 1
        raise InputError("missing effect allele", path, row, "effect_allele")
    pos_name = "hm_pos" if harmonized else "chr_position"
    if pos_text is not None:
        pos = parse_numbers(path, pos_text, pl.Int64, header_line).alias("pos")
        chrom_norm = by_distinct_values(chrom, normalize_chrom).alias("chrom")
        located = pos.is_not_null() & chrom_norm.is_not_null()
        bad_pos = located & (pos < 1)
        if bad_pos.any():
            index = int(bad_pos.arg_true()[0])
            raise InputError(f"position {pos[index]} is not positive", path, index + header_line + 1,
                             pos_name)
        pos = pl.select(pl.when(located).then(pos)).to_series().alias("pos")
        chrom_norm = pl.select(pl.when(located).then(chrom_norm)).to_series().alias("chrom")
    else:
        pos = nulls("pos", n, pl.Int64)
        chrom_norm = nulls("chrom", n, pl.String)
    rsid = nulls("rsid", n, pl.String)
    for name in ("rsID", "hm_rsID"):  # hm_rsID wins where present
        if name in table.columns:
            rsid = pl.select(pl.coalesce(table[name], rsid)).to_series().alias("rsid")
    unlocated = pos.is_null() & rsid.is_null()
    if unlocated.any():
        row = int(unlocated.arg_true()[0]) + header_line + 1
        raise InputError("variant has neither a position nor an rsID", path, row)

    variants = pl.DataFrame({
        "row": pl.int_range(header_line + 1, header_line + 1 + n, eager=True),
        "chrom": chrom_norm, "pos": pos, "rsid": rsid, "effect_allele": effect,
        "other_allele": choose_other_allele(table).str.strip_chars().str.to_uppercase(),
        "effect_weight": weight,
    }).with_columns(
        variant=pl.coalesce(pl.col("rsid"), pl.col("chrom") + ":" + pl.col("pos").cast(pl.String))
    ).select(list(VARIANT_SCHEMA)).cast(VARIANT_SCHEMA)
    return ScoringFile(path, score_id_of(path, metadata), metadata, file_build, harmonized, variants)
