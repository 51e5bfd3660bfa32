"""k-means with K given (the K-known baseline of both papers), k-means++ with restarts.

The number of clusters is an input, so results must say where it came from: ``k_source``
(``"oracle"`` when the true number of classes was used, as in the papers' k-means rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_features
from ..exceptions import ConfigError, DataError
from ..registry import register
from ._kmeans_utils import compact


@register("cluster", "kmeans")
class KMeansClustering(ClusterMixin, BaseEstimator):
    """k-means++ with ``n_init`` restarts (best inertia kept).

    Parameters
    ----------
    n_clusters : int
    n_init : int
        Restarts (default 10).
    backend : {"sklearn", "faiss"}
        scikit-learn's Lloyd with k-means++ seeding (default), or faiss (random seeding, much
        faster for large n and K; ``n_init`` becomes faiss's ``nredo``).
    k_source : str
        Where ``n_clusters`` came from, echoed in ``k_source_`` (``"oracle"``: the true K).
    seed : int

    Attributes
    ----------
    labels_, n_clusters_, cluster_centers_, inertia_, k_source_
    n_iter_ : int
        Lloyd iterations of the kept run (faiss: the fixed number it runs).
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"n_clusters"})

    requires_n_clusters = True

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_init: int = 10,
        backend: str = "sklearn",
        k_source: str = "oracle",
        seed: int = 0,
        max_iter: int = 300,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.backend = backend
        self.k_source = k_source
        self.seed = seed
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any = None) -> KMeansClustering:
        X = check_features(X, min_samples=1)
        k = int(self.n_clusters)
        if k < 1:
            raise ConfigError(f"n_clusters={self.n_clusters} must be >= 1")
        if int(self.n_init) < 1:
            raise ConfigError(f"n_init={self.n_init} must be >= 1")
        if k > X.shape[0]:
            raise DataError(f"n_samples={X.shape[0]} must be >= n_clusters={k}")
        if self.backend == "sklearn":
            from sklearn.cluster import KMeans

            km = KMeans(
                n_clusters=k, init="k-means++", n_init=int(self.n_init), random_state=self.seed,
                max_iter=int(self.max_iter),
            ).fit(X)
            labels, centres = km.labels_, km.cluster_centers_
            self.inertia_ = float(km.inertia_)
            self.n_iter_ = int(km.n_iter_)
        elif self.backend == "faiss":
            import faiss

            X32 = np.ascontiguousarray(X, dtype=np.float32)
            km = faiss.Kmeans(
                X32.shape[1], k, niter=int(min(self.max_iter, 50)), nredo=int(self.n_init),
                seed=int(self.seed), verbose=False, max_points_per_centroid=1_000_000,
            )
            km.train(X32)
            d, idx = km.index.search(X32, 1)
            labels, centres = idx.ravel(), km.centroids.copy()
            self.inertia_ = float(d.sum())
            self.n_iter_ = int(min(self.max_iter, 50))  # faiss runs a fixed number of iterations
        else:
            raise ConfigError(f"backend={self.backend!r} is not one of ('sklearn', 'faiss')")
        # first-seen labels as every clusterer gives them; the centres of the clusters used, in
        # that order (with fewer distinct points than K, some centres get no point)
        self.labels_, self.cluster_centers_ = compact(labels, centres)
        self.n_clusters_ = int(self.cluster_centers_.shape[0])
        self.k_source_ = self.k_source
        self.n_features_in_ = X.shape[1]
        return self
