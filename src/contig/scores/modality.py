"""The on-disk contract for genetic modalities the model reads (raw SNPs, PRS, burden).

One ``.npz`` per modality holding:
- ``iid``: (n_samples,) str, the sample IDs (rows);
- ``feature``: (n_features,) str, the column names (variant IDs, score IDs, genes);
- either ``X``: (n_samples, n_features) float32 dense, or the CSR triplet ``X_data``,
  ``X_indices``, ``X_indptr`` with ``X_shape`` for sparse matrices (burden);
- any extra arrays a stage adds (e.g. ``chrom_offsets`` for SNPs, ``mean``/``std`` used to scale).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contig.core.atomic import atomic_path
from contig.core.errors import InputError

log = logging.getLogger(__name__)

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
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # .npz files are zip archives
            raise InputError("not a modality file (not an .npz archive)", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as error:
        if "allow_pickle" in str(error):  # object arrays would need unpickling: refused, never loaded
            raise InputError("not a modality file (holds pickled Python objects, which are not "
                             "read)", path) from None
        raise InputError(f"not a modality file ({str(error).splitlines()[0]})", path) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:  # a truncated or corrupt archive
        raise InputError(f"not a modality file ({str(error).splitlines()[0]})", path) from None
    missing = [k for k in ("iid", "feature") if k not in arrays]
    if missing:
        raise InputError(f"not a modality file (no {' or '.join(missing)} array)", path)
    try:
        if "X" in arrays:
            X = arrays.pop("X")
        elif {"X_data", "X_indices", "X_indptr", "X_shape"} <= set(arrays):
            X = sp.csr_matrix(
                (arrays.pop("X_data"), arrays.pop("X_indices"), arrays.pop("X_indptr")),
                shape=tuple(arrays.pop("X_shape")),
            )
        else:
            raise InputError("not a modality file (no X matrix)", path)
        return Modality(arrays.pop("iid"), arrays.pop("feature"), X, arrays)
    except (ValueError, TypeError) as error:  # inconsistent shapes or CSR arrays
        raise InputError(f"not a modality file ({str(error).splitlines()[0]})", path) from None


def without_empty_modalities(modalities: Mapping[str, Modality],
                             sources: Mapping[str, str | Path]) -> dict[str, Modality]:
    """``modalities`` less those with zero features (e.g. gene burden on common-variant array
    data), each left out with a warning naming its file in ``sources``."""
    kept = {}
    for name, modality in modalities.items():
        if modality.X.shape[1] == 0:
            log.warning("modality %s has no features: left out of the loss (%s)", name,
                        sources.get(name, name))
        else:
            kept[name] = modality
    return kept
