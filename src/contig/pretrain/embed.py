"""Image embeddings for GWAS: backbone features of people the model did not train on.

Shapes: ``P`` people, ``D`` backbone features (512 ResNet-18, 2048 ResNet-50), ``K`` models.

Each ``model.pt`` written by ``contig train`` records its split. By default every model embeds
its held-out (``test``) people:
- plain split: one model, its test people (the reference study's choice);
- K-fold cross-fitting: the K fold models together embed everyone, each person by the model whose
  fold held them out. Passing all K ``model.pt`` files to one ``contig embed`` call gathers them
  into one table; a person held out by two models, or a model trained on another cohort, is an
  error.
``people="all"`` embeds everyone with a single model (e.g. for downstream probing).

One feature space (``align="procrustes"``, the default): K separately trained encoders have K
different feature spaces, so their held-out embeddings cannot simply be stacked. Every fold model
then embeds every person, each fold's space is mapped onto a consensus by generalized Procrustes
fitted on these image features alone (:mod:`contig.pretrain.align` says why and how), and each
person keeps their held-out model's embedding, mapped into the common space (centred). With one
model nothing is mapped. ``align="none"`` stacks the raw held-out features (the old behaviour).

Eyes: ``left`` / ``right`` use that eye's image; a person with only the other eye is embedded from
it (counted in the log); ``mean`` averages the features of all the person's images. Images with
no eye label count as "other" for left/right. The ``EYE`` column records what was embedded:
``left`` or ``right`` (only that eye's images), ``mean`` (images of both eyes averaged) or
``unknown`` (an image without an eye label among them). A cache without eye labels (a manifest
without an eye column) says nothing about eyes: then the table has no ``EYE`` column.

``both_eyes_only`` keeps only people with at least one left and one right image (others are
dropped and counted): then ``left`` and ``right`` never fall back, so a left-eye and a right-eye
GWAS are two measurements of the same people (replication across eyes).

Outputs: ``OUT.parquet`` with ``IID``, ``EYE``, ``dim_0000 ...`` (float32), and next to it
``OUT.alignment.tsv``, one row per model (:data:`ALIGNMENT_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.pretrain.align import (
    ALIGN_METHODS,
    AlignmentQuality,
    GeneralizedProcrustes,
    alignment_quality,
    generalized_procrustes,
    pool_out_of_fold,
)
from contig.pretrain.checkpoint import TrainedModel
from contig.pretrain.augment import eval_images
from contig.pretrain.data import PersonImages, read_image_cache
from contig.pretrain.models import ContIGModel

EYES = ("left", "right", "mean")
PEOPLE = ("test", "all")
ALIGNMENT_COLUMNS = ("align", "model", "checkpoint", "fold", "n_people", "n_heldout", "scale",
                     "r2_all", "r2_heldout", "r2_unaligned_all")


@dataclass(frozen=True)
class EmbedSettings:
    """Settings of one ``contig embed`` run (the CLI's defaults)."""

    eye: str = "left"
    people: str = "test"
    both_eyes_only: bool = False
    align: str = "procrustes"
    batch_size: int = 128

    def validate(self) -> None:
        if self.eye not in EYES:
            raise ValueError(f"eye must be one of {EYES}, got {self.eye!r}")
        if self.people not in PEOPLE:
            raise ValueError(f"people must be one of {PEOPLE}, got {self.people!r}")
        if self.align not in ALIGN_METHODS:
            raise ValueError(f"align must be one of {ALIGN_METHODS}, got {self.align!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")


# ---------------------------------------------------------------------------------------------
# Images per person
# ---------------------------------------------------------------------------------------------

@dataclass
class ChosenImages:
    """Cache rows to average per person, what they show, and who lacked the requested eye.

    ``rows``: P arrays of cache rows; ``eye`` (P,) str: left / right / mean / unknown;
    ``fell_back`` (P,) bool.
    """

    rows: list[np.ndarray]
    eye: np.ndarray
    fell_back: np.ndarray


def embedded_eye(labels: np.ndarray) -> str:
    """``left``/``right`` if every image is of that eye, ``mean`` for images of both eyes,
    ``unknown`` if any image has no eye label."""
    kinds = set(np.asarray(labels).tolist())
    if kinds in ({"left"}, {"right"}):
        return kinds.pop()
    return "mean" if kinds == {"left", "right"} else "unknown"


def choose_images(people: PersonImages, eye: str) -> ChosenImages:
    """Each person's images: ``left``/``right``: that eye's image(s), else all the person's
    images; ``mean``: all images."""
    if eye not in EYES:
        raise ValueError(f"eye must be one of {EYES}, got {eye!r}")
    chosen, shown = [], []
    fell_back = np.zeros(len(people), bool)
    for p in range(len(people)):
        rows = people.rows[people.offsets[p]:people.offsets[p + 1]]
        eyes = people.eye[people.offsets[p]:people.offsets[p + 1]]
        if eye != "mean":
            wanted = eyes == eye
            if wanted.any():
                rows, eyes = rows[wanted], eyes[wanted]
            else:
                fell_back[p] = True
        chosen.append(rows)
        shown.append(embedded_eye(eyes))
    return ChosenImages(chosen, np.asarray(shown, dtype=str).reshape(-1), fell_back)


def has_both_eyes(people: PersonImages) -> np.ndarray:
    """Whether each person has a left and a right image, ``(P,)`` bool."""
    owner = np.repeat(np.arange(len(people)), people.n_images())
    left = np.bincount(owner[people.eye == "left"], minlength=len(people)) > 0
    right = np.bincount(owner[people.eye == "right"], minlength=len(people)) > 0
    return left & right


@torch.no_grad()
def backbone_features(model: ContIGModel, cache: np.ndarray, rows_per_person: Sequence[np.ndarray],
                      image_size: int, device: torch.device | str = "cpu",
                      batch_size: int = 128) -> np.ndarray:
    """Mean backbone feature over each person's chosen images, float32 ``(P, D)`` (no
    augmentation)."""
    device = torch.device(device)
    model.eval()
    rows = np.concatenate(rows_per_person) if rows_per_person else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(rows_per_person)), [len(r) for r in rows_per_person])
    sums = torch.zeros(len(rows_per_person), model.feature_dim, dtype=torch.float64)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        order = np.argsort(chunk, kind="stable")
        pixels = np.empty((len(chunk),) + cache.shape[1:], np.uint8)
        pixels[order] = cache[chunk[order]]
        x = eval_images(torch.from_numpy(pixels).to(device), image_size)
        with autocast:
            feats = model.features(x).double().cpu()
        sums.index_add_(0, torch.from_numpy(owner[start:start + batch_size]), feats)
    counts = torch.tensor([len(r) for r in rows_per_person], dtype=torch.float64).clamp(min=1)
    return (sums / counts[:, None]).float().numpy()


# ---------------------------------------------------------------------------------------------
# Who is embedded, by which model
# ---------------------------------------------------------------------------------------------

@dataclass
class PeoplePlan:
    """The people to embed: ``position`` (P,) into the cache's :class:`PersonImages` (IID order),
    ``owner`` (P,) the index of the model that embeds them, ``dropped`` (K,) people of each model
    dropped without images of both eyes, ``not_in_any`` people of the cache no model embeds."""

    position: np.ndarray
    owner: np.ndarray
    dropped: np.ndarray
    not_in_any: int


def _model_people(tm: TrainedModel, people: str) -> np.ndarray:
    split = tm.split if people == "all" else tm.split.filter(pl.col("set") == "test")
    return np.asarray(split["IID"].to_list(), dtype=str)


def plan_people(models: Sequence[TrainedModel], images: PersonImages, people: str,
                both_eyes_only: bool, index_path: str | Path) -> PeoplePlan:
    """Each model's held-out people (or everyone of its split) found in the image cache.

    Raises :class:`InputError` if two models hold out the same person or a person of a model's
    split has no image in the cache.
    """
    owner_path: dict[str, Path] = {}
    positions, owners = [], []
    for k, tm in enumerate(models):
        wanted = _model_people(tm, people)
        for iid in wanted:
            if iid in owner_path:
                raise InputError(f"person {iid!r} is held out by both {owner_path[iid]} and "
                                 f"{tm.path}: these are not folds of one cross-fitting", tm.path)
            owner_path[iid] = tm.path
        pos = np.minimum(np.searchsorted(images.iid, wanted), max(len(images.iid) - 1, 0))
        missing = wanted[images.iid[pos] != wanted] if len(wanted) else wanted
        if len(missing):
            raise InputError(f"{len(missing)} people of the model's split have no image in the "
                             f"cache (first: {missing[0]!r})", index_path)
        positions.append(pos)
        owners.append(np.full(len(pos), k, np.int64))
    position = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    order = np.argsort(position, kind="stable")
    position, owner = position[order], owner[order]
    dropped = np.zeros(len(models), np.int64)
    if both_eyes_only:
        both = has_both_eyes(images.subset(position))
        dropped = np.bincount(owner[~both], minlength=len(models))
        position, owner = position[both], owner[both]
        if len(position) == 0:
            raise InputError("no person to embed has images of both eyes (the index's eye column "
                             "must say left and right)", index_path, column="eye")
    return PeoplePlan(position, owner, dropped, len(images) - len(owner_path))


# ---------------------------------------------------------------------------------------------
# Features in one space
# ---------------------------------------------------------------------------------------------

@dataclass
class EmbedResult:
    """The embedding table, the alignment table and log lines of one :func:`embed_people` call.

    ``fit`` is the generalized Procrustes fit (None when nothing was mapped).
    """

    table: pl.DataFrame
    alignment: pl.DataFrame
    report: list[str]
    fit: GeneralizedProcrustes | None = None


def held_out_features(models: Sequence[TrainedModel], cache: np.ndarray,
                      rows: Sequence[np.ndarray], owner: np.ndarray, device: torch.device,
                      batch_size: int) -> np.ndarray:
    """Raw features ``(P, D)``: each person from the model that embeds them only."""
    features = np.zeros((len(rows), models[0].model.feature_dim), np.float32)
    for k, tm in enumerate(models):
        mine = np.flatnonzero(owner == k)
        features[mine] = backbone_features(tm.model, cache, [rows[i] for i in mine],
                                           tm.image_size, device, batch_size)
    return features


def aligned_features(models: Sequence[TrainedModel], cache: np.ndarray,
                     rows: Sequence[np.ndarray], owner: np.ndarray, device: torch.device,
                     batch_size: int) -> tuple[np.ndarray, GeneralizedProcrustes, AlignmentQuality]:
    """Every model embeds everyone; generalized Procrustes on those image features; each person's
    held-out embedding mapped into the common space ``(P, D)``, the fit and its quality."""
    everyone = [backbone_features(tm.model, cache, rows, tm.image_size, device, batch_size)
                for tm in models]
    fit = generalized_procrustes(everyone)
    heldout = [np.flatnonzero(owner == k) for k in range(len(models))]
    quality = alignment_quality(everyone, fit.maps, heldout)
    return pool_out_of_fold(everyone, fit.maps, owner), fit, quality


def _held_out_fold(tm: TrainedModel) -> int | None:
    """The fold a cross-fitting model held out (None for a plain split)."""
    folds = tm.split.filter(pl.col("set") == "test")["fold"].drop_nulls().unique().to_list()
    return int(folds[0]) if len(folds) == 1 else None


def alignment_table(models: Sequence[TrainedModel], owner: np.ndarray,
                    fit: GeneralizedProcrustes | None, quality: AlignmentQuality | None
                    ) -> pl.DataFrame:
    """One row per model (:data:`ALIGNMENT_COLUMNS`): align (procrustes or none), model (its
    position on the command line), checkpoint, fold (held out; null for a plain split),
    n_people (embedded in total, the people the maps are fitted on), n_heldout (embedded by this
    model), scale, and the R² of :class:`AlignmentQuality` (null without alignment)."""
    n = len(models)
    nulls = [None] * n
    return pl.DataFrame({
        "align": ["procrustes" if fit is not None else "none"] * n,
        "model": list(range(n)),
        "checkpoint": [str(tm.path) for tm in models],
        "fold": [_held_out_fold(tm) for tm in models],
        "n_people": [len(owner)] * n,
        "n_heldout": np.bincount(owner, minlength=n).tolist(),
        "scale": [m.scale for m in fit.maps] if fit is not None else [1.0] * n,
        "r2_all": quality.r2_all.tolist() if quality is not None else nulls,
        "r2_heldout": quality.r2_heldout.tolist() if quality is not None else nulls,
        "r2_unaligned_all": quality.r2_unaligned_all.tolist() if quality is not None else nulls,
    }, schema={"align": pl.String, "model": pl.Int64, "checkpoint": pl.String, "fold": pl.Int64,
               "n_people": pl.Int64, "n_heldout": pl.Int64, "scale": pl.Float64,
               "r2_all": pl.Float64, "r2_heldout": pl.Float64, "r2_unaligned_all": pl.Float64})


# ---------------------------------------------------------------------------------------------
# The embedding run
# ---------------------------------------------------------------------------------------------

def embed_people(models: Sequence[TrainedModel], cache_prefix: str | Path,
                 settings: EmbedSettings = EmbedSettings(),
                 device: torch.device | str = "cpu") -> EmbedResult:
    """Embeddings ``IID, EYE, dim_0000, ...`` (float32) of each model's held-out people (or, with
    ``people="all"`` and one model, of everyone in its split), in one feature space (see the
    module text), with the alignment table and log lines.

    Raises :class:`InputError` if two models hold out the same person or a person of a model's
    split has no image in the cache.
    """
    settings.validate()
    if not models:
        raise ValueError("no models")
    if settings.people == "all" and len(models) != 1:
        raise ValueError("people='all' takes exactly one model")
    dims = {m.model.feature_dim for m in models}
    if len(dims) != 1:
        raise InputError(f"models have different feature sizes {sorted(dims)}", models[0].path)
    device = torch.device(device)
    cache, index = read_image_cache(cache_prefix)
    images = PersonImages.from_index(index)
    plan = plan_people(models, images, settings.people, settings.both_eyes_only,
                       f"{cache_prefix}.index.tsv")
    chosen = choose_images(images.subset(plan.position), settings.eye)
    fit = quality = None
    if settings.align == "procrustes" and len(models) > 1:
        features, fit, quality = aligned_features(models, cache, chosen.rows, plan.owner, device,
                                                  settings.batch_size)
    else:
        features = held_out_features(models, cache, chosen.rows, plan.owner, device,
                                     settings.batch_size)
    known = (chosen.eye != "unknown").any()
    table = embedding_table(images.iid[plan.position], features, chosen.eye if known else None)
    alignment = alignment_table(models, plan.owner, fit, quality)
    report = embed_report(models, plan, chosen, settings) + alignment_report(alignment, fit)
    report.append(_totals_line(plan, settings))
    return EmbedResult(table, alignment, report, fit)


def embed_report(models: Sequence[TrainedModel], plan: PeoplePlan, chosen: ChosenImages,
                 settings: EmbedSettings) -> list[str]:
    """A log line per model (people embedded, dropped, eye fallbacks) and one counting EYE."""
    lines = []
    eye = settings.eye
    for k, tm in enumerate(models):
        mine = plan.owner == k
        lines.append(
            f"{tm.path}: embedded {int(mine.sum())} "
            f"{'held-out ' if settings.people == 'test' else ''}people ({tm.method}, eye {eye}"
            + (f"; dropped {plan.dropped[k]} without images of both eyes"
               if settings.both_eyes_only else "")
            + (f"; {int(chosen.fell_back[mine].sum())} lacked the {eye} eye and used their "
               "other image" if eye != "mean" else "") + ")")
    counts = {e: int((chosen.eye == e).sum()) for e in ("left", "right", "mean", "unknown")}
    lines.append("EYE column (the images embedded): "
                 + ", ".join(f"{n} {e}" for e, n in counts.items())
                 if counts["unknown"] < len(chosen.eye) else
                 "no EYE column: the image cache has no eye labels")
    return lines


def alignment_report(alignment: pl.DataFrame, fit: GeneralizedProcrustes | None) -> list[str]:
    """Log lines of the alignment: how the fit went and R² per model."""
    if fit is None:
        return [f"feature spaces not aligned ({alignment.height} model"
                f"{'s: --align none' if alignment.height > 1 else ''})"]
    lines = [f"generalized Procrustes onto the consensus of {alignment.height} fold models "
             f"(image features of {alignment['n_people'][0]} people, no genotype): "
             f"{fit.iterations} iterations"
             + ("" if fit.converged else " (iteration limit reached before the tolerance)")]
    for row in alignment.iter_rows(named=True):
        lines.append(f"{row['checkpoint']}: scale {row['scale']:.4g}, R² against the other "
                     f"folds {row['r2_all']:.3f} (everyone), {row['r2_heldout']:.3f} (its "
                     f"held-out people); {row['r2_unaligned_all']:.3f} without the rotation")
    return lines


def _totals_line(plan: PeoplePlan, settings: EmbedSettings) -> str:
    return (f"{len(plan.owner)} people embedded in total; {plan.not_in_any} people of the image "
            "cache were not embedded (training/validation people of every model, or not in "
            "any model's cohort)"
            + (f"; {int(plan.dropped.sum())} more lacked an image of one eye"
               if settings.both_eyes_only else ""))


def embedding_table(iid: np.ndarray, features: np.ndarray, eye: np.ndarray | None
                    ) -> pl.DataFrame:
    """``IID``, ``EYE`` (unless ``eye`` is None) then ``dim_0000 ...`` float32 columns from
    ``(P, D)`` features."""
    columns = {"IID": pl.Series(np.asarray(iid).astype(str), dtype=pl.String)}
    if eye is not None:
        columns["EYE"] = pl.Series(np.asarray(eye).astype(str), dtype=pl.String)
    for j in range(features.shape[1]):
        columns[f"dim_{j:04d}"] = pl.Series(features[:, j].astype(np.float32), dtype=pl.Float32)
    return pl.DataFrame(columns)


def alignment_path(out: str | Path) -> Path:
    """``X.alignment.tsv`` next to the embeddings ``X.parquet``."""
    return Path(f"{str(out).removesuffix('.parquet')}.alignment.tsv")


def write_embeddings(result: EmbedResult, path: str | Path) -> list[Path]:
    """Write the embeddings parquet and its alignment table as one atomic set; returns both."""
    paths = [Path(path), alignment_path(path)]
    with atomic_paths(paths) as (parquet, tsv):
        result.table.write_parquet(parquet)
        result.alignment.write_csv(tsv, separator="\t", null_value="NA", float_precision=6)
    return paths
