"""Tables of ``contig explain``: attribution per feature and per modality, the run summary, and
precision@k of the top features against the simulator's planted variants and genes.

Shapes: ``m`` features of a modality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.core.tables import read_tsv
from contig.pretrain.attribution import Attributions, ExplainModel, ExplainSettings
from contig.scores.modality import Modality

SNP_MODALITIES = ("snps",)
"""Modalities whose features are variant IDs of the .bim (placed by ``--bim``, scored against
planted SNPs)."""
GENE_MODALITIES = ("burden",)
"""Modalities whose features are genes (scored against planted burden genes)."""


def snp_positions(bim: pl.DataFrame, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """CHROM (str, "" if unknown) and POS (int, −1 if unknown) of ``ids`` from a .bim table, and
    how many ids were not found (the first row wins for duplicated ids)."""
    table = bim.select("ID", "CHROM", "POS").unique("ID", keep="first", maintain_order=True)
    joined = pl.DataFrame({"ID": np.asarray(ids).astype(str)}).join(
        table, on="ID", how="left", maintain_order="left")
    missing = int(joined["POS"].is_null().sum())
    return (joined["CHROM"].fill_null("").to_numpy().astype(str),
            joined["POS"].fill_null(-1).to_numpy().astype(np.int64), missing)


def modality_chromosomes(mod: Modality) -> np.ndarray | None:
    """Chromosome of each feature ``(m,)`` from a SNP modality's ``chrom``/``chrom_offsets``
    arrays, or None."""
    if "chrom" not in mod.extra or "chrom_offsets" not in mod.extra:
        return None
    offsets = np.asarray(mod.extra["chrom_offsets"], np.int64)
    if offsets[-1] != mod.X.shape[1]:
        return None
    return np.repeat(np.asarray(mod.extra["chrom"]).astype(str), np.diff(offsets))


def feature_table(attr: Attributions, chrom: Mapping[str, np.ndarray] | None = None,
                  pos: Mapping[str, np.ndarray] | None = None) -> pl.DataFrame:
    """One row per feature: modality, feature, chrom, pos, mean_abs_attribution, mean_attribution,
    rank_in_modality, rank (1 = largest mean |attribution|; ties in input order), sorted by rank."""
    frames = []
    for name, values in attr.values.items():
        m = values.shape[1]
        c = (chrom or {}).get(name)
        p = (pos or {}).get(name)
        frames.append(pl.DataFrame({
            "modality": [name] * m,
            "feature": attr.feature[name],
            "chrom": (pl.Series(c.astype(str)).replace("", None) if c is not None
                      else pl.Series([None] * m, dtype=pl.String)),
            "pos": (pl.Series(p.astype(np.int64)).replace(-1, None) if p is not None
                    else pl.Series([None] * m, dtype=pl.Int64)),
            "mean_abs_attribution": np.abs(values).mean(0) if len(values) else np.zeros(m),
            "mean_attribution": values.mean(0) if len(values) else np.zeros(m),
        }))
    table = pl.concat(frames).with_row_index("input_order")
    table = table.with_columns(
        pl.col("mean_abs_attribution").rank("ordinal", descending=True).over("modality")
        .alias("rank_in_modality"))
    table = table.sort(["mean_abs_attribution", "input_order"], descending=[True, False])
    return table.with_columns(pl.int_range(1, table.height + 1).alias("rank")).select(
        "modality", "feature", "chrom", "pos", "mean_abs_attribution", "mean_attribution",
        pl.col("rank_in_modality").cast(pl.Int64), pl.col("rank").cast(pl.Int64))


def modality_table(features: pl.DataFrame) -> pl.DataFrame:
    """Per modality: n_features, total_abs_attribution (sum of features' mean |attribution|),
    mean_abs_per_feature, share (of the total over modalities), in the features' modality order."""
    table = features.group_by("modality", maintain_order=True).agg(
        pl.len().alias("n_features"), pl.col("mean_abs_attribution").sum()
        .alias("total_abs_attribution"))
    total = table["total_abs_attribution"].sum()
    table = table.with_columns(
        (pl.col("total_abs_attribution") / pl.col("n_features")).alias("mean_abs_per_feature"),
        (pl.col("total_abs_attribution") / total if total > 0 else pl.lit(float("nan")))
        .alias("share"))
    return table.sort("share", descending=True, maintain_order=True).with_columns(
        pl.col("n_features").cast(pl.Int64))


def summary_table(attr: Attributions, settings: ExplainSettings, models: Sequence[ExplainModel]
                  ) -> pl.DataFrame:
    """``metric, value`` rows: what was used and the completeness check."""
    c = attr.completeness()
    rows = [("n_models", len(models)), ("n_people", len(attr.iid)),
            ("n_reference_per_model", ",".join(map(str, attr.n_reference))),
            ("steps", settings.steps), ("noise_tunnel_samples", settings.noise_samples),
            ("noise_sd", settings.noise_sd if settings.noise_samples else "NA"),
            ("baseline", "cohort feature means"), ("eye", settings.eye), ("seed", settings.seed),
            ("temperature", ",".join(f"{m.temperature:g}" for m in models)),
            ("alpha", ",".join(f"{m.alpha:g}" for m in models)),
            ("mean_loss", float(np.mean(attr.loss)) if len(attr.loss) else "NA"),
            ("mean_baseline_loss", float(np.mean(attr.baseline_loss)) if len(attr.loss) else "NA"),
            ("mean_abs_loss_gap", c["mean_abs_loss_gap"]),
            ("mean_abs_convergence_delta", c["mean_abs_delta"]),
            ("relative_convergence_delta", c["relative_delta"])]
    return pl.DataFrame({"metric": [r[0] for r in rows], "value": [f"{r[1]:.6g}"
                         if isinstance(r[1], float) else str(r[1]) for r in rows]})



# ---------------------------------------------------------------------------------------------
# Truth (simulated data)
# ---------------------------------------------------------------------------------------------

def read_truth(path: str | Path) -> pl.DataFrame:
    """The simulator's truth table: kind (snp/gene), id, chrom, start, role."""
    table = read_tsv(path, required=["kind", "id", "chrom", "start", "role"],
                     dtypes={"start": pl.Int64})
    bad = ~table["kind"].is_in(["snp", "gene"]) | table["kind"].is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"kind {table['kind'][i]!r} is not snp or gene", path, i + 2, "kind")
    return table.with_columns(pl.col("chrom").cast(pl.String).str.strip_prefix("chr"))


def _window_hits(chrom: np.ndarray, pos: np.ndarray, planted: pl.DataFrame,
                 window: int) -> tuple[np.ndarray, list[set[int]]]:
    """Whether each feature is within ``window`` bp of a planted SNP, and which planted rows."""
    hit = np.zeros(len(chrom), bool)
    which: list[set[int]] = [set() for _ in range(len(chrom))]
    p_chrom = planted["chrom"].to_numpy().astype(str)
    p_pos = planted["start"].to_numpy().astype(np.int64)
    for c in np.unique(chrom):
        on = np.flatnonzero((chrom == c) & (pos >= 0))
        idx = np.flatnonzero(p_chrom == c)
        if len(on) == 0 or len(idx) == 0:
            continue
        order = idx[np.argsort(p_pos[idx])]
        sorted_pos = p_pos[order]
        lo = np.searchsorted(sorted_pos, pos[on] - window, side="left")
        hi = np.searchsorted(sorted_pos, pos[on] + window, side="right")
        for f, a, b in zip(on, lo, hi):
            if b > a:
                hit[f] = True
                which[f] = set(order[a:b].tolist())
    return hit, which


def precision_at_k(features: pl.DataFrame, truth: pl.DataFrame, window_kb: float,
                   ks: Sequence[int]) -> pl.DataFrame:
    """Precision of the top-k features of each SNP and gene modality against the planted truth.

    SNP modalities (:data:`SNP_MODALITIES`, needing chrom/pos): a feature is a hit if it lies within
    ``window_kb`` of a planted SNP: target ``major`` counts role-major SNPs, ``any`` every planted
    SNP (major and polygenic). Gene modalities (:data:`GENE_MODALITIES`): a hit is a gene of truth
    kind=gene (target ``burden``). Columns: modality, target, k, hits, precision, chance (the share
    of the modality's features that are hits, i.e. the expected precision of a random ranking),
    planted_found (planted items with a hit among the top k), n_planted.
    """
    window = int(round(window_kb * 1000))
    rows = []
    snps = truth.filter(pl.col("kind") == "snp")
    for name in features["modality"].unique(maintain_order=True).to_list():
        f = features.filter(pl.col("modality") == name).sort("rank_in_modality")
        if name in SNP_MODALITIES:
            chrom = f["chrom"].fill_null("").to_numpy().astype(str)
            chrom = np.char.replace(chrom, "chr", "")
            pos = f["pos"].fill_null(-1).to_numpy().astype(np.int64)
            targets = {"major": snps.filter(pl.col("role") == "major"), "any": snps}
            for target, planted in targets.items():
                hit, which = _window_hits(chrom, pos, planted, window)
                rows += _precision_rows(name, target, hit, which, ks, planted.height)
        elif name in GENE_MODALITIES:
            genes = truth.filter(pl.col("kind") == "gene")
            gene_ids = genes["id"].to_list()
            hit = f["feature"].is_in(gene_ids).to_numpy()
            index = {g: i for i, g in enumerate(gene_ids)}
            which = [{index[g]} if g in index else set() for g in f["feature"].to_list()]
            rows += _precision_rows(name, "burden", hit, which, ks, genes.height)
    schema = {"modality": pl.String, "target": pl.String, "k": pl.Int64, "hits": pl.Int64,
              "precision": pl.Float64, "chance": pl.Float64, "planted_found": pl.Int64,
              "n_planted": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _precision_rows(name: str, target: str, hit: np.ndarray, which: list[set[int]],
                    ks: Sequence[int], n_planted: int) -> list[tuple]:
    chance = float(hit.mean()) if len(hit) else float("nan")
    rows = []
    for k in ks:
        top = min(k, len(hit))
        found = set().union(*which[:top]) if top else set()
        hits = int(hit[:top].sum())
        rows.append((name, target, int(k), hits, hits / top if top else float("nan"), chance,
                     len(found), n_planted))
    return rows
