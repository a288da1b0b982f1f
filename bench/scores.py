"""Benchmark: ``contig prs`` vs ``plink2 --score`` for 32 scores x 100,000 variants x 5,000 people.

Data: ``plink2 --dummy 5000 100000 0.01 acgt`` (1% missing calls), .bim rewritten to chromosomes
1..22 with increasing positions. Scores: 32 columns of N(0, 1) weights over all 100,000 variants,
each variant's effect allele drawn as ALT or REF per score.
- plink2 gets them as ONE file (ID, A1 per score is not possible, so the effect allele is the same
  for all 32 columns of a row: we draw it per variant) read with ``--score-col-nums 3-34``;
- contig gets 32 PGS Catalog-format files (.txt.gz, rsID chr_name chr_position effect_allele
  other_allele effect_weight, with the same effect alleles and weights), run with
  ``--keep-ambiguous`` so that both use every variant (plink2 does no strand checks).
Both are timed end to end as one command each (parse, match, score, write), warm file cache,
best of ``--repeats`` interleaved runs. The SUMs are compared to plink2's printed precision as a sanity check.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/scores.py`` (writes bench/out/scores.json).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
N_SAMPLES, N_VARIANTS, N_SCORES = 5000, 100_000, 32


def run(cmd: list[str], env: dict | None = None) -> float:
    """Run a command, fail loudly, return its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed


def make_genotypes(work: Path, plink2: str, env: dict) -> Path:
    """plink2 --dummy genotypes with a .bim spread over chromosomes 1..22."""
    prefix = work / "dummy"
    run([plink2, "--dummy", str(N_SAMPLES), str(N_VARIANTS), "0.01", "acgt", "--make-bed",
         "--out", str(prefix), "--threads", "2"], env)
    bim = pl.read_csv(f"{prefix}.bim", separator="\t", has_header=False,
                      new_columns=["CHROM", "ID", "CM", "POS", "ALT", "REF"])
    chrom = np.repeat(np.arange(1, 23), -(-N_VARIANTS // 22))[:N_VARIANTS]
    first = np.searchsorted(chrom, chrom)  # index of each chromosome's first variant
    bim = bim.with_columns(CHROM=pl.Series(chrom), POS=pl.Series((np.arange(N_VARIANTS) - first) * 1000 + 10_000),
                           ID=pl.Series([f"rs{i}" for i in range(N_VARIANTS)]))
    bim.write_csv(f"{prefix}.bim", separator="\t", include_header=False)
    return prefix


def make_scores(work: Path, prefix: Path, rng: np.random.Generator) -> tuple[Path, list[Path]]:
    """One 32-column plink2 score file, and the same scores as 32 PGS Catalog files."""
    bim = pl.read_csv(f"{prefix}.bim", separator="\t", has_header=False,
                      new_columns=["CHROM", "ID", "CM", "POS", "ALT", "REF"])
    effect_is_alt = rng.random(N_VARIANTS) < 0.5
    effect = np.where(effect_is_alt, bim["ALT"].to_numpy(), bim["REF"].to_numpy())
    other = np.where(effect_is_alt, bim["REF"].to_numpy(), bim["ALT"].to_numpy())
    weights = np.round(rng.normal(size=(N_VARIANTS, N_SCORES)), 6)
    plink_file = work / "scores_plink2.tsv"
    pl.DataFrame({"ID": bim["ID"], "A1": effect} | {f"S{j + 1}": weights[:, j] for j in range(N_SCORES)}) \
        .write_csv(plink_file, separator="\t")
    pgs_files = []
    for j in range(N_SCORES):
        path = work / f"PGS9{j:05d}.txt.gz"
        table = pl.DataFrame({"rsID": bim["ID"], "chr_name": bim["CHROM"], "chr_position": bim["POS"],
                              "effect_allele": effect, "other_allele": other, "effect_weight": weights[:, j]})
        with gzip.open(path, "wb", compresslevel=6) as handle:
            handle.write(f"#pgs_id=S{j + 1}\n#genome_build=GRCh37\n#format_version=2.0\n".encode())
            table.write_csv(handle, separator="\t")
        pgs_files.append(path)
    return plink_file, pgs_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    plink2 = shutil.which("plink2")
    if plink2 is None:
        sys.exit("plink2 not found (apt-get install plink2)")
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
    contig = str(Path(sys.executable).with_name("contig"))
    rng = np.random.default_rng(2026)
    out = ROOT / "bench" / "out"  # git-ignored: the data never lands in the work tree proper
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scores_data_", dir=out) as tmp:
        work = Path(tmp)
        prefix = make_genotypes(work, plink2, env)
        plink_file, pgs_files = make_scores(work, prefix, rng)
        plink_cmd = [plink2, "--bfile", str(prefix), "--score", str(plink_file), "1", "2", "header-read",
                     "cols=+scoresums", "--score-col-nums", f"3-{N_SCORES + 2}", "--threads",
                     str(args.threads), "--out", str(work / "p2")]
        ours_cmd = [contig, "prs", "--bfile", str(prefix), "--scores", *map(str, pgs_files),
                    "--keep-ambiguous", "--threads", str(args.threads), "--out", str(work / "ours")]
        run(plink_cmd, env)  # warm the file cache
        ours_env = os.environ | {"OPENBLAS_NUM_THREADS": str(args.threads)}
        plink_times, ours_times = [], []
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits both
            plink_times.append(run(plink_cmd, env))
            ours_times.append(run(ours_cmd, ours_env))

        expected = pl.read_csv(work / "p2.sscore", separator="\t")
        ours = pl.read_csv(work / "ours.scores.tsv", separator="\t")
        p2_sums = expected.select([f"S{j + 1}_SUM" for j in range(N_SCORES)]).to_numpy()
        our_sums = ours.select([f"S{j + 1}_SUM" for j in range(N_SCORES)]).to_numpy()
        max_rel = float(np.max(np.abs(our_sums - p2_sums) / np.maximum(np.abs(p2_sums), 1e-3)))

    figures = {
        "samples": N_SAMPLES, "variants": N_VARIANTS, "scores": N_SCORES,
        "ours_input": "32 PGS Catalog .txt.gz files, --keep-ambiguous",
        "plink2_input": "one 32-column score file, --score-col-nums 3-34",
        "threads": args.threads, "plink2_s": min(plink_times), "ours_s": min(ours_times),
        "ratio_ours_over_plink2": min(ours_times) / min(plink_times),
        "max_rel_diff_sum": max_rel,
        "plink2_all_s": plink_times, "ours_all_s": ours_times,
    }
    print(f"{'tool':<28}{'wall (best of ' + str(args.repeats) + ')':>22}")
    print(f"{'plink2 --score':<28}{figures['plink2_s']:>20.2f} s")
    print(f"{'contig prs':<28}{figures['ours_s']:>20.2f} s")
    print(f"{'ratio ours / plink2':<28}{figures['ratio_ours_over_plink2']:>22.2f}")
    print(f"max relative |SUM difference| vs plink2 (6 printed digits): {max_rel:.2e}")
    (out / "scores.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
