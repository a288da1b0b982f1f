"""Replication of loci between two GWAS (left and right eye): Bonferroni test, distinct loci."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.evaluate.replicate import ReplicationSettings, replicate


def write_loci(path: Path, rows: list[tuple]) -> Path:
    """rows: (lead_id, chrom, lead_pos, start, end, log10p)."""
    pl.DataFrame([(i + 1, lead, chrom, pos, s, e, 1, 10 ** -lp, lp)
                  for i, (lead, chrom, pos, s, e, lp) in enumerate(rows)],
                 schema=["LOCUS", "LEAD_ID", "CHROM", "LEAD_POS", "START", "END", "N_VARIANTS", "P",
                         "LOG10P"], orient="row").write_csv(path, separator="\t")
    return path


def write_combined(path: Path, ids: list[str], log10p: list[float | None]) -> Path:
    """A combined-statistics parquet as `contig gwas` writes it (the columns replicate reads)."""
    pl.DataFrame({"CHROM": ["1"] * len(ids), "GENPOS": np.arange(len(ids)), "ID": ids,
                  "PHENO": ["PC1"] * len(ids), "LOG10P": pl.Series(log10p, dtype=pl.Float64),
                  "P": pl.Series([None if v is None else 10 ** -v for v in log10p], dtype=pl.Float64),
                  }).write_parquet(path)
    return path


def test_one_direction_bonferroni_strict_and_missing_leads(tmp_path):
    loci = write_loci(tmp_path / "left.loci.tsv", [
        ("a", "1", 100, 100, 100, 12.0), ("b", "1", 900_000, 900_000, 900_000, 9.0),
        ("c", "2", 50, 50, 50, 8.0), ("d", "2", 5_000_000, 5_000_000, 5_000_000, 7.5)])
    threshold = 0.05 / 4
    other = write_combined(tmp_path / "right.parquet", ["a", "b", "d", "x"],
                           [-math.log10(0.9 * threshold), -math.log10(threshold), None, 30.0])
    result = replicate(loci, other, settings=ReplicationSettings(alpha=0.05))
    assert result.loci["REPLICATED"].to_list() == [True, False, False, False]  # c absent, d NA
    assert result.loci["THRESHOLD"].to_list() == [threshold] * 4
    assert result.loci["P_OTHER"][0] == pytest.approx(0.9 * threshold)
    assert result.loci["P_OTHER"][2] is None
    assert result.loci["EYE"].unique().to_list() == ["left"]
    summary = result.summary.row(0, named=True)
    assert summary == {"name_a": "left", "name_b": "right", "n_loci_a": 4, "n_loci_b": None,
                       "replicated_a_in_b": 1, "replicated_b_in_a": None, "lead_missing_in_b": 2,
                       "lead_missing_in_a": None, "n_replicated": 1, "alpha": 0.05, "window_kb": 250.0}


def test_both_directions_merge_loci_seen_in_both_eyes(tmp_path):
    left = write_loci(tmp_path / "l.tsv", [("a", "1", 1_000_000, 990_000, 1_010_000, 20.0),
                                           ("b", "1", 3_000_000, 3_000_000, 3_000_000, 10.0),
                                           ("c", "3", 10_000, 10_000, 10_000, 9.0)])
    right = write_loci(tmp_path / "r.tsv", [("a2", "1", 1_200_000, 1_200_000, 1_260_000, 15.0),
                                            ("e", "2", 10_000, 10_000, 10_000, 9.0),
                                            ("c2", "3", 270_000, 270_000, 280_000, 9.0)])
    # left sumstats (for right's loci) and right sumstats (for left's loci)
    sums_left = write_combined(tmp_path / "sl.parquet", ["a2", "e", "c2"], [8.0, 1.0, 5.0])
    sums_right = write_combined(tmp_path / "sr.parquet", ["a", "b", "c"], [12.0, 4.0, 6.0])
    result = replicate(left, sums_right, right, sums_left, ReplicationSettings(0.05, 250))
    # threshold 0.05/3 -> LOG10P > 1.778: a, b, c replicate in right; a2, c2 in left
    assert result.loci["REPLICATED"].to_list() == [True, True, True, True, False, True]
    assert result.loci["EYE"].to_list() == ["left"] * 3 + ["right"] * 3
    s = result.summary.row(0, named=True)
    assert (s["n_loci_a"], s["n_loci_b"], s["replicated_a_in_b"], s["replicated_b_in_a"]) == (3, 3, 3, 2)
    # a~a2 (190 kb apart) merge, c~c2 (260 kb) do not, b alone: a, b, c, c2
    assert s["n_replicated"] == 4
    assert replicate(left, sums_right, right, sums_left,
                     ReplicationSettings(window_kb=260)).summary["n_replicated"][0] == 3


def brute_force(loci_a, p_b, loci_b, p_a, alpha, window):
    """Oracle: plain loops over the rows; distinct loci by repeated merging of sets."""
    def tested(loci, p_other):
        n = len(loci)
        return [r for r in loci if p_other.get(r["LEAD_ID"]) is not None
                and p_other[r["LEAD_ID"]] < alpha / n]

    rep_a, rep_b = tested(loci_a, p_b), tested(loci_b, p_a)
    groups = [{("a", r["LEAD_ID"])} for r in rep_a] + [{("b", r["LEAD_ID"])} for r in rep_b]
    spans = {("a", r["LEAD_ID"]): r for r in rep_a} | {("b", r["LEAD_ID"]): r for r in rep_b}

    def linked(x, y):
        if x[0] == y[0]:
            return False
        u, v = spans[x], spans[y]
        gap = max(0, int(v["START"]) - int(u["END"]), int(u["START"]) - int(v["END"]))
        return u["CHROM"] == v["CHROM"] and gap <= window

    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if any(linked(x, y) for x in groups[i] for y in groups[j]):
                    groups[i] |= groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    return len(rep_a), len(rep_b), len(groups)


def read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_tables(tmp_path, seed):
    rng = np.random.default_rng(seed)

    def random_loci(prefix, n):
        rows = []
        for i in range(n):
            chrom = str(rng.integers(1, 3))
            pos = int(rng.integers(0, 3_000_000))
            rows.append((f"{prefix}{i}", chrom, pos, pos - int(rng.integers(0, 100_000)),
                         pos + int(rng.integers(0, 100_000)), 8.0 + rng.random()))
        return rows

    left = write_loci(tmp_path / "l.tsv", random_loci("L", int(rng.integers(1, 15))))
    right = write_loci(tmp_path / "r.tsv", random_loci("R", int(rng.integers(1, 15))))
    loci_l, loci_r = read_rows(left), read_rows(right)
    p_r = {r["LEAD_ID"]: (None if rng.random() < 0.1 else float(rng.random() ** 4)) for r in loci_l}
    p_l = {r["LEAD_ID"]: (None if rng.random() < 0.1 else float(rng.random() ** 4)) for r in loci_r}
    sums_r = write_combined(tmp_path / "sr.parquet", list(p_r),
                            [None if p is None else -math.log10(p) for p in p_r.values()])
    sums_l = write_combined(tmp_path / "sl.parquet", list(p_l),
                            [None if p is None else -math.log10(p) for p in p_l.values()])
    out = tmp_path / "rep.tsv"
    assert main(["replicate", "--loci", str(left), "--sumstats-other", str(sums_r), "--loci-other",
                 str(right), "--sumstats", str(sums_l), "--alpha", "0.1", "--out", str(out)]) == 0
    summary = read_rows(tmp_path / "rep.summary.tsv")[0]
    got = (int(summary["replicated_a_in_b"]), int(summary["replicated_b_in_a"]),
           int(summary["n_replicated"]))
    assert got == brute_force(loci_l, p_r, loci_r, p_l, 0.1, 250_000)
    rows = read_rows(out)
    assert len(rows) == len(loci_l) + len(loci_r)
    for row in rows:
        p = (p_r if row["EYE"] == "left" else p_l)[row["LEAD_ID"]]
        n = len(loci_l) if row["EYE"] == "left" else len(loci_r)
        assert row["REPLICATED"] == str(p is not None and p < 0.1 / n).lower()


def test_cli_needs_both_reverse_inputs_and_reports(tmp_path, capsys):
    loci = write_loci(tmp_path / "l.tsv", [("a", "1", 100, 100, 100, 12.0)])
    sums = write_combined(tmp_path / "s.parquet", ["a"], [3.0])
    assert main(["replicate", "--loci", str(loci), "--sumstats-other", str(sums), "--loci-other",
                 str(loci), "--out", str(tmp_path / "x.tsv")]) == 2
    assert "--loci-other and --sumstats go together" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
    assert main(["replicate", "--loci", str(loci), "--sumstats-other", str(sums), "--name", "eye",
                 "--name-other", "eye", "--out", str(tmp_path / "x.tsv")]) == 2
    assert "the two GWAS need different names" in capsys.readouterr().err
    for option, message in ((["--alpha", "1"], "argument --alpha: 1 is not in (0, 1)"),
                            (["--window-kb", "-1"], "argument --window-kb: -1 is not in [0, inf]")):
        try:  # refused by argparse (exit 2) or by the settings (status 2)
            status = main(["replicate", "--loci", str(loci), "--sumstats-other", str(sums), *option,
                           "--out", str(tmp_path / "x.tsv")])
        except SystemExit as exit_:
            status = exit_.code
        assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
    assert main(["replicate", "--loci", str(loci), "--sumstats-other", str(tmp_path / "absent.parquet"),
                 "--out", str(tmp_path / "x.tsv")]) == 2
    assert "absent.parquet: file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
