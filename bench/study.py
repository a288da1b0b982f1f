"""The study: the demo's comparison of methods repeated over training seeds and simulation seeds.

One probe interval says nothing about training noise, and one simulated cohort says nothing
about the simulator's seed. This script runs the whole workflow (config/config.yaml, the demo)
once per (simulation seed, training seed) in its own working directory under ``--out``, reads
each run's ``results/evaluate/comparison.tsv`` and prints, per method, the mean ± sd of every
numeric column over the runs (and per simulation seed), with the wall time of each run.

    .venv/bin/python bench/study.py                       # 2 simulation x 3 training seeds
    .venv/bin/python bench/study.py --sim-seeds 1 --train-seeds 42   # just the demo

Runs already finished (their comparison.tsv exists) are reused unless ``--rerun``. Each
simulation seed is simulated once and shared by its training seeds. Outputs: ``OUT/runs.tsv``
(one row per method and run), ``OUT/summary.tsv`` and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_RESOURCES = "resources/demo"


def study_config(sim_seed: int, train_seed: int, sim_dir: Path) -> dict:
    """The demo config with the simulation seed, its own simulated inputs and the training seed."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())

    def relocate(value):
        if isinstance(value, dict):
            return {k: relocate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relocate(v) for v in value]
        if isinstance(value, str) and value.startswith(DEMO_RESOURCES):
            return str(sim_dir) + value[len(DEMO_RESOURCES):]
        return value

    config = relocate(config)
    config["simulate"]["seed"] = sim_seed
    config["pretrain"]["seed"] = train_seed
    return config


def run_once(out: Path, sim_seed: int, train_seed: int, cores: int, rerun: bool) -> tuple[Path, float]:
    """Run the workflow for one (simulation, training) seed pair; (comparison table, seconds)."""
    workdir = out / f"sim{sim_seed}_train{train_seed}"
    table = workdir / "results" / "evaluate" / "comparison.tsv"
    if table.exists() and not rerun:
        seconds = float((workdir / "seconds.txt").read_text()) if (workdir / "seconds.txt").exists() else float("nan")
        return table, seconds
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(study_config(sim_seed, train_seed, (out / f"sim{sim_seed}").resolve()),
                                         sort_keys=False))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(configfile), "--cores", str(cores)]
    if rerun:
        command.append("--forceall")
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"study: run sim{sim_seed}_train{train_seed} failed; see {workdir / 'snakemake.log'}")
    (workdir / "seconds.txt").write_text(f"{seconds:.1f}\n")
    return table, seconds


def numeric_columns(table: pl.DataFrame) -> list[str]:
    """Columns worth averaging: numeric, and not an interval bound, a chance level or a count
    that is the same in every run (planted SNPs, seeds, folds)."""
    skip = ("lower", "upper", "chance", "n_seeds", "n_folds", "planted")
    return [c for c, dtype in table.schema.items()
            if dtype.is_numeric() and c not in ("sim_seed", "train_seed") and not any(s in c for s in skip)]


def summarize(runs: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Mean, sd and number of runs of every numeric column per group."""
    columns = numeric_columns(runs)
    aggregations = [pl.len().alias("runs")]
    for c in columns:
        aggregations += [pl.col(c).mean().alias(f"{c}_mean"), pl.col(c).std().alias(f"{c}_sd")]
    return runs.group_by(by, maintain_order=True).agg(aggregations)


def markdown(summary: pl.DataFrame, by: list[str], columns: list[str]) -> str:
    """The summary as a markdown table of "mean ± sd" cells."""
    lines = ["| " + " | ".join(by + ["runs"] + columns) + " |",
             "|" + "---|" * len(by) + "---:|" * (len(columns) + 1)]
    for row in summary.iter_rows(named=True):
        cells = [str(row[b]) for b in by] + [str(row["runs"])]
        for c in columns:
            mean, sd = row[f"{c}_mean"], row[f"{c}_sd"]
            cells.append("NA" if mean is None else f"{mean:.3f} ± {0.0 if sd is None else sd:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-seeds", type=int, nargs="+", default=[1, 2024],
                        help="simulation seeds (1 = the demo's; 2024 is used by no test or default)")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[42, 43, 44],
                        help="pretraining seeds (42 = the demo's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "study")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rerun", action="store_true", help="rerun finished runs")
    args = parser.parse_args()

    frames, times = [], []
    for sim_seed in args.sim_seeds:
        for train_seed in args.train_seeds:
            table, seconds = run_once(args.out, sim_seed, train_seed, args.cores, args.rerun)
            times.append(seconds)
            print(f"sim {sim_seed} train {train_seed}: {seconds / 60:.1f} min", flush=True)
            frames.append(pl.read_csv(table, separator="\t", null_values=["NA"], infer_schema_length=None)
                          .with_columns(sim_seed=pl.lit(sim_seed), train_seed=pl.lit(train_seed)))
    runs = pl.concat(frames, how="diagonal_relaxed")
    args.out.mkdir(parents=True, exist_ok=True)
    runs.write_csv(args.out / "runs.tsv", separator="\t", null_value="NA")
    columns = numeric_columns(runs)
    overall = summarize(runs, ["method"])
    per_sim = summarize(runs, ["sim_seed", "method"])
    overall.write_csv(args.out / "summary.tsv", separator="\t", null_value="NA")
    text = (f"Study: {len(args.sim_seeds)} simulation seeds {args.sim_seeds} x {len(args.train_seeds)} "
            f"training seeds {args.train_seeds}; {sum(times) / 60:.0f} min of runs in all "
            f"(`.venv/bin/python bench/study.py`). Mean ± sd over runs.\n\n"
            + markdown(overall, ["method"], columns) + "\n\nPer simulation seed:\n\n"
            + markdown(per_sim, ["sim_seed", "method"], columns) + "\n")
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
