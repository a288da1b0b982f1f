"""Stale Snakemake locks: a ``snakemake`` killed with -9 (or by the OOM killer) leaves its locks
in ``.snakemake/locks`` and the next run refuses to start until ``--unlock``.

The workflow records which process holds the locks (in its ``onstart`` handler, i.e. after locking
succeeded) and, before the next run locks, removes the locks only when that process is gone:
same host, and no live process with that PID and start time. A second run started while the
first is alive is still refused by Snakemake.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from contig.core.atomic import write_text_atomic

OWNER_FILE = "contig-run-owner.json"


def process_start_time(pid: int) -> str | None:
    """Start time of a live process (clock ticks since boot, from /proc), None when none."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_owner(snakemake_dir: str | Path, pid: int | None = None) -> None:
    """Record this host, ``pid`` (default: this process) and its start time as the lock holder."""
    pid = os.getpid() if pid is None else pid
    folder = Path(snakemake_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / OWNER_FILE, json.dumps(
        {"host": socket.gethostname(), "pid": pid, "start": process_start_time(pid)}))


def clear_stale_locks(snakemake_dir: str | Path) -> int | None:
    """Remove the locks of a recorded run whose process is gone; returns its PID, else None.

    Nothing is removed when no owner was recorded, when it ran on another host, or when it is
    still alive.
    """
    folder = Path(snakemake_dir)
    locks, owner_file = folder / "locks", folder / OWNER_FILE
    if not owner_file.exists() or not locks.is_dir() or not any(locks.iterdir()):
        return None
    try:
        owner = json.loads(owner_file.read_text())
        if owner["host"] != socket.gethostname():
            return None
        alive = owner["start"] is not None and process_start_time(int(owner["pid"])) == owner["start"]
    except (ValueError, KeyError, TypeError):
        return None
    if alive:
        return None
    for lock in locks.iterdir():
        lock.unlink()
    owner_file.unlink()
    return int(owner["pid"])
