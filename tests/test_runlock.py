"""Stale Snakemake locks are removed only when the run that took them is gone."""

from __future__ import annotations

import json
import os
import subprocess

from contig.core.runlock import OWNER_FILE, clear_stale_locks, process_start_time, record_owner


def _locked(tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "0.input.lock").write_text("results/x\n")
    (locks / "0.output.lock").write_text("results/y\n")
    return locks


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_locks_of_a_dead_run_are_removed(tmp_path):
    locks = _locked(tmp_path)
    pid = _dead_pid()
    (tmp_path / OWNER_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": pid,
                                                   "start": "12345"}))
    assert clear_stale_locks(tmp_path) == pid
    assert not any(locks.iterdir()) and not (tmp_path / OWNER_FILE).exists()


def test_locks_of_a_live_run_stay(tmp_path):
    locks = _locked(tmp_path)
    record_owner(tmp_path)
    assert process_start_time(os.getpid()) is not None
    assert clear_stale_locks(tmp_path) is None
    assert len(list(locks.iterdir())) == 2


def test_a_reused_pid_is_not_the_owner(tmp_path):
    """Same PID, different start time: the recorded run is gone even though the PID is alive."""
    locks = _locked(tmp_path)
    (tmp_path / OWNER_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid(),
                                                   "start": "-1"}))
    assert clear_stale_locks(tmp_path) == os.getpid()
    assert not any(locks.iterdir())


def test_unknown_owner_or_other_host_leaves_locks(tmp_path):
    locks = _locked(tmp_path)
    assert clear_stale_locks(tmp_path) is None  # nothing recorded: not ours to judge
    (tmp_path / OWNER_FILE).write_text(json.dumps({"host": "another-node", "pid": _dead_pid(),
                                                   "start": "1"}))
    assert clear_stale_locks(tmp_path) is None
    (tmp_path / OWNER_FILE).write_text("{not json")
    assert clear_stale_locks(tmp_path) is None
    assert len(list(locks.iterdir())) == 2
