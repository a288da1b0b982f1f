"""Randomized Haseman-Elston regression (RHE-reg, Wu & Sankararaman 2018): SNP heritability of
many phenotypes from individual-level genotypes, with a block-jackknife SE.

Model: after projecting the covariates out (``P = I − QQᵀ``, ``Q = orth([1, C]) (n, c)``), a
phenotype's residual ``y_r = Py`` has ``E[y_r y_rᵀ] = σ_g²·K_p + σ_e²·P`` with ``K_p = PKP`` and the
GRM ``K = XXᵀ/M`` (``X (n, M)``: genotypes standardized by ``2p(1 − p)``, missing calls at the
mean). Haseman-Elston regression fits ``y_r y_rᵀ`` by least squares over all ``n²`` entries; its
normal equations are

    [tr(K_p²)  tr(K_p)] [σ_g²]   [y_rᵀ K y_r]
    [tr(K_p)   n − c  ] [σ_e²] = [y_rᵀ y_r  ],      h² = σ_g² / (σ_g² + σ_e²).

``tr(K_p)`` and ``y_rᵀKy_r = ‖Xᵀy_r‖²/M`` are computed exactly in one pass over the genotypes;
``tr(K_p²)`` by Hutchinson's estimator ``‖K_p Z‖²_F / B`` with ``B`` Rademacher probes ``Z (n, B)``
(``K_p Z = P·X·(Xᵀ·PZ)/M``): the cost is linear in people and variants, never an ``n × n``
matrix. ``probes = 0`` uses ``Z = I_n`` instead, which gives the traces, and the estimate, exactly.

SE: delete-one jackknife over contiguous variant blocks (each delete value drops the block's
variants from the GRM). Every statistic is a sum over blocks except ``‖P·S‖²`` with
``S = Σ_b S_b``, ``S_b = X_b X_bᵀ PZ``; it is updated through
``‖P(S − S_b)‖² = ‖PS‖² − 2⟨PS, S_b⟩ + ‖PS_b‖²``, where ``⟨PS, S_b⟩ = Σ_j (x_jᵀPS)·(x_jᵀPZ)`` over
the block's variants needs a second pass, after ``S`` is known. The phenotypes share one pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from contig.genotypes.plinkio import Genotypes
from contig.heritability.variants import VariantSet, hwe_standardized, iter_raw_blocks

log = logging.getLogger("contig.heritability")


@dataclass
class BlockMoments:
    """Per jackknife block (rows) the sums that the moment equations are made of."""

    n_variants: np.ndarray  # (n_blocks,) M_b
    yky: np.ndarray  # (n_blocks, p) Σ_{j∈b} (x_jᵀy_r)²
    trace_pk: np.ndarray  # (n_blocks,) Σ_{j∈b} ‖P x_j‖²
    probe_self: np.ndarray  # (n_blocks,) ‖P S_b‖²
    probe_cross: np.ndarray  # (n_blocks,) ⟨P S, S_b⟩
    probe_total: float  # ‖P S‖²
    n_probes: int  # B random probes, or 0: the identity (exact traces)
    yy: np.ndarray  # (p,) ‖y_r‖²
    df: int  # n − c = tr(P)


@dataclass
class RheEstimate:
    """h² and the variance components of each phenotype, with jackknife SEs."""

    h2: np.ndarray  # (p,)
    se: np.ndarray  # (p,)
    sigma_g: np.ndarray  # (p,) σ_g² (phenotype units²)
    sigma_e: np.ndarray  # (p,) σ_e²
    n_samples: int
    n_variants: int
    n_blocks: int
    delete_values: np.ndarray  # (n_blocks, p) h² with each block left out


def project_out(q: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``P·a = a − Q(Qᵀa)`` for an orthonormal ``q (n, c)`` and ``a (n, k)``."""
    return a - q @ (q.T @ a)


def probe_vectors(n: int, n_probes: int, seed: int) -> np.ndarray:
    """``Z (n, B)``: B Rademacher columns, or the identity ``(n, n)`` when ``n_probes`` is 0."""
    if n_probes == 0:
        return np.eye(n)
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0]), size=(n, n_probes))


def _first_pass(genotypes: Genotypes, sample_idx: np.ndarray, variants: VariantSet,
                q: np.ndarray, y_r: np.ndarray, zp: np.ndarray) -> tuple[BlockMoments, np.ndarray]:
    """Per block: ``Σ(x_jᵀy_r)²``, ``Σ‖Px_j‖²``, ``‖P S_b‖²``; and ``S = Σ_b S_b (n, B)``."""
    blocks = variants.block_slices()
    n_blocks, p = len(blocks), y_r.shape[1]
    yky, trace_pk, probe_self = np.zeros((n_blocks, p)), np.zeros(n_blocks), np.zeros(n_blocks)
    total = np.zeros_like(zp)
    for b, rows in enumerate(blocks):
        s_b = np.zeros_like(zp)
        for sub, raw in iter_raw_blocks(genotypes, sample_idx, variants, rows):
            x = hwe_standardized(raw, variants.alt_freq[sub])  # (m, n)
            yky[b] += np.einsum("ij,ij->j", x @ y_r, x @ y_r)
            xq = x @ q
            trace_pk[b] += np.einsum("ij,ij->", x, x) - np.einsum("ij,ij->", xq, xq)
            s_b += x.T @ (x @ zp)
        ps_b = project_out(q, s_b)
        probe_self[b] = np.einsum("ij,ij->", ps_b, ps_b)
        total += s_b
    moments = BlockMoments(np.array([r.stop - r.start for r in blocks]), yky, trace_pk, probe_self,
                           np.zeros(n_blocks), 0.0, 0,
                           np.einsum("ij,ij->j", y_r, y_r), len(sample_idx) - q.shape[1])
    return moments, total


def _second_pass(genotypes: Genotypes, sample_idx: np.ndarray, variants: VariantSet,
                 q: np.ndarray, zp: np.ndarray, total: np.ndarray, moments: BlockMoments) -> None:
    """``⟨PS, S_b⟩ = Σ_{j∈b} (x_jᵀPS)·(x_jᵀPZ)`` per block, and ``‖PS‖²``, into ``moments``."""
    ps = project_out(q, total)
    moments.probe_total = float(np.einsum("ij,ij->", ps, ps))
    both = np.hstack([ps, zp])
    k = zp.shape[1]
    for b, rows in enumerate(variants.block_slices()):
        for sub, raw in iter_raw_blocks(genotypes, sample_idx, variants, rows):
            products = hwe_standardized(raw, variants.alt_freq[sub]) @ both
            moments.probe_cross[b] += np.einsum("ij,ij->", products[:, :k], products[:, k:])


def block_moments(genotypes: Genotypes, sample_idx: np.ndarray, variants: VariantSet,
                  q: np.ndarray, y: np.ndarray, n_probes: int, seed: int) -> BlockMoments:
    """Two passes over the genotypes of ``variants`` for the phenotypes ``y (n, p)`` (people in
    ``sample_idx`` order) and the covariate basis ``q (n, c)``."""
    y_r = project_out(q, y)
    zp = project_out(q, probe_vectors(len(sample_idx), n_probes, seed))
    moments, total = _first_pass(genotypes, sample_idx, variants, q, y_r, zp)
    moments.n_probes = n_probes
    _second_pass(genotypes, sample_idx, variants, q, zp, total, moments)
    return moments


def solve_moment_equations(t11: np.ndarray | float, t12: np.ndarray | float, t22: float,
                           r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ_g², σ_e² from the 2 × 2 normal equations (module docstring); arrays broadcast."""
    det = t11 * t22 - t12 * t12
    sigma_g = (t22 * r1 - t12 * r2) / det
    sigma_e = (t11 * r2 - t12 * r1) / det
    return sigma_g, sigma_e


def _estimate(moments: BlockMoments, leave_out: int | None) -> tuple[np.ndarray, np.ndarray]:
    """σ_g², σ_e² ``(p,)`` from all blocks, or with block ``leave_out`` removed."""
    m = moments.n_variants.sum()
    yky, trace_pk = moments.yky.sum(axis=0), moments.trace_pk.sum()
    probe = moments.probe_total
    if leave_out is not None:
        b = leave_out
        m -= moments.n_variants[b]
        yky, trace_pk = yky - moments.yky[b], trace_pk - moments.trace_pk[b]
        probe = probe - 2 * moments.probe_cross[b] + moments.probe_self[b]
    # Hutchinson averages over the B probes; the identity's columns sum to the trace itself.
    t11 = probe / (m * m * max(moments.n_probes, 1))
    return solve_moment_equations(t11, trace_pk / m, moments.df, yky / m, moments.yy)


def heritability(sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
    return sigma_g / (sigma_g + sigma_e)


def jackknife_se(delete_values: np.ndarray) -> np.ndarray:
    """Delete-one jackknife SE ``(p,)`` from delete values ``(n_blocks, p)``."""
    k = delete_values.shape[0]
    deviation = delete_values - delete_values.mean(axis=0)
    return np.sqrt((k - 1) / k * np.einsum("ij,ij->j", deviation, deviation))


def estimate_from_moments(moments: BlockMoments, n_samples: int) -> RheEstimate:
    """h² of every phenotype and its jackknife SE over the blocks."""
    sigma_g, sigma_e = _estimate(moments, None)
    n_blocks = len(moments.n_variants)
    delete = np.array([heritability(*_estimate(moments, b)) for b in range(n_blocks)])
    return RheEstimate(heritability(sigma_g, sigma_e), jackknife_se(delete), sigma_g, sigma_e,
                       n_samples, int(moments.n_variants.sum()), n_blocks, delete)


def rhe(genotypes: Genotypes, sample_idx: np.ndarray, variants: VariantSet, q: np.ndarray,
        y: np.ndarray, n_probes: int, seed: int) -> RheEstimate:
    """Randomized HE regression of the phenotypes ``y (n, p)`` (module docstring)."""
    moments = block_moments(genotypes, sample_idx, variants, q, y, n_probes, seed)
    estimate = estimate_from_moments(moments, len(sample_idx))
    log.info("RHE: %d people, %d variants in %d jackknife blocks, %s", estimate.n_samples,
             estimate.n_variants, estimate.n_blocks,
             "exact traces" if n_probes == 0 else f"{n_probes} random probes")
    return estimate
