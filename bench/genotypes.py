"""Benchmark: contig qc / pca against plink2 on 5,000 samples x 100,000 SNPs (22 chromosomes).

Makes a structured cohort (11 populations of unequal size, Balding-Nichols drift, 1% missing calls),
then times, in one run: QC (`--maf 0.01 --geno 0.05 --hwe 1e-6 --mind 0.05`, files written),
PCA with 10 PCs (plink2 `--pca 10 approx`, and exact unless --no-exact), and LD pruning
(`contig prune --indep-pairwise 50 5 0.2`). plink2 runs with OPENBLAS_NUM_THREADS=1 --threads 2 (see
bench/README.md); ours runs through the `contig` CLI, also with OPENBLAS_NUM_THREADS=1. Prints a table with
the ratios and the |corr| of each PC with plink2's; writes bench/out/genotypes.json.

    .venv/bin/python bench/genotypes.py [--samples 5000] [--snps 100000] [--no-exact]
"""

from __future__ import annotations

import argparse
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

from contig.genotypes.plinkio import write_bfile

HERE = Path(__file__).resolve().parent
CONTIG = str(Path(sys.executable).with_name("contig"))


def make_cohort(prefix: Path, n: int, m: int, seed: int = 1) -> None:
    """Structured genotypes in HWE within populations, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    n_pops = 11
    sizes = rng.dirichlet(np.full(n_pops, 3.0))
    pop = np.sort(rng.choice(n_pops, n, p=sizes))
    fst = np.linspace(0.005, 0.05, n_pops)
    chrom = np.sort(rng.integers(1, 23, m))
    pos = np.concatenate([np.sort(rng.choice(np.arange(1, 50_000_000), (chrom == c).sum(), replace=False))
                          for c in range(1, 23)])

    def chunks():
        for start in range(0, m, 5000):
            v = min(5000, m - start)
            anc = rng.uniform(0.02, 0.98, v)
            f = fst[:, None]
            pf = rng.beta(anc * (1 - f) / f, (1 - anc) * (1 - f) / f)  # (n_pops, v)
            g = rng.binomial(2, pf[pop].T).astype(np.int8)  # (v, n)
            g[rng.uniform(size=g.shape) < 0.01] = -9
            yield g

    fam = pl.DataFrame({"FID": [f"F{i}" for i in range(n)], "IID": [f"S{i}" for i in range(n)],
                        "PAT": "0", "MAT": "0", "SEX": pl.Series(rng.integers(1, 3, n), dtype=pl.Int8),
                        "PHENO": "-9"})
    bim = pl.DataFrame({"CHROM": chrom.astype(str), "ID": [f"rs{j}" for j in range(m)], "CM": 0.0,
                        "POS": pos, "ALT": "A", "REF": "G"})
    write_bfile(prefix, fam, bim, chunks())


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def read_eigenvec(path: Path) -> np.ndarray:
    table = pl.read_csv(path, separator="\t")
    return table.select([c for c in table.columns if c.startswith("PC")]).to_numpy()


def pc_correlations(ours: np.ndarray, theirs: np.ndarray) -> list[float]:
    return [round(abs(float(np.corrcoef(ours[:, i], theirs[:, i])[0, 1])), 4) for i in range(ours.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--snps", type=int, default=100_000)
    parser.add_argument("--no-exact", action="store_true", help="skip plink2 --pca exact (~1 min)")
    parser.add_argument("--repeats", type=int, default=3, help="QC runs per tool (best is reported)")
    args = parser.parse_args()
    plink2 = shutil.which("plink2")
    if plink2 is None:
        sys.exit("plink2 not found (apt-get install plink2)")
    plink_env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    our_env = dict(os.environ, OPENBLAS_NUM_THREADS="1")  # 2 BLAS threads measured slower here
    rows, figures = [], {"samples": args.samples, "snps": args.snps}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "cohort"
        t = time.perf_counter()
        make_cohort(data, args.samples, args.snps)
        print(f"data: {args.samples} x {args.snps} written in {time.perf_counter() - t:.1f} s", flush=True)
        qc = ["--maf", "0.01", "--geno", "0.05", "--hwe", "1e-6", "--mind", "0.05"]
        ours_qc = min(timed([CONTIG, "qc", "--bfile", str(data), "--out", str(tmp / "ours_qc"), *qc], our_env)
                      for _ in range(args.repeats))
        plink_qc = min(timed([plink2, "--bfile", str(data), *qc, "--make-bed", "--out", str(tmp / "plink_qc"),
                              "--threads", "2"], plink_env) for _ in range(args.repeats))
        same = (tmp / "ours_qc.bed").read_bytes() == (tmp / "plink_qc.bed").read_bytes()
        rows.append(("qc (filter + write)", ours_qc, plink_qc, f"identical .bed: {same}"))

        window = ["50", "5", "0.2"]
        ours_ld = timed([CONTIG, "prune", "--bfile", str(data), "--out", str(tmp / "ours_ld"),
                         "--indep-pairwise", *window], our_env)
        plink_ld = timed([plink2, "--bfile", str(data), "--indep-pairwise", *window, "--out",
                          str(tmp / "plink_ld"), "--threads", "2"], plink_env)
        same_ld = ((tmp / "ours_ld.prune.in").read_text() == (tmp / "plink_ld.prune.in").read_text())
        rows.append(("indep-pairwise 50 5 0.2 (contig prune)", ours_ld, plink_ld,
                     f"identical prune.in: {same_ld}"))

        ours_pca = timed([CONTIG, "pca", "--bfile", str(data), "--out", str(tmp / "ours"), "--n-pcs", "10"],
                         our_env)
        ours_vec = read_eigenvec(tmp / "ours.eigenvec")
        for mode in (["approx"] if args.no_exact else ["approx", "exact"]):
            flags = ["--pca", "10"] + (["approx"] if mode == "approx" else [])
            t_plink = timed([plink2, "--bfile", str(data), *flags, "--out", str(tmp / mode), "--threads", "2"],
                            plink_env)
            corr = pc_correlations(ours_vec, read_eigenvec(tmp / f"{mode}.eigenvec"))
            figures[f"pc_corr_vs_{mode}"] = corr
            rows.append((f"pca 10 vs plink2 --pca 10 {mode}", ours_pca, t_plink,
                         f"|corr| PC1..10 min {min(corr):.4f}"))
    print(f"\n{'task':<52} {'contig s':>9} {'plink2 s':>9} {'plink2/ours':>11}  note")
    for name, ours, theirs, note in rows:
        print(f"{name:<52} {ours:>9.2f} {theirs:>9.2f} {theirs / ours:>11.2f}  {note}")
    for key, value in figures.items():
        if key.startswith("pc_corr"):
            print(f"{key}: {value}")
    figures["rows"] = [{"task": n, "contig_s": round(o, 3), "plink2_s": round(t, 3),
                        "speedup": round(t / o, 3), "note": note} for n, o, t, note in rows]
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "genotypes.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
