"""External baseline adapter: HDBSCAN (McInnes et al.; PyPI ``hdbscan``), not kfree's algorithm.

HDBSCAN labels low-density points as noise (-1); by default each noise point becomes its own
singleton cluster, so every metric sees a partition. Needs ``pip install kfree[baselines]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..config import check_choice, check_count
from ..distances import check_features, refuse_zero_rows
from ..exceptions import ConfigError, first_line
from ..metrics.clustering import singletons_for_noise
from ..registry import register
from .labels import first_seen_labels


@register("cluster", "hdbscan", requires=("hdbscan", "baselines"))
class HDBSCANBaseline(ClusterMixin, BaseEstimator):
    """External baseline: HDBSCAN (``hdbscan`` package).

    Parameters
    ----------
    min_cluster_size : int
    min_samples : int, optional
    metric : str
        Any metric ``hdbscan`` accepts, and ``"cosine"`` (1 − cos; hdbscan's trees do not take
        it, so it runs on the full distance matrix, O(n²) memory).
    noise : {"singletons", "keep"}
        Turn each noise point into its own cluster (default), or keep label -1.
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset()

    requires_n_clusters = False

    def __init__(
        self,
        min_cluster_size: int = 5,
        *,
        min_samples: int | None = None,
        metric: str = "euclidean",
        noise: str = "singletons",
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.metric = metric
        self.noise = noise

    def fit(self, X: Any, y: Any = None) -> HDBSCANBaseline:
        import hdbscan

        X = check_features(X, min_samples=1)
        check_choice("noise", self.noise, ("singletons", "keep"))
        size = check_count("min_cluster_size", self.min_cluster_size, 2, None)
        min_samples = check_count("min_samples", self.min_samples, 1, "min_cluster_size")
        if not isinstance(self.metric, str):
            raise ConfigError(f"metric={self.metric!r} must be a metric name such as 'euclidean' or 'cosine'")
        if X.shape[0] < 2:
            self.labels_ = np.zeros(X.shape[0], dtype=np.int64)
        else:
            refuse_zero_rows(X, self.metric)
            extra = {"algorithm": "generic"} if self.metric == "cosine" else {}
            try:
                model = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=min_samples, metric=self.metric,
                                        **extra).fit(np.array(X, dtype=np.float64))  # writable: hdbscan needs it
            except (ValueError, TypeError) as e:  # an unknown metric, or one hdbscan cannot use here
                first = first_line(e)
                raise ConfigError(f"hdbscan refused metric={self.metric!r}: {first[:200]}") from None
            raw = model.labels_.astype(np.int64)
            self.n_noise_ = int((raw < 0).sum())
            self.labels_ = first_seen_labels(singletons_for_noise(raw)) if self.noise == "singletons" else raw
        # with noise kept, -1 is not a cluster
        self.n_clusters_ = int(np.unique(self.labels_[self.labels_ >= 0]).size)
        self.n_features_in_ = X.shape[1]
        return self
