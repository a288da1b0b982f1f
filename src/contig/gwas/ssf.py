"""GWAS-SSF summary statistics (the GWAS Catalog's standard format, v1.0) of one phenotype.

A tab-separated ``.tsv.gz`` whose first columns are the standard's mandatory ones in its order
(chromosome, base_pair_location, effect_allele, other_allele, beta, standard_error,
effect_allele_frequency, then the p-value as ``neg_log_10_p_value``: exact where p underflows
double precision), then the optional variant_id, rsid and n; and beside it ``<file>-meta.yaml``
with the standard's required metadata. Effect allele = ALLELE1 (the tested ALT allele).

The standard admits only chromosomes 1–25 (X = 23, Y = 24, MT = 25; plink's XY, the
pseudo-autosomal region, is written as 23), nucleotide alleles and no missing statistic:
variants outside that (untestable ones, `*` or `0` alleles, other contigs) are left out and
counted. ``gwas-ssf validate`` of PyPI's gwas-sumstats-tools accepts what this writes
(tests/test_gwas_outputs.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl

from contig import __version__

SSF_VERSION = "GWAS-SSF v1.0"
SSF_COLUMNS = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
               "standard_error", "effect_allele_frequency", "neg_log_10_p_value", "variant_id",
               "rsid", "n"]
SEX_CHROMOSOME_CODES = {"X": "23", "Y": "24", "XY": "23", "MT": "25", "M": "25"}
NUCLEOTIDES = r"^[ACGTacgt]+$"


def ssf_chromosome(chrom: pl.Expr) -> pl.Expr:
    """The standard's chromosome number (1–25) of plink chromosome names, null for others."""
    name = chrom.cast(pl.Utf8).str.strip_chars().str.replace(r"^(?i)chr", "").str.to_uppercase()
    code = name.replace_strict(SEX_CHROMOSOME_CODES, default=name)
    number = code.cast(pl.Int64, strict=False)
    return pl.when(number.is_between(1, 25)).then(number).otherwise(None)


def ssf_table(sumstats: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """SSF_COLUMNS from a per-phenotype table (CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N BETA SE
    LOG10P); also the number of variants left out (see the module docstring)."""
    table = sumstats.select(
        ssf_chromosome(pl.col("CHROM")).alias("chromosome"),
        pl.col("GENPOS").cast(pl.Int64).alias("base_pair_location"),
        pl.col("ALLELE1").cast(pl.Utf8).alias("effect_allele"),
        pl.col("ALLELE0").cast(pl.Utf8).alias("other_allele"),
        pl.col("BETA").alias("beta"),
        pl.col("SE").alias("standard_error"),
        pl.col("A1FREQ").alias("effect_allele_frequency"),
        pl.col("LOG10P").alias("neg_log_10_p_value"),
        pl.col("ID").cast(pl.Utf8).alias("rsid"),
        pl.col("N").cast(pl.Int64).alias("n"),
    )
    kept = table.filter(
        pl.all_horizontal(pl.col(SSF_COLUMNS[:8]).is_not_null()),
        pl.col("effect_allele").str.contains(NUCLEOTIDES),
        pl.col("other_allele").str.contains(NUCLEOTIDES),
        pl.col("base_pair_location") >= 0,
    ).with_columns(
        pl.concat_str([pl.col("chromosome"), pl.col("base_pair_location"), pl.col("other_allele"),
                       pl.col("effect_allele")], separator="_").alias("variant_id"),
        pl.when(pl.col("rsid").str.contains(r"^rs[0-9]+$")).then(pl.col("rsid")).otherwise(None),
    ).select(SSF_COLUMNS)
    return kept, len(table) - len(kept)


def metadata_date() -> str:
    """Today (UTC), or the day of ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.date().isoformat()


def ssf_metadata_yaml(file_name: str, md5: str, pheno: str, n_samples: int,
                      genome_assembly: str = "NR") -> str:
    """The ``-meta.yaml`` of one file: the standard's required fields (data file name and md5,
    genome assembly, date) and what the scan knows (trait, sample size, software)."""
    quoted = json.dumps  # a JSON string is a YAML string, whatever the phenotype's name holds
    lines = [
        f"date_metadata_last_modified: {metadata_date()}",
        f"trait_description:\n- {quoted(pheno)}",
        f"genome_assembly: {quoted(genome_assembly or 'NR')}",
        "coordinate_system: 1-based",
        f"samples:\n- sample_size: {int(n_samples)}",
        f"data_file_name: {quoted(file_name)}",
        f"file_type: {SSF_VERSION}",
        f"data_file_md5sum: {md5}",
        f"analysis_software: {quoted(f'contig gwas {__version__} (exact OLS, mean-imputed genotypes)')}",
        "is_harmonised: false",
    ]
    return "\n".join(lines) + "\n"


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def write_ssf(sumstats: pl.DataFrame, path: str | Path, meta_path: str | Path, pheno: str,
              n_samples: int, file_name: str | None = None, genome_assembly: str = "NR",
              compress: Callable[[bytes], bytes] = _gzip) -> int:
    """Write the GWAS-SSF file of one phenotype's summary statistics to ``path`` and its metadata
    to ``meta_path`` (``file_name``: the data file's final name, when ``path`` is temporary;
    ``compress``: a gzip writer); returns the number of variants left out."""
    table, dropped = ssf_table(sumstats)
    data = compress(table.write_csv(separator="\t", null_value="NA").encode())
    Path(path).write_bytes(data)
    name = file_name or Path(path).name
    Path(meta_path).write_text(ssf_metadata_yaml(name, hashlib.md5(data).hexdigest(), pheno, n_samples,
                                                 genome_assembly))
    return dropped
