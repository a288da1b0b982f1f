"""Training data: people with their images and genetic modalities, splits, loaders, augmentations.

Shapes: ``P`` people, ``n_img`` images, ``S`` the cached image side, ``m`` features of a modality.

A :class:`Cohort` holds one record per person: the rows of the image cache that belong to them
(both eyes together, so a split never separates them) and, per modality, their feature row and a
presence flag. Batches are drawn **by person**: a batch of ``b`` people carries all their images
(1 or 2 each), so ``B`` images with ``image_person`` pointing into the ``P = b`` genetic rows.

Loaders only gather uint8 pixels from the memory-mapped cache (no decoding, no randomness);
augmentations (:mod:`contig.pretrain.augment`) run batch-wise on the training device with a
generator seeded per (seed, epoch, batch), so a run is reproducible for any number of loader
workers and resumes mid-epoch exactly.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from contig.core.errors import InputError
from contig.images.cache import load_image_cache
from contig.scores.modality import Modality


# ---------------------------------------------------------------------------------------------
# Image cache
# ---------------------------------------------------------------------------------------------

def read_image_cache(prefix: str | Path) -> tuple[np.ndarray, pl.DataFrame]:
    """Open the cache written by ``contig images`` (its reader checks the array and the rows).

    Returns the uint8 array ``(n_images, S, S, 3)`` (memory-mapped, read-only) and the index with
    columns ``row`` (Int64), ``IID``, ``eye`` (``left``/``right``/null), ``path``, ...
    """
    images, index = load_image_cache(prefix)
    return images, _normalize_eyes(index, f"{prefix}.index.tsv")


def _normalize_eyes(index: pl.DataFrame, path: str | Path) -> pl.DataFrame:
    """``eye`` as ``left``/``right``/null (l, r, le, re accepted in any case); other labels are
    an :class:`InputError` naming the row."""
    eye = index["eye"].cast(pl.String).str.to_lowercase().replace(
        {"l": "left", "r": "right", "le": "left", "re": "right"})
    odd = eye.is_not_null() & ~eye.is_in(["left", "right"])
    if odd.any():
        i = int(odd.arg_true()[0])
        raise InputError(f"eye {eye[i]!r} is not left/right", path, i + 2, "eye")
    return index.with_columns(pl.col("IID").cast(pl.String), eye.alias("eye"))


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

@dataclass
class PersonImages:
    """Images grouped by person: person ``p`` owns ``rows[offsets[p]:offsets[p + 1]]``.

    ``iid`` (P,) str sorted; ``rows`` (n_img,) int64 cache rows; ``eye`` (n_img,) str in
    {"left", "right", ""}; ``offsets`` (P + 1,) int64.
    """

    iid: np.ndarray
    rows: np.ndarray
    eye: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_index(cls, index: pl.DataFrame) -> PersonImages:
        table = index.select("IID", "row", pl.col("eye").fill_null("")).sort("IID", "eye", "row")
        iid, starts = np.unique(table["IID"].to_numpy().astype(str), return_index=True)
        offsets = np.append(starts, table.height).astype(np.int64)
        return cls(iid, table["row"].to_numpy().astype(np.int64),
                   table["eye"].to_numpy().astype(str), offsets)

    def __len__(self) -> int:
        return len(self.iid)

    def n_images(self, people: np.ndarray | None = None) -> np.ndarray:
        """Number of images of each person (or of ``people``), ``(P,)``."""
        counts = np.diff(self.offsets)
        return counts if people is None else counts[people]

    def subset(self, people: np.ndarray) -> PersonImages:
        """The records of ``people`` (indices), in that order."""
        counts = self.n_images(people)
        take = (np.concatenate([np.arange(self.offsets[p], self.offsets[p + 1]) for p in people])
                if len(people) else np.zeros(0, np.int64))
        return PersonImages(self.iid[people], self.rows[take], self.eye[take],
                            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def gather(self, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cache rows ``(B,)`` of all images of ``people`` and each image's position in ``people``."""
        counts = self.n_images(people)
        rows = [self.rows[self.offsets[p]:self.offsets[p + 1]] for p in people]
        rows_cat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return rows_cat, np.repeat(np.arange(len(people)), counts)


@dataclass
class GeneticRows:
    """One modality aligned to a cohort's people: ``X`` (P, m) dense float32 or CSR, ``present`` (P,)."""

    X: np.ndarray | sp.csr_matrix
    present: np.ndarray
    feature: np.ndarray

    def rows(self, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense float32 ``(len(people), m)`` and presence ``(len(people),)``; absent rows are 0."""
        X = self.X[people]
        X = X.toarray() if sp.issparse(X) else X
        return np.ascontiguousarray(X, dtype=np.float32), self.present[people]


@dataclass
class Cohort:
    """People with images, and their genetic modalities (``genetics[name]`` aligned to ``images.iid``)."""

    images: PersonImages
    genetics: dict[str, GeneticRows] = field(default_factory=dict)

    @property
    def iid(self) -> np.ndarray:
        return self.images.iid

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, people: np.ndarray) -> Cohort:
        people = np.asarray(people, dtype=np.int64)
        return Cohort(self.images.subset(people),
                      {name: GeneticRows(g.X[people], g.present[people], g.feature)
                       for name, g in self.genetics.items()})


def build_cohort(
    index: pl.DataFrame,
    modalities: Mapping[str, Modality],
    join: str = "inner",
    sources: Mapping[str, str | Path] | None = None,
) -> tuple[Cohort, list[str]]:
    """One record per person of the image index, joined with the modalities.

    ``inner`` keeps people who have images and every modality; ``outer`` keeps people who have
    images and at least one modality (absent modalities are zero rows with ``present`` False).
    People with modalities but no image, and (outer) people with images but no modality at all,
    are dropped. Returns the cohort and one log line per filter with its count.
    """
    if join not in ("inner", "outer"):
        raise ValueError(f"join must be inner or outer, got {join!r}")
    images = PersonImages.from_index(index)
    report = [f"{len(images)} people with {len(images.rows)} images in the image cache"]
    positions: dict[str, np.ndarray] = {}
    for name, mod in modalities.items():
        iid = np.asarray(mod.iid).astype(str)
        unique, counts = np.unique(iid, return_counts=True)
        if (counts > 1).any():
            raise InputError(f"IID {unique[counts > 1][0]!r} appears {counts.max()} times in "
                             f"modality {name!r}", (sources or {}).get(name, name), column="iid")
        order = np.argsort(iid)
        found = np.searchsorted(iid[order], images.iid)
        found = np.minimum(found, len(iid) - 1) if len(iid) else found
        hit = (iid[order][found] == images.iid) if len(iid) else np.zeros(len(images), bool)
        positions[name] = np.where(hit, order[found] if len(iid) else -1, -1)
        no_image = len(np.setdiff1d(iid, images.iid))
        report.append(f"modality {name}: {mod.X.shape[1]} features; {int(hit.sum())} of the imaged "
                      f"people have it, {len(images) - int(hit.sum())} lack it; {no_image} people "
                      f"with {name} but no image dropped")
    have = np.stack([positions[n] >= 0 for n in modalities], axis=1) if modalities else \
        np.ones((len(images), 1), bool)
    keep = have.all(axis=1) if join == "inner" else have.any(axis=1)
    dropped = int((~keep).sum())
    report.append(f"join {join}: kept {int(keep.sum())} people, dropped {dropped} imaged people "
                  + ("lacking some modality" if join == "inner" else "lacking every modality"))
    people = np.flatnonzero(keep)
    cohort_images = images.subset(people)
    genetics = {}
    for name, mod in modalities.items():
        pos = positions[name][people]
        genetics[name] = GeneticRows(_rows_or_zeros(mod.X, pos), pos >= 0,
                                     np.asarray(mod.feature).astype(str))
    return Cohort(cohort_images, genetics), report


def _rows_or_zeros(X: np.ndarray | sp.csr_matrix, pos: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """Rows ``X[pos]`` with zero rows where ``pos`` is −1; ``(len(pos), m)``, same storage as X."""
    present = pos >= 0
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        picker = sp.csr_matrix((np.ones(int(present.sum()), np.float32),
                                (np.flatnonzero(present), pos[present])),
                               shape=(len(pos), X.shape[0]))
        return sp.csr_matrix(picker @ X)
    out = np.zeros((len(pos), X.shape[1]), np.float32)
    out[present] = X[pos[present]]
    return out


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------

def _rank_people(iid: np.ndarray, seed: int, salt: int = 0) -> np.ndarray:
    """A seeded random order of the people that does not depend on the input order, ``(P,)``."""
    order = np.argsort(iid, kind="stable")
    rng = np.random.default_rng([seed, salt])
    return order[rng.permutation(len(iid))]


def split_by_fraction(iid: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Assign people to train/val/test by fractions (summing to 1); ``(P,)`` str.

    Val and test sizes are rounded; train gets the rest.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1,
                                                                                abs_tol=1e-6):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, "
                         f"got {list(fractions)}")
    n = len(iid)
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    order = _rank_people(np.asarray(iid).astype(str), seed)
    sets = np.full(n, "train", dtype=object)
    sets[order[:n_val]] = "val"
    sets[order[n_val:n_val + n_test]] = "test"
    return sets.astype(str)


def assign_folds(iid: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each person ``(P,)`` int, sizes differing by at most one; same for every fold k."""
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    order = _rank_people(np.asarray(iid).astype(str), seed)
    folds = np.empty(len(iid), dtype=np.int64)
    folds[order] = np.arange(len(iid)) % n_folds
    return folds


def fold_split(iid: np.ndarray, folds: np.ndarray, fold: int, val_fraction: float,
               seed: int) -> np.ndarray:
    """Sets for training fold model ``fold``: that fold is ``test`` (held out and embedded);
    a ``val_fraction`` slice of the other folds' people is ``val``; the rest ``train``."""
    if not 0 <= fold < int(folds.max()) + 1:
        raise ValueError(f"fold {fold} outside 0..{int(folds.max())}")
    sets = np.where(folds == fold, "test", "train").astype(object)
    pool = np.flatnonzero(folds != fold)
    n_val = round(val_fraction * len(pool))
    order = pool[_rank_people(np.asarray(iid)[pool].astype(str), seed, salt=1000 + fold)]
    sets[order[:n_val]] = "val"
    return sets.astype(str)


def split_table(iid: np.ndarray, sets: np.ndarray, folds: np.ndarray | None) -> pl.DataFrame:
    """The split as a table ``IID, set, fold`` (fold null for a plain split)."""
    return pl.DataFrame({
        "IID": np.asarray(iid).astype(str),
        "set": np.asarray(sets).astype(str),
        "fold": pl.Series([None] * len(iid) if folds is None else np.asarray(folds),
                          dtype=pl.Int64),
    })


# ---------------------------------------------------------------------------------------------
# Batches and loading
# ---------------------------------------------------------------------------------------------

def epoch_batches(n_people: int, batch_size: int, seed: int, epoch: int,
                  shuffle: bool = True) -> list[np.ndarray]:
    """People indices of each batch of an epoch (seeded by (seed, epoch)).

    Shuffled epochs drop the last incomplete batch (BatchNorm and the contrastive loss want full
    batches) unless the whole set is smaller than one batch; unshuffled ones keep it.
    """
    order = (np.random.default_rng([seed, epoch, 7]).permutation(n_people) if shuffle
             else np.arange(n_people))
    if shuffle and n_people >= batch_size:
        n_full = n_people // batch_size
        return [order[i * batch_size:(i + 1) * batch_size] for i in range(n_full)]
    return [order[i:i + batch_size] for i in range(0, n_people, batch_size)]


def rank_share(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The contiguous slice of a global batch that ``rank`` loads (concatenated in rank order
    the slices give back the global batch)."""
    return np.array_split(batch, world_size)[rank]


def batch_seed(seed: int, epoch: int, batch: int, stream: int = 0) -> int:
    """Seed of the augmentation generator of one batch: a function of (seed, epoch, batch) only
    (``stream`` separates training from validation draws)."""
    return int(np.random.default_rng([seed, epoch, batch, stream, 11]).integers(2**62))


class PersonBatchDataset(torch.utils.data.Dataset):
    """Item ``i`` is this rank's share of the global batch ``batches[i]`` of people (use with
    ``batch_size=None``; world size 1: the whole batch).

    Returns a dict: ``images`` uint8 ``(B, S, S, 3)``, ``image_person`` int64 ``(B,)``,
    ``people`` int64 ``(P,)`` (cohort indices), ``index`` (batch number), ``image_offset`` and
    ``global_images`` (where this share's images start in the global batch, and its size: the
    augmentation draws parameters for the global batch so every rank count gives the same
    images), and per modality ``genetic/<name>`` float32 ``(P, m)`` and ``present/<name>`` bool
    ``(P,)``. The cache is opened lazily in each worker (a memmap is never pickled).
    """

    def __init__(self, cohort: Cohort, cache_prefix: str | Path, batches: Sequence[np.ndarray],
                 first_index: int = 0, with_genetics: bool = True, rank: int = 0,
                 world_size: int = 1) -> None:
        self.cohort = cohort
        self.cache_prefix = str(cache_prefix)
        self.batches = list(batches)
        self.first_index = first_index
        self.with_genetics = with_genetics
        self.rank, self.world_size = rank, world_size
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.batches)

    def _cache(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(f"{self.cache_prefix}.npy", mmap_mode="r")
        return self._images

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        global_people = np.asarray(self.batches[i], dtype=np.int64)
        shares = [rank_share(global_people, r, self.world_size) for r in range(self.world_size)]
        people = shares[self.rank]
        counts = [int(self.cohort.images.n_images(s).sum()) for s in shares]
        rows, image_person = self.cohort.images.gather(people)
        order = np.argsort(rows, kind="stable")  # read the memmap in file order
        pixels = np.empty((len(rows),) + self._cache().shape[1:], np.uint8)
        pixels[order] = self._cache()[rows[order]]
        item = {"images": torch.from_numpy(pixels),
                "image_person": torch.from_numpy(image_person.astype(np.int64)),
                "people": torch.from_numpy(people),
                "index": torch.tensor(self.first_index + i),
                "image_offset": torch.tensor(sum(counts[:self.rank])),
                "global_images": torch.tensor(sum(counts))}
        if self.with_genetics:
            for name, g in self.cohort.genetics.items():
                X, present = g.rows(people)
                item[f"genetic/{name}"] = torch.from_numpy(X)
                item[f"present/{name}"] = torch.from_numpy(present.astype(bool))
        return item


def _worker_init(_: int) -> None:
    # SLURM/torchrun send SIGTERM to every process; only the main process checkpoints and exits,
    # the workers must not die first (the main process would then fail on a dead worker).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(dataset: PersonBatchDataset, workers: int, pin_memory: bool = False
                ) -> torch.utils.data.DataLoader:
    """A loader yielding the dataset's batches in order (all randomness lives elsewhere)."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None, persistent_workers=False)
