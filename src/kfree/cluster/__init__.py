"""Clustering back-ends on plain arrays (never import torch or kfree.losses here).

All share scikit-learn's interface: ``fit(X)`` sets ``labels_`` and ``n_clusters_``;
``fit_predict`` comes from ``ClusterMixin``. The class flag ``requires_n_clusters`` says
whether a back-end needs K.
"""

from .multicut import MulticutClustering
from .threshold_hac import ThresholdAgglomerative

__all__ = ["MulticutClustering", "ThresholdAgglomerative"]
