"""Integrated Gradients of each held-out person's ContIG loss over their genetic inputs.

Shapes: ``Q`` explained people, ``R`` reference people, ``m`` features of a modality, ``d`` the
embedding size, ``S`` integration steps.

For a person ``i`` held out by a fold model (so the attribution is out-of-sample), the explained
scalar is ``i``'s own ContIG loss against a fixed reference set of ``R`` other held-out people of
that fold, whose image and genetic embeddings are computed once and held constant:

    L_i = mean over modalities of  α · CE(image_i → genetics of {i} ∪ R)
                                 + (1 − α) · CE(genetics_i → images of {i} ∪ R)

with the checkpoint's τ and α (one image per person, chosen as in ``contig embed``). With a batch
made of ``i`` and ``R``, averaging ``L_j`` over every member ``j`` against the others gives
exactly :func:`contig.pretrain.losses.image_genetics_loss`. ``L_i`` is a function of ``i``'s
genetic input vectors only (all modalities jointly; the encoders run in eval mode, so BatchNorm
uses its running statistics and rows do not interact), and Integrated Gradients (captum) splits
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

from contig.core.errors import InputError
from contig.pretrain.checkpoint import TrainedModel, load_checkpoint, load_trained_model
from contig.pretrain.augment import eval_images, to_float_images
from contig.pretrain.data import Cohort, PersonImages, build_cohort, read_image_cache
from contig.pretrain.embed import EYES, backbone_features, choose_images
from contig.scores.modality import Modality


@dataclass
class ExplainSettings:
    """Settings of one ``contig explain`` run (the CLI's defaults): people, reference set and
    integration of the attributions; window and k of precision@k; saliency maps (people)."""

    n_people: int = 256
    n_reference: int = 64
    steps: int = 32
    noise_samples: int = 0
    noise_sd: float = 0.1
    batch_size: int = 32
    eye: str = "left"
    seed: int = 0
    window_kb: float = 250.0
    top_k: tuple[int, ...] = (10, 20, 50)
    saliency: int = 0

    def validate(self) -> None:
        if self.n_people < 1 or self.n_reference < 1 or self.steps < 2 or self.batch_size < 1:
            raise ValueError("n_people, n_reference and batch_size must be >= 1, steps >= 2")
        if self.noise_samples < 0 or self.noise_sd < 0:
            raise ValueError("noise samples and noise sd must be >= 0")
        if self.eye not in EYES:
            raise ValueError(f"eye must be one of {EYES}, got {self.eye!r}")
        if self.window_kb < 0 or not self.top_k or min(self.top_k) < 1 or self.saliency < 0:
            raise ValueError("window_kb and saliency must be >= 0, top_k non-empty and >= 1")


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

    @classmethod
    def concatenate(cls, parts: Sequence[Attributions], feature: Mapping[str, np.ndarray],
                    n_reference: Sequence[int]) -> Attributions:
        """The people of every part (each fold's), in order; features named by ``feature``."""
        def cat(items: list, dtype=np.float64) -> np.ndarray:
            return np.concatenate(items).astype(dtype) if items else np.zeros(0, dtype)

        return cls(
            iid=cat([p.iid for p in parts], str),
            model_index=cat([p.model_index for p in parts], np.int64),
            values={n: (np.concatenate([p.values[n] for p in parts]) if parts
                        else np.zeros((0, len(f)))) for n, f in feature.items()},
            loss=cat([p.loss for p in parts]), baseline_loss=cat([p.baseline_loss for p in parts]),
            delta=cat([p.delta for p in parts]), feature=dict(feature),
            n_reference=list(n_reference))

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
    ref images), the terms :func:`contig.pretrain.losses.image_genetics_loss` averages over a batch.
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
    ``image_emb`` ``(Q, M, d)`` (the image projection paired with each modality) is held
    constant; ``ref_image`` is ``(R, M, d)``."""

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
        losses = [person_contrastive_loss(image_emb[:, i], self.model.genetic[name](x),
                                          self.ref_image[:, i], self.ref_genetic[name],
                                          self.temperature, self.alpha)
                  for i, (name, x) in enumerate(zip(self.names, inputs))]
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
    """Image projections ``(P, M, d)`` of ``people`` for each of the model's M modalities (one
    image per person: the chosen eye, or the mean backbone feature for ``eye="mean"``) and how
    many people lacked the eye (their other image was used). With a shared image head the M
    projections are equal."""
    chosen = choose_images(images.subset(people), eye)
    feats = backbone_features(em.model, cache, chosen.rows, em.trained.image_size, device)
    with torch.no_grad():
        proj = image_projections(em.model, torch.from_numpy(feats).to(device), em.modalities)
    return proj, int(chosen.fell_back.sum())


def image_projections(model: nn.Module, features: torch.Tensor, names: Sequence[str]
                      ) -> torch.Tensor:
    """Backbone features ``(B, D)`` → ``(B, M, d)``: the image projection paired with each of the
    modalities ``names`` (one head per modality, or the shared head repeated)."""
    return torch.stack([model.image_head_for(n)(features) for n in names], 1)


def feature_means(cohort: Cohort) -> dict[str, np.ndarray]:
    """The baseline: each feature's mean over the cohort's people, ``{name: (m,)}`` float32."""
    means = {}
    for name, g in cohort.genetics.items():
        X = g.X
        mean = np.asarray(X.mean(axis=0)).ravel() if sp.issparse(X) else X.mean(axis=0)
        means[name] = np.asarray(mean, np.float32)
    return means




def _rows(cohort: Cohort, name: str, people: np.ndarray, device: torch.device) -> torch.Tensor:
    X, _ = cohort.genetics[name].rows(people)
    return torch.from_numpy(X).to(device)


@dataclass
class ExplainContext:
    """What :func:`image_saliency` reuses: the image cache ``(N, H, W, 3)``, the cohort, each
    fold's people and each fold's reference embeddings (image ``(R_k, M, d)``, genetic per
    modality ``(R_k, d)``)."""

    cache: np.ndarray
    cohort: Cohort
    folds: list[FoldPeople]
    reference: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = field(default_factory=list)


def reference_embeddings(em: ExplainModel, context: ExplainContext, people: np.ndarray,
                         eye: str, device: torch.device
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Image ``(R, M, d)`` and genetic ``{name: (R, d)}`` embeddings of the reference people, and
    how many of them lacked the eye."""
    ref_img, fallback = image_embeddings(em, context.cache, context.cohort.images, people, eye,
                                         device)
    with torch.no_grad():
        ref_gen = {n: em.model.genetic[n](_rows(context.cohort, n, people, device))
                   for n in em.modalities}
    return ref_img, ref_gen, fallback


def attribute_fold(k: int, loss: PersonLoss, cohort: Cohort, people: np.ndarray,
                   image_emb: torch.Tensor, baseline: Mapping[str, torch.Tensor],
                   settings: ExplainSettings, device: torch.device) -> Attributions:
    """Integrated Gradients of fold model ``k``'s explained ``people`` (Q_k,) in batches; their
    image projections ``image_emb`` (Q_k, M, d) are held constant. The noise tunnel of each batch
    is seeded by (seed, k, batch start)."""
    names = loss.names
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    losses, base_losses, deltas = [], [], []
    for start in range(0, len(people), settings.batch_size):
        batch = people[start:start + settings.batch_size]
        x = tuple(_rows(cohort, n, batch, device) for n in names)
        b = tuple(baseline[n] for n in names)
        e = image_emb[start:start + settings.batch_size]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([settings.seed, k, start])
                                  .generate_state(1)[0]))
            attr, delta = integrated_gradients(loss, x, b, e, settings.steps,
                                               settings.noise_samples, settings.noise_sd)
        with torch.no_grad():
            losses.append(loss(*x, e).cpu().numpy())
            base_losses.append(loss(*(bb.expand_as(xx) for bb, xx in zip(b, x)), e).cpu().numpy())
        deltas.append(delta.cpu().numpy())
        for n, a in zip(names, attr):
            values[n].append(a.cpu().numpy())
    return Attributions(cohort.iid[people], np.full(len(people), k, np.int64),
                        {n: np.concatenate(v) for n, v in values.items()},
                        np.concatenate(losses), np.concatenate(base_losses),
                        np.concatenate(deltas), {})


def explain_models(models: Sequence[ExplainModel], cache_prefix: str | Path,
                   modalities: Mapping[str, Modality], settings: ExplainSettings,
                   device: torch.device | str = "cpu",
                   sources: Mapping[str, str | Path] | None = None
                   ) -> tuple[Attributions, list[str], ExplainContext]:
    """Integrated Gradients of every explained person's loss, gathered over the fold models.

    Returns the :class:`Attributions`, log lines, and the :class:`ExplainContext` that
    :func:`image_saliency` reuses.
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
    context = ExplainContext(cache, cohort, folds)
    parts = []
    for k, (em, fp) in enumerate(zip(models, folds)):
        ref_img, ref_gen, ref_fallback = reference_embeddings(em, context, fp.reference,
                                                              settings.eye, device)
        context.reference.append((ref_img, ref_gen))
        if len(fp.explained) == 0:
            continue
        img, fallback = image_embeddings(em, cache, cohort.images, fp.explained, settings.eye,
                                         device)
        if settings.eye != "mean":
            report.append(f"{em.path}: {fallback} explained and {ref_fallback} reference people "
                          f"lacked the {settings.eye} eye and used their other image")
        loss = PersonLoss(em.model, names, ref_img, ref_gen, em.temperature, em.alpha)
        parts.append(attribute_fold(k, loss, cohort, fp.explained, img, baseline, settings,
                                    device))
    result = Attributions.concatenate(
        parts, {n: np.asarray(modalities[n].feature).astype(str) for n in names},
        [len(fp.reference) for fp in folds])
    return result, report + completeness_report(result, settings, len(models)), context


def completeness_report(result: Attributions, settings: ExplainSettings, n_models: int
                        ) -> list[str]:
    """Log lines: what was explained, and captum's completeness check."""
    c = result.completeness()
    return [f"explained {len(result.iid)} people with {n_models} model(s): integrated "
            f"gradients, {settings.steps} steps, baseline = cohort feature means"
            + (f", noise tunnel {settings.noise_samples} samples, sd {settings.noise_sd:g}"
               if settings.noise_samples else "")
            + f"; mean loss {np.mean(result.loss):.4f}, at the baseline "
            f"{np.mean(result.baseline_loss):.4f}",
            f"completeness: mean |sum(attr) - (L(x) - L(baseline))| = "
            f"{c['mean_abs_delta']:.3g}, {100 * c['relative_delta']:.2f}% of mean "
            f"|L(x) - L(baseline)| = {c['mean_abs_loss_gap']:.3g}"]


# ---------------------------------------------------------------------------------------------
# Image saliency
# ---------------------------------------------------------------------------------------------

def image_saliency(models: Sequence[ExplainModel], attr: Attributions, context: ExplainContext,
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
    cache, cohort = context.cache, context.cohort
    position = {iid: i for i, iid in enumerate(cohort.iid)}
    out = []
    for q in chosen:
        k = int(attr.model_index[q])
        em = models[k]
        person = np.array([position[attr.iid[q]]])
        rows = choose_images(cohort.images.subset(person), settings.eye).rows
        pixels = torch.from_numpy(np.asarray(cache[int(rows[0][0])])[None].copy()).to(device)
        x = eval_images(pixels, em.trained.image_size)
        black = eval_images(torch.zeros_like(pixels), em.trained.image_size)
        _, ref_gen = context.reference[k]
        names = list(em.modalities)
        with torch.no_grad():
            own_gen = {nm: em.model.genetic[nm](_rows(cohort, nm, person, device)) for nm in names}

        def image_term(images: torch.Tensor) -> torch.Tensor:
            features = em.model.backbone(images)
            terms = []
            for nm in names:
                v = F.normalize(em.model.image_head_for(nm)(features), dim=-1)
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


