"""Agglomerative clustering cut at a distance threshold (no K needed), or at K clusters.

This is the clustering step of Ball Cluster Learning: complete linkage on squared Euclidean
distances cut at ``tau = 4b``. A pair at exactly the threshold counts as joinable (``<=``), as in
scipy's ``fcluster(Z, t, 'distance')``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_distance, check_features, condensed_distances
from ..exceptions import ConfigError, DataError

LINKAGES = ("complete", "average", "single")


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 in order of first appearance (deterministic, comparable across methods)."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv.ravel()].astype(np.int64)


class ThresholdAgglomerative(ClusterMixin, BaseEstimator):
    """Hierarchical agglomerative clustering cut at ``threshold`` (or at ``n_clusters``).

    Parameters
    ----------
    threshold : float, optional
        Cut height in units of ``distance``; pairs at ``<= threshold`` may be joined. For
        unit-norm embeddings typical values are in ``[0, 4]`` (sqeuclidean).
    n_clusters : int, optional
        Cut the tree into exactly this many clusters instead. Set exactly one of the two.
    linkage : {"complete", "average", "single"}
    distance : {"sqeuclidean", "euclidean", "cosine"}

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    n_clusters_ : int
    linkage_matrix_ : ndarray of shape (n_samples - 1, 4)
        The scipy-format dendrogram, so :meth:`labels_at` cuts at other heights without refitting.
    """

    requires_n_clusters = False

    def __init__(
        self,
        threshold: float | None = None,
        *,
        n_clusters: int | None = None,
        linkage: str = "complete",
        distance: str = "sqeuclidean",
    ) -> None:
        self.threshold = threshold
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.distance = distance

    def _validate_params(self) -> None:  # type: ignore[override]
        if (self.threshold is None) == (self.n_clusters is None):
            raise ConfigError(
                f"set exactly one of threshold={self.threshold!r} and n_clusters={self.n_clusters!r}"
            )
        if self.threshold is not None and not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ConfigError(f"threshold={self.threshold!r} must be a finite number > 0")
        if self.n_clusters is not None and int(self.n_clusters) < 1:
            raise ConfigError(f"n_clusters={self.n_clusters!r} must be >= 1")
        if self.linkage not in LINKAGES:
            raise ConfigError(f"linkage={self.linkage!r} is not one of {LINKAGES}")
        check_distance(self.distance)

    def fit(self, X: Any, y: Any = None) -> "ThresholdAgglomerative":
        import fastcluster

        self._validate_params()
        X = check_features(X, min_samples=1)
        n = X.shape[0]
        if self.n_clusters is not None and int(self.n_clusters) > n:
            raise DataError(f"n_samples={n} must be >= n_clusters={self.n_clusters}")
        self.n_features_in_ = X.shape[1]
        if n == 1:
            self.linkage_matrix_ = np.zeros((0, 4))
            self.labels_ = np.zeros(1, dtype=np.int64)
            self.n_clusters_ = 1
            return self
        d = condensed_distances(X, self.distance)
        self.linkage_matrix_ = fastcluster.linkage(d, method=self.linkage, preserve_input=False)
        if self.threshold is not None:
            self.labels_ = self.labels_at(float(self.threshold))
        else:
            self.labels_ = self.labels_at_k(int(self.n_clusters))
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self

    def labels_at(self, threshold: float) -> np.ndarray:
        """Labels for a cut at ``threshold`` (``<=`` joins, as scipy), from the fitted tree."""
        Z = self.linkage_matrix_
        if Z.shape[0] == 0:
            return np.zeros(1, dtype=np.int64)
        return _relabel(fcluster(Z, t=float(threshold), criterion="distance"))

    def labels_at_k(self, k: int) -> np.ndarray:
        """Labels for a cut into ``k`` clusters, from the fitted tree."""
        Z = self.linkage_matrix_
        if Z.shape[0] == 0:
            return np.zeros(1, dtype=np.int64)
        return _relabel(fcluster(Z, t=int(k), criterion="maxclust"))
