"""The scan's matrix products, on NumPy or torch (CPU or GPU), and the chunk size of a worker.

Products are formed as ``rhsᵀ·Gᵀ (q, m)`` (phenotypes and covariates by variants): for these
shapes (n people deep, m and q ≤ a few hundred wide) OpenBLAS runs that orientation at
40-55 GFLOP/s a core here against 28-40 for ``G·rhs``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from contig.core.errors import InputError

# Float buffer per worker: 10 MiB, 262 variants of 5,000 people in float64. The products re-read
# the right-hand sides once per chunk, so chunks of 256-1,024 variants run ~1.4x faster than 64
# (measured here at 37 and 133 columns); the calls are decoded straight into this buffer, so
# there is no int8 copy that a small chunk would keep in cache.
CHUNK_BUFFER_BYTES = 10 << 20
MIN_AUTO_CHUNK = 64  # below this the product re-reads the right-hand sides too often per variant
MAX_AUTO_CHUNK = 2048


def auto_chunk_size(n_samples: int, dtype: str = "float64") -> int:
    """Variants per chunk so that one worker's float buffer ``(chunk, n_samples)`` is ~10 MiB,
    between 64 and 2,048 variants (64 from ~20,000 people up: 36 MB per worker at 70,000)."""
    per_variant = max(1, n_samples) * np.dtype(dtype).itemsize
    return int(min(MAX_AUTO_CHUNK, max(MIN_AUTO_CHUNK, CHUNK_BUFFER_BYTES // per_variant)))


@dataclass(frozen=True)
class PreparedRhs:
    """Right-hand sides ``rhs (n, q)`` as a backend multiplies them: ``matrix`` = rhsᵀ ``(q, n)``
    in the backend's dtype (on its device), ``column_sums (q,)`` float64 = 1ᵀ·rhs of those same
    values (to centre products of uncentred genotypes afterwards, :class:`NumpyBackend`)."""

    matrix: object
    column_sums: np.ndarray


class NumpyBackend:
    """Hard calls decoded into a reused float buffer, multiplied by the right-hand sides.

    In float64 the calls are not centred: with ``mean (m,)`` the variants' means,
    ``(G − mean·1ᵀ)·rhs = G·rhs − mean·(1ᵀrhs)``, a rank-one correction of the small product
    instead of a pass over the ``(m, n)`` block (:meth:`impute_calls`, :meth:`multiply`; ~10%
    of the scan). Summing uncentred calls rounds a little more (measured: β within 5e-14 SE of
    its exact value against 3e-15 centred, 5,000 people); in float32 that would be ~1e-4 SE,
    so float32 blocks are centred. One backend per scan worker: the buffer belongs to the
    worker's current chunk.
    """

    centres_calls = False

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.buffer = np.empty((chunk_size, n_samples), dtype=self.dtype)

    def prepare(self, rhs: np.ndarray) -> PreparedRhs:
        matrix = np.ascontiguousarray(rhs.T, dtype=self.dtype)
        return PreparedRhs(matrix, matrix.sum(axis=1, dtype=np.float64))

    def genotypes(self, block: np.ndarray) -> np.ndarray:
        """A centred ``(m, n)`` block (dosages) in the backend's dtype."""
        return np.ascontiguousarray(block, dtype=self.dtype)

    def impute_calls(self, calls: np.ndarray, mean: np.ndarray,
                     has_missing: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Float ALT counts ``calls (m, n)`` (-9 missing, decoded into :attr:`buffer`) with the
        missing ones set to their variant's mean (mean imputation, in place), and the offsets
        ``(m,)`` float64 that :meth:`multiply` is to subtract: the means as the buffer holds
        them. float32: centred in place instead (missing calls at 0), offsets None."""
        offsets = mean.astype(self.dtype)
        if has_missing:
            np.copyto(calls, offsets[:, None], where=calls < 0)
        if self.dtype == np.float64:
            return calls, offsets.astype(np.float64)
        calls -= offsets[:, None]
        return calls, None

    def multiply(self, genotypes: np.ndarray, rhs: PreparedRhs,
                 offsets: np.ndarray | None = None) -> np.ndarray:
        """``rhsᵀ·(G − offsets·1ᵀ)ᵀ`` as float64 ``(q, m)`` for ``genotypes (m, n)``."""
        products = np.asarray(rhs.matrix @ genotypes.T, dtype=np.float64)
        if offsets is not None:
            products -= np.outer(rhs.column_sums, offsets)
        return products


class TorchBackend:
    """The same arithmetic through torch (``device`` "cuda" or "cpu"): the int8 chunk is copied to
    the device and centred there."""

    centres_calls = True

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        self.buffer = torch.empty((chunk_size, n_samples), dtype=self.dtype, device=self.device)

    def prepare(self, rhs: np.ndarray) -> PreparedRhs:
        matrix = self.torch.as_tensor(np.ascontiguousarray(rhs.T), device=self.device).to(self.dtype)
        return PreparedRhs(matrix, matrix.sum(dim=1, dtype=self.torch.float64).cpu().numpy())

    def genotypes(self, block: np.ndarray):
        """A centred ``(m, n)`` block (dosages) on the device, in the backend's dtype."""
        return self.torch.as_tensor(np.ascontiguousarray(block), device=self.device).to(self.dtype)

    def centre(self, genotypes: np.ndarray, mean: np.ndarray, has_missing: bool):
        torch = self.torch
        g = torch.from_numpy(genotypes).to(self.device)
        centred = self.buffer[: genotypes.shape[0]]
        centred.copy_(g)
        centred.sub_(torch.as_tensor(mean, device=self.device).to(self.dtype)[:, None])
        if has_missing:
            centred.masked_fill_(g < 0, 0.0)
        return centred

    def multiply(self, centred, rhs: PreparedRhs, offsets: np.ndarray | None = None) -> np.ndarray:
        """``rhsᵀ·G_cᵀ`` as float64 ``(q, m)`` (the calls come centred: no ``offsets``)."""
        return (rhs.matrix @ centred.T).to(self.torch.float64).cpu().numpy()


def make_backend(device: str, n_samples: int, chunk_size: int, dtype: str):
    """``cpu`` = NumPy; ``cpu-torch`` = torch on the CPU (tests the torch path); ``cuda`` = GPU."""
    if device == "cpu":
        return NumpyBackend(n_samples, chunk_size, np.dtype(dtype))
    if device in ("cuda", "cpu-torch") or device.startswith("cuda:"):
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise InputError("--device cuda: no CUDA device is available", "torch")
        return TorchBackend(n_samples, chunk_size, np.dtype(dtype),
                            "cpu" if device == "cpu-torch" else device)
    raise InputError(f"unknown device {device!r} (cpu, cpu-torch, cuda)", "--device")


@contextlib.contextmanager
def single_threaded_blas(device: str):
    """The scan workers are the parallelism: BLAS calls inside them use one thread each (BLAS
    threads that spin between calls would otherwise compete with the other workers)."""
    if device != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
