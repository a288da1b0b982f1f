"""The people and per-person inputs of an association scan (GWAS steps 1 and 2).

People used: those in phenotype ∩ covariate ∩ .fam (∩ LOCO file) with no missing phenotype,
covariate (or LOCO prediction); all phenotypes share one set of people, so someone missing any
phenotype is dropped (and counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contig.core.errors import InputError
from contig.core.tables import NumericTable, read_numeric_table
from contig.genotypes.plinkio import Genotypes

LOCO_SEPARATOR = ":"


@dataclass
class AssociationData:
    """Everything per person that the scan needs, in .fam order of the people used."""

    iid: np.ndarray  # (n,) str
    sample_idx: np.ndarray  # (n,) sorted 0-based indices into the .fam
    phenotypes: np.ndarray  # (n, p)
    pheno_names: list[str]
    covariates: np.ndarray  # (n, c)
    covar_names: list[str]
    loco: dict[str, np.ndarray] | None = None  # chromosome -> (n, p) LOCO predictions
    counts: dict[str, int] = field(default_factory=dict)


def read_loco(path: str | Path, pheno_names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read OUT.loco.tsv.gz of ``contig gwas-step1``: ``IID`` + columns ``<pheno>:<chrom>``.

    Returns (iid, {chrom: (n_people, n_pheno) predictions in ``pheno_names`` order}).
    """
    table = read_numeric_table(path, what="LOCO prediction file")
    by_chrom: dict[str, dict[str, int]] = {}
    for j, name in enumerate(table.columns):
        pheno, sep, chrom = name.rpartition(LOCO_SEPARATOR)
        if not sep:
            raise InputError(f"column {name!r} is not <phenotype>{LOCO_SEPARATOR}<chromosome>", path)
        by_chrom.setdefault(chrom, {})[pheno] = j
    predictions = {}
    for chrom, columns in by_chrom.items():
        missing = [p for p in pheno_names if p not in columns]
        if missing:
            raise InputError(f"no LOCO prediction for phenotype(s) {', '.join(missing)} on "
                             f"chromosome {chrom}", path)
        predictions[chrom] = table.values[:, [columns[p] for p in pheno_names]]
    return table.iid, predictions


def _membership_counts(fam_iid: np.ndarray, phen: NumericTable, cov: NumericTable,
                       loco_pos: dict[str, int] | None) -> dict[str, int]:
    """Who is in which file: rows of the phenotype/covariate files not in the .fam, and .fam
    people without a phenotype, covariate (or LOCO) row."""
    fam_set = set(fam_iid)
    pheno_set, covar_set = set(phen.iid), set(cov.iid)
    counts = {"fam": len(fam_iid), "pheno_not_in_fam": int(sum(p not in fam_set for p in phen.iid)),
              "covar_not_in_fam": int(sum(p not in fam_set for p in cov.iid)),
              "fam_without_pheno": int(sum(p not in pheno_set for p in fam_iid)),
              "fam_without_covar": int(sum(p not in covar_set for p in fam_iid))}
    if loco_pos is not None:
        counts["fam_without_loco"] = int(sum(p not in loco_pos for p in fam_iid))
    return counts


MISSING_PHENOTYPE = -9.0
"""plink2's default ``--input-missing-phenotype``: this value in a phenotype file means missing."""


def load_association_data(genotypes: Genotypes, pheno: str | Path, covar: str | Path,
                          loco: str | Path | None = None, pheno_cols: Sequence[str] | None = None,
                          covar_cols: Sequence[str] | None = None,
                          missing_phenotype: float | None = MISSING_PHENOTYPE) -> AssociationData:
    """Join phenotypes, covariates (and LOCO predictions) with the .fam; drop incomplete people.
    Phenotype cells equal to ``missing_phenotype`` (None: no such code) are missing, as in
    plink2; how many is counted (``pheno_missing_code``)."""
    phen = read_numeric_table(pheno, pheno_cols, what="phenotype file", missing_code=missing_phenotype)
    cov = read_numeric_table(covar, covar_cols, what="covariate file")
    fam_iid = genotypes.fam["IID"].to_numpy().astype(str)
    pheno_pos = {p: i for i, p in enumerate(phen.iid)}
    covar_pos = {p: i for i, p in enumerate(cov.iid)}
    loco_pos: dict[str, int] | None = None
    loco_values: dict[str, np.ndarray] | None = None
    if loco is not None:
        loco_iid, loco_values = read_loco(loco, phen.columns)
        loco_pos = {p: i for i, p in enumerate(loco_iid)}
    counts = _membership_counts(fam_iid, phen, cov, loco_pos)
    counts["pheno_missing_code"] = phen.missing_coded
    in_all = np.array([p in pheno_pos and p in covar_pos and (loco_pos is None or p in loco_pos)
                       for p in fam_iid])
    if not in_all.any():
        raise InputError(f"no person is in the .fam ({genotypes.parts[0].prefix}.fam), the "
                         f"phenotype file and the covariate file"
                         + (" and the LOCO file" if loco is not None else ""), pheno)
    sample_idx = np.flatnonzero(in_all)
    iid = fam_iid[sample_idx]
    y = phen.values[[pheno_pos[p] for p in iid]]
    c = cov.values[[covar_pos[p] for p in iid]]
    for j, name in enumerate(phen.columns):
        if np.isnan(y[:, j]).all():
            raise InputError(f"phenotype is missing for all {len(iid)} people in the .fam and the "
                             "covariate file", pheno, None, name)
    complete_y = ~np.isnan(y).any(axis=1)
    complete_c = ~np.isnan(c).any(axis=1)
    counts["missing_pheno"] = int((~complete_y).sum())
    counts["missing_covar"] = int((complete_y & ~complete_c).sum())
    keep = complete_y & complete_c
    loco_arrays = None
    if loco_values is not None:
        rows = [loco_pos[p] for p in iid]
        loco_arrays = {chrom: v[rows] for chrom, v in loco_values.items()}
        complete_l = ~np.any([np.isnan(v).any(axis=1) for v in loco_arrays.values()], axis=0)
        counts["missing_loco"] = int((keep & ~complete_l).sum())
        keep &= complete_l
        loco_arrays = {chrom: v[keep] for chrom, v in loco_arrays.items()}
    counts["used"] = int(keep.sum())
    n_cov = c.shape[1]
    if counts["used"] < n_cov + 3:
        raise InputError(f"only {counts['used']} people have all phenotypes and covariates; need at "
                         f"least {n_cov + 3} for {n_cov} covariates", pheno)
    return AssociationData(iid[keep], sample_idx[keep], y[keep], phen.columns, c[keep], cov.columns,
                           loco_arrays, counts)


def covariate_basis(covariates: np.ndarray, names: Sequence[str],
                    path: str | Path | None = None) -> np.ndarray:
    """Orthonormal basis ``(n, c + 1)`` of ``[1, covariates (n, c)]``, intercept direction first.

    A constant covariate, or one that is a linear combination of the others, raises InputError.
    """
    n = covariates.shape[0]
    design = np.column_stack([np.ones(n), covariates])
    q, r = np.linalg.qr(design)
    diag = np.abs(np.diag(r))
    scale = np.linalg.norm(design, axis=0)
    for j in range(1, design.shape[1]):
        if diag[j] <= 1e-9 * max(scale[j], 1e-300):
            name = names[j - 1]
            what = ("constant" if np.ptp(design[:, j]) == 0
                    else "a linear combination of the intercept and earlier covariates")
            raise InputError(f"covariate is {what} among the {n} people used", path, None, name)
    return q
