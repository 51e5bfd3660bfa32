"""Ward's minimum-variance agglomeration cut at a merge height (or at K).

Why a second agglomerative clusterer: complete linkage at a *distance* threshold is BCL's
stopping rule and stays exact at scale because its clusters never span two components of the
τ-radius graph (:class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative`). Ward's merge
height is not a pairwise distance — joining clusters A and B costs
``sqrt(2·|A|·|B| / (|A| + |B|)) · ‖c_A − c_B‖`` (scipy's convention; two single points merge at
their Euclidean distance) — so no radius graph bounds it. What Ward offers instead is robustness
on embeddings whose classes are not balls: on held-out classes of every data set we measured
(``results/unseen/``) a Ward cut at a height calibrated on *validation* classes recovered the
number of classes far better than a complete-linkage cut. The learner offers it as one
candidate clustering rule and picks it only when it wins on validation classes.

The cut height depends on the size of the clusters being merged, so a height calibrated on
validation classes transfers to data whose classes have about as many items each; the learner's
validation classes should be drawn like the data to be clustered.

Memory is O(n·d) (fastcluster's nearest-neighbour chain on the vectors, no distance matrix);
time is O(n²·d), so it suits up to about 10⁵ points.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_features, resolve_cut
from ..exceptions import ConfigError, DataError, ScaleWarning, user_stacklevel
from ..registry import register
from ..threshold import Threshold
from .labels import first_seen_labels
from .threshold_hac import check_cut, linkage_cut_at_k

#: above this many rows a fit says beforehand that it will take minutes and show no progress
#: (a user trial: 29,471 rows of 512 features took 12 minutes without a word)
WARD_SLOW_ROWS = 20_000


def ward_tree(X: np.ndarray) -> np.ndarray:
    """Ward's dendrogram of ``X`` (n, d) in scipy's linkage-matrix format (float64 heights)."""
    import fastcluster

    X = np.ascontiguousarray(X, dtype=np.float64)
    # centring changes no Ward height and keeps the centroid arithmetic well conditioned
    X = X - X.mean(axis=0, keepdims=True)
    from ..utils.signals import stoppable

    with stoppable():  # (minutes above 20,000 rows: Ctrl-C and kill end it at once)
        return fastcluster.linkage_vector(X, method="ward", metric="euclidean")


@register("cluster", "ward")
class WardThreshold(ClusterMixin, BaseEstimator):
    """Ward agglomeration cut where the merge height exceeds ``threshold`` (or at ``n_clusters``).

    Parameters
    ----------
    threshold : float or Threshold, optional
        Cut height in Ward units (Euclidean for two single points); merges at ``<= threshold``
        happen, as in scipy's ``fcluster(Z, t, 'distance')``. A Threshold in squared Euclidean
        units is converted; a cosine one is refused.
    n_clusters : int, optional
        Cut into exactly this many clusters instead. Set one of the two; as in
        :class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative`, parameters are checked in
        :meth:`fit`, and when both are set ``n_clusters`` wins with a
        :class:`~kfree.exceptions.ParameterConflictWarning`.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    n_clusters_ : int
    linkage_matrix_ : ndarray of shape (n_samples - 1, 4)
    threshold_ : Threshold or None
        The height cut at, in Euclidean units (``None`` when cut at ``n_clusters``).
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"n_clusters", "threshold"})

    requires_n_clusters = False

    def __init__(self, threshold: float | Threshold | None = None, *, n_clusters: int | None = None) -> None:
        self.threshold = threshold
        self.n_clusters = n_clusters

    def fit(self, X: Any, y: Any = None) -> WardThreshold:
        from scipy.cluster.hierarchy import fcluster

        check_cut(self.threshold, self.n_clusters, merge_height=True)
        # Ward merge heights are in Euclidean units (two single points merge at their distance)
        if getattr(self.threshold, "distance", None) == "cosine" and self.n_clusters is None:
            raise ConfigError(f"Ward cuts at a merge height in Euclidean units, and threshold {self.threshold.value:g} "
                              "is a cosine distance: L2-normalise the rows (Euclidean distance then ranks pairs as "
                              "cosine does) and give a Euclidean height, or use ThresholdAgglomerative(distance='cosine')")
        self.threshold_ = None if self.n_clusters is not None else resolve_cut(self.threshold, "euclidean", merge_height=True)
        X = check_features(X, min_samples=1)
        n = X.shape[0]
        self.n_features_in_ = X.shape[1]
        if n == 1:
            self.linkage_matrix_ = np.zeros((0, 4))
            self.labels_ = np.zeros(1, dtype=np.int64)
            self.n_clusters_ = 1
            return self
        if n > WARD_SLOW_ROWS:
            warnings.warn(ScaleWarning(
                f"Ward's agglomeration of {n:,} rows takes O(n²·d) time with no progress shown: minutes at this size "
                "(complete linkage at a threshold, the default method, is faster and shows progress)"), stacklevel=user_stacklevel())
        Z = ward_tree(X)
        self.linkage_matrix_ = Z
        if self.n_clusters is None:
            labels = fcluster(Z, self.threshold_.value, criterion="distance")
        else:
            k = int(self.n_clusters)
            if k > n:
                raise DataError(f"n_samples={n} must be >= n_clusters={k}")
            labels = linkage_cut_at_k(Z, k)
        self.labels_ = first_seen_labels(labels)
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self

