"""The figure of the sample filters: the kinship histogram and, when the ancestry filter ran, PC1
vs PC2 with the removed people (aggregate-only density unless individual-level output is allowed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.genotypes.king import DEGREE_THRESHOLDS
from contig.genotypes.pca import MIN_CELL_COUNT


def step_threshold(steps: pl.DataFrame, step: str) -> tuple[float | None, int]:
    """(threshold, people removed) of one step of a QC step table; (None, 0) when absent."""
    row = steps.filter(pl.col("step") == step)
    if not row.height:
        return None, 0
    return row["threshold"].item(), int(row["samples_removed"].item())


def draw_kinship_histogram(ax, histogram: pl.DataFrame, cutoff: float | None, removed: int) -> None:
    """Pairs per kinship bin (log scale) with plink2's degree boundaries and the cutoff."""
    lower, upper, pairs = (histogram[c].to_numpy() for c in ("from", "to", "pairs"))
    ax.bar(lower, np.maximum(pairs, 0), width=upper - lower, align="edge", color="tab:blue")
    ax.set_yscale("symlog", linthresh=1)
    for label, value in DEGREE_THRESHOLDS.items():
        ax.axvline(value, color="grey", linestyle=":", linewidth=1)
        ax.text(value, ax.get_ylim()[1], f" {label}", rotation=90, va="top", fontsize="x-small")
    if cutoff is not None:
        ax.axvline(cutoff, color="tab:red", linewidth=1.5, label=f"--king-cutoff {cutoff:g}: {removed} removed")
        ax.legend(fontsize="small", frameon=False, loc="upper right")
    ax.set_xlabel("KING-robust kinship")
    ax.set_ylabel("pairs of people")
    ax.set_title(f"{int(pairs.sum()):,} pairs with kinship >= {lower[0]:g}" if len(lower) else "Kinship",
                 fontsize="small")


def draw_ancestry(ax, ancestry: pl.DataFrame, sd: float, density: bool) -> None:
    """PC1 vs PC2 of the people the ancestry filter saw; removed people marked (scatter) or only
    counted (density, cells with < MIN_CELL_COUNT people hidden)."""
    pc1, pc2 = ancestry["PC1"].to_numpy(), ancestry["PC2"].to_numpy() if "PC2" in ancestry.columns else None
    pc2 = np.zeros_like(pc1) if pc2 is None else pc2
    removed = ancestry["removed"].to_numpy()
    label = f"removed (> {sd:g} SD on a PC): {int(removed.sum())}"
    if density:
        cells = ax.hexbin(pc1[~removed], pc2[~removed], gridsize=30, mincnt=MIN_CELL_COUNT, cmap="viridis")
        ax.figure.colorbar(cells, ax=ax, label=f"people kept (cells with < {MIN_CELL_COUNT} hidden)")
        ax.set_title(f"Ancestry filter: {label}", fontsize="small")
    else:
        ax.scatter(pc1[~removed], pc2[~removed], s=5, alpha=0.5, linewidths=0, label="kept")
        ax.scatter(pc1[removed], pc2[removed], s=18, marker="x", color="tab:red", label=label)
        ax.legend(fontsize="small", frameon=False)
        ax.set_title("Ancestry filter", fontsize="small")
    for values, line in ((pc1, ax.axvline), (pc2, ax.axhline)):
        for sign in (-1, 1):
            line(values.mean() + sign * sd * values.std(), color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")


def plot_sample_filters(path: str | Path, histogram: pl.DataFrame, ancestry: pl.DataFrame,
                        steps: pl.DataFrame, density: bool) -> None:
    """Write the PNG: kinship histogram, plus the ancestry panel when that filter ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd, _ = step_threshold(steps, "ancestry-sd")
    with_ancestry = sd is not None and ancestry.height > 0 and "PC1" in ancestry.columns
    fig, axes = plt.subplots(1, 2 if with_ancestry else 1, figsize=(11 if with_ancestry else 5.5, 4.5),
                             dpi=120, squeeze=False)
    cutoff, removed = step_threshold(steps, "king-cutoff")
    draw_kinship_histogram(axes[0, 0], histogram, cutoff, removed)
    if with_ancestry:
        draw_ancestry(axes[0, 1], ancestry, sd, density)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
