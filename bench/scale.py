"""Benchmark: how each genotype stage grows with people (N) and variants (M), ours and plink2.

For each cohort size (default 2,000 x 50k, 4,000 x 50k, 2,000 x 100k, 5,000 x 100k) it makes
`plink2 --dummy N M MISSING acgt` genotypes (the data generation of bench/gwas.py and
bench/scores.py: .bim spread over 22 chromosomes at 1 kb spacing), then runs, timing wall clock
and peak memory (RSS of the command, from /usr/bin/time) of each command once:

- qc       `contig qc --maf 0.01 --geno 0.05 --hwe 1e-6 --mind 0.05` / plink2 the same + --make-bed
- prune    `contig prune --indep-pairwise 50 5 0.2` / plink2 --indep-pairwise 50 5 0.2
- pca      `contig pca --n-pcs 10` / plink2 --pca 10 approx (plink2 only up to --plink2-pca-max)
- scores   `contig prs`, 32 PGS Catalog files of 3,000 variants each / one plink2 --score file
- snps     `contig snps --maf 0.01 --indep-pairwise 50 5 0.2` (no plink2 peer)
- burden   `contig burden`, 500 genes of 100 kb (no plink2 peer)
- gwas32, gwas128  `contig gwas` (parquet), 32 / 128 normal phenotypes + 5 covariates, y0 with
           20 planted variants / plink2 --glm hide-covar omit-ref; on complete calls (plink2's
           --glm takes minutes on missing calls, bench/gwas.py), as is clumping
- clump    `contig clump` of y0 (p1 5e-8, p2 1e-7, r2 0.1, 250 kb) / plink 1.9 --clump, same
           (plink2 2.00a3.5 has no --clump)
- step1_32, step1_128  `contig gwas-step1` (ridge LOCO, default settings) of the 32 / 128
           phenotypes (no peer: regenie is not installed here)
- gather32, gather128  `contig gwas-gather` (parquet) of two scatter parts (chromosomes 1-11,
           12-22) of the 32 / 128-phenotype GWAS, made before the timing (no peer)

Then fits log t = a + b log N + c log M (least squares over the sizes) per stage and tool, prints
the exponents b (people) and c (variants), and the peak memory per size. Writes
bench/out/scale.json. plink2 runs with OPENBLAS_NUM_THREADS=1 --threads 2, ours with
OPENBLAS_NUM_THREADS=1 (and --threads 2 where the command has it).

    .venv/bin/python bench/scale.py [--sizes 2000x50000 5000x100000] [--stages qc prune ...]
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
CONTIG = str(Path(sys.executable).with_name("contig"))
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
STAGES = ["qc", "prune", "pca", "scores", "snps", "burden", "gwas32", "gwas128", "clump", "step1_32",
          "step1_128", "gather32", "gather128"]
QC_FLAGS = ["--maf", "0.01", "--geno", "0.05", "--hwe", "1e-6", "--mind", "0.05"]
WINDOW = ["50", "5", "0.2"]


def measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` under /usr/bin/time: (wall seconds, peak RSS in MiB); fail loudly."""
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    rss_kib = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS ")][-1]
    return wall, rss_kib / 1024


def make_genotypes(prefix: Path, n: int, m: int, missing: float) -> Path:
    """plink2 --dummy genotypes, .bim on chromosomes 1..22 at 1 kb spacing with IDs rs0.."""
    subprocess.run(["plink2", "--dummy", str(n), str(m), str(missing), "acgt", "--make-bed", "--threads", "2",
                    "--out", str(prefix)], check=True, capture_output=True, env=ENV)
    chrom = np.repeat(np.arange(1, 23), -(-m // 22))[:m]
    first = np.searchsorted(chrom, chrom)
    bim = pl.read_csv(f"{prefix}.bim", separator="\t", has_header=False, new_columns=list("CIMPAR"))
    bim.with_columns(C=pl.Series(chrom), P=pl.Series((np.arange(m) - first) * 1000 + 10_000),
                     I=pl.Series([f"rs{i}" for i in range(m)])).write_csv(
        f"{prefix}.bim", separator="\t", include_header=False)
    fam = pl.read_csv(f"{prefix}.fam", separator="\t", has_header=False, new_columns=list("FIPMSY"))
    fam.with_columns(Y=pl.lit("-9")).write_csv(f"{prefix}.fam", separator="\t", include_header=False)
    return prefix


def make_score_files(work: Path, prefix: Path, rng: np.random.Generator) -> tuple[Path, list[Path]]:
    """32 PGS Catalog files of 3,000 random variants each, and the same as one plink2 file."""
    bim = pl.read_csv(f"{prefix}.bim", separator="\t", has_header=False, new_columns=list("CIMPAR"))
    members = [np.sort(rng.choice(bim.height, min(3000, bim.height), replace=False)) for _ in range(32)]
    union = np.unique(np.concatenate(members))
    weights = np.zeros((bim.height, 32))
    for j, rows in enumerate(members):
        weights[rows, j] = np.round(rng.normal(size=len(rows)), 6)
    plink_file = work / "scores.plink2.tsv"
    pl.DataFrame({"ID": bim["I"].gather(union), "A1": bim["A"].gather(union)}
                 | {f"S{j}": weights[union, j] for j in range(32)}).write_csv(plink_file, separator="\t")
    files = []
    for j, rows in enumerate(members):
        path = work / f"PGS8{j:05d}.txt.gz"
        table = pl.DataFrame({"rsID": bim["I"].gather(rows), "chr_name": bim["C"].gather(rows),
                              "chr_position": bim["P"].gather(rows), "effect_allele": bim["A"].gather(rows),
                              "other_allele": bim["R"].gather(rows), "effect_weight": weights[rows, j]})
        with gzip.open(path, "wb", compresslevel=1) as handle:
            handle.write(f"#pgs_id=S{j}\n#genome_build=GRCh37\n".encode())
            table.write_csv(handle, separator="\t")
        files.append(path)
    return plink_file, files


def make_phenotypes(work: Path, prefix: Path, n_pheno: int, rng: np.random.Generator) -> dict[str, Path]:
    """Normal phenotypes (y0 with 20 planted variants explaining 2% each, for clumping) and 5
    covariates, for contig (IID) and plink2 (#FID IID)."""
    sys.path.insert(0, str(ROOT / "src"))
    from contig.genotypes.plinkio import Genotypes

    geno = Genotypes.open(prefix)
    n = geno.n_samples
    g = geno.read(np.sort(rng.choice(geno.n_variants, 20, replace=False))).astype(float)
    z = (g - g.mean(1, keepdims=True)) / np.maximum(g.std(1, keepdims=True), 1e-3)  # 0 if monomorphic
    pheno = {f"y{j}": rng.standard_normal(n) for j in range(n_pheno)}
    pheno["y0"] = np.sqrt(0.02) * z.sum(0) + np.sqrt(0.6) * pheno["y0"]
    covar = {f"c{j}": rng.standard_normal(n) for j in range(5)}
    fid, iid = geno.fam["FID"], geno.fam["IID"]
    paths = {}
    for name, cols in ((f"pheno{n_pheno}", pheno), ("covar", covar)):
        pl.DataFrame({"IID": iid, **cols}).write_csv(work / f"{name}.tsv", separator="\t")
        pl.DataFrame({"#FID": fid, "IID": iid, **cols}).write_csv(work / f"{name}.plink.tsv", separator="\t")
        paths[name], paths[name + ".plink"] = work / f"{name}.tsv", work / f"{name}.plink.tsv"
    return paths


def make_genes(work: Path, m: int) -> Path:
    """500 gene regions of 100 kb spread evenly over the 22 chromosomes."""
    spacing = -(-m // 22) * 1000 // 23
    rows = [(1 + k % 22, 10_000 + (k // 22) * spacing, 10_000 + (k // 22) * spacing + 100_000, f"G{k}")
            for k in range(500)]
    path = work / "genes.tsv"
    pl.DataFrame(rows, schema=["chrom", "start", "end", "gene"], orient="row").write_csv(path, separator="\t")
    return path


def stage_commands(stage: str, work: Path, inputs: dict, n: int, m: int,
                   pca_max: float) -> tuple[list[str], list[str] | None]:
    """(ours, plink2 or None) for one stage: GWAS and clumping on complete calls (plink2 --glm
    takes minutes with missing calls, see bench/gwas.py), the others with missing calls."""
    complete = stage.startswith(("gwas", "step1", "gather")) or stage == "clump"
    g, out = str(inputs["complete" if complete else "genotypes"]), str(work / stage)
    plink = ["plink2", "--bfile", g, "--threads", "2", "--out", out + ".plink2"]
    if stage == "qc":
        return [CONTIG, "qc", "--bfile", g, "--out", out, *QC_FLAGS], plink + [*QC_FLAGS, "--make-bed"]
    if stage == "prune":
        return ([CONTIG, "prune", "--bfile", g, "--out", out, "--indep-pairwise", *WINDOW],
                plink + ["--indep-pairwise", *WINDOW])
    if stage == "pca":
        theirs = plink + ["--pca", "10", "approx"] if n * m <= pca_max else None
        return [CONTIG, "pca", "--bfile", g, "--out", out, "--n-pcs", "10", "--no-plot"], theirs
    if stage == "scores":
        return ([CONTIG, "prs", "--bfile", g, "--scores", *map(str, inputs["pgs"]), "--keep-ambiguous",
                 "--threads", "2", "--out", out],
                plink + ["--score", str(inputs["pgs_plink2"]), "1", "2", "header-read", "cols=+scoresums",
                         "--score-col-nums", "3-34"])
    if stage == "snps":
        return [CONTIG, "snps", "--bfile", g, "--out", out, "--maf", "0.01", "--indep-pairwise", *WINDOW], None
    if stage == "burden":
        return [CONTIG, "burden", "--bfile", g, "--genes", str(inputs["genes"]), "--out", out], None
    if stage.startswith("gwas"):
        k = stage.removeprefix("gwas")
        return ([CONTIG, "gwas", "--bfile", g, "--pheno", str(inputs[f"pheno{k}"]), "--covar",
                 str(inputs["covar"]), "--out", out, "--threads", "2", "--formats", "parquet"],
                plink + ["--pheno", str(inputs[f"pheno{k}.plink"]), "--covar", str(inputs["covar.plink"]),
                         "--glm", "hide-covar", "omit-ref"])
    if stage.startswith("step1_"):  # regenie's step 1 has no peer here (regenie is not installed)
        k = stage.removeprefix("step1_")
        return ([CONTIG, "gwas-step1", "--bfile", g, "--pheno", str(inputs[f"pheno{k}"]), "--covar",
                 str(inputs["covar"]), "--out", out], None)
    if stage.startswith("gather"):
        return ([CONTIG, "gwas-gather", "--parts", *map(str, inputs[f"parts{stage.removeprefix('gather')}"]),
                 "--out", out, "--per-pheno-dir", out + ".sumstats", "--formats", "parquet"], None)
    if stage == "clump":
        return ([CONTIG, "clump", "--sumstats", str(inputs["y0_parquet"]), "--bfile", g, "--out", out],
                ["plink1.9", "--bfile", g, "--threads", "2", "--out", out + ".plink1", "--allow-no-sex",
                 "--clump", str(inputs["y0_plink"]), "--clump-p1", "5e-8", "--clump-p2", "1e-7",
                 "--clump-r2", "0.1", "--clump-kb", "250"])
    raise ValueError(stage)


def clump_inputs(work: Path) -> dict[str, Path]:
    """y0's summary statistics from the gwas32 run, also as a SNP/P file for plink 1.9 (plink2
    2.00a3.5 has no --clump)."""
    parquet = work / "gwas32.y0.parquet"
    table = pl.read_parquet(parquet)
    p_file = work / "y0.plink.tsv"
    table.select(SNP="ID", P=10 ** -pl.col("LOG10P")).write_csv(p_file, separator=" ")
    return {"y0_parquet": parquet, "y0_plink": p_file}


def gather_inputs(work: Path, inputs: dict, k: int) -> dict[str, list[Path]]:
    """Two scatter parts (chromosomes 1-11 and 12-22) of the GWAS of ``k`` phenotypes, for timing
    the gather alone."""
    parts = []
    for j, chroms in enumerate((range(1, 12), range(12, 23))):
        part = work / f"part{k}_{j}.parquet"
        subprocess.run([CONTIG, "gwas", "--bfile", str(inputs["complete"]), "--pheno", str(inputs[f"pheno{k}"]),
                        "--covar", str(inputs["covar"]), "--chrom", *map(str, chroms), "--part-out", str(part),
                        "--threads", "2"], check=True, capture_output=True)
        parts.append(part)
    return {f"parts{k}": parts}


def run_size(n: int, m: int, stages: list[str], missing: float, pca_max: float) -> list[dict]:
    rng = np.random.default_rng(n + m)
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale_", dir=ROOT / "bench" / "out") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        prefix = make_genotypes(work / "g", n, m, missing)
        inputs: dict = {"genotypes": prefix, "genes": make_genes(work, m)}
        inputs["pgs_plink2"], inputs["pgs"] = make_score_files(work, prefix, rng)
        if any(s.startswith(("gwas", "step1", "gather")) for s in stages):
            inputs["complete"] = make_genotypes(work / "full", n, m, 0.0)
            for k in (32, 128):
                inputs |= make_phenotypes(work, inputs["complete"], k, np.random.default_rng(k))
        print(f"\n{n} x {m}: data in {time.perf_counter() - t:.0f} s", flush=True)
        for stage in stages:
            if stage == "clump":
                inputs |= clump_inputs(work)
            if stage.startswith("gather"):
                inputs |= gather_inputs(work, inputs, int(stage.removeprefix("gather")))
            ours, theirs = stage_commands(stage, work, inputs, n, m, pca_max)
            row = {"n": n, "m": m, "stage": stage}
            row["ours_s"], row["ours_mib"] = measured(ours)
            if theirs is not None:
                row["plink2_s"], row["plink2_mib"] = measured(theirs)
                row["ratio"] = row["plink2_s"] / row["ours_s"]
            rows.append(row)
            ratio = f"{row['ratio']:6.2f}" if "ratio" in row else "     -"
            plink_s = f"{row['plink2_s']:8.2f}" if "plink2_s" in row else "       -"
            plink_m = f"{row['plink2_mib']:7.0f}" if "plink2_mib" in row else "      -"
            print(f"  {stage:8s} ours {row['ours_s']:8.2f} s {row['ours_mib']:7.0f} MiB | plink2 {plink_s} s "
                  f"{plink_m} MiB | plink2/ours {ratio}", flush=True)
    return rows


def growth_exponents(rows: list[dict], key: str) -> tuple[float, float] | None:
    """Least-squares (b, c) of log t = a + b log N + c log M; None when N or M never varies."""
    table = [(r["n"], r["m"], r[key]) for r in rows if key in r]
    design = np.array([[1.0, np.log(n), np.log(m)] for n, m, _ in table])
    if len(table) < 3 or np.linalg.matrix_rank(design) < 3:
        return None
    coef = np.linalg.lstsq(design, np.log([t for *_, t in table]), rcond=None)[0]
    return float(coef[1]), float(coef[2])


def exponents(fit: tuple[float, float] | None, width_b: int, width_c: int) -> str:
    """The fitted (b, c) as two right-aligned columns, dashes when not fitted."""
    if fit is None:
        return f"{'-':>{width_b}s} {'-':>{width_c}s}"
    return f"{fit[0]:{width_b}.2f} {fit[1]:{width_c}.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2000x50000", "4000x50000", "2000x100000", "5000x100000"],
                        help="cohort sizes NxM")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    parser.add_argument("--missing", type=float, default=0.01, help="missing-call rate of the genotypes")
    parser.add_argument("--plink2-pca-max", type=float, default=2.5e8,
                        help="run plink2 --pca only up to this many genotypes (it takes minutes above)")
    args = parser.parse_args()
    if shutil.which("plink2") is None or shutil.which("plink1.9") is None:
        sys.exit("plink2 or plink1.9 not found (apt-get install plink2 plink1.9)")
    stages = list(args.stages)
    if "clump" in stages and "gwas32" not in stages:
        stages.insert(stages.index("clump"), "gwas32")  # clumping reads gwas32's y0
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    rows = []
    for size in args.sizes:
        n, m = (int(x) for x in size.lower().split("x"))
        rows += run_size(n, m, stages, args.missing, args.plink2_pca_max)
    print(f"\n{'stage':9s} {'ours: b (N)':>11s} {'c (M)':>7s} {'plink2: b':>10s} {'c':>6s}   peak MiB per size")
    fits = {}
    for stage in stages:
        mine = [r for r in rows if r["stage"] == stage]
        ours, theirs = growth_exponents(mine, "ours_s"), growth_exponents(mine, "plink2_s")
        fits[stage] = {"ours": ours, "plink2": theirs}
        memory = ", ".join(f"{r['n']}x{r['m']}: {r['ours_mib']:.0f}" for r in mine)
        print(f"{stage:9s} {exponents(ours, 11, 7)} {exponents(theirs, 10, 6)}   {memory}")
    (ROOT / "bench" / "out" / "scale.json").write_text(json.dumps({"rows": rows, "fits": fits,
                                                                   "missing": args.missing}, indent=2) + "\n")


if __name__ == "__main__":
    main()
