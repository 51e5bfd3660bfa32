"""Agglomerative clustering cut at K clusters (the K-known HAC baseline)."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, ClusterMixin

from ..registry import register
from .threshold_hac import ThresholdAgglomerative


@register("cluster", "hac-k")
class AgglomerativeK(ClusterMixin, BaseEstimator):
    """HAC (full dense tree, fastcluster) cut into exactly ``n_clusters`` clusters.

    A thin K-known front for :class:`ThresholdAgglomerative` so registries and reports can tell
    the two roles apart; ``k_source_`` records where K came from (``"oracle"``: the true K).

    Parameters
    ----------
    n_clusters : int
    linkage : {"complete", "average", "single"}
    distance : {"sqeuclidean", "euclidean", "cosine"}
    k_source : str
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"distance", "linkage", "n_clusters"})

    requires_n_clusters = True

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        linkage: str = "complete",
        distance: str = "sqeuclidean",
        k_source: str = "oracle",
    ) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.distance = distance
        self.k_source = k_source

    def fit(self, X: Any, y: Any = None) -> AgglomerativeK:
        hac = ThresholdAgglomerative(
            n_clusters=self.n_clusters, linkage=self.linkage, distance=self.distance
        ).fit(X)
        self.tree_ = hac
        self.labels_ = hac.labels_
        self.n_clusters_ = hac.n_clusters_
        self.linkage_matrix_ = hac.linkage_matrix_
        self.k_source_ = self.k_source
        self.n_features_in_ = hac.n_features_in_
        return self
