"""The scan's matrix products, on NumPy or torch (CPU or GPU), and the chunk size that keeps a
worker's float copy of its genotypes in cache."""

from __future__ import annotations

import contextlib

import numpy as np

from contig.core.errors import InputError

# Float buffer per worker that keeps a chunk in the last-level cache between centring and the
# product: measured here (5,000 people), 64-variant chunks scan 1.3-1.5x faster than 2,048.
CHUNK_BUFFER_BYTES = 5 << 19
MIN_AUTO_CHUNK = 64  # below this the product re-reads the right-hand sides too often per variant
MAX_AUTO_CHUNK = 2048


def auto_chunk_size(n_samples: int, dtype: str = "float64") -> int:
    """Variants per chunk so that one worker's float buffer ``(chunk, n_samples)`` is ~2.5 MiB,
    between 64 and 2,048 variants (64 from ~5,000 people up: 36 MB per worker at 70,000)."""
    per_variant = max(1, n_samples) * np.dtype(dtype).itemsize
    return int(min(MAX_AUTO_CHUNK, max(MIN_AUTO_CHUNK, CHUNK_BUFFER_BYTES // per_variant)))


class NumpyBackend:
    """Centre genotype chunks into a reused float buffer and multiply them by the right-hand sides.

    One backend per scan worker: the buffer belongs to the worker's current chunk.
    """

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.buffer = np.empty((chunk_size, n_samples), dtype=self.dtype)

    def prepare(self, rhs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rhs, dtype=self.dtype)

    def centre(self, genotypes: np.ndarray, mean: np.ndarray, has_missing: bool) -> np.ndarray:
        """``G_c (m, n)``: int8 ``genotypes (m, n)`` minus their means, missing calls (-9) at 0."""
        centred = self.buffer[: genotypes.shape[0]]
        np.subtract(genotypes, mean.astype(self.dtype)[:, None], out=centred)
        if has_missing:
            centred[genotypes < 0] = 0.0
        return centred

    def multiply(self, centred: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``G_c · rhs`` as float64 ``(m, q)`` for ``rhs (n, q)``."""
        return np.asarray(centred @ rhs, dtype=np.float64)


class TorchBackend:
    """The same arithmetic through torch (``device`` "cuda" or "cpu"): the int8 chunk is copied to
    the device and centred there."""

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        self.buffer = torch.empty((chunk_size, n_samples), dtype=self.dtype, device=self.device)

    def prepare(self, rhs: np.ndarray):
        return self.torch.as_tensor(np.ascontiguousarray(rhs), device=self.device).to(self.dtype)

    def centre(self, genotypes: np.ndarray, mean: np.ndarray, has_missing: bool):
        torch = self.torch
        g = torch.from_numpy(genotypes).to(self.device)
        centred = self.buffer[: genotypes.shape[0]]
        centred.copy_(g)
        centred.sub_(torch.as_tensor(mean, device=self.device).to(self.dtype)[:, None])
        if has_missing:
            centred.masked_fill_(g < 0, 0.0)
        return centred

    def multiply(self, centred, rhs) -> np.ndarray:
        return (centred @ rhs).to(self.torch.float64).cpu().numpy()


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
