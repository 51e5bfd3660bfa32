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


def random_connected_graph(n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """Edges (m, 2), ``i < j``, of a connected random graph on ``n`` nodes, mean degree ~``degree``.

    A random spanning path (so the graph is connected) plus uniformly drawn extra edges; for
    multicut instances with i.i.d. costs (tests and ``benchmarks/run_multicut.py``).
    """
    perm = rng.permutation(n)
    E = {tuple(sorted((int(perm[i]), int(perm[i + 1])))) for i in range(n - 1)}
    while len(E) < max(n - 1, n * degree // 2):
        u, v = (int(t) for t in rng.integers(0, n, 2))
        if u != v:
            E.add((min(u, v), max(u, v)))
    return np.array(sorted(E), dtype=np.int64).reshape(-1, 2)
