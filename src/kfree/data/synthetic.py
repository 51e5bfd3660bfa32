"""Seeded synthetic data: Gaussian blobs on the unit sphere (for tests, examples, benchmarks)."""

from __future__ import annotations

import numpy as np


def sphere_blobs(
    n_clusters: int,
    n_per_cluster: int | np.ndarray,
    dim: int = 16,
    *,
    spread: float = 0.3,
    normalize: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``x = normalise(c + N(0, spread²/dim · I))`` with centres ``c`` uniform on the unit sphere.

    Returns ``X`` float32 of shape (n, dim) and integer labels ``y`` of shape (n,).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = np.broadcast_to(np.asarray(n_per_cluster), (n_clusters,))
    y = np.repeat(np.arange(n_clusters), sizes)
    X = centres[y] + rng.standard_normal((y.shape[0], dim)) * spread / np.sqrt(dim)
    if normalize:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y.astype(np.int64)
