"""The image manifest (``IID path [eye]``) and its row checks, run before any image is decoded.

Header problems (no ``IID`` or ``path`` column, unreadable file, no rows) always raise
:class:`~contig.core.errors.InputError`. Row problems -- an empty IID/path, an ``eye`` that is not
left/right, a path escaping the manifest's folder (as written or through a symbolic link), a
duplicate row, a missing or zero-byte file -- either raise for the first one (``on_error="fail"``)
or drop the row and record it (``on_error="exclude"``), through :class:`RowChecks`. People absent
from ``keep`` are a filter: always dropped and recorded, never an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contig.core.errors import InputError
from contig.core.tables import read_tsv

log = logging.getLogger("contig.images.cache")

EYES = ("left", "right")
ON_ERROR = ("fail", "exclude")

# A row check's findings: position in the list of rows -> (column, reason).
Problems = dict[int, tuple[str, str]]


@dataclass
class ManifestRow:
    """One manifest line: ``line`` is its 1-based line number (header = 1)."""

    line: int
    iid: str | None
    eye: str | None
    path: str | None
    file: Path | None = None  # resolved file path


@dataclass
class Exclusion:
    """A manifest row dropped by a check, with the reason (and the column it concerns)."""

    row: ManifestRow
    reason: str
    column: str | None = None


@dataclass
class RowChecks:
    """Bookkeeping for the checks: fails fast or collects exclusions, and fills the QC table.

    ``qc_rows``: one ``(check, removed, changed, remaining)`` per check, in the order run.
    """

    manifest: Path
    on_error: str
    excluded: list[Exclusion] = field(default_factory=list)
    qc_rows: list[tuple[str, int, int, int]] = field(default_factory=list)

    def problems(self, name: str, rows: list[ManifestRow], bad: Problems,
                 changed: int = 0) -> list[ManifestRow]:
        """Apply a row check: ``bad`` maps positions in ``rows`` to (column, reason).

        With on_error="fail" the first bad row raises; otherwise bad rows are dropped and recorded.
        """
        if bad and self.on_error == "fail":
            position = min(bad)
            column, reason = bad[position]
            raise InputError(reason, self.manifest, rows[position].line, column)
        return self.drop(name, rows, bad, changed)

    def drop(self, name: str, rows: list[ManifestRow], bad: Problems,
             changed: int = 0) -> list[ManifestRow]:
        """Apply a filter: drop ``bad`` rows (reported, never an error)."""
        for position in sorted(bad):
            column, reason = bad[position]
            self.excluded.append(Exclusion(rows[position], reason, column))
        kept = [row for i, row in enumerate(rows) if i not in bad]
        self.qc_rows.append((name, len(bad), changed, len(kept)))
        if bad:
            log.info("%s: removed %d row(s), e.g. %s", name, len(bad), "; ".join(
                f"row {rows[i].line}: {bad[i][1]}" for i in sorted(bad)[:5]))
        return kept

    def note(self, name: str, changed: int, remaining: int) -> None:
        """A QC line for a step that removes nothing (``changed`` rows were altered)."""
        self.qc_rows.append((name, 0, changed, remaining))


def read_manifest(manifest: str | Path) -> tuple[list[ManifestRow], bool]:
    """Read the manifest TSV (``IID path [eye]``): its rows, and whether it has an eye column.

    A missing ``IID`` or ``path`` column, or a header without rows, raises :class:`InputError`.
    """
    table = read_tsv(manifest, required=["IID", "path"])
    if table.height == 0:
        raise InputError("the manifest has a header but no rows", manifest)
    has_eye = "eye" in table.columns
    eyes = table["eye"].to_list() if has_eye else [None] * table.height
    rows = [ManifestRow(i + 2, iid, eye, path)
            for i, (iid, path, eye) in enumerate(zip(table["IID"], table["path"], eyes))]
    return rows, has_eye


def empty_or_invalid_values(rows: Sequence[ManifestRow], has_eye: bool) -> Problems:
    """Rows with an empty IID or path, or (with an eye column) an eye other than left/right."""
    bad: Problems = {}
    for i, row in enumerate(rows):
        if row.iid is None or not row.iid.strip():
            bad[i] = ("IID", "empty IID")
        elif row.path is None or not row.path.strip():
            bad[i] = ("path", "empty path")
        elif has_eye and (row.eye is None or row.eye.strip().lower() not in EYES):
            bad[i] = ("eye", f"eye {row.eye!r} is not left or right")
        elif has_eye:
            row.eye = row.eye.strip().lower()
    return bad


def resolve_paths(rows: Sequence[ManifestRow], root: Path, allow_outside_root: bool) -> Problems:
    """Resolve each path against ``root``; unless ``allow_outside_root``, return the rows whose
    file is outside ``root``.

    A path leaves ``root`` as written (``..``, or an absolute path elsewhere), or through a
    symbolic link: the manifest and its folder may come from someone else, and a link planted
    there (``x.png -> /home/me/.ssh/id_rsa``) would otherwise be read. Links whose target stays
    inside the folder, and a folder that is itself reached through a link, are fine.
    """
    root = Path(os.path.normpath(os.path.abspath(root)))
    real_root = Path(os.path.realpath(root))
    bad: Problems = {}
    for i, row in enumerate(rows):
        row.file = Path(os.path.normpath(root / row.path))
        if allow_outside_root:
            continue
        if not row.file.is_relative_to(root):
            bad[i] = ("path", f"path {row.path!r} is outside the manifest's folder {root} "
                              "(use --allow-outside-root to allow it)")
            continue
        real = Path(os.path.realpath(row.file))
        if not real.is_relative_to(real_root):
            bad[i] = ("path", f"path {row.path!r} leads through a symbolic link to {real}, outside "
                              f"the manifest's folder {root} (use --allow-outside-root to allow it)")
    return bad


def duplicate_rows(rows: Sequence[ManifestRow]) -> Problems:
    """Rows repeating an earlier (IID, eye) pair or an earlier file; the first occurrence is kept.

    Without an eye column (eye is None), a repeated IID is a duplicate.
    """
    first_person: dict[tuple[str, str | None], int] = {}
    first_file: dict[Path, int] = {}
    bad: Problems = {}
    for i, row in enumerate(rows):
        person = (row.iid, row.eye)
        if person in first_person:
            what = f"IID {row.iid!r}" + (f" and eye {row.eye!r}" if row.eye else "")
            bad[i] = ("IID", f"duplicate {what} (first at row {first_person[person]})")
        elif row.file in first_file:
            bad[i] = ("path", f"duplicate file {row.path!r} (first at row {first_file[row.file]})")
        else:
            first_person[person] = row.line
            first_file[row.file] = row.line
    return bad


def read_keep_ids(path: str | Path) -> set[str]:
    """IIDs to keep: from a PLINK .fam (column 2) or a TSV with an ``IID`` column."""
    path = Path(path)
    if path.suffix == ".fam":
        from contig.genotypes.plinkio import read_fam

        return set(read_fam(path)["IID"].to_list())
    return set(read_tsv(path, required=["IID"])["IID"].drop_nulls().to_list())


def missing_or_empty_files(rows: Sequence[ManifestRow]) -> Problems:
    """Rows whose file does not exist, is not a regular file, or has zero bytes."""
    bad: Problems = {}
    for i, row in enumerate(rows):
        assert row.file is not None
        if not row.file.exists():
            bad[i] = ("path", f"file not found: {row.file}")
        elif not row.file.is_file():
            bad[i] = ("path", f"not a regular file: {row.file}")
        elif row.file.stat().st_size == 0:
            bad[i] = ("path", f"zero-byte file: {row.file}")
    return bad


def checked_manifest_rows(manifest: Path, checks: RowChecks, keep: str | Path | None = None,
                          allow_outside_root: bool = False) -> list[ManifestRow]:
    """The manifest's rows that pass every check before decoding, in file order.

    Checks run in this order (each a line of ``checks.qc_rows``): values, path inside the folder,
    duplicates, IID in ``keep`` (a filter), file exists and is not empty. Raises
    :class:`InputError` when no row is left.
    """
    rows, has_eye = read_manifest(manifest)
    keep_ids = read_keep_ids(keep) if keep is not None else None
    checks.note("manifest rows", 0, len(rows))
    rows = checks.problems("IID, path and eye values", rows, empty_or_invalid_values(rows, has_eye))
    rows = checks.problems("path inside the manifest's folder", rows,
                           resolve_paths(rows, manifest.parent, allow_outside_root))
    rows = checks.problems("duplicate rows", rows, duplicate_rows(rows))
    if keep_ids is not None:
        n_rows = len(rows)
        rows = checks.drop(f"IID in --keep {keep}", rows, {
            i: ("IID", f"IID not in {keep}") for i, r in enumerate(rows) if r.iid not in keep_ids})
        if n_rows and not rows:
            raise InputError(f"none of the {n_rows} rows has an IID in --keep {keep}", manifest)
    rows = checks.problems("file exists and is not empty", rows, missing_or_empty_files(rows))
    if not rows:
        raise InputError("no images left after the manifest checks", manifest)
    return rows
