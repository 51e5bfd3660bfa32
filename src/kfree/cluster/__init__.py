"""Clustering back-ends on plain arrays (never import torch or kfree.losses here).

All share scikit-learn's interface: ``fit(X)`` sets ``labels_`` and ``n_clusters_``;
``fit_predict`` comes from ``ClusterMixin``. The class flag ``requires_n_clusters`` says
whether a back-end needs K; ``reports_progress`` (default False) that its ``fit`` takes a
``hook(stage, done, total)`` for progress.

- K not needed: :class:`ThresholdAgglomerative` (exact threshold HAC, dense or sparse),
  :class:`MulticutClustering` (GAEC + KLj), and the K-estimating baselines :class:`XMeans`,
  :class:`GMeans`.
- K needed: :class:`KMeansClustering`, :class:`AgglomerativeK`.
- External baselines (other people's algorithms; their optional packages are imported only in
  ``fit``): :class:`HDBSCANBaseline`, :class:`FINCHBaseline`; and the approximate reference
  :class:`KNNConnectedComponents`.

Each class registers its CLI name with :func:`kfree.registry.register`; importing this package
registers them all.
"""

from ..registry import CLUSTER_CAPABILITIES as CAPABILITIES  # (what a clusterer may declare)
from .external_finch import FINCHBaseline
from .external_hdbscan import HDBSCANBaseline
from .gmeans import GMeans
from .hac_k import AgglomerativeK
from .kmeans import KMeansClustering
from .knn_components import KNNConnectedComponents
from .multicut import MulticutClustering
from .threshold_hac import ThresholdAgglomerative
from .ward import WardThreshold
from .xmeans import XMeans

__all__ = [
    "CAPABILITIES",
    "AgglomerativeK",
    "FINCHBaseline",
    "GMeans",
    "HDBSCANBaseline",
    "KMeansClustering",
    "KNNConnectedComponents",
    "MulticutClustering",
    "ThresholdAgglomerative",
    "WardThreshold",
    "XMeans",
]

