"""Benchmark: GWAS step 2 on imputed dosages, `contig gwas` vs `plink2 --glm`, PGEN and BGEN.

Data: N x M imperfectly imputed dosages without missing calls, written as .pgen by pgenlib
(plink2 --dummy's dosage-freq leaves a quarter of the calls missing here, and plink2 then fits
each variant on its complete cases, a different model), exported by plink2 as BGEN v1.2 8-bit
(zlib blocks, UK Biobank's layout) and v1.3 16-bit (zstd blocks); 8 normal phenotypes, 5 covariates.
Timed, each the best of --repeats runs, on the same files in one run: `contig gwas --pfile` /
`--bgen --sample` (`--formats wide`, 2 threads) against `plink2 --glm hide-covar omit-ref`
(`--threads 2`, OPENBLAS_NUM_THREADS=1; BGEN with `ref-first`). Agreement: max |Δ BETA| against
plink2's printed digits (plink2 rounds BGEN dosages to 1/16384 on import, so a few 1e-3·SE there).

    .venv/bin/python bench/dosages.py [--samples 5000] [--variants 20000] [--repeats 3]
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
CONTIG = str(ROOT / ".venv" / "bin" / "contig")
PLINK_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
N_PHENO, N_COVAR = 8, 5


def plink2(*args: str) -> None:
    subprocess.run(["plink2", *args, "--threads", "2"], check=True, capture_output=True, env=PLINK_ENV)


def write_dosage_pgen(prefix: Path, n: int, m: int, seed: int = 3) -> None:
    """Imperfectly imputed dosages without missing calls, written by pgenlib: each variant keeps a
    share r ~ U(0.3, 1) of a true genotype (frequency U(0.05, 0.5)), the rest is its expectation
    plus noise, so INFO (MACH r²) varies; chromosome 1, positions 1..m, IDs v<j>, FID = IID."""
    import pgenlib

    rng = np.random.default_rng(seed)
    writer = pgenlib.PgenWriter(str(prefix.with_suffix(".pgen")).encode(), n, m, False, dosage_present=True)
    for start in range(0, m, 1000):
        v = min(1000, m - start)
        freq = rng.uniform(0.05, 0.5, v)[:, None]
        share = rng.uniform(0.3, 1.0, v)[:, None]
        truth = rng.binomial(2, freq, (v, n))
        noisy = share * truth + (1 - share) * (2 * freq + rng.normal(0, 0.1, (v, n)))
        writer.append_dosages_batch(np.ascontiguousarray(np.clip(noisy, 0.0, 2.0), dtype=np.float32))
    writer.close()
    ids = [f"p{i}" for i in range(n)]
    pl.DataFrame({"#FID": ids, "IID": ids}).write_csv(prefix.with_suffix(".psam"), separator="\t")
    pl.DataFrame({"#CHROM": ["1"] * m, "POS": np.arange(1, m + 1), "ID": [f"v{j}" for j in range(m)],
                  "REF": ["A"] * m, "ALT": ["G"] * m}).write_csv(prefix.with_suffix(".pvar"), separator="\t")


def make_sources(work: Path, n: int, m: int) -> dict[str, tuple[list[str], list[str]]]:
    """The dosages as PGEN, BGEN 1.2 8-bit and BGEN 1.3 16-bit (exported by plink2): each
    source's arguments for contig and for plink2."""
    write_dosage_pgen(work / "imp", n, m)
    plink2("--pfile", str(work / "imp"), "--export", "bgen-1.2", "bits=8", "ref-first", "--out", str(work / "b8"))
    plink2("--pfile", str(work / "imp"), "--export", "bgen-1.3", "bits=16", "ref-first", "--out", str(work / "z16"))
    sources = {"PGEN": (["--pfile", str(work / "imp")], ["--pfile", str(work / "imp")])}
    for name, stem in (("BGEN 1.2 8-bit zlib", "b8"), ("BGEN 1.3 16-bit zstd", "z16")):
        bgen, sample = str(work / f"{stem}.bgen"), str(work / f"{stem}.sample")
        sources[name] = (["--bgen", bgen, "--sample", sample], ["--bgen", bgen, "ref-first", "--sample", sample])
    return sources


def write_tables(work: Path, iid: list[str]) -> dict[str, Path]:
    """Phenotypes and covariates for contig (IID) and plink2 (#FID IID, FID = IID as in the .psam)."""
    rng = np.random.default_rng(7)
    paths = {}
    for name, k in (("pheno", N_PHENO), ("covar", N_COVAR)):
        columns = {f"{name[0]}{j}": rng.standard_normal(len(iid)) for j in range(k)}
        pl.DataFrame({"IID": iid, **columns}).write_csv(work / f"{name}.tsv", separator="\t")
        pl.DataFrame({"#FID": iid, "IID": iid, **columns}).write_csv(
            work / f"{name}.plink.tsv", separator="\t")
        paths[name], paths[f"{name}.plink"] = work / f"{name}.tsv", work / f"{name}.plink.tsv"
    return paths


def best_of(command: list[str], repeats: int, env: dict | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        os.sync()
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def max_beta_difference(ours_prefix: Path, plink_prefix: Path) -> float:
    """Largest |BETA ours - plink2| over every phenotype and variant both tested."""
    wide = pl.read_parquet(f"{ours_prefix}.all.wide.parquet")
    worst = 0.0
    for j in range(N_PHENO):
        glm = pl.read_csv(f"{plink_prefix}.p{j}.glm.linear", separator="\t", null_values="NA")
        theirs = glm.select("ID", "BETA").rename({"BETA": "theirs"})
        both = wide.select(pl.col("ID"), pl.col(f"BETA:p{j}").alias("ours")).join(theirs, on="ID").drop_nulls()
        worst = max(worst, float((both["ours"] - both["theirs"]).abs().max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_dosages_") as tmp:
        work = Path(tmp)
        sources = make_sources(work, args.samples, args.variants)
        iid = pl.read_csv(work / "imp.psam", separator="\t")["IID"].to_list()
        tables = write_tables(work, iid)
        for name, (ours_source, plink_source) in sources.items():
            stem = name.split()[0] + name.split()[-1]
            ours_out, plink_out = work / f"ours_{stem}", work / f"plink_{stem}"
            ours = best_of([CONTIG, "gwas", *ours_source, "--pheno", str(tables["pheno"]), "--covar",
                            str(tables["covar"]), "--out", str(ours_out), "--threads", "2", "--formats", "wide"],
                           args.repeats)
            theirs = best_of(["plink2", *plink_source, "--pheno", str(tables["pheno.plink"]), "--covar",
                              str(tables["covar.plink"]), "--glm", "hide-covar", "omit-ref", "--threads", "2",
                              "--out", str(plink_out)], args.repeats, PLINK_ENV)
            delta = max_beta_difference(ours_out, plink_out)
            rows.append({"source": name, "contig_s": ours, "plink2_s": theirs, "ratio": theirs / ours,
                         "max_abs_delta_beta": delta})
    print(f"\n{args.samples} people x {args.variants} dosages x {N_PHENO} phenotypes + {N_COVAR} covariates "
          f"(best of {args.repeats})")
    print(f"{'source':<24}{'contig s':>10}{'plink2 s':>10}{'plink2/ours':>13}{'max |dBETA|':>13}")
    for row in rows:
        print(f"{row['source']:<24}{row['contig_s']:>10.2f}{row['plink2_s']:>10.2f}{row['ratio']:>13.2f}"
              f"{row['max_abs_delta_beta']:>13.1e}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dosages.json").write_text(json.dumps({"samples": args.samples, "variants": args.variants,
                                                  "phenotypes": N_PHENO, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
