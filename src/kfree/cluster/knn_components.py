"""Threshold connected components on an approximate kNN graph (faiss IVF): a fast reference.

Join every point to those of its ``k`` approximate nearest neighbours within ``threshold``
and take connected components — single linkage restricted to a kNN graph. It is what large
systems do when exact clustering is out of reach, and the baseline kfree's exact sparse HAC is
measured against: fast, but the result depends on the ANN recall and chains through bridges.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from .._exact_distances import grid_centre
from ..config import check_choice
from ..distances import check_features, prepare, resolve_cut, to_sq
from ..exceptions import ConfigError
from ..registry import register
from ..threshold import Threshold
from .linkage_core import connected_components


@register("cluster", "knn-cc")
class KNNConnectedComponents(ClusterMixin, BaseEstimator):
    """Connected components of the kNN graph with edges at ``<= threshold``.

    Parameters
    ----------
    threshold : float or Threshold
        Edge threshold in units of ``distance`` (a Threshold brings its own kind).
    k : int
        Neighbours per point (default 10).
    distance : {"sqeuclidean", "euclidean", "cosine"}, optional
        ``None`` (default): a Threshold's own kind, else sqeuclidean; set, a Threshold of the
        other Euclidean kind is converted (:func:`kfree.distances.resolve_cut`).
    index : {"ivf", "flat", "hnsw"}
        faiss index: IVF-Flat (``nlist``, ``nprobe``), exact Flat, or HNSW (M = 32).
    nlist : int, optional
        IVF cells (default ``4·sqrt(n)``).
    nprobe : int
    seed : int
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"distance", "threshold"})

    requires_n_clusters = False
    #: its threshold joins single pairs (a cluster is chained through its k-NN edges), so a
    #: model's validated cut, a cluster's diameter, is no threshold for it
    joins_single_pairs = True

    def __init__(
        self,
        threshold: float | Threshold = 1.0,
        *,
        k: int = 10,
        distance: str | None = None,
        index: str = "ivf",
        nlist: int | None = None,
        nprobe: int = 8,
        seed: int = 0,
    ) -> None:
        self.threshold = threshold
        self.k = k
        self.distance = distance
        self.index = index
        self.nlist = nlist
        self.nprobe = nprobe
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> KNNConnectedComponents:
        import faiss

        self.threshold_ = resolve_cut(self.threshold, self.distance)
        distance = self.threshold_.distance
        if int(self.k) < 1:
            raise ConfigError(f"k={self.k} must be >= 1")
        check_choice("index", self.index, ("ivf", "flat", "hnsw"))
        X = check_features(X, min_samples=1)
        if distance != "cosine":  # centred in float64 first: float32 distances far from the origin cancel
            X = np.asarray(X, dtype=np.float64)
            X = X - grid_centre(X.min(axis=0), X.max(axis=0))
        Xp = prepare(X, distance)
        n, d = Xp.shape
        k = min(int(self.k) + 1, n)
        if self.index == "flat" or n < 1000:
            idx = faiss.IndexFlatL2(d)
        elif self.index == "hnsw":
            idx = faiss.IndexHNSWFlat(d, 32)
        else:  # ivf
            nlist = int(self.nlist or max(1, min(n // 39, int(4 * np.sqrt(n)))))
            q = faiss.IndexFlatL2(d)
            idx = faiss.IndexIVFFlat(q, d, nlist)
            rng = np.random.default_rng(self.seed)
            train = Xp[rng.choice(n, size=min(n, nlist * 64), replace=False)]
            idx.train(train)
            idx.nprobe = int(self.nprobe)
        idx.add(Xp)
        D, I = idx.search(Xp, k)
        thr = to_sq(self.threshold_.value, distance)
        rows = np.repeat(np.arange(n), k)
        cols = I.ravel()
        ok = (cols >= 0) & (D.ravel() <= thr) & (cols != rows)
        self.labels_ = connected_components(n, rows[ok].astype(np.int64), cols[ok].astype(np.int64))
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.n_features_in_ = X.shape[1]
        return self
