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

from helpers.workflow import ROOT, TINY, run_snakemake, write_config

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
    # One method and no per-eye GWAS: every kind of rule, in a third of the jobs (each SLURM job
    # costs ~10 s of scheduling and start-up here).
    config = write_config(tmp_path, TINY | {
        "pretrain": TINY["pretrain"] | {"methods": ["contig"]},
        "evaluate": {"replicate_eyes": False},
    })
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
    return [(job, state, code) for job, comment, state, code in rows
            if comment.startswith("rule_train")]


def _running_job() -> str | None:
    """Id of the one running job (squeue sees it at once; accounting may lag)."""
    for _ in range(60):
        running = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True,
                                 text=True, check=True).stdout.split()
        if len(running) == 1:
            return running[0]
        time.sleep(0.5)
    return None


def test_sigterm_checkpoints_and_the_retry_resumes(cluster, tmp_path):
    """What SLURM does on preemption or at the time limit: SIGTERM to every process of the
    training job. The job ends, the profile's retry resubmits it, and training resumes from its
    checkpoint instead of starting over (exit status 75 on SIGTERM is tested in test_train)."""
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
        try:
            deadline = time.monotonic() + 300
            while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert checkpoint.exists(), (tmp_path / "snakemake.log").read_text()[-3000:]
            running = _running_job()  # the training job (--jobs 1)
            assert running, subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout
            # --full: every process of the job, as SLURM does at the time limit or on preemption
            subprocess.run(["scancel", "--signal=TERM", "--full", running], check=True)
            assert run.wait(timeout=600) == 0, (tmp_path / "snakemake.log").read_text()[-3000:]
        finally:
            if run.poll() is None:  # a failed assertion: leave no run or job behind
                run.kill()
                subprocess.run(["scancel", "--full", "--signal=KILL", "--state=RUNNING"],
                               capture_output=True)
    for _ in range(60):  # accounting records arrive shortly after the jobs end
        jobs = _train_job_ids(started)
        if len(jobs) == 2 and jobs[1][1] != "RUNNING":
            break
        time.sleep(0.5)
    # The signalled job ends (SLURM reports it CANCELLED, or FAILED when training exited 75
    # first); the profile's retry runs it again to completion.
    assert len(jobs) == 2 and jobs[0][1] in ("CANCELLED", "FAILED") and jobs[1][1] == "COMPLETED", jobs
    train_log = (tmp_path / "logs/pretrain/contig/holdout.log").read_text()
    assert "resumed from epoch" in train_log, train_log[-2000:]
    assert (tmp_path / target).exists()
