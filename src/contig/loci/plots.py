"""Figures of the loci stage: the regional plot of one locus and the Miami plot of two GWAS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_directory, atomic_path
from contig.gwas.plots import genome_positions, plotted_points, thin_points
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN
from contig.genotypes.plinkio import Genotypes
from contig.loci.regional import REGIONAL_COLUMNS, RegionalSettings, regional_file_name, regional_tables

# LocusZoom-like colours of r² bins [0, 0.2), [0.2, 0.4), ..., [0.8, 1]; grey when unknown.
R2_EDGES = (0.2, 0.4, 0.6, 0.8)
R2_COLOURS = ("#2c2c8c", "#6cb4e4", "#3ca03c", "#f0a030", "#d02020")
NO_R2_COLOUR = "#b0b0b0"
LEAD_COLOUR = "#7a1fa2"


def r2_colours(r2: np.ndarray) -> np.ndarray:
    """The colour of each r² bin (:data:`R2_COLOURS`); grey for NaN."""
    bins = np.digitize(np.nan_to_num(r2, nan=0.0), R2_EDGES)
    return np.where(np.isnan(r2), NO_R2_COLOUR, np.array(R2_COLOURS)[bins])


def gene_rows(starts: np.ndarray, ends: np.ndarray, gap: float) -> np.ndarray:
    """A row for each gene (in the given order, by start) so that genes in one row are at least
    ``gap`` apart: greedy first fit."""
    row_ends: list[float] = []
    rows = np.empty(len(starts), dtype=np.int64)
    for i, (start, end) in enumerate(zip(starts, ends)):
        for r, last in enumerate(row_ends):
            if start > last + gap:
                rows[i], row_ends[r] = r, end
                break
        else:
            rows[i] = len(row_ends)
            row_ends.append(end)
    return rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _r2_legend(ax) -> None:
    from matplotlib.patches import Patch

    lows = (0.0, *R2_EDGES)
    highs = (*R2_EDGES, 1.0)
    handles = [Patch(color=c, label=f"{lo:.1f}–{hi:.1f}") for c, lo, hi in zip(R2_COLOURS, lows, highs)]
    handles = handles[::-1] + [Patch(color=NO_R2_COLOUR, label="NA")]
    ax.legend(handles=handles, title="r²", fontsize=7, title_fontsize=8, loc="upper right",
              frameon=False)


def draw_genes(ax, genes: pl.DataFrame, lo: float, hi: float) -> None:
    """Genes overlapping ``[lo, hi]`` (bp) as lines in non-overlapping rows with their names."""
    shown = genes.filter((pl.col("end") >= lo) & (pl.col("start") <= hi)).sort(["start", "end", "gene"])
    if shown.height == 0:
        ax.text(0.5, 0.5, "no gene in the window", transform=ax.transAxes, ha="center",
                va="center", fontsize=8, color="#7f7f7f")
        ax.set_ylim(-1, 1)
        return
    starts = np.maximum(shown["start"].to_numpy(), lo)
    ends = np.minimum(shown["end"].to_numpy(), hi)
    rows = gene_rows(starts, ends, gap=0.12 * (hi - lo))
    for start, end, row, name in zip(starts, ends, rows, shown["gene"].to_list()):
        ax.plot([start / 1e6, end / 1e6], [-row, -row], color="#1f4e79", linewidth=3,
                solid_capstyle="butt")
        centre = min(max((start + end) / 2, lo + 0.04 * (hi - lo)), hi - 0.04 * (hi - lo))
        ax.text(centre / 1e6, -row + 0.3, name, ha="center", va="bottom", fontsize=6.5)
    ax.set_ylim(-rows.max() - 0.6, 0.9)


def regional_plot(table: pl.DataFrame, locus: dict, genes: pl.DataFrame, path: str | Path,
                  settings: RegionalSettings = RegionalSettings(), title: str = "") -> None:
    """PNG of one locus: −log10 p of ``table`` (POS ID LOG10P R2, :data:`REGIONAL_COLUMNS`) by
    position, coloured by r² with the lead ``locus["LEAD_ID"]``; ``genes`` of its chromosome
    underneath; a dashed line at ``settings.threshold``."""
    plt = _pyplot()
    pos, lp, r2 = table["POS"].to_numpy(), table["LOG10P"].to_numpy(), table["R2"].to_numpy()
    lead = (table["ID"] == locus["LEAD_ID"]).to_numpy()
    window = settings.window_kb * 1000.0
    lo, hi = locus["LEAD_POS"] - window, locus["LEAD_POS"] + window
    fig, (ax, gene_ax) = plt.subplots(2, 1, figsize=(8, 5.2), dpi=120, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    order = np.argsort(np.nan_to_num(r2, nan=-1.0), kind="stable")
    order = order[~lead[order]]
    ax.scatter(pos[order] / 1e6, lp[order], s=14, c=r2_colours(r2[order]), linewidths=0.3,
               edgecolors="#404040", rasterized=True)
    ax.scatter(pos[lead] / 1e6, lp[lead], s=60, marker="D", color=LEAD_COLOUR, edgecolors="black",
               linewidths=0.5, zorder=3)
    ax.annotate(locus["LEAD_ID"], (locus["LEAD_POS"] / 1e6, float(locus["LOG10P"])), xytext=(6, 4),
                textcoords="offset points", fontsize=8)
    line = -np.log10(settings.threshold)
    ax.axhline(line, color="#c00000", linewidth=0.8, linestyle="--")
    ax.set_ylim(0, max(float(np.nanmax(lp)) if lp.size else 0.0, line) * 1.15 + 0.5)
    ax.set_ylabel(r"$-\log_{10} p$")
    _r2_legend(ax)
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}locus {locus['LOCUS']}, lead {locus['LEAD_ID']} (chr{locus['CHROM']}:"
                 f"{locus['LEAD_POS']:,}, p = {10 ** -float(locus['LOG10P']):.2g}); "
                 f"±{settings.window_kb:g} kb, {table.height} variants", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    draw_genes(gene_ax, genes, lo, hi)
    gene_ax.set_yticks([])
    gene_ax.spines[["top", "right", "left"]].set_visible(False)
    gene_ax.set_xlim(lo / 1e6, hi / 1e6)
    gene_ax.set_xlabel(f"chromosome {locus['CHROM']} position (Mb)")
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.1)
    _save(fig, path)


def _miami_panel(ax, x: np.ndarray, chrom: np.ndarray, ids: np.ndarray, lp: np.ndarray,
                 names: list[str], lead_ids: Sequence[str], line: float, max_labels: int) -> None:
    keep = thin_points(x, lp)
    colour_of = {name: i % 2 for i, name in enumerate(names)}
    colours = np.array(["#1f4e79", "#7fa7c9"])[[colour_of[c] for c in chrom[keep]]]
    ax.scatter(x[keep], lp[keep], s=4, c=colours, linewidths=0, rasterized=True)
    ax.axhline(line, color="#c00000", linewidth=0.8, linestyle="--")
    index = {v: i for i, v in enumerate(ids)}
    for i in [index[v] for v in lead_ids if v in index][:max_labels]:
        ax.annotate(ids[i], (x[i], lp[i]), xytext=(3, 0), textcoords="offset points", fontsize=6.5,
                    va="center")
    ax.spines[["top", "right"]].set_visible(False)


def miami_plot(top: pl.DataFrame, bottom: pl.DataFrame, path: str | Path,
               names: tuple[str, str] = ("left eye", "right eye"),
               lead_ids: tuple[Sequence[str], Sequence[str]] = ((), ()),
               threshold: float = GENOME_WIDE, p_column: str = DEFAULT_P_COLUMN,
               title: str = "", max_labels: int = 30) -> None:
    """Miami plot (PNG): the Manhattan plot of ``top`` above the mirrored one of ``bottom`` on one
    genome axis, dashed lines at ``threshold``, each GWAS' lead variants labelled."""
    plt = _pyplot()
    points = [plotted_points(t, p_column) for t in (top, bottom)]
    chrom = np.concatenate([p[0] for p in points])
    x_all, ticks, chrom_names = genome_positions(chrom, np.concatenate([p[1] for p in points]))
    split = len(points[0][0])
    xs = (x_all[:split], x_all[split:])
    line = -np.log10(threshold)
    peak = max([line] + [float(np.nanmax(p[3])) for p in points if p[3].size])
    fig, axes = plt.subplots(2, 1, figsize=(14, 7), dpi=120, sharex=True,
                             gridspec_kw={"hspace": 0.0})
    for ax, x, (c, _, ids, lp), name, leads in zip(axes, xs, points, names, lead_ids):
        _miami_panel(ax, x, c, ids, lp, chrom_names, leads, line, max_labels)
        ax.set_ylim(0, peak * 1.1 + 0.5)
        ax.set_ylabel(f"{name}\n" + r"$-\log_{10} p$")
    axes[1].invert_yaxis()
    axes[1].set_xticks(ticks)
    axes[1].set_xticklabels([n.removeprefix("chr") for n in chrom_names], fontsize=7)
    axes[1].set_xlabel("chromosome")
    axes[0].axhline(0, color="#7f7f7f", linewidth=0.6)
    span = np.ptp(x_all) if x_all.size else 1.0
    axes[1].set_xlim(x_all.min() - 0.01 * span, x_all.max() + 0.01 * span)
    counts = ", ".join(f"{name} {len(p[3]):,} variants" for name, p in zip(names, points))
    axes[0].set_title(f"{title} ({counts})" if title else counts)
    fig.subplots_adjust(left=0.07, right=0.99, top=0.94, bottom=0.07)
    _save(fig, path)


def write_regional_plots(loci: pl.DataFrame, sumstats: pl.DataFrame, genotypes: Genotypes,
                         genes: pl.DataFrame, out_dir: str | Path, settings: RegionalSettings,
                         sample_idx: np.ndarray | None = None, title: str = "") -> pl.DataFrame:
    """Write one PNG per plotted locus and ``regional.tsv`` (every plotted variant with its r²)
    into ``out_dir``, replacing it as a whole; returns that table. ``genes``: chrom start end gene
    as :func:`contig.scores.burden.read_gene_table` gives them."""
    settings.validate()
    tables = []
    with atomic_directory(out_dir) as tmp:
        for row, table in regional_tables(loci, sumstats, genotypes, settings, sample_idx):
            chrom_genes = genes.filter(pl.col("chrom") == str(row["CHROM"]))
            regional_plot(table, row, chrom_genes, tmp / regional_file_name(row["LOCUS"], row["LEAD_ID"]),
                          settings, title)
            tables.append(table)
        combined = pl.concat(tables) if tables else pl.DataFrame(schema=REGIONAL_COLUMNS)
        with atomic_path(tmp / "regional.tsv") as path:
            combined.write_csv(path, separator="\t", null_value="NA")
    return combined
