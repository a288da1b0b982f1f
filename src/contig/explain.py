"""Which genetic features drive a ContIG model: Integrated Gradients of each person's loss.

Shapes: ``Q`` explained people, ``R`` reference people, ``m`` features of a modality, ``d`` the
embedding size, ``S`` integration steps.

For a person ``i`` held out by a fold model (so the attribution is out-of-sample), the explained
scalar is ``i``'s own ContIG loss against a fixed reference set of ``R`` other held-out people of
that fold, whose image and genetic embeddings are computed once and held constant:

    L_i = mean over modalities of  α · CE(image_i → genetics of {i} ∪ R)
                                 + (1 − α) · CE(genetics_i → images of {i} ∪ R)

with the checkpoint's τ and α (one image per person, chosen as in ``contig embed``). With a batch
made of ``i`` and ``R``, averaging ``L_j`` over every member ``j`` against the others gives
exactly :func:`contig.losses.image_genetics_loss`. ``L_i`` is a function of ``i``'s genetic input
vectors only (all modalities jointly; the encoders run in eval mode, so BatchNorm uses its running
statistics and rows do not interact), and Integrated Gradients (captum) splits
``L_i(x) − L_i(baseline)`` over the features of every modality.

Baseline: the cohort mean of each feature. Zero is not a neutral genotype: the SNP and PRS
modalities are standardized (0 is the mean only by construction of that scaling, and raw 0/1/2
dosages would make 0 "homozygous reference at every SNP", a genotype nobody carries), and for
burden flags 0 means "carries nothing", which is the mean only approximately. The mean vector is
the expected input, so an attribution says how much the person's deviation from the average
person in that feature moves their loss. Optionally a noise tunnel (SmoothGrad over IG) averages
the attributions over Gaussian perturbations of the input.

Globally a feature's importance is its mean |attribution| over people; a modality's share is the
sum of its features' importances over the sum for all modalities. Completeness (IG's sum of
attributions equals ``L(x) − L(baseline)`` up to the integral's discretization error) is reported
from captum's convergence delta.

Image saliency (only for a few people, on request: individual-level output): IG of the
image→genetics term of ``L_i`` with respect to the pixels of ``i``'s image, against a black image
(a fundus photograph's background), summed over colour channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from contig.atomic import atomic_paths
from contig.data import (
    Cohort,
    PersonImages,
    build_cohort,
    eval_images,
    read_image_cache,
    to_float_images,
)
from contig.embed import EYES, TrainedModel, backbone_features, choose_images, load_trained_model
from contig.errors import InputError
from contig.modality import Modality
from contig.tables import read_tsv
from contig.train import load_checkpoint

SNP_MODALITIES = ("snps",)
"""Modalities whose features are variant IDs of the .bim (placed by ``--bim``, scored against
planted SNPs)."""
GENE_MODALITIES = ("burden",)
"""Modalities whose features are genes (scored against planted burden genes)."""
TOP_FEATURES_SHOWN = 30


@dataclass
class ExplainSettings:
    """Settings of one ``contig explain`` run."""

    n_people: int = 256
    n_reference: int = 64
    steps: int = 32
    noise_samples: int = 0
    noise_sd: float = 0.1
    batch_size: int = 32
    eye: str = "left"
    seed: int = 0

    def validate(self) -> None:
        if self.n_people < 1 or self.n_reference < 1 or self.steps < 2 or self.batch_size < 1:
            raise ValueError("n_people, n_reference and batch_size must be >= 1, steps >= 2")
        if self.noise_samples < 0 or self.noise_sd < 0:
            raise ValueError("noise samples and noise sd must be >= 0")
        if self.eye not in EYES:
            raise ValueError(f"eye must be one of {EYES}, got {self.eye!r}")


@dataclass
class ExplainModel:
    """A trained ContIG fold model with the loss settings it was trained with."""

    trained: TrainedModel
    alpha: float
    temperature: float

    @property
    def model(self) -> nn.Module:
        return self.trained.model

    @property
    def path(self) -> Path:
        return self.trained.path

    @property
    def modalities(self) -> dict[str, int]:
        return dict(self.trained.model.config.genetic_features)


@dataclass
class Attributions:
    """Per-person attributions gathered over fold models.

    ``iid`` (Q,), ``model_index`` (Q,) which fold model explained the person, ``values[name]``
    (Q, m) attributions, ``loss`` (Q,) L(x), ``baseline_loss`` (Q,) L(baseline), ``delta`` (Q',)
    captum's convergence deltas (Q' = Q × noise samples with a noise tunnel), ``feature[name]``
    (m,) feature names.
    """

    iid: np.ndarray
    model_index: np.ndarray
    values: dict[str, np.ndarray]
    loss: np.ndarray
    baseline_loss: np.ndarray
    delta: np.ndarray
    feature: dict[str, np.ndarray]
    n_reference: list[int] = field(default_factory=list)

    def completeness(self) -> dict[str, float]:
        """Mean |L(x) − L(b)|, mean |Σ attr − (L(x) − L(b))| and their ratio (relative error)."""
        gap = float(np.mean(np.abs(self.loss - self.baseline_loss))) if len(self.loss) else 0.0
        err = float(np.mean(np.abs(self.delta))) if len(self.delta) else 0.0
        return {"mean_abs_loss_gap": gap, "mean_abs_delta": err,
                "relative_delta": err / gap if gap > 0 else float("nan")}


# ---------------------------------------------------------------------------------------------
# Models and people
# ---------------------------------------------------------------------------------------------

def load_explain_model(path: str | Path, device: torch.device | str = "cpu") -> ExplainModel:
    """A ``model.pt`` of method contig, eval mode, parameters frozen (attribution needs input
    gradients only). Other methods have no (trained) genetic encoders: :class:`InputError`."""
    trained = load_trained_model(path, device)
    if trained.method != "contig" or not trained.model.config.genetic_features:
        why = ("has no genetic encoders" if trained.method == "simclr"
               else "has untrained (random-init) genetic encoders")
        raise InputError(f"model of method {trained.method!r} {why}: explain needs a model "
                         "trained with --method contig", path)
    for p in trained.model.parameters():
        p.requires_grad_(False)
    config = load_checkpoint(path)["config"]
    tau = float(trained.model.temperature().detach())
    return ExplainModel(trained, float(config.get("alpha", 0.75)), tau)


def check_modalities(models: Sequence[ExplainModel], modalities: Mapping[str, Modality],
                     sources: Mapping[str, str | Path]) -> None:
    """Every model must have an encoder for exactly the given modalities, with matching sizes."""
    for em in models:
        wanted = em.modalities
        if set(wanted) != set(modalities):
            raise InputError(f"model has genetic encoders for {sorted(wanted)} but the modalities "
                             f"given are {sorted(modalities)}: pass exactly the model's ones",
                             em.path)
        for name, m in wanted.items():
            if modalities[name].X.shape[1] != m:
                raise InputError(f"modality {name!r} has {modalities[name].X.shape[1]} features "
                                 f"but the model's encoder takes {m}", sources.get(name, name))


def choose_people(eligible: Sequence[np.ndarray], n_people: int, n_reference: int, seed: int
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Explained and reference people of each fold model (indices into ``eligible[k]``).

    Each fold's eligible people are put in a seeded random order that does not depend on the
    input order; the first ``n_reference`` (at most all but one) are the reference set, and
    ``n_people`` explained people are drawn from the rest, spread over the folds in proportion to
    what each has left (largest remainders). Returns (explained per fold, reference per fold).
    """
    orders, rest = [], []
    for k, iids in enumerate(eligible):
        iids = np.asarray(iids).astype(str)
        by_name = np.argsort(iids, kind="stable")
        order = by_name[np.random.default_rng([seed, k, 17]).permutation(len(iids))]
        orders.append(order)
        rest.append(max(len(iids) - min(n_reference, max(len(iids) - 1, 0)), 0))
    total = sum(rest)
    n_total = min(n_people, total)
    quota = np.array(rest, float) * n_total / max(total, 1)
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[: n_total - int(take.sum())]:
        take[k] += 1
    explained, reference = [], []
    for k, order in enumerate(orders):
        r = len(order) - rest[k]
        reference.append(np.sort(order[:r]))
        explained.append(np.sort(order[r:r + take[k]]))
    return explained, reference


# ---------------------------------------------------------------------------------------------
# The explained loss
# ---------------------------------------------------------------------------------------------

def person_contrastive_loss(image_emb: torch.Tensor, genetic_emb: torch.Tensor,
                            ref_image: torch.Tensor, ref_genetic: torch.Tensor,
                            temperature: float | torch.Tensor, alpha: float) -> torch.Tensor:
    """Each person's own ContIG loss against a fixed reference set, ``(Q,)``.

    ``image_emb``, ``genetic_emb``: ``(Q, d)`` person ``q``'s image and genetic embeddings;
    ``ref_image``, ``ref_genetic``: ``(R, d)`` the reference people's. All are L2-normalized here.
    Row q = α · CE(image_q → {genetics_q} ∪ ref genetics) + (1 − α) · CE(genetics_q → {image_q} ∪
    ref images), the terms :func:`contig.losses.image_genetics_loss` averages over a batch.
    """
    img, gen = F.normalize(image_emb, dim=-1), F.normalize(genetic_emb, dim=-1)
    ref_img, ref_gen = F.normalize(ref_image, dim=-1), F.normalize(ref_genetic, dim=-1)
    own = (img * gen).sum(-1, keepdim=True) / temperature  # (Q, 1)
    image_to_genetics = torch.logsumexp(torch.cat([own, img @ ref_gen.T / temperature], 1), 1)
    genetics_to_image = torch.logsumexp(torch.cat([own, gen @ ref_img.T / temperature], 1), 1)
    own = own.squeeze(1)
    return alpha * (image_to_genetics - own) + (1.0 - alpha) * (genetics_to_image - own)


class PersonLoss(nn.Module):
    """``forward(x_1, ..., x_M, image_emb)`` → ``(Q,)`` :func:`person_contrastive_loss` averaged
    over the M modalities; ``x_k`` is ``(Q, m_k)`` (the inputs captum attributes to) and
    ``image_emb`` ``(Q, d)`` is held constant."""

    def __init__(self, model: nn.Module, names: Sequence[str], ref_image: torch.Tensor,
                 ref_genetic: Mapping[str, torch.Tensor], temperature: float, alpha: float) -> None:
        super().__init__()
        self.model = model
        self.names = list(names)
        self.ref_image = ref_image
        self.ref_genetic = dict(ref_genetic)
        self.temperature = temperature
        self.alpha = alpha

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        *inputs, image_emb = args
        losses = [person_contrastive_loss(image_emb, self.model.genetic[name](x),
                                          self.ref_image, self.ref_genetic[name],
                                          self.temperature, self.alpha)
                  for name, x in zip(self.names, inputs)]
        return torch.stack(losses).mean(0)


def integrated_gradients(loss: nn.Module, inputs: tuple[torch.Tensor, ...],
                         baselines: tuple[torch.Tensor, ...], image_emb: torch.Tensor,
                         steps: int, noise_samples: int = 0, noise_sd: float = 0.1,
                         method: str = "gausslegendre"
                         ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """captum Integrated Gradients (``method``: captum's quadrature, Gauss-Legendre with ``steps``
    points by default) of ``loss`` for a batch.

    ``inputs``: one ``(Q, m_k)`` tensor per modality; ``baselines``: ``(1, m_k)`` or ``(Q, m_k)``.
    With ``noise_samples`` > 0 wrapped in captum's NoiseTunnel (smoothgrad: the mean of IG over
    inputs plus N(0, ``noise_sd``²) noise). Returns the attributions ``(Q, m_k)`` per modality
    and the convergence deltas ``(Q,)`` (``(Q · noise_samples,)`` with the noise tunnel).
    Seed torch's global generator first for a reproducible noise tunnel.
    """
    from captum.attr import IntegratedGradients, NoiseTunnel

    ig = IntegratedGradients(loss)
    kwargs = dict(baselines=tuple(b.expand_as(x) for b, x in zip(baselines, inputs)),
                  additional_forward_args=(image_emb,), n_steps=steps,
                  method=method, return_convergence_delta=True)
    if noise_samples > 0:
        attributions, delta = NoiseTunnel(ig).attribute(
            inputs, nt_type="smoothgrad", nt_samples=noise_samples, stdevs=noise_sd, **kwargs)
    else:
        attributions, delta = ig.attribute(inputs, **kwargs)
    return tuple(a.detach() for a in attributions), delta.detach().reshape(-1)


# ---------------------------------------------------------------------------------------------
# Attributions over the fold models
# ---------------------------------------------------------------------------------------------

@dataclass
class FoldPeople:
    """The people one fold model explains and compares against (indices into the cohort)."""

    explained: np.ndarray  # (Q_k,)
    reference: np.ndarray  # (R_k,)


def cohort_for_models(models: Sequence[ExplainModel], cache_prefix: str | Path,
                      modalities: Mapping[str, Modality], settings: ExplainSettings,
                      sources: Mapping[str, str | Path] | None = None
                      ) -> tuple[np.ndarray, Cohort, list[FoldPeople], list[str]]:
    """Join images and modalities (people with every modality), pick each fold's people.

    Returns (cache, cohort, per-fold :class:`FoldPeople`, log lines).
    """
    cache, index = read_image_cache(cache_prefix)
    cohort, report = build_cohort(index, modalities, "inner", sources)
    owner: dict[str, Path] = {}
    eligible, held_counts = [], []
    for em in models:
        held = np.asarray(em.trained.split.filter(pl.col("set") == "test")["IID"].to_list(), str)
        for iid in held:
            if iid in owner:
                raise InputError(f"person {iid!r} is held out by both {owner[iid]} and {em.path}: "
                                 "these are not folds of one cross-fitting", em.path)
            owner[iid] = em.path
        pos = np.flatnonzero(np.isin(cohort.iid, held))
        eligible.append(pos)
        held_counts.append(len(held))
        if len(pos) < 2:
            raise InputError(f"only {len(pos)} held-out people of this model have an image and "
                             "every modality: need at least 2 (one explained, one reference)",
                             em.path)
    explained, reference = choose_people([cohort.iid[e] for e in eligible], settings.n_people,
                                         settings.n_reference, settings.seed)
    folds = []
    for k, em in enumerate(models):
        fp = FoldPeople(eligible[k][explained[k]], eligible[k][reference[k]])
        folds.append(fp)
        unused = held_counts[k] - len(eligible[k])
        report.append(f"{em.path}: {held_counts[k]} held-out people, {unused} "
                      f"of them lack an image or a modality (not used); {len(fp.reference)} as "
                      f"the reference set, {len(fp.explained)} explained"
                      + (f" (reference set shrunk from {settings.n_reference}: too few people)"
                         if len(fp.reference) < settings.n_reference else ""))
    return cache, cohort, folds, report


def image_embeddings(em: ExplainModel, cache: np.ndarray, images: PersonImages, people: np.ndarray,
                     eye: str, device: torch.device) -> tuple[torch.Tensor, int]:
    """Image projections ``(P, d)`` of ``people`` (one per person: the chosen eye, or the mean
    backbone feature for ``eye="mean"``) and how many people lacked the eye (their other image
    was used)."""
    rows, fallback = choose_images(images.subset(people), eye)
    feats = backbone_features(em.model, cache, rows, em.trained.image_size, device)
    with torch.no_grad():
        proj = em.model.image_head(torch.from_numpy(feats).to(device))
    return proj, fallback


def feature_means(cohort: Cohort) -> dict[str, np.ndarray]:
    """The baseline: each feature's mean over the cohort's people, ``{name: (m,)}`` float32."""
    means = {}
    for name, g in cohort.genetics.items():
        X = g.X
        mean = np.asarray(X.mean(axis=0)).ravel() if sp.issparse(X) else X.mean(axis=0)
        means[name] = np.asarray(mean, np.float32)
    return means


def explain_models(models: Sequence[ExplainModel], cache_prefix: str | Path,
                   modalities: Mapping[str, Modality], settings: ExplainSettings,
                   device: torch.device | str = "cpu",
                   sources: Mapping[str, str | Path] | None = None
                   ) -> tuple[Attributions, list[str], dict]:
    """Integrated Gradients of every explained person's loss, gathered over the fold models.

    Returns the :class:`Attributions`, log lines, and a context dict (cache, cohort, per-fold
    people and reference embeddings) that :func:`image_saliency` reuses.
    """
    settings.validate()
    device = torch.device(device)
    sources = dict(sources or {})
    if not models:
        raise ValueError("no models")
    check_modalities(models, modalities, sources)
    names = list(models[0].modalities)
    cache, cohort, folds, report = cohort_for_models(models, cache_prefix, modalities, settings,
                                                     sources)
    baseline = {n: torch.from_numpy(v).to(device)[None] for n, v in
                feature_means(cohort).items()}
    parts: dict[str, list] = {"iid": [], "model": [], "loss": [], "base": [], "delta": []}
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    context = {"cache": cache, "cohort": cohort, "folds": folds, "ref": []}
    for k, (em, fp) in enumerate(zip(models, folds)):
        ref_img, ref_fallback = image_embeddings(em, cache, cohort.images, fp.reference,
                                                 settings.eye, device)
        with torch.no_grad():
            ref_gen = {n: em.model.genetic[n](_rows(cohort, n, fp.reference, device))
                       for n in names}
        context["ref"].append((ref_img, ref_gen))
        if len(fp.explained) == 0:
            continue
        img, fallback = image_embeddings(em, cache, cohort.images, fp.explained, settings.eye,
                                         device)
        if settings.eye != "mean":
            report.append(f"{em.path}: {fallback} explained and {ref_fallback} reference people "
                          f"lacked the {settings.eye} eye and used their other image")
        loss = PersonLoss(em.model, names, ref_img, ref_gen, em.temperature, em.alpha)
        for start in range(0, len(fp.explained), settings.batch_size):
            people = fp.explained[start:start + settings.batch_size]
            x = tuple(_rows(cohort, n, people, device) for n in names)
            b = tuple(baseline[n] for n in names)
            e = img[start:start + settings.batch_size]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(np.random.SeedSequence([settings.seed, k, start])
                                      .generate_state(1)[0]))
                attr, delta = integrated_gradients(loss, x, b, e, settings.steps,
                                                   settings.noise_samples, settings.noise_sd)
            with torch.no_grad():
                parts["loss"].append(loss(*x, e).cpu().numpy())
                parts["base"].append(loss(*(bb.expand_as(xx) for bb, xx in zip(b, x)), e)
                                     .cpu().numpy())
            parts["delta"].append(delta.cpu().numpy())
            for n, a in zip(names, attr):
                values[n].append(a.cpu().numpy())
        parts["iid"].append(cohort.iid[fp.explained])
        parts["model"].append(np.full(len(fp.explained), k))

    def cat(items: list, dtype=np.float64) -> np.ndarray:
        return np.concatenate(items).astype(dtype) if items else np.zeros(0, dtype)

    result = Attributions(
        iid=cat(parts["iid"], str), model_index=cat(parts["model"], np.int64),
        values={n: (np.concatenate(v) if v else np.zeros((0, modalities[n].X.shape[1])))
                for n, v in values.items()},
        loss=cat(parts["loss"]), baseline_loss=cat(parts["base"]), delta=cat(parts["delta"]),
        feature={n: np.asarray(modalities[n].feature).astype(str) for n in names},
        n_reference=[len(fp.reference) for fp in folds])
    c = result.completeness()
    report.append(f"explained {len(result.iid)} people with {len(models)} model(s): integrated "
                  f"gradients, {settings.steps} steps, baseline = cohort feature means"
                  + (f", noise tunnel {settings.noise_samples} samples, sd {settings.noise_sd:g}"
                     if settings.noise_samples else "")
                  + f"; mean loss {np.mean(result.loss):.4f}, at the baseline "
                  f"{np.mean(result.baseline_loss):.4f}")
    report.append(f"completeness: mean |sum(attr) - (L(x) - L(baseline))| = "
                  f"{c['mean_abs_delta']:.3g}, {100 * c['relative_delta']:.2f}% of mean "
                  f"|L(x) - L(baseline)| = {c['mean_abs_loss_gap']:.3g}")
    return result, report, context


def _rows(cohort: Cohort, name: str, people: np.ndarray, device: torch.device) -> torch.Tensor:
    X, _ = cohort.genetics[name].rows(people)
    return torch.from_numpy(X).to(device)


# ---------------------------------------------------------------------------------------------
# Global tables
# ---------------------------------------------------------------------------------------------

def snp_positions(bim: pl.DataFrame, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """CHROM (str, "" if unknown) and POS (int, −1 if unknown) of ``ids`` from a .bim table, and
    how many ids were not found (the first row wins for duplicated ids)."""
    table = bim.select("ID", "CHROM", "POS").unique("ID", keep="first", maintain_order=True)
    joined = pl.DataFrame({"ID": np.asarray(ids).astype(str)}).join(
        table, on="ID", how="left", maintain_order="left")
    missing = int(joined["POS"].is_null().sum())
    return (joined["CHROM"].fill_null("").to_numpy().astype(str),
            joined["POS"].fill_null(-1).to_numpy().astype(np.int64), missing)


def modality_chromosomes(mod: Modality) -> np.ndarray | None:
    """Chromosome of each feature ``(m,)`` from a SNP modality's ``chrom``/``chrom_offsets``
    arrays, or None."""
    if "chrom" not in mod.extra or "chrom_offsets" not in mod.extra:
        return None
    offsets = np.asarray(mod.extra["chrom_offsets"], np.int64)
    if offsets[-1] != mod.X.shape[1]:
        return None
    return np.repeat(np.asarray(mod.extra["chrom"]).astype(str), np.diff(offsets))


def feature_table(attr: Attributions, chrom: Mapping[str, np.ndarray] | None = None,
                  pos: Mapping[str, np.ndarray] | None = None) -> pl.DataFrame:
    """One row per feature: modality, feature, chrom, pos, mean_abs_attribution, mean_attribution,
    rank_in_modality, rank (1 = largest mean |attribution|; ties in input order), sorted by rank."""
    frames = []
    for name, values in attr.values.items():
        m = values.shape[1]
        c = (chrom or {}).get(name)
        p = (pos or {}).get(name)
        frames.append(pl.DataFrame({
            "modality": [name] * m,
            "feature": attr.feature[name],
            "chrom": (pl.Series(c.astype(str)).replace("", None) if c is not None
                      else pl.Series([None] * m, dtype=pl.String)),
            "pos": (pl.Series(p.astype(np.int64)).replace(-1, None) if p is not None
                    else pl.Series([None] * m, dtype=pl.Int64)),
            "mean_abs_attribution": np.abs(values).mean(0) if len(values) else np.zeros(m),
            "mean_attribution": values.mean(0) if len(values) else np.zeros(m),
        }))
    table = pl.concat(frames).with_row_index("input_order")
    table = table.with_columns(
        pl.col("mean_abs_attribution").rank("ordinal", descending=True).over("modality")
        .alias("rank_in_modality"))
    table = table.sort(["mean_abs_attribution", "input_order"], descending=[True, False])
    return table.with_columns(pl.int_range(1, table.height + 1).alias("rank")).select(
        "modality", "feature", "chrom", "pos", "mean_abs_attribution", "mean_attribution",
        pl.col("rank_in_modality").cast(pl.Int64), pl.col("rank").cast(pl.Int64))


def modality_table(features: pl.DataFrame) -> pl.DataFrame:
    """Per modality: n_features, total_abs_attribution (sum of features' mean |attribution|),
    mean_abs_per_feature, share (of the total over modalities), in the features' modality order."""
    table = features.group_by("modality", maintain_order=True).agg(
        pl.len().alias("n_features"), pl.col("mean_abs_attribution").sum()
        .alias("total_abs_attribution"))
    total = table["total_abs_attribution"].sum()
    table = table.with_columns(
        (pl.col("total_abs_attribution") / pl.col("n_features")).alias("mean_abs_per_feature"),
        (pl.col("total_abs_attribution") / total if total > 0 else pl.lit(float("nan")))
        .alias("share"))
    return table.sort("share", descending=True, maintain_order=True).with_columns(
        pl.col("n_features").cast(pl.Int64))


def summary_table(attr: Attributions, settings: ExplainSettings, models: Sequence[ExplainModel]
                  ) -> pl.DataFrame:
    """``metric, value`` rows: what was used and the completeness check."""
    c = attr.completeness()
    rows = [("n_models", len(models)), ("n_people", len(attr.iid)),
            ("n_reference_per_model", ",".join(map(str, attr.n_reference))),
            ("steps", settings.steps), ("noise_tunnel_samples", settings.noise_samples),
            ("noise_sd", settings.noise_sd if settings.noise_samples else "NA"),
            ("baseline", "cohort feature means"), ("eye", settings.eye), ("seed", settings.seed),
            ("temperature", ",".join(f"{m.temperature:g}" for m in models)),
            ("alpha", ",".join(f"{m.alpha:g}" for m in models)),
            ("mean_loss", float(np.mean(attr.loss)) if len(attr.loss) else "NA"),
            ("mean_baseline_loss", float(np.mean(attr.baseline_loss)) if len(attr.loss) else "NA"),
            ("mean_abs_loss_gap", c["mean_abs_loss_gap"]),
            ("mean_abs_convergence_delta", c["mean_abs_delta"]),
            ("relative_convergence_delta", c["relative_delta"])]
    return pl.DataFrame({"metric": [r[0] for r in rows], "value": [f"{r[1]:.6g}"
                         if isinstance(r[1], float) else str(r[1]) for r in rows]})


# ---------------------------------------------------------------------------------------------
# Truth (simulated data)
# ---------------------------------------------------------------------------------------------

def read_truth(path: str | Path) -> pl.DataFrame:
    """The simulator's truth table: kind (snp/gene), id, chrom, start, role."""
    table = read_tsv(path, required=["kind", "id", "chrom", "start", "role"],
                     dtypes={"start": pl.Int64})
    bad = ~table["kind"].is_in(["snp", "gene"]) | table["kind"].is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"kind {table['kind'][i]!r} is not snp or gene", path, i + 2, "kind")
    return table.with_columns(pl.col("chrom").cast(pl.String).str.strip_prefix("chr"))


def _window_hits(chrom: np.ndarray, pos: np.ndarray, planted: pl.DataFrame,
                 window: int) -> tuple[np.ndarray, list[set[int]]]:
    """Whether each feature is within ``window`` bp of a planted SNP, and which planted rows."""
    hit = np.zeros(len(chrom), bool)
    which: list[set[int]] = [set() for _ in range(len(chrom))]
    p_chrom = planted["chrom"].to_numpy().astype(str)
    p_pos = planted["start"].to_numpy().astype(np.int64)
    for c in np.unique(chrom):
        on = np.flatnonzero((chrom == c) & (pos >= 0))
        idx = np.flatnonzero(p_chrom == c)
        if len(on) == 0 or len(idx) == 0:
            continue
        order = idx[np.argsort(p_pos[idx])]
        sorted_pos = p_pos[order]
        lo = np.searchsorted(sorted_pos, pos[on] - window, side="left")
        hi = np.searchsorted(sorted_pos, pos[on] + window, side="right")
        for f, a, b in zip(on, lo, hi):
            if b > a:
                hit[f] = True
                which[f] = set(order[a:b].tolist())
    return hit, which


def precision_at_k(features: pl.DataFrame, truth: pl.DataFrame, window_kb: float,
                   ks: Sequence[int]) -> pl.DataFrame:
    """Precision of the top-k features of each SNP and gene modality against the planted truth.

    SNP modalities (:data:`SNP_MODALITIES`, needing chrom/pos): a feature is a hit if it lies within
    ``window_kb`` of a planted SNP: target ``major`` counts role-major SNPs, ``any`` every planted
    SNP (major and polygenic). Gene modalities (:data:`GENE_MODALITIES`): a hit is a gene of truth
    kind=gene (target ``burden``). Columns: modality, target, k, hits, precision, chance (the share
    of the modality's features that are hits, i.e. the expected precision of a random ranking),
    planted_found (planted items with a hit among the top k), n_planted.
    """
    window = int(round(window_kb * 1000))
    rows = []
    snps = truth.filter(pl.col("kind") == "snp")
    for name in features["modality"].unique(maintain_order=True).to_list():
        f = features.filter(pl.col("modality") == name).sort("rank_in_modality")
        if name in SNP_MODALITIES:
            chrom = f["chrom"].fill_null("").to_numpy().astype(str)
            chrom = np.char.replace(chrom, "chr", "")
            pos = f["pos"].fill_null(-1).to_numpy().astype(np.int64)
            targets = {"major": snps.filter(pl.col("role") == "major"), "any": snps}
            for target, planted in targets.items():
                hit, which = _window_hits(chrom, pos, planted, window)
                rows += _precision_rows(name, target, hit, which, ks, planted.height)
        elif name in GENE_MODALITIES:
            genes = truth.filter(pl.col("kind") == "gene")
            gene_ids = genes["id"].to_list()
            hit = f["feature"].is_in(gene_ids).to_numpy()
            index = {g: i for i, g in enumerate(gene_ids)}
            which = [{index[g]} if g in index else set() for g in f["feature"].to_list()]
            rows += _precision_rows(name, "burden", hit, which, ks, genes.height)
    schema = {"modality": pl.String, "target": pl.String, "k": pl.Int64, "hits": pl.Int64,
              "precision": pl.Float64, "chance": pl.Float64, "planted_found": pl.Int64,
              "n_planted": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _precision_rows(name: str, target: str, hit: np.ndarray, which: list[set[int]],
                    ks: Sequence[int], n_planted: int) -> list[tuple]:
    chance = float(hit.mean()) if len(hit) else float("nan")
    rows = []
    for k in ks:
        top = min(k, len(hit))
        found = set().union(*which[:top]) if top else set()
        hits = int(hit[:top].sum())
        rows.append((name, target, int(k), hits, hits / top if top else float("nan"), chance,
                     len(found), n_planted))
    return rows


# ---------------------------------------------------------------------------------------------
# Image saliency
# ---------------------------------------------------------------------------------------------

def image_saliency(models: Sequence[ExplainModel], attr: Attributions, context: dict,
                   n: int, settings: ExplainSettings, device: torch.device | str = "cpu"
                   ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """IG of the image→genetics term for ``n`` explained people (a seeded choice).

    Returns ``(IID, image (H, W, 3) float in [0, 1], saliency (H, W) = |attribution| summed over
    channels)`` per person. Baseline: a black image. Genetic embeddings (the person's own and the
    reference set's) are held constant.
    """
    from captum.attr import IntegratedGradients

    device = torch.device(device)
    if n <= 0 or len(attr.iid) == 0:
        return []
    chosen = np.sort(np.random.default_rng([settings.seed, 29]).choice(
        len(attr.iid), size=min(n, len(attr.iid)), replace=False))
    cache, cohort = context["cache"], context["cohort"]
    position = {iid: i for i, iid in enumerate(cohort.iid)}
    out = []
    for q in chosen:
        k = int(attr.model_index[q])
        em = models[k]
        person = np.array([position[attr.iid[q]]])
        rows, _ = choose_images(cohort.images.subset(person), settings.eye)
        pixels = torch.from_numpy(np.asarray(cache[int(rows[0][0])])[None].copy()).to(device)
        x = eval_images(pixels, em.trained.image_size)
        black = eval_images(torch.zeros_like(pixels), em.trained.image_size)
        ref_img, ref_gen = context["ref"][k]
        names = list(em.modalities)
        with torch.no_grad():
            own_gen = {nm: em.model.genetic[nm](_rows(cohort, nm, person, device)) for nm in names}

        def image_term(images: torch.Tensor) -> torch.Tensor:
            v = F.normalize(em.model.image_head(em.model.backbone(images)), dim=-1)
            terms = []
            for nm in names:
                gen = F.normalize(torch.cat([own_gen[nm], ref_gen[nm]]), dim=-1)
                logits = v @ gen.T / em.temperature
                terms.append(torch.logsumexp(logits, 1) - logits[:, 0])
            return torch.stack(terms).mean(0)

        a = IntegratedGradients(image_term).attribute(
            x, baselines=black, n_steps=settings.steps, method="gausslegendre",
            internal_batch_size=16)
        image = to_float_images(pixels, em.trained.image_size)[0].permute(1, 2, 0).cpu().numpy()
        out.append((str(attr.iid[q]), image, a[0].abs().sum(0).detach().cpu().numpy()))
    return out


# ---------------------------------------------------------------------------------------------
# Figures and outputs
# ---------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per modality (pass the names sorted so every figure agrees)."""
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def plot_top_features(features: pl.DataFrame, path: str | Path,
                      top: int = TOP_FEATURES_SHOWN) -> None:
    """Horizontal bars of the ``top`` features by mean |attribution|, coloured by modality."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    shown = features.head(top)
    colours = _colours(sorted(features["modality"].unique().to_list()))
    fig, ax = plt.subplots(figsize=(7, 0.22 * shown.height + 1.2))
    y = np.arange(shown.height)[::-1]
    ax.barh(y, shown["mean_abs_attribution"].to_numpy(),
            color=[colours[m] for m in shown["modality"].to_list()])
    ax.set_yticks(y, [f"{f}" for f in shown["feature"].to_list()], fontsize=7)
    ax.set_xlabel("mean |integrated gradients| of the person's contrastive loss")
    ax.set_title(f"top {shown.height} genetic features")
    ax.legend(handles=[Patch(color=c, label=n) for n, c in colours.items()], loc="lower right",
              fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_modality_shares(modalities: pl.DataFrame, path: str | Path) -> None:
    """Bars of each modality's share of the total mean |attribution|."""
    plt = _pyplot()
    names = modalities["modality"].to_list()
    colours = _colours(sorted(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.2))
    share = modalities["share"].to_numpy()
    ax.bar(names, share, color=[colours[n] for n in names])
    for i, (s, m) in enumerate(zip(share, modalities["n_features"].to_list())):
        ax.text(i, s, f"{100 * s:.1f}%\n({m} features)", ha="center", va="bottom", fontsize=8)
    top = float(np.max(share)) if len(share) and np.isfinite(share).all() else 1.0
    ax.set_ylim(0, max(top, 1e-9) * 1.3)
    ax.set_ylabel("share of total mean |attribution|")
    ax.set_title("attribution per modality")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_saliency(maps: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> None:
    """A grid: per person, the image and the image with its saliency overlaid."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(maps), figsize=(2.2 * len(maps), 4.6), squeeze=False)
    for j, (iid, image, saliency) in enumerate(maps):
        scale = np.percentile(saliency, 99) or 1.0
        axes[0, j].imshow(np.clip(image, 0, 1))
        axes[0, j].set_title(iid, fontsize=8)
        axes[1, j].imshow(np.clip(image, 0, 1).mean(-1), cmap="gray")
        axes[1, j].imshow(np.clip(saliency / scale, 0, 1), cmap="inferno", alpha=0.6)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("|IG| image→genetics", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def output_paths(prefix: str | Path, truth: bool, saliency: bool) -> dict[str, Path]:
    """Files written for ``prefix``: features/modalities/summary tables, the two figures, and
    the precision table and saliency figure when asked."""
    names = ["features.tsv", "modalities.tsv", "summary.tsv", "top_features.png",
             "modalities.png"]
    if truth:
        names.append("precision.tsv")
    if saliency:
        names.append("saliency.png")
    return {n: Path(f"{prefix}.{n}") for n in names}


def write_outputs(prefix: str | Path, features: pl.DataFrame, modalities: pl.DataFrame,
                  summary: pl.DataFrame, precision: pl.DataFrame | None,
                  saliency: Sequence[tuple[str, np.ndarray, np.ndarray]] | None
                  ) -> list[Path]:
    """Write every output for ``prefix`` as one atomic set (all or none); returns the paths."""
    paths = output_paths(prefix, precision is not None, bool(saliency))
    with atomic_paths(list(paths.values())) as temps:
        tmp = dict(zip(paths, temps))
        for name, table in (("features.tsv", features), ("modalities.tsv", modalities),
                            ("summary.tsv", summary), ("precision.tsv", precision)):
            if table is not None:
                table.write_csv(tmp[name], separator="\t", null_value="NA")
        plot_top_features(features, tmp["top_features.png"])
        plot_modality_shares(modalities, tmp["modalities.png"])
        if saliency:
            plot_saliency(saliency, tmp["saliency.png"])
    return list(paths.values())
