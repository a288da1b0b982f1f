"""The tiny demo through the SLURM profile on a real single-node SLURM cluster (tests/slurm/cluster.sh).

Skipped unless SLURM's daemons are installed (CI installs them) and we are root.
"""

from __future__ import annotations

import os
import shutil
import time
import subprocess
from pathlib import Path

import polars as pl
import pytest

from workflow_helpers import ROOT, TINY, run_snakemake, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"))
        or os.geteuid() != 0,
        reason="needs root and Debian's slurm-wlm, slurmdbd, munge, mariadb-server",
    ),
]



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    script = ROOT / "tests" / "slurm" / "cluster.sh"
    subprocess.run(["timeout", "-k", "10", "180", str(script), "start", str(state)], check=True)
    yield state
    subprocess.run(["timeout", "-k", "10", "120", str(script), "stop", str(state)], check=False)


def test_workflow_runs_as_slurm_jobs(cluster, tmp_path):
    config = write_config(tmp_path, TINY)
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    result = run_snakemake(
        tmp_path, config,
        "--profile", str(ROOT / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "2",
        "--jobs", "4",
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "results/scores/burden.npz").exists()
    accounting = subprocess.run(
        ["sacct", "-a", "-X", "-n", "-P", "-o", "Comment,State,ExitCode", "-S", started],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("|") for line in accounting.strip().splitlines()]
    jobs = pl.DataFrame(rows, schema=["comment", "state", "exit"], orient="row").filter(
        pl.col("comment").str.starts_with("rule_")
    )
    # every rule of the run was a SLURM job (the plugin comments each job rule_<name>) and completed
    ran = {comment.removeprefix("rule_") for comment in jobs["comment"]}
    assert {"simulate", "qc", "pca", "snps", "prs", "burden"} <= ran, jobs
    assert jobs.filter(pl.col("state") != "COMPLETED").height == 0, jobs
