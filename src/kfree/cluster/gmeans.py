"""G-means (Hamerly & Elkan 2003): k-means that splits clusters that do not look Gaussian.

The BCL paper's second K-estimating baseline, as pyclustering (0.10.1.2) implements it: run
k-means; split every cluster in two by one 2-means run started from pyclustering's k-means++
variant (:func:`pyclustering_two_centres`); project its points on the line through the two child
centres, ``x* = <x, v> / |v|²`` with ``v = c1 − c2``; if the Anderson–Darling test rejects
normality of the projections (statistic at or above the critical value at ``alpha``), keep the
split; re-run k-means on all points from the new centres. Repeat until no cluster splits or
``k_max`` is reached.

How the child 2-means is started matters more than it looks. The Anderson–Darling critical values
hold for a direction fixed in advance, but ``v`` comes from the data: the lowest-inertia 2-means
split of a sample is along the direction where that sample looks most bimodal. Earlier versions
took the best of ``n_init`` k-means++ restarts (scikit-learn's), i.e. searched harder for that
direction, and rejected normality of truly Gaussian clusters of ~60 points in 6-d far more often
than ``alpha`` (on 20 ``make_blobs`` sets × 3 seeds: |K − K_true| summed to 43, pyclustering 18;
ten restarts split more still). pyclustering runs one 2-means from its own seeding — first
centre uniform, second the farthest of three D²-sampled candidates (its ``repeat`` restarts
reuse the same ``random_state``, so they are one run) — and so does this class now, with the same
random stream (Python's ``random`` seeded with ``seed`` for every split, as pyclustering seeds
with ``random_state``): it finds pyclustering's number of clusters on those 60 runs.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, ClusterMixin

from ..distances import check_features
from ..exceptions import ConfigError
from ..registry import register
from ._kmeans_utils import best_of, compact, lloyd

_LEVELS = (0.15, 0.10, 0.05, 0.025, 0.01)
# Stephens (1974) critical values of A² for a normal with estimated mean and variance, the
# table scipy.stats.anderson uses, adjusted by (1 + 0.75/n + 2.25/n²) and rounded like scipy.
_A_CRIT = (0.561, 0.631, 0.752, 0.873, 1.035)
#: Hamerly & Elkan's own level and critical value: A*² = A²(1 + 4/n − 25/n²) against 1.8692
HAMERLY_ELKAN = (0.0001, 1.8692)


def anderson_darling_normal(x: np.ndarray, alpha: float = 0.01) -> tuple[float, float]:
    """Anderson–Darling statistic A² of ``x`` against a normal with estimated mean/std, and
    the critical value at ``alpha`` (the same numbers as ``scipy.stats.anderson``; at
    ``alpha=0.0001``, Hamerly & Elkan's: 1.8692 / (1 + 4/n − 25/n²); infinite, no split, for n ≤ 4:
    at n = 3 that correction is negative, and four points give the test no power)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    z = (x - x.mean()) / x.std(ddof=1)
    i = np.arange(1, n + 1)
    a2 = -n - np.sum((2 * i - 1) / n * (stats.norm.logcdf(z) + stats.norm.logsf(z[::-1])))
    if alpha == HAMERLY_ELKAN[0]:
        factor = 1.0 + 4.0 / n - 25.0 / n / n
        return float(a2), (HAMERLY_ELKAN[1] / factor if n > 4 else math.inf)
    crit = round(_A_CRIT[_LEVELS.index(alpha)] / (1.0 + 0.75 / n + 2.25 / n / n), 3)
    return float(a2), float(crit)


def anderson_darling_split(points: np.ndarray, c1: np.ndarray, c2: np.ndarray, alpha: float = 0.01):
    """(statistic, critical value, split?) of G-means' test for one cluster and its children.

    The points are projected on ``v = c1 − c2`` (``x* = <x, v> / |v|²``); the cluster is split
    when the Anderson–Darling test rejects normality of the projections at level ``alpha``.
    """
    v = np.asarray(c1, dtype=np.float64) - np.asarray(c2, dtype=np.float64)
    proj = np.asarray(points, dtype=np.float64) @ v / float(v @ v)
    if np.ptp(proj) == 0:
        return 0.0, math.inf, False
    stat, crit = anderson_darling_normal(proj, alpha)
    return stat, crit, bool(stat >= crit)


def pyclustering_two_centres(points: np.ndarray, seed: int | None) -> np.ndarray:
    """Two initial centres of shape (2, n_features) chosen as pyclustering's
    ``kmeans_plusplus_initializer(points, 2, random_state=seed)`` chooses them.

    The first is a uniformly random point (``random.randint``); three candidates are drawn with
    probability proportional to the squared distance to it and the farthest is kept — where,
    as in pyclustering, the search starts from point 0 (so point 0 is compared too) and a draw
    past the last cumulative probability takes the smallest free index.
    """
    rng = random.Random(seed)
    n = points.shape[0]
    first = rng.randint(0, n - 1)
    d = np.sum(np.square(points - points[first]), axis=1)
    total = np.sum(d)
    cum = np.cumsum(d / total) if total != 0.0 else np.zeros(n)
    best = 0
    for _ in range(min(3, n)):
        cand = int(np.searchsorted(cum, rng.random(), side="right"))
        if cand >= n:
            best = 0 if first != 0 else 1
        elif d[best] < d[cand]:
            best = cand
    return np.stack([points[first], points[best]])


@register("cluster", "gmeans")
class GMeans(ClusterMixin, BaseEstimator):
    """G-means with the Anderson–Darling normality test.

    Parameters
    ----------
    k_max : int
        Most clusters allowed (-1: no bound).
    k_init : int
        Initial clusters (k-means++), default 1.
    alpha : {0.15, 0.1, 0.05, 0.025, 0.01, 0.0001}
        Significance level of the test. 0.01 (default) is pyclustering's, with scipy's critical
        values; 0.0001 is Hamerly & Elkan's own, with their correction of A² and critical value
        1.8692, and splits far less (a metrics audit, 32-d blobs of 100 points: 20 true clusters
        gave 71–85 at 0.01 and 24–26 at 0.0001, by seed).
    n_init : int
        k-means++ restarts (best inertia kept) of the initial clustering when ``k_init > 1``.
        Tentative splits always run once, from :func:`pyclustering_two_centres` (see the module
        docstring: restarts there make G-means over-split).
    tol : float
        scikit-learn's relative tolerance of every k-means run.
    seed : int
        Seeds the initial clustering and, like pyclustering's ``random_state``, every split.
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"k_max"})

    requires_n_clusters = False

    def __init__(
        self,
        k_max: int = -1,
        *,
        k_init: int = 1,
        alpha: float = 0.01,
        n_init: int = 3,
        tol: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.k_max = k_max
        self.k_init = k_init
        self.alpha = alpha
        self.n_init = n_init
        self.tol = tol
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> GMeans:
        X = check_features(X, min_samples=1).astype(np.float64)
        if self.alpha not in (*_LEVELS, HAMERLY_ELKAN[0]):
            raise ConfigError(f"alpha={self.alpha} must be one of {(*_LEVELS, HAMERLY_ELKAN[0])} (0.0001: Hamerly & "
                              "Elkan's test)")
        k_max = int(self.k_max)
        if k_max != -1 and k_max < int(self.k_init):
            raise ConfigError(f"k_max={k_max} must be -1 or >= k_init={self.k_init}")
        if int(self.k_init) < 1:
            raise ConfigError(f"k_init={self.k_init} must be >= 1")
        labels, centers, _ = best_of(
            X, min(int(self.k_init), X.shape[0]), n_init=int(self.n_init), seed=self.seed, tol=self.tol
        )
        seed = int(self.seed)
        while k_max <= 0 or centers.shape[0] < k_max:
            k_now = centers.shape[0]
            new_centers = []
            potential = k_now
            for j in range(k_now):
                idx = np.flatnonzero(labels == j)
                split = None
                if idx.size > 2 and (k_max == -1 or potential < k_max):
                    split = self._split(X[idx], seed)
                if split is None:
                    new_centers.append(centers[j])
                else:
                    new_centers.extend([split[0], split[1]])
                    potential += 1
            if len(new_centers) == k_now:
                break
            labels, centers, _ = lloyd(X, np.asarray(new_centers), tol=self.tol)
        self.labels_, self.cluster_centers_ = compact(labels, centers)
        self.n_clusters_ = int(self.cluster_centers_.shape[0])
        self.n_features_in_ = X.shape[1]
        return self

    def _split(self, points: np.ndarray, seed: int) -> np.ndarray | None:
        """The two child centres if the cluster ``points`` should split, else None."""
        init = pyclustering_two_centres(points, seed)
        if np.array_equal(init[0], init[1]):
            return None  # pyclustering drops the empty twin: one centre, no split
        cl, cc, _ = lloyd(points, init, tol=self.tol)
        if np.unique(cl).size < 2:
            return None
        _, _, reject = anderson_darling_split(points, cc[0], cc[1], self.alpha)
        return cc if reject else None
