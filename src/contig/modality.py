"""The on-disk contract for genetic modalities the model reads (raw SNPs, PRS, burden).

One ``.npz`` per modality holding:
- ``iid``: (n_samples,) str, the sample IDs (rows);
- ``feature``: (n_features,) str, the column names (variant IDs, score IDs, genes);
- either ``X``: (n_samples, n_features) float32 dense, or the CSR triplet ``X_data``,
  ``X_indices``, ``X_indptr`` with ``X_shape`` for sparse matrices (burden);
- any extra arrays a stage adds (e.g. ``chrom_offsets`` for SNPs, ``mean``/``std`` used to scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contig.atomic import atomic_path
from contig.errors import InputError


@dataclass
class Modality:
    """A samples x features matrix with its row and column labels."""

    iid: np.ndarray  # (n_samples,) str
    feature: np.ndarray  # (n_features,) str
    X: np.ndarray | sp.csr_matrix  # (n_samples, n_features)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = self.X.shape
        if len(self.iid) != n or len(self.feature) != m:
            raise ValueError(f"matrix {self.X.shape} does not match {len(self.iid)} IIDs x "
                             f"{len(self.feature)} features")

    def dense(self) -> np.ndarray:
        """The matrix as dense float32 ``(n_samples, n_features)``."""
        X = self.X.toarray() if sp.issparse(self.X) else self.X
        return np.asarray(X, dtype=np.float32)


def save_modality(path: str | Path, modality: Modality) -> None:
    """Write ``modality`` to ``path`` (.npz, uncompressed for fast loading) atomically."""
    arrays: dict[str, np.ndarray] = {
        "iid": np.asarray(modality.iid, dtype=str),
        "feature": np.asarray(modality.feature, dtype=str),
    }
    if sp.issparse(modality.X):
        csr = sp.csr_matrix(modality.X, dtype=np.float32)
        arrays |= {"X_data": csr.data, "X_indices": csr.indices, "X_indptr": csr.indptr,
                   "X_shape": np.array(csr.shape)}
    else:
        arrays["X"] = np.asarray(modality.X, dtype=np.float32)
    arrays |= modality.extra
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_modality(path: str | Path) -> Modality:
    """Read a modality written by :func:`save_modality`."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "X" in arrays:
        X = arrays.pop("X")
    elif "X_data" in arrays:
        X = sp.csr_matrix(
            (arrays.pop("X_data"), arrays.pop("X_indices"), arrays.pop("X_indptr")),
            shape=tuple(arrays.pop("X_shape")),
        )
    else:
        raise InputError("not a modality file (no X matrix)", path)
    return Modality(arrays.pop("iid"), arrays.pop("feature"), X, arrays)
