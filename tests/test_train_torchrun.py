"""The train rule's command with pretrain.gpus > 1: `contig train` under torchrun, one process per
device, DDP through the gloo backend on the CPU (2 processes, a tiny ResNet, 2 epochs)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from contig.core import plan
from helpers.toy_training import write_toy_cohort
from helpers.workflow import run_snakemake, write_config


def _train_losses(log: str) -> list[str]:
    """Each rank's logged training loss per epoch."""
    return sorted(re.findall(r"epoch \d+/\d+: train loss [0-9.]+", log))


@pytest.mark.slow
def test_rule_command_with_two_gpus_trains_with_ddp_in_two_processes(tmp_path):
    """`torchrun --nproc-per-node 2 -m contig train` (what the rule runs for pretrain.gpus: 2):
    two ranks join one gloo process group, train 2 epochs logging the same loss (the loss of the
    batch gathered from both ranks' halves), and the model is written. That DDP's gradients equal
    one process's is tests/test_train.py::test_ddp_two_processes_equal_one_process."""
    cache, modalities, _ = write_toy_cohort(tmp_path / "toy", n_people=48)
    command = (f"{plan.train_launcher(2)} train --images {cache}"
               f" --modality snps={modalities['snps']} --modality prs={modalities['prs']}"
               f" --method contig --out {tmp_path / 'out'} --n-folds 2 --fold 0 --arch resnet18"
               " --image-size 16 --epochs 2 --batch-size 8 --proj-hidden 16 --proj-dim 8"
               " --genetic-hidden 16 --warmup-epochs 0.5 --seed 3 --workers 0 --threads 1"
               " --device cpu --progress off")
    assert command.startswith("torchrun --standalone --nproc-per-node 2 -m contig train ")
    # the rule's shell prefix puts the interpreter's folder (the project venv: torchrun) first
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "process group (gloo): rank 0 of 2" in log and "process group (gloo): rank 1 of 2" in log
    losses = _train_losses(log)
    assert len(losses) == 4, losses  # 2 ranks x 2 epochs
    assert losses[0] == losses[1] and losses[2] == losses[3]  # one loss over the gathered batch
    assert (tmp_path / "out" / "model.pt").is_file()
    assert (tmp_path / "out" / "metrics.tsv").is_file()


def test_dry_run_plans_torchrun_for_several_gpus_and_a_gpu_per_cuda_association(tmp_path):
    """The rules as planned: pretrain.gpus 2 -> training through torchrun with 2 processes and 2
    GPUs, embedding with one; gwas.device cuda -> the scan on cuda, one GPU per association job."""
    config = write_config(tmp_path, {"pretrain": {"gpus": 2}, "gwas": {"device": "cuda"}})
    result = run_snakemake(tmp_path, config, "-n", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = result.stdout.split("rule ")
    train = [j for j in jobs if j.startswith("train:")]
    assert train and all("torchrun --standalone --nproc-per-node 2 -m contig train " in j
                         and "gpu=2" in j for j in train)
    embed = [j for j in jobs if j.startswith("embed:")]
    assert embed and all("gpu=1" in j for j in embed)
    gwas = [j for j in jobs if j.startswith("gwas:")]
    assert gwas and all("--device cuda" in j and "gpu=1" in j for j in gwas)
