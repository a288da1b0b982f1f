"""Running the Snakemake workflow from tests in a scratch working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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
