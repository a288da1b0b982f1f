"""Training data: people with their images and genetic modalities, splits, loaders, augmentations.

Shapes: ``P`` people, ``n_img`` images, ``S`` the cached image side, ``m`` features of a modality.

A :class:`Cohort` holds one record per person: the rows of the image cache that belong to them
(both eyes together, so a split never separates them) and, per modality, their feature row and a
presence flag. Batches are drawn **by person**: a batch of ``b`` people carries all their images
(1 or 2 each), so ``B`` images with ``image_person`` pointing into the ``P = b`` genetic rows.

Loaders only gather uint8 pixels from the memory-mapped cache (no decoding, no randomness);
augmentations run batch-wise on the training device (:class:`BatchAugment`) with a generator
seeded per (seed, epoch, batch), so a run is reproducible for any number of loader workers and
resumes mid-epoch exactly.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from contig.errors import InputError
from contig.modality import Modality

log = logging.getLogger("contig.data")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_SETS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------
# Image cache
# ---------------------------------------------------------------------------------------------

def read_image_cache(prefix: str | Path) -> tuple[np.ndarray, pl.DataFrame]:
    """Open the cache written by ``contig images``: ``(PREFIX.npy memmap, PREFIX.index.tsv)``.

    Returns the uint8 array ``(n_images, S, S, 3)`` (memory-mapped, read-only) and the index with
    columns ``row`` (Int64), ``IID``, ``eye`` (``left``/``right``/null), ``path``.
    """
    try:  # the images stage owns the contract; use its reader when present
        from contig.images import load_image_cache  # type: ignore[attr-defined]
    except ImportError:
        load_image_cache = None
    if load_image_cache is not None:
        images, index = load_image_cache(prefix)
        return images, _check_index(index, f"{prefix}.index.tsv", images.shape[0])
    from contig.tables import read_tsv

    npy, tsv = Path(f"{prefix}.npy"), Path(f"{prefix}.index.tsv")
    if not npy.exists():
        raise InputError("image cache not found (run `contig images`)", npy)
    images = np.load(npy, mmap_mode="r")
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise InputError(f"expected uint8 (n, S, S, 3), found {images.dtype} {images.shape}", npy)
    index = read_tsv(tsv, required=["row", "IID"], dtypes={"row": pl.Int64})
    return images, _check_index(index, tsv, images.shape[0])


def _check_index(index: pl.DataFrame, path: str | Path, n_images: int) -> pl.DataFrame:
    if "eye" not in index.columns:
        index = index.with_columns(pl.lit(None, dtype=pl.String).alias("eye"))
    index = index.with_columns(pl.col("row").cast(pl.Int64), pl.col("IID").cast(pl.String),
                               pl.col("eye").cast(pl.String).str.to_lowercase())
    bad = index["row"].is_null() | (index["row"] < 0) | (index["row"] >= n_images)
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"row {index['row'][i]} outside the cache's {n_images} images", path,
                         i + 2, "row")
    eye = index["eye"].replace({"l": "left", "r": "right", "le": "left", "re": "right"})
    odd = eye.is_not_null() & ~eye.is_in(["left", "right"])
    if odd.any():
        i = int(odd.arg_true()[0])
        raise InputError(f"eye {eye[i]!r} is not left/right", path, i + 2, "eye")
    return index.with_columns(eye.alias("eye"))


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


# ---------------------------------------------------------------------------------------------
# Augmentations (batch-wise, on the training device)
# ---------------------------------------------------------------------------------------------

def default_min_crop_scale(image_size: int) -> float:
    """SimCLR's RandomResizedCrop keeps 8–100% of the area at 224 px; on tiny images an 8% crop is
    a few pixels of one colour, so below 96 px we keep at least 25%."""
    return 0.08 if image_size >= 96 else 0.25


def to_float_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(B, S, S, 3)`` → float ``(B, 3, size, size)`` in [0, 1] (antialiased resize)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0, 1)
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of ``(B, 3, H, W)`` in [0, 1] (so local ImageNet weights fit)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def eval_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """No augmentation: uint8 ``(B, S, S, 3)`` → normalized float ``(B, 3, size, size)``."""
    return normalize(to_float_images(images, size))


@dataclass
class BatchAugment:
    """Per-image random augmentations applied to a whole batch at once.

    ``method="contig"`` (the reference's): ±``rotation`` degrees rotation, horizontal flip (p 0.5).
    ``method="simclr"``: RandomResizedCrop(area ``min_scale``–1, aspect 3/4–4/3), horizontal flip,
    colour jitter (brightness 0.7, contrast 0.7, saturation 0.7, hue 0.2; p 0.8; applied in that
    fixed order, hue as a rotation about the grey axis of RGB), grayscale (p 0.2), Gaussian blur
    (p 0.5, σ ∈ [0.1, 2.0] · size/224, kernel ≈ 10% of the side).
    Geometry is one ``affine_grid``/``grid_sample`` per batch (out-of-image pixels are black, like
    a fundus background). Random parameters come from a CPU generator, so results are the same on
    any device for a seed.
    """

    method: str
    size: int
    rotation: float = 20.0
    min_scale: float | None = None

    def __call__(self, images: torch.Tensor, generator: torch.Generator, offset: int = 0,
                 total: int | None = None) -> torch.Tensor:
        """uint8 ``(B, S, S, 3)`` on any device → normalized float ``(B, 3, size, size)``.

        Parameters are drawn for ``total`` images (default B) and rows ``offset:offset + B`` are
        used, so a rank's share of a global batch is augmented as in a single process.
        """
        x = to_float_images(images, self.size)
        B, device = x.shape[0], x.device
        total = B if total is None else total
        rand = _sliced_rand(generator, offset, B, total)

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * rand()

        flip = torch.where(rand() < 0.5, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3)
        if self.method == "contig":
            angle = torch.deg2rad(uniform(-self.rotation, self.rotation))
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
            theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        elif self.method == "simclr":
            min_scale = self.min_scale if self.min_scale is not None else \
                default_min_crop_scale(self.size)
            area = uniform(min_scale, 1.0)
            aspect = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
            w = torch.sqrt(area * aspect).clamp(max=1.0)
            h = torch.sqrt(area / aspect).clamp(max=1.0)
            theta[:, 0, 0], theta[:, 1, 1] = w * flip, h
            theta[:, 0, 2] = (rand() * 2 - 1) * (1 - w)
            theta[:, 1, 2] = (rand() * 2 - 1) * (1 - h)
        else:
            raise ValueError(f"no augmentation for method {self.method!r}")
        grid = F.affine_grid(theta.to(device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.method == "simclr":
            x = self._colour(x, rand)
        return normalize(x)

    def _colour(self, x: torch.Tensor, rand) -> torch.Tensor:  # noqa: ANN001
        device = x.device

        def col(values: torch.Tensor) -> torch.Tensor:
            return values.to(device, x.dtype)[:, None, None, None]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * rand()

        jitter = col(rand() < 0.8)
        brightness, contrast = col(uniform(0.3, 1.7)), col(uniform(0.3, 1.7))
        saturation, hue = col(uniform(0.3, 1.7)), uniform(-0.2, 0.2)
        grey = col(rand() < 0.2)
        blur = rand() < 0.5
        sigma = uniform(0.1, 2.0) * (x.shape[-1] / 224.0)

        y = (x * brightness).clamp(0, 1)
        mean = _luma(y).mean(dim=(1, 2, 3), keepdim=True)
        y = ((y - mean) * contrast + mean).clamp(0, 1)
        luma = _luma(y)
        y = ((y - luma) * saturation + luma).clamp(0, 1)
        y = _rotate_hue(y, hue.to(device, x.dtype))
        x = torch.where(jitter > 0, y, x)
        x = torch.where(grey > 0, _luma(x).expand_as(x), x)
        if bool(blur.any()):
            x = torch.where(col(blur) > 0, _gaussian_blur(x, sigma.to(device, x.dtype)), x)
        return x


def _sliced_rand(generator: torch.Generator, offset: int, n: int, total: int):  # noqa: ANN202
    """A function drawing ``total`` uniforms per call and returning rows ``offset:offset + n``."""
    def rand() -> torch.Tensor:
        return torch.rand(total, generator=generator)[offset:offset + n]
    return rand


def _luma(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` grey level of RGB ``(B, 3, H, W)`` (ITU-R 601 weights)."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _rotate_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Rotate colours about the grey axis by ``hue`` turns ``(B,)`` (Rodrigues' rotation)."""
    angle = hue * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    k = 1 / math.sqrt(3)
    one_third = (1 - cos) / 3
    # rotation matrix about (1,1,1)/√3: cos·I + sin·[k]× + (1−cos)·kkᵀ
    a = cos + one_third
    b = one_third - k * sin
    c = one_third + k * sin
    m = torch.stack([torch.stack([a, b, c], -1), torch.stack([c, a, b], -1),
                     torch.stack([b, c, a], -1)], -2)  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image σ ``(B,)``; kernel ≈ 10% of the side, odd."""
    B, C, H, W = x.shape
    k = max(3, int(0.1 * H) // 2 * 2 + 1)
    offsets = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None].clamp(min=1e-3)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B·C, k)
    y = x.reshape(1, B * C, H, W)
    pad = k // 2
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None],
                 groups=B * C)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :],
                 groups=B * C)
    return y.reshape(B, C, H, W)
