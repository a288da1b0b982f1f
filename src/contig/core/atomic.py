"""Atomic outputs: write to a temporary name beside the target, rename on success.

A killed or failing writer never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def _temporary_sibling(path: Path) -> Path:
    """A fresh, unused temporary path in the same directory (same file system: rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last so writers that dispatch on it (np.save, parquet, gzip) still work.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}",
                                dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them all into place only if the block succeeds.

    On any exception every temporary file is removed and no final path is touched.
    """
    finals = [Path(p) for p in paths]
    temps = [_temporary_sibling(p) for p in finals]
    try:
        yield temps
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in zip(temps, finals):
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Single-file form of :func:`atomic_paths`."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success it replaces ``path`` (an
    existing directory of that name is removed first); on failure it is removed."""
    import shutil

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)
