"""Running the Snakemake workflow from tests in a scratch working directory: configs, dry runs
that must fail, a minimal real-data input set, and the text a built report embeds."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def write_config(directory: Path, overrides: dict, name: str = "config.yaml") -> Path:
    """The demo config with ``overrides`` merged in (nested dicts merge), written to directory."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())

    def merge(base: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(config, overrides)
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path, configfile: Path, *args: str, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run snakemake on the project's workflow in ``workdir``; output captured as text."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [
        str(SNAKEMAKE),
        "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        # explicit: Snakemake finds profiles/default only from the repository root
        "--workflow-profile", str(ROOT / "profiles" / "default"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        "--cores", "2",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


# A configuration small enough for tests: every stage runs, in about a minute on 2 cores.
TINY = {
    "simulate": {"n_samples": 240, "n_snps": 3000, "n_chromosomes": 6, "image_size": 32},
    "pca": {"n_pcs": 4},
    "images": {"size": 32},
    "pretrain": {
        "methods": ["contig", "random"], "epochs": 1, "batch_size": 32, "n_folds": 2,
        "genetic_hidden": 64, "proj_hidden": 64, "proj_dim": 32,
    },
    "gwas": {"n_pcs": 3, "genetic_pcs": 4},
}


def planned_jobs(output: str) -> Counter:
    """Jobs per rule in the "Job stats" table of a dry run's output (empty: nothing to do)."""
    if "Nothing to be done" in output:
        return Counter()
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)})


def split_by_chromosome(prefix: Path, pattern: str) -> list[str]:
    """Write the PLINK 1 fileset ``prefix`` as one fileset per chromosome, at ``pattern`` with
    ``{chrom}`` replaced by the chromosome (the layout of config inputs.genotypes patterns).
    Returns the chromosomes, in file order."""
    def file(stem: str | Path, ext: str) -> Path:
        return Path(f"{stem}{ext}")

    n_samples = len(file(prefix, ".fam").read_text().splitlines())
    bim_lines = file(prefix, ".bim").read_text().splitlines()
    bed = file(prefix, ".bed").read_bytes()
    assert bed[:3] == b"\x6c\x1b\x01", "variant-major .bed expected"
    block = (n_samples + 3) // 4
    assert len(bed) == 3 + block * len(bim_lines)
    by_chrom: dict[str, list[int]] = {}
    for i, line in enumerate(bim_lines):
        by_chrom.setdefault(line.split()[0], []).append(i)
    fam = file(prefix, ".fam").read_bytes()
    for chrom, rows in by_chrom.items():
        out = pattern.replace("{chrom}", chrom)
        file(out, ".bed").write_bytes(
            bed[:3] + b"".join(bed[3 + i * block : 3 + (i + 1) * block] for i in rows))
        file(out, ".bim").write_text("".join(bim_lines[i] + "\n" for i in rows))
        file(out, ".fam").write_bytes(fam)
    return list(by_chrom)


def rejected_dry_run(tmp_path: Path, overrides: dict) -> str:
    """Dry-run the demo config with ``overrides``; it must fail. Returns all it printed."""
    result = run_snakemake(tmp_path, write_config(tmp_path, overrides), "-n")
    assert result.returncode != 0
    return result.stdout + result.stderr


def real_data_inputs(tmp_path: Path) -> dict:
    """Inputs of a minimal non-simulated cohort: empty but present files, valid sheets."""
    for ext in (".bed", ".fam"):
        (tmp_path / f"g{ext}").write_bytes(b"")
    (tmp_path / "g.bim").write_text("1\trs1\t0\t100\tA\tG\n2\trs2\t0\t100\tC\tT\n")
    (tmp_path / "images.tsv").write_text("IID\tpath\teye\nA\ta.png\tleft\n")
    (tmp_path / "cov.tsv").write_text("IID\tage\tsex\tbatch\nA\t50\t1\tb1\n")
    (tmp_path / "genes.tsv").write_text("chrom\tstart\tend\tgene\n1\t10\t20\tG1\n")
    (tmp_path / "pgs").mkdir()
    (tmp_path / "pgs" / "PGS1.txt.gz").write_bytes(b"")
    return {
        "simulate": False,
        "genotypes": str(tmp_path / "g"),
        "images": str(tmp_path / "images.tsv"),
        "covariates": str(tmp_path / "cov.tsv"),
        "pgs": str(tmp_path / "pgs"),
        "genes": str(tmp_path / "genes.tsv"),
        "labels": "",
    }


def embedded_text(html: str) -> str:
    """The report's HTML plus every text file it embeds (base64 data URIs), decoded."""
    parts = [html]
    for kind, payload in re.findall(r"data:([\w/+.-]+);[^,]*?base64,([A-Za-z0-9+/=]+)", html):
        if not kind.startswith("image/png"):
            parts.append(base64.b64decode(payload).decode("utf-8", errors="replace"))
    return "\n".join(parts)
