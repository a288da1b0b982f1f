"""Manhattan and QQ plots of summary statistics, fast and legible for ~10 million variants.

Thinning: every variant with p < 1e-3 is drawn; the rest are reduced to one point per cell of a
grid of about 1.4 px at the output size in plot coordinates, which draws the same picture
deterministically. Scatter layers are rasterized.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.genotypes.plinkio import chromosome_sort_key
from contig.gwas.stats import GENOME_WIDE, lambda_gc
from contig.gwas.sumstats import DEFAULT_P_COLUMN

KEEP_ALL_LOG10P = 3.0


def thin_points(x: np.ndarray, y: np.ndarray, keep_above: float = KEEP_ALL_LOG10P,
                bins: tuple[int, int] = (1200, 400)) -> np.ndarray:
    """Indices of the points to draw: all with ``y > keep_above``, one per grid cell of the rest."""
    strong = y > keep_above
    weak = np.flatnonzero(~strong)
    if weak.size == 0:
        return np.flatnonzero(strong)
    x_range = max(float(x.max() - x.min()), 1e-12)
    y_range = max(float(np.nanmax(y[weak]) - np.nanmin(y[weak])), 1e-12)
    cx = ((x[weak] - x.min()) / x_range * (bins[0] - 1)).astype(np.int64)
    cy = ((y[weak] - np.nanmin(y[weak])) / y_range * (bins[1] - 1)).astype(np.int64)
    _, first = np.unique(cx * bins[1] + cy, return_index=True)
    return np.sort(np.concatenate([np.flatnonzero(strong), weak[first]]))


def genome_positions(chrom: np.ndarray, pos: np.ndarray, gap: float = 0.02) -> tuple[np.ndarray, list, list]:
    """Cumulative x coordinate of each variant, with chromosome tick positions and labels: each
    chromosome spans its first to its last plotted position, its tick in the middle of that span
    (a gap of ``gap`` × the summed spans between chromosomes)."""
    names = sorted(set(chrom.tolist()), key=chromosome_sort_key)
    x = np.empty(len(pos), dtype=np.float64)
    offset, ticks = 0.0, []
    first = {c: float(pos[chrom == c].min()) for c in names}
    spans = {c: float(pos[chrom == c].max()) - first[c] for c in names}
    total = max(sum(spans.values()), 1.0)
    for name in names:
        mask = chrom == name
        x[mask] = offset + pos[mask] - first[name]
        ticks.append(offset + spans[name] / 2)
        offset += spans[name] + gap * total
    return x, ticks, names


def plotted_points(sumstats: pl.DataFrame, p_column: str = DEFAULT_P_COLUMN
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CHROM, GENPOS, ID and the −log10 p column ``p_column`` of the variants that have one."""
    table = sumstats.filter(pl.col(p_column).is_not_null() & pl.col(p_column).is_not_nan())
    return (table["CHROM"].cast(pl.Utf8).to_numpy().astype(str), table["GENPOS"].to_numpy(),
            table["ID"].cast(pl.Utf8).to_numpy().astype(str), table[p_column].to_numpy())


def manhattan(sumstats: pl.DataFrame, path: str | Path, title: str = "",
              lead_ids: Sequence[str] | None = None, max_labels: int = 30,
              threshold: float = GENOME_WIDE, p_column: str = DEFAULT_P_COLUMN) -> None:
    """Manhattan plot (PNG): −log10 p (column ``p_column``) by genome position, a dashed line at
    the genome-wide ``threshold``, lead variants labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chrom, pos, ids, lp = plotted_points(sumstats, p_column)
    x, ticks, names = genome_positions(chrom, pos)
    keep = thin_points(x, lp)
    colour_of = {name: i % 2 for i, name in enumerate(names)}
    colours = np.array(["#1f4e79", "#7fa7c9"])[[colour_of[c] for c in chrom[keep]]]
    fig, ax = plt.subplots(figsize=(14, 5), dpi=120)
    ax.scatter(x[keep], lp[keep], s=4, c=colours, linewidths=0, rasterized=True)
    line = -np.log10(threshold)
    ax.axhline(line, color="#c00000", linewidth=0.8, linestyle="--")
    if lead_ids is None:
        lead_ids = []
    index = {v: i for i, v in enumerate(ids)}
    labelled = [index[v] for v in lead_ids if v in index][:max_labels]
    for i in labelled:
        ax.annotate(ids[i], (x[i], lp[i]), xytext=(0, 4), textcoords="offset points", fontsize=7,
                    ha="center", rotation=60)
    ax.set_xticks(ticks)
    ax.set_xticklabels([n.removeprefix("chr") for n in names], fontsize=7)
    ax.set_xlim(x.min() - 0.01 * np.ptp(x), x.max() + 0.01 * np.ptp(x))
    top = max(float(np.nanmax(lp)) if lp.size else 0.0, line)
    ax.set_ylim(0, top * 1.12 + 0.5)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10} p$")
    ax.set_title(f"{title} ({len(lp):,} variants)" if title else f"{len(lp):,} variants")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    _save(fig, path)


def qq(sumstats: pl.DataFrame, path: str | Path, title: str = "", p_column: str = DEFAULT_P_COLUMN) -> float:
    """QQ plot (PNG) of −log10 p (column ``p_column``) against its null expectation, 95% band,
    λGC in the title.

    Returns λGC. The band is the pointwise 2.5–97.5% quantiles of the uniform order statistics
    (Beta(i, n − i + 1)).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import beta

    _, _, _, lp = plotted_points(sumstats, p_column)
    n = lp.size
    observed = np.sort(lp)[::-1]
    rank = np.arange(1, n + 1)
    expected = -np.log10((rank - 0.5) / n)
    keep = thin_points(expected, observed, keep_above=KEEP_ALL_LOG10P, bins=(600, 600))
    band_rank = np.unique(np.geomspace(1, n, num=min(n, 400)).astype(np.int64))
    lower = -np.log10(beta.ppf(0.975, band_rank, n - band_rank + 1))
    upper = -np.log10(beta.ppf(0.025, band_rank, n - band_rank + 1))
    lam = lambda_gc(lp)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    band_x = -np.log10((band_rank - 0.5) / n)
    ax.fill_between(band_x, lower, upper, color="#d9d9d9", linewidth=0, label="95% band")
    limit = float(expected.max()) if n else 1.0
    ax.plot([0, limit], [0, limit], color="#7f7f7f", linewidth=0.8)
    ax.scatter(expected[keep], observed[keep], s=5, color="#1f4e79", linewidths=0, rasterized=True)
    ax.set_xlabel(r"expected $-\log_{10} p$")
    ax.set_ylabel(r"observed $-\log_{10} p$")
    ax.set_title(f"{title}  $\\lambda_{{GC}}$ = {lam:.3f}" if title else f"$\\lambda_{{GC}}$ = {lam:.3f}")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    _save(fig, path)
    return lam


def embedding_spectrum_plot(spectrum: np.ndarray, n_tested: int, path: str | Path,
                            max_components: int = 50) -> None:
    """Bar chart of the variance share of the first ``max_components`` embedding PCs (the
    ``n_tested`` tested ones highlighted) with the cumulative share on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(len(spectrum), max_components)
    x = np.arange(1, k + 1)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    colors = ["#1f4e79" if i < n_tested else "#9dc3e6" for i in range(k)]
    ax.bar(x, 100 * spectrum[:k], color=colors, width=0.8)
    ax.set_xlabel("embedding principal component")
    ax.set_ylabel("variance explained (%)")
    twin = ax.twinx()
    twin.plot(x, 100 * np.cumsum(spectrum)[:k], color="#c55a11", linewidth=1.2)
    twin.set_ylabel("cumulative (%)", color="#c55a11")
    twin.set_ylim(0, 100)
    title = f"{len(spectrum)} components"
    if n_tested:
        title += f"; the top {n_tested} (dark) explain {100 * spectrum[:n_tested].sum():.1f}% and are tested"
    ax.set_title(title, fontsize=9)
    ax.spines[["top"]].set_visible(False)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
