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


def _train_job_ids(started: str) -> list[tuple[str, str, str]]:
    """(job id, state, exit code) of the rule_train SLURM jobs since ``started``."""
    accounting = subprocess.run(
        ["sacct", "-a", "-X", "-n", "-P", "-o", "JobID,Comment,State,ExitCode", "-S", started],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("|") for line in accounting.strip().splitlines() if line]
    return [(job, state, code) for job, comment, state, code in rows if comment == "rule_train"]


def test_sigterm_checkpoints_and_the_retry_resumes(cluster, tmp_path):
    """What SLURM does on preemption or at the time limit: SIGTERM to the training step. Training
    checkpoints and exits 75; the profile's retry resubmits the job, which resumes."""
    config = write_config(tmp_path, TINY | {
        "pretrain": TINY["pretrain"] | {"methods": ["contig"], "n_folds": 1, "epochs": 40},
    })
    target = "results/pretrain/contig/holdout/model.pt"
    # The stages before pretraining run locally; only training goes through SLURM.
    local = run_snakemake(tmp_path, config, "results/images/cache_32.npy", "results/scores/burden.npz",
                          "results/scores/prs.npz", "results/scores/snps.npz")
    assert local.returncode == 0, local.stderr[-3000:]
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    command = [str(Path(os.sys.executable).parent / "snakemake"), "--snakefile",
               str(ROOT / "workflow" / "Snakefile"), "--directory", str(tmp_path), "--configfile",
               str(config), "--profile", str(ROOT / "profiles" / "slurm"),
               "--slurm-init-seconds-before-status-checks", "2", "--jobs", "1", target]
    checkpoint = tmp_path / "results/pretrain/contig/holdout/checkpoint.pt"
    with (tmp_path / "snakemake.log").open("w") as log:
        run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        jobs = _train_job_ids(started)
        assert checkpoint.exists() and jobs, (tmp_path / "snakemake.log").read_text()[-3000:]
        # --full: every process of the job, as SLURM does at the time limit or on preemption
        subprocess.run(["scancel", "--signal=TERM", "--full", jobs[0][0]], check=True)
        assert run.wait(timeout=600) == 0, (tmp_path / "snakemake.log").read_text()[-3000:]
    jobs = _train_job_ids(started)
    assert [state for _, state, _ in jobs] == ["FAILED", "COMPLETED"], jobs
    # The first attempt's SLURM log: training checkpointed and exited with EXIT_PREEMPTED (75).
    first = next((tmp_path / ".snakemake" / "slurm_logs").rglob(f"{jobs[0][0]}.log")).read_text()
    assert "exit status 75" in first, first[-3000:]
    train_log = (tmp_path / "logs/pretrain/contig/holdout.log").read_text()
    assert "resumed from epoch" in train_log, train_log[-2000:]
    assert (tmp_path / target).exists()
