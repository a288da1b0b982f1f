"""GWAS step 2: SNP x phenotype tests per second, ours vs `plink2 --glm hide-covar omit-ref`.

Data: `plink2 --dummy 5000 100000 {0.01 | 0} acgt` (with / without 1% missing calls; .bim
rewritten to unique positions, .fam phenotype removed), 32 random normal phenotypes, 5 random
covariates. Both tools use 2 threads (plink2 under OPENBLAS_NUM_THREADS=1). Timed: plink2 end to
end (it writes 32 text files); ours as `contig gwas` end to end with its default outputs (32 x
(tsv.gz + parquet)), with parquet only, and with the wide layout only (`--formats wide`: one
parquet, each variant's columns once), and the association alone (`run_gwas`, float64 and
float32), each the best of --repeats runs (plink2 on data with missing calls runs once: it takes
minutes). Agreement: max |Δ BETA| vs plink2 (on data with
missing calls plink2 drops missing calls per variant while we mean-impute, so BETA differs by design).

Usage: .venv/bin/python bench/gwas.py [--samples 5000] [--variants 100000] [--repeats 3] [--missing 0 0.01]
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

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
PLINK_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def make_data(workdir: Path, n: int, m: int, missing: float, n_pheno: int, n_cov: int) -> Path:
    prefix = workdir / ("miss" if missing else "full")
    subprocess.run(["plink2", "--dummy", str(n), str(m), str(missing), "acgt", "--make-bed", "--threads", "2",
                    "--out", str(prefix)], check=True, capture_output=True, env=PLINK_ENV)
    bim = pl.read_csv(f"{prefix}.bim", separator="\t", has_header=False, new_columns=list("CIMPAR"))
    bim.with_columns(pl.lit("1").alias("C"), (pl.int_range(pl.len()) + 1).alias("P")).write_csv(
        f"{prefix}.bim", separator="\t", include_header=False)
    fam = pl.read_csv(f"{prefix}.fam", separator="\t", has_header=False, new_columns=list("FIPMSY"))
    fam.with_columns(pl.lit("-9").alias("Y")).write_csv(f"{prefix}.fam", separator="\t", include_header=False)
    return prefix


def write_inputs(workdir: Path, fid: list[str], iid: list[str], n_pheno: int, n_cov: int) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    n = len(iid)
    pheno = {f"y{j}": rng.standard_normal(n) for j in range(n_pheno)}
    covar = {f"c{j}": rng.standard_normal(n) for j in range(n_cov)}
    paths = {}
    for name, cols in (("pheno", pheno), ("covar", covar)):
        ours = workdir / f"{name}.tsv"
        pl.DataFrame({"IID": iid, **cols}).write_csv(ours, separator="\t")
        plink = workdir / f"{name}.plink.tsv"
        pl.DataFrame({"#FID": fid, "IID": iid, **cols}).write_csv(plink, separator="\t")
        paths[name], paths[name + "_plink"] = ours, plink
    return paths


def timed(command: list[str], env=None) -> float:
    os.sync()  # the previous run's output is flushed outside the timing, not during this one
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--phenotypes", type=int, default=32)
    parser.add_argument("--covariates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    parser.add_argument("--missing", type=float, nargs="+", default=[0.0, 0.01],
                        help="missing-call rates to benchmark (default: 0 0.01)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from contig.gwas.association import run_gwas
    from contig.genotypes.plinkio import read_fam

    figures = {"samples": args.samples, "variants": args.variants, "phenotypes": args.phenotypes,
               "covariates": args.covariates, "repeats": args.repeats, "runs": []}
    tests = args.variants * args.phenotypes
    with tempfile.TemporaryDirectory(prefix="bench_gwas_") as tmp:
        workdir = Path(tmp)
        for missing in args.missing:
            prefix = make_data(workdir, args.samples, args.variants, missing, args.phenotypes, args.covariates)
            fam = read_fam(f"{prefix}.fam")
            paths = write_inputs(workdir, fam["FID"].to_list(), fam["IID"].to_list(),
                                 args.phenotypes, args.covariates)
            plink_cmd = ["plink2", "--bfile", str(prefix), "--pheno", str(paths["pheno_plink"]),
                         "--covar", str(paths["covar_plink"]), "--glm", "hide-covar", "omit-ref",
                         "--threads", "2", "--out", str(workdir / "plink")]
            ours_cmd = [str(ROOT / ".venv/bin/contig"), "gwas", "--bfile", str(prefix), "--pheno",
                        str(paths["pheno"]), "--covar", str(paths["covar"]), "--out", str(workdir / "ours"),
                        "--threads", "2"]
            plink_s = min(timed(plink_cmd, PLINK_ENV) for _ in range(1 if missing else args.repeats))
            cli_s = min(timed(ours_cmd) for _ in range(args.repeats))
            parquet_s = min(timed(ours_cmd + ["--formats", "parquet"]) for _ in range(args.repeats))
            wide_s = min(timed(ours_cmd + ["--formats", "wide"]) for _ in range(args.repeats))
            scan = {}
            for dtype in ("float64", "float32"):
                best = float("inf")
                for _ in range(args.repeats):
                    os.sync()
                    start = time.perf_counter()
                    result = run_gwas(prefix, paths["pheno"], paths["covar"], dtype=dtype)
                    best = min(best, time.perf_counter() - start)
                scan[dtype] = (best, result)
            exact = scan["float64"][1]
            delta = 0.0
            for j, name in enumerate(exact.pheno_names):
                glm = pl.read_csv(workdir / f"plink.{name}.glm.linear", separator="\t", null_values="NA")
                delta = max(delta, float(np.nanmax(np.abs(glm["BETA"].to_numpy() - exact.beta[:, j]))))
            delta32 = float(np.nanmax(np.abs(scan["float32"][1].beta - exact.beta)))
            run = {"missing_rate": missing, "plink2_s": plink_s, "ours_cli_s": cli_s,
                   "ours_cli_parquet_only_s": parquet_s, "ours_cli_wide_s": wide_s,
                   "ours_scan_float64_s": scan["float64"][0], "ours_scan_float32_s": scan["float32"][0],
                   "max_abs_delta_beta_vs_plink2": delta, "max_abs_delta_beta_float32_vs_float64": delta32}
            figures["runs"].append(run)
            print(f"\nmissing calls {missing:.0%}: {args.samples} people x {args.variants} variants x "
                  f"{args.phenotypes} phenotypes + {args.covariates} covariates (best of {args.repeats})")
            print(f"{'what':44s} {'seconds':>8s} {'tests/s':>12s} {'vs plink2':>10s}")
            for label, seconds in (("plink2 --glm (2 threads)", plink_s),
                                   ("contig gwas, end to end (tsv.gz + parquet)", cli_s),
                                   ("contig gwas, end to end (parquet only)", parquet_s),
                                   ("contig gwas, end to end (wide parquet)", wide_s),
                                   ("run_gwas float64 (association only)", scan["float64"][0]),
                                   ("run_gwas float32 (association only)", scan["float32"][0])):
                print(f"{label:44s} {seconds:8.2f} {tests / seconds:12.3g} {plink_s / seconds:9.2f}x")
            print(f"max |dBETA| vs plink2: {delta:.2e}"
                  + (" (plink2: complete-case per variant; ours: mean-imputed)" if missing else "")
                  + f"; float32 vs float64: {delta32:.2e}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gwas.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
