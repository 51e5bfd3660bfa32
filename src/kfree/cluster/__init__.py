"""Clustering back-ends on plain arrays (never import torch or kfree.losses here).

All share scikit-learn's interface: ``fit(X)`` sets ``labels_`` and ``n_clusters_``;
``fit_predict`` comes from ``ClusterMixin``. The class flag ``requires_n_clusters`` says
whether a back-end needs K.

- K not needed: :class:`ThresholdAgglomerative` (exact threshold HAC, dense or sparse),
  :class:`MulticutClustering` (GAEC + KLj), and the K-estimating baselines :class:`XMeans`,
  :class:`GMeans`.
- K needed: :class:`KMeansClustering`, :class:`AgglomerativeK`.
- External baselines (other people's algorithms, optional packages): :class:`HDBSCANBaseline`,
  :class:`FINCHBaseline`; and the approximate reference :class:`KNNConnectedComponents`.
"""

from .gmeans import GMeans
from .hac_k import AgglomerativeK
from .kmeans import KMeansClustering
from .knn_components import KNNConnectedComponents
from .multicut import MulticutClustering
from .threshold_hac import ThresholdAgglomerative
from .xmeans import XMeans

__all__ = [
    "AgglomerativeK",
    "GMeans",
    "KMeansClustering",
    "KNNConnectedComponents",
    "MulticutClustering",
    "ThresholdAgglomerative",
    "XMeans",
]


def __getattr__(name: str):
    # external adapters import their optional packages only when used
    if name == "HDBSCANBaseline":
        from .external_hdbscan import HDBSCANBaseline

        return HDBSCANBaseline
    if name == "FINCHBaseline":
        from .external_finch import FINCHBaseline

        return FINCHBaseline
    raise AttributeError(name)
