"""Figures of ``contig explain``: top features, share per modality, image saliency.

Each function writes to the (temporary) path it is given;
:func:`contig.pretrain.explain.write_outputs` makes the set atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

TOP_FEATURES_SHOWN = 30


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per modality (pass the names sorted so every figure agrees)."""
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def plot_top_features(features: pl.DataFrame, path: str | Path,
                      top: int = TOP_FEATURES_SHOWN) -> None:
    """Horizontal bars of the ``top`` features by mean |attribution|, coloured by modality."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    shown = features.head(top)
    colours = _colours(sorted(features["modality"].unique().to_list()))
    fig, ax = plt.subplots(figsize=(7, 0.22 * shown.height + 1.2))
    y = np.arange(shown.height)[::-1]
    ax.barh(y, shown["mean_abs_attribution"].to_numpy(),
            color=[colours[m] for m in shown["modality"].to_list()])
    ax.set_yticks(y, [f"{f}" for f in shown["feature"].to_list()], fontsize=7)
    ax.set_xlabel("mean |integrated gradients| of the person's contrastive loss")
    ax.set_title(f"top {shown.height} genetic features")
    ax.legend(handles=[Patch(color=c, label=n) for n, c in colours.items()], loc="lower right",
              fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_modality_shares(modalities: pl.DataFrame, path: str | Path) -> None:
    """Bars of each modality's share of the total mean |attribution|."""
    plt = _pyplot()
    names = modalities["modality"].to_list()
    colours = _colours(sorted(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.2))
    share = modalities["share"].to_numpy()
    ax.bar(names, share, color=[colours[n] for n in names])
    for i, (s, m) in enumerate(zip(share, modalities["n_features"].to_list())):
        ax.text(i, s, f"{100 * s:.1f}%\n({m} features)", ha="center", va="bottom", fontsize=8)
    top = float(np.max(share)) if len(share) and np.isfinite(share).all() else 1.0
    ax.set_ylim(0, max(top, 1e-9) * 1.3)
    ax.set_ylabel("share of total mean |attribution|")
    ax.set_title("attribution per modality")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_saliency(maps: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> None:
    """A grid: per person, the image and the image with its saliency overlaid."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(maps), figsize=(2.2 * len(maps), 4.6), squeeze=False)
    for j, (iid, image, saliency) in enumerate(maps):
        scale = np.percentile(saliency, 99) or 1.0
        axes[0, j].imshow(np.clip(image, 0, 1))
        axes[0, j].set_title(iid, fontsize=8)
        axes[1, j].imshow(np.clip(image, 0, 1).mean(-1), cmap="gray")
        axes[1, j].imshow(np.clip(saliency / scale, 0, 1), cmap="inferno", alpha=0.6)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("|IG| image→genetics", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
