"""Interruption of a whole workflow run: kill -9 of snakemake (and its jobs) in the middle of
pretraining, then the same command again resumes training from its checkpoint and reruns nothing
before it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.workflow import ROOT, SNAKEMAKE, TINY, write_config

pytestmark = pytest.mark.slow

STAGES_BEFORE_PRETRAINING = {"simulate", "qc", "pca", "pca_plot", "snps", "prs", "burden", "images"}


def _command(workdir: Path, configfile: Path, target: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
            "--workflow-profile", str(ROOT / "profiles" / "default"), "--directory",
            str(workdir), "--configfile", str(configfile), "--cores", "2", target]


def _rules_run(output: str) -> set[str]:
    """Rule names of the jobs Snakemake started ("rule NAME:" / "localrule NAME:" lines)."""
    rules = set()
    for line in output.splitlines():
        words = line.strip().rstrip(":").split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and line.strip().endswith(":"):
            rules.add(words[1])
    return rules


def test_kill_9_during_pretraining_then_same_command_resumes(tmp_path):
    config = write_config(tmp_path, TINY | {
        "pretrain": TINY["pretrain"] | {"methods": ["contig"], "n_folds": 1, "epochs": 8},
    })
    target = "results/pretrain/contig/holdout/model.pt"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    checkpoint = tmp_path / "results/pretrain/contig/holdout/checkpoint.pt"
    first_log = tmp_path / "first.log"
    with first_log.open("w") as log:
        # A session of its own: kill -9 reaches snakemake and every job it started at once.
        run = subprocess.Popen(_command(tmp_path, config, target), stdout=log, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
        deadline = time.monotonic() + 400
        while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.poll() is None, "the run ended before pretraining wrote a checkpoint:\n" + \
            first_log.read_text()[-3000:]
        assert checkpoint.exists(), "no checkpoint within 400 s"
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert not (tmp_path / target).exists()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*")
              if p.is_file() and "pretrain" not in p.parts}

    second = subprocess.run(_command(tmp_path, config, target), capture_output=True, text=True,
                            env=env, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert (tmp_path / target).exists()
    rules = _rules_run(output)
    assert rules == {"train"}, rules
    assert not rules & STAGES_BEFORE_PRETRAINING
    train_log = (tmp_path / "logs/pretrain/contig/holdout.log").read_text()
    assert "resumed from epoch" in train_log, train_log[-2000:]
    resumed_at = int(train_log.split("resumed from epoch")[1].split()[0].rstrip(","))
    assert 1 <= resumed_at < 8
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before, "a stage before pretraining rewrote its outputs"
