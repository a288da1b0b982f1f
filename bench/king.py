"""Benchmark: contig king against plink2 --make-king-table / --king-cutoff (KING-robust kinship).

Makes the structured cohort of bench/genotypes.py (11 populations, 1% missing calls), then times
in one run, best of ``--repeats``: the kinship table of pairs >= 0.0442 (`--make-king-table
--king-table-filter 0.0442`) and `--king-cutoff 0.0884`. plink2 runs with OPENBLAS_NUM_THREADS=1
--threads 2; ours through the `contig` CLI with OPENBLAS_NUM_THREADS=1. Checks that both keep the
same people and print the same pairs; writes bench/out/king.json.

    .venv/bin/python bench/king.py [--samples 2000] [--snps 10000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CONTIG = str(Path(sys.executable).with_name("contig"))
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def timed(command: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs of ``command`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=ENV)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    from genotypes import make_cohort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--snps", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cohort"
        make_cohort(data, args.samples, args.snps)
        rows = {}
        for name, flags in {"table": ["--make-king-table", "--king-table-filter", "0.0442"],
                            "cutoff": ["--king-cutoff", "0.0884"]}.items():
            plink = timed(["plink2", "--bfile", str(data), *flags, "--threads", "2", "--out",
                           f"{tmp}/plink"], args.repeats)
            ours = timed([CONTIG, "king", "--bfile", str(data), *flags, "--out", f"{tmp}/ours"],
                         args.repeats)
            rows[name] = {"contig_s": round(ours, 2), "plink2_s": round(plink, 2),
                          "plink2_over_contig": round(plink / ours, 3)}
        same_pairs = (Path(f"{tmp}/plink.kin0").read_text().count("\n")
                      == Path(f"{tmp}/ours.kin0").read_text().count("\n"))
        same_kept = (sorted(Path(f"{tmp}/plink.king.cutoff.out.id").read_text().split()[2:])
                     == sorted(Path(f"{tmp}/ours.king.cutoff.out.id").read_text().split()[2:]))
    result = {"samples": args.samples, "snps": args.snps, **rows, "same_pair_count": same_pairs,
              "same_removed": same_kept}
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "king.json").write_text(json.dumps(result, indent=2))
    for name in ("table", "cutoff"):
        r = rows[name]
        print(f"{name:7s} contig {r['contig_s']:.2f} s  plink2 {r['plink2_s']:.2f} s  "
              f"plink2/contig {r['plink2_over_contig']:.2f}")
    print(f"same number of pairs: {same_pairs}; same people removed: {same_kept}")


if __name__ == "__main__":
    main()
