"""X-means (Pelleg & Moore 2000): k-means that estimates K by splitting clusters under BIC.

One of the BCL paper's K-estimating baselines (it over-clusters real embeddings: Table 2). The
loop follows pyclustering's reference implementation so results can be compared with it:
improve parameters (k-means from the current centres), then improve structure (split every
cluster in two with 2-means++ on its own points and keep the split when the children's BIC is
higher than the parent's, while fewer than ``k_max`` centres exist), until nothing splits.

The BIC is Pelleg & Moore's (spherical Gaussians with one shared variance, the model's free
parameters counted once), see :func:`xmeans_bic`. pyclustering subtracts the parameters' penalty
once per cluster, so a split pays it twice over: with 128-d features that alone made X-means stop
early (7–36 clusters for AT&T's 40 people, by seed, against 109–113 with the paper's BIC; found by a
metrics audit). ``bic="pyclustering"`` gives its variant, to compare with it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_features
from ..exceptions import ConfigError, KfreeWarning, user_stacklevel
from ..registry import register
from ._kmeans_utils import best_of, compact, lloyd

#: the BICs :func:`xmeans_bic` computes: the paper's, and pyclustering's variant
BICS = ("pelleg-moore", "pyclustering")


def xmeans_bic(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, *, bic: str = "pelleg-moore") -> float:
    """BIC of a k-means solution (higher is better), Pelleg & Moore's (2000, eq. 2–4) or, with
    ``bic="pyclustering"``, pyclustering's X-means variant.

    ``sigma² = Σ |x − c|² / (N − K)``, ``p = (K − 1) + d·K + 1`` free parameters, and per
    cluster ``L_j = n_j log n_j − n_j log N − n_j/2 log 2π − n_j d/2 log sigma² − (n_j − K)/2``;
    BIC = ``Σ_j L_j − p/2 log N`` (pyclustering: ``Σ_j (L_j − p/2 log N)``, the penalty once per
    cluster). Returns ``-inf`` when ``N <= K``.
    """
    if bic not in BICS:
        raise ConfigError(f"bic={bic!r} is not one of {', '.join(map(repr, BICS))}")
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    K = centers.shape[0]
    N = X.shape[0]
    d = X.shape[1]
    if N - K <= 0:
        return -math.inf
    diff = X - centers[labels]
    sigma_sq = float(np.einsum("ij,ij->", diff, diff)) / (N - K)
    p = (K - 1) + d * K + 1
    mult = -math.inf if sigma_sq <= 0 else d * 0.5 * math.log(sigma_sq)
    total = 0.0
    used = 0
    for j in range(K):
        n = int((labels == j).sum())
        if n == 0:
            continue
        used += 1
        total += n * math.log(n) - n * math.log(N) - n * 0.5 * math.log(2 * math.pi) - n * mult - (n - K) * 0.5
    return total - (used if bic == "pyclustering" else 1) * p * 0.5 * math.log(N)


@register("cluster", "xmeans")
class XMeans(ClusterMixin, BaseEstimator):
    """X-means with the BIC splitting criterion and an upper bound ``k_max``.

    Parameters
    ----------
    k_max : int or None
        Most clusters allowed (the BCL paper used 40/80/150/300). ``None`` (default): no bound but
        the number of rows, so BIC alone decides. A fit that reaches ``k_max`` warns: the data may
        hold more clusters (a default of 20, pyclustering's, once capped 79 unseen CelebA
        identities at 20 clusters without a word; unbounded, BIC stopped at 53).
    k_init : int
        Initial centres (k-means++), default 2, so X-means never answers 1. ``k_init=1`` can, but
        splitting a cloud of many clusters in two does not always raise the BIC (the two halves'
        shares cost likelihood), and it then stops at 1: 30 blobs of 20 points in 4-d, well apart,
        gave 1 cluster from 1 and 31 from 2.
    initial_centers : ndarray of shape (k_init, n_features), optional
        Start from these centres instead (to compare with other implementations).
    n_init_split : int
        2-means++ restarts per tentative split.
    tol : float
        k-means tolerance.
    bic : ``"pelleg-moore"`` (default) or ``"pyclustering"``
        Which BIC decides a split (see :func:`xmeans_bic`).
    seed : int

    Attributes
    ----------
    labels_, n_clusters_, cluster_centers_, bic_
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`): the paper's K_max
    capabilities = frozenset({"k_max"})

    requires_n_clusters = False

    def __init__(
        self,
        k_max: int | None = None,
        *,
        k_init: int = 2,
        initial_centers: np.ndarray | None = None,
        n_init_split: int = 3,
        tol: float = 1e-4,
        bic: str = "pelleg-moore",
        seed: int = 0,
    ) -> None:
        self.k_max = k_max
        self.k_init = k_init
        self.initial_centers = initial_centers
        self.n_init_split = n_init_split
        self.tol = tol
        self.bic = bic
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> XMeans:
        X = check_features(X, min_samples=1).astype(np.float64)
        n = X.shape[0]
        if self.bic not in BICS:
            raise ConfigError(f"bic={self.bic!r} is not one of {', '.join(map(repr, BICS))}")
        if self.k_max is not None and int(self.k_max) < 1:
            raise ConfigError(f"k_max={self.k_max} must be >= 1 (or None: no bound)")
        # no bound: as many clusters as rows (and no fewer than k_init, which is clipped to the rows)
        k_max = max(n, int(self.k_init)) if self.k_max is None else int(self.k_max)
        if self.initial_centers is not None:
            centers = np.asarray(self.initial_centers, dtype=np.float64)
            if centers.ndim != 2 or centers.shape[1] != X.shape[1]:
                raise ConfigError(
                    f"initial_centers must have shape (k, {X.shape[1]}), got {centers.shape}"
                )
            if not 1 <= centers.shape[0] <= k_max:
                raise ConfigError(f"initial_centers has {centers.shape[0]} rows; X-means starts from "
                                  f"1 to k_max={k_max} centres")
        else:
            k0 = int(self.k_init)
            if not 1 <= k0 <= k_max:
                raise ConfigError(f"k_init={k0} must be in [1, k_max={k_max}]")
            _, centers, _ = best_of(X, min(k0, n), n_init=1, seed=self.seed, tol=self.tol)
        rng_seed = int(self.seed)
        capped = False
        while centers.shape[0] <= k_max:
            k_now = centers.shape[0]
            labels, centers, _ = lloyd(X, centers, tol=self.tol)
            new_centers = []
            free = k_max - k_now
            for j in range(k_now):
                idx = np.flatnonzero(labels == j)
                if idx.size < 2 or free <= 0:
                    capped |= idx.size >= 2  # (a cluster left untried: the bound, not BIC, stopped it)
                    new_centers.append(centers[j])
                    continue
                rng_seed += 1
                sub = X[idx]
                cl, cc, _ = best_of(sub, 2, n_init=int(self.n_init_split), seed=rng_seed, tol=self.tol)
                if np.unique(cl).size < 2:
                    new_centers.append(centers[j])
                    continue
                parent = xmeans_bic(sub, np.zeros(idx.size, dtype=np.int64), centers[j : j + 1], bic=self.bic)
                child = xmeans_bic(sub, cl, cc, bic=self.bic)
                if parent < child:
                    new_centers.extend([cc[0], cc[1]])
                    free -= 1
                else:
                    new_centers.append(centers[j])
            if len(new_centers) == k_now:
                break
            centers = np.asarray(new_centers)
        labels, centers, _ = lloyd(X, centers, tol=self.tol)
        self.labels_, self.cluster_centers_ = compact(labels, centers)
        self.n_clusters_ = int(self.cluster_centers_.shape[0])
        self.bic_ = xmeans_bic(X, self.labels_, self.cluster_centers_, bic=self.bic)
        self.n_features_in_ = X.shape[1]
        if capped:
            warnings.warn(KfreeWarning(
                f"X-means stopped at k_max={k_max} clusters with clusters left to try splitting: the data may hold "
                "more; raise k_max (None: no bound)"), stacklevel=user_stacklevel())
        return self
