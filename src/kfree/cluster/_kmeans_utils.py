"""k-means helpers shared by the K-known and K-estimating baselines (scikit-learn Lloyd)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from .labels import first_seen_labels


def lloyd(X: np.ndarray, centers: np.ndarray, *, tol: float = 1e-4, max_iter: int = 300):
    """k-means from the given centres: (labels, centres, total within-cluster sq. error)."""
    km = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, tol=tol, max_iter=max_iter)
    km.fit(X)
    return km.labels_.astype(np.int64), km.cluster_centers_, float(km.inertia_)


def best_of(X: np.ndarray, k: int, *, n_init: int, seed: int, tol: float = 1e-4):
    """k-means++ with ``n_init`` restarts, best inertia kept: (labels, centres, inertia)."""
    k = min(k, X.shape[0])
    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, tol=tol, random_state=seed)
    km.fit(X)
    return km.labels_.astype(np.int64), km.cluster_centers_, float(km.inertia_)


def compact(labels: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels renumbered 0..k-1 in order of first appearance, and the centres of the clusters
    used, in that order (so ``centres[l]`` is the centre of cluster ``l``; empty clusters go)."""
    used, first = np.unique(labels, return_index=True)
    return first_seen_labels(labels), centers[used[np.argsort(first)]]
