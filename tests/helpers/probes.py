"""Embeddings, label and trait sheets for the probe and trait-decodability tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def correlated(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """``(n, p)`` features with correlated columns and non-zero means."""
    return rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + rng.normal(size=p)


def write_probe_inputs(tmp_path: Path, n: int = 300, p: int = 8, seed: int = 0):
    """Two methods (signal, noise) and labels disease (binary) and severity (grades 0-3).

    ``signal`` lacks the last person, the label sheet has an EXTRA person and P0005 has no
    severity. Returns ({method: parquet}, labels path, iid (n,), signal (n, p), disease (n,)).
    """
    rng = np.random.default_rng(seed)
    iid = np.array([f"P{i:04d}" for i in range(n)])
    signal = rng.normal(size=(n, p))
    noise = rng.normal(size=(n, p))
    disease = (signal[:, 0] + 0.5 * rng.normal(size=n) > 0.6).astype(int)
    severity = np.searchsorted([0.0, 0.8, 1.6], signal[:, 1] + signal[:, 2] + 0.5 * rng.normal(size=n))
    order = rng.permutation(n)  # row order of one parquet must not matter
    paths = {}
    for name, values, rows in [("signal", signal, np.arange(n - 1)), ("noise", noise, order)]:
        table = pl.DataFrame({"IID": iid[rows], **{f"dim_{k:04d}": values[rows, k] for k in range(p)}})
        paths[name] = tmp_path / f"{name}.parquet"
        table.write_parquet(paths[name])
    labels = pl.DataFrame({"IID": list(iid) + ["EXTRA"], "disease": list(map(str, disease)) + ["1"],
                           "severity": [str(s) for s in severity] + ["2"]})
    labels = labels.with_columns(pl.when(pl.col("IID") == "P0005").then(None)
                                 .otherwise(pl.col("severity")).alias("severity"))
    labels.write_csv(tmp_path / "labels.tsv", separator="\t", null_value="NA")
    return paths, tmp_path / "labels.tsv", iid, signal, disease


def write_traits(tmp_path: Path, iid: np.ndarray, signal: np.ndarray, seed: int = 1):
    """Traits of the people + EXTRA: size (planted on the signal method), noise, width (P0007
    missing), population (text). Returns (path, size (n,), width (n,))."""
    rng = np.random.default_rng(seed)
    n = len(iid)
    size = signal[:, 0] + signal[:, 1] + rng.normal(size=n)
    width = signal[:, 2] + 0.5 * rng.normal(size=n)
    noise = rng.normal(size=n)
    table = pl.DataFrame({
        "IID": list(iid) + ["EXTRA"],
        "population": ["POP2" if i % 3 == 2 else "POP1" for i in range(n)] + ["POP1"],
        "size": list(size) + [0.0], "noise": list(noise) + [1.0],
        "width": [None if person == "P0007" else float(v) for person, v in zip(iid, width)] + [1.0],
    })
    table.write_csv(tmp_path / "traits.tsv", separator="\t", null_value="NA")
    return tmp_path / "traits.tsv", size, width
