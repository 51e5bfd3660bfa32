"""External baseline adapter: FINCH (Sarfraz et al., CVPR 2019), not kfree's algorithm.

From PyPI ``finch-clust`` (module ``finch``; the PyPI package named ``finch`` is unrelated).
FINCH returns a hierarchy of partitions from first-neighbour relations; ``partition`` picks one.
Needs ``pip install kfree[baselines]``. Above 20,000 points FINCH wants an approximate 1-NN
index: its own code uses pynndescent (not a kfree dependency) up to 5M points and faiss beyond;
this adapter lets faiss (a kfree dependency; FINCH's IVF-PQ index, approximate) take over from
20,000 points, so the baseline runs at scale without another package.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_features
from ..exceptions import ConfigError, ParameterConflictWarning, user_stacklevel
from ..registry import register
from .labels import first_seen_labels


@register("cluster", "finch", requires=("finch", "baselines"))  # PyPI finch-clust
class FINCHBaseline(ClusterMixin, BaseEstimator):
    """External baseline: FINCH first-neighbour clustering (``finch-clust`` package).

    Parameters
    ----------
    partition : {"first", "last"} or int
        Which level of FINCH's hierarchy to return (``"first"`` is the finest, the one FINCH
        recommends when K is unknown is usually the second or third).
    n_clusters : int, optional
        Ask FINCH for exactly this many clusters instead (its ``req_clust``), K-known use.
    distance : {"cosine", "euclidean"}
    seed : int
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"distance", "n_clusters"})

    requires_n_clusters = False

    def __init__(
        self,
        partition: str | int = "first",
        *,
        n_clusters: int | None = None,
        distance: str = "cosine",
        seed: int = 0,
    ) -> None:
        self.partition = partition
        self.n_clusters = n_clusters
        self.distance = distance
        self.seed = seed

    def _check_params(self) -> None:
        k = self.n_clusters
        if k is not None and not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1):
            raise ConfigError(f"n_clusters={k!r} must be an int >= 1 (or None: FINCH's own partition)")
        p = self.partition
        if not (p in ("first", "last") or (isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 0)):
            raise ConfigError(f"partition={p!r} must be 'first', 'last' or a level number >= 0")

    def fit(self, X: Any, y: Any = None) -> FINCHBaseline:
        with warnings.catch_warnings():
            # FINCH warns at import when pynndescent is missing; past its exact range it is given
            # faiss here (ann_threshold/faiss_threshold below), so pynndescent is never needed
            warnings.filterwarnings("ignore", message="pynndescent is not installed")
            from finch import FINCH

        X = check_features(X, min_samples=1)
        self._check_params()
        if X.shape[0] < 3:  # FINCH needs 3 rows: each its own cluster, or K of them
            k = X.shape[0] if self.n_clusters is None else min(int(self.n_clusters), X.shape[0])
            self.labels_ = np.minimum(np.arange(X.shape[0], dtype=np.int64), k - 1)
            self.partitions_ = self.labels_[:, None]
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # FINCH prints its notices
                c, num_clust, req_c = FINCH(
                    np.asarray(X, dtype=np.float32), req_clust=self.n_clusters,
                    distance=self.distance, verbose=False, random_state=self.seed,
                    ann_threshold=20_000, faiss_threshold=20_001,
                )
            self.partitions_ = np.asarray(c)
            self.level_sizes_ = list(num_clust)
            if self.n_clusters is not None and num_clust[0] < self.n_clusters:
                warnings.warn(f"n_clusters={self.n_clusters}, but FINCH's finest partition has {num_clust[0]} "
                              f"clusters: returning those {num_clust[0]}", ParameterConflictWarning, stacklevel=user_stacklevel())
            if self.n_clusters is not None and req_c is not None:
                lab = np.asarray(req_c)
            elif self.partition == "first":
                lab = self.partitions_[:, 0]
            elif self.partition == "last":
                lab = self.partitions_[:, -1]
            else:
                lvl = int(self.partition)
                if not 0 <= lvl < self.partitions_.shape[1]:
                    raise ConfigError(
                        f"partition={lvl} but FINCH found {self.partitions_.shape[1]} levels"
                    )
                lab = self.partitions_[:, lvl]
            self.labels_ = first_seen_labels(np.asarray(lab))
        self.n_clusters_ = int(np.unique(self.labels_).size)
        self.n_features_in_ = X.shape[1]
        return self
