"""Manhattan and QQ plots: thinning keeps every strong point, files are written, λGC in the title,
the threshold line and the plotted p-value column follow the options."""

from __future__ import annotations

import logging

import matplotlib.axes
import numpy as np
import polars as pl
import pytest
from PIL import Image

from contig.cli import main
from contig.gwas.plots import genome_positions, qq, thin_points
from contig.gwas.stats import lambda_gc


def _sumstats(n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    chrom = np.repeat(np.arange(1, 23), n // 22 + 1)[:n].astype(str)
    lp = -np.log10(rng.uniform(size=n))
    lp[1000:1010] = np.linspace(8, 30, 10)
    return pl.DataFrame({"CHROM": chrom, "GENPOS": np.tile(np.arange(n // 22 + 1) * 1000, 22)[:n],
                         "ID": [f"v{i}" for i in range(n)], "LOG10P": lp})


def test_thinning_keeps_all_strong_points_and_few_weak_ones():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1e9, 1_000_000)
    y = -np.log10(rng.uniform(size=x.size))
    keep = thin_points(x, y)
    assert set(np.flatnonzero(y > 3)) <= set(keep)
    assert keep.size < 0.6 * x.size
    np.testing.assert_array_equal(keep, thin_points(x, y))  # deterministic


def test_cli_writes_pngs_with_labels(tmp_path):
    table = _sumstats()
    table.write_parquet(tmp_path / "s.parquet")
    (tmp_path / "loci.tsv").write_text("LOCUS\tLEAD_ID\n1\tv1009\n")
    assert main(["gwas-plots", "--sumstats", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "fig"),
                 "--loci", str(tmp_path / "loci.tsv"), "--title", "PC1"]) == 0
    for name in ("manhattan", "qq"):
        with Image.open(tmp_path / f"fig.{name}.png") as image:
            assert image.format == "PNG" and image.size[0] > 500


def test_qq_returns_lambda_of_the_pvalues(tmp_path):
    table = _sumstats(n=20_000, seed=3)
    assert qq(table, tmp_path / "q.png") == lambda_gc(table["LOG10P"].to_numpy())
    assert 0.9 < lambda_gc(table["LOG10P"].to_numpy()) < 1.1


def test_threshold_line_and_p_column(tmp_path, monkeypatch, capsys, caplog):
    """--threshold moves the Manhattan line to −log10 P; --p-column LOG10P_JOINT plots that column
    (its λGC is reported); a missing column or a threshold outside (0, 1] is refused."""
    table = _sumstats(n=20_000, seed=4)
    joint = -np.log10(np.random.default_rng(5).uniform(size=table.height) ** 2)  # inflated on purpose
    table.with_columns(pl.Series("LOG10P_JOINT", joint)).write_parquet(tmp_path / "s.parquet")
    lines = []
    real = matplotlib.axes.Axes.axhline

    def record(self, y=0, *args, **kwargs):
        lines.append(y)
        return real(self, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", record)
    caplog.set_level(logging.INFO)
    assert main(["gwas-plots", "--sumstats", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "a"),
                 "--threshold", "1e-5", "--p-column", "LOG10P_JOINT"]) == 0
    assert lines == [pytest.approx(5.0)]
    assert f"lambda_GC {lambda_gc(joint):.3f}" in caplog.text
    assert lambda_gc(joint) > 1.5
    assert main(["gwas-plots", "--sumstats", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "b")]) == 0
    assert lines[-1] == pytest.approx(-np.log10(5e-8))
    status = main(["gwas-plots", "--sumstats", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "c"),
                   "--p-column", "LOG10P_OTHER"])
    assert status == 2 and "LOG10P_OTHER" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gwas-plots", "--sumstats", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "d"),
              "--threshold", "0"])
    assert not list(tmp_path.glob("c.*")) and not list(tmp_path.glob("d.*"))


def test_genome_positions_span_each_chromosome_from_first_to_last_variant():
    """Chromosomes sit side by side from their first to their last plotted position, each tick in
    the middle of its span, chromosome 2 after 10 (natural order), a gap of 2% between them."""
    chrom = np.array(["10", "2", "2", "10", "2"])
    pos = np.array([5_000_000, 1_000_000, 3_000_000, 6_000_000, 2_000_000])
    x, ticks, names = genome_positions(chrom, pos)
    assert names == ["2", "10"]
    assert x.tolist() == [2_060_000.0, 0.0, 2_000_000.0, 3_060_000.0, 1_000_000.0]
    assert ticks == [1_000_000.0, 2_560_000.0]
