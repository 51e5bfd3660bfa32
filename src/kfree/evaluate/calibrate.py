"""Choose a clustering threshold on labelled validation data, for losses that imply none.

**Validation #clusters match** (the BCL paper's baseline protocol): build the complete-linkage
dendrogram of the validation embeddings once and cut it between the two merge heights that
bracket the true number of clusters. That is exact and deterministic — no search needed,
because the number of clusters of a monotone dendrogram only changes at merge heights.

**Logistic regression on pair distances** (the ICPR 2020 protocol for triplet L1): fit
``p(different | d) = σ(w·d + c)`` on labelled pairs (same identity → 0, different → 1). It gives
*cut probabilities* for every pair — the edge costs of a minimum cost multicut — and its 0.5
crossing ``d* = −c/w`` is a threshold for HAC. :class:`LogisticCalibration` is a small frozen
record (two numbers and a distance kind) that serialises to a dict, so a saved model can carry it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..cluster.threshold_hac import ThresholdAgglomerative
from ..cluster.ward import ward_tree
from ..distances import check_distance, pair_distances
from ..exceptions import ConfigError, DataError
from ..threshold import Threshold


def threshold_for_n_clusters(
    Z: np.ndarray, n_clusters: int, *, distance: str = "sqeuclidean", linkage: str = "complete"
) -> Threshold:
    """The cut height at which HAC of ``Z`` yields ``n_clusters`` clusters.

    Parameters
    ----------
    Z : ndarray of shape (n, d), validation embeddings.
    n_clusters : the true number of validation identities (``1 <= n_clusters < n``).

    Returns the midpoint between the merge heights that bracket ``n_clusters``
    (:func:`cut_height`; on tied merge heights, see there).
    """
    n = Z.shape[0]
    if not 1 <= n_clusters < n:
        raise DataError(f"calibration needs 1 <= n_clusters < n_samples, got n_clusters={n_clusters}, n={n}")
    hac = ThresholdAgglomerative(n_clusters=n_clusters, distance=distance, linkage=linkage).fit(Z)
    value = cut_height(hac.linkage_matrix_[:, 2], n_clusters)
    return Threshold(value=value, distance=distance, source=f"validation #clusters={n_clusters}")


def cut_height(heights: np.ndarray, n_clusters: int) -> float:
    """A height at which a tree with merge ``heights`` (the ``n − 1`` merges of ``n`` points, any
    order) falls into ``n_clusters`` clusters: the midpoint between the merges that leave
    ``n_clusters`` and ``n_clusters − 1`` clusters.

    The midpoint, not either merge height, so that rounding cannot put the cut on the wrong side
    of a merge. ``n_clusters = n`` cuts below the first merge; ``n_clusters = 1`` cuts above the
    last merge, at ``1.5 ×`` its height (plus 5e-7). Where the merges that leave ``n_clusters``
    and ``n_clusters − 1`` clusters share a height, no height gives exactly ``n_clusters``: the
    cut is then at that height, where pairs at the threshold join, so the count is the smaller
    one the tie allows (not necessarily the nearest). Always > 0, as a Threshold must be.
    """
    h = np.sort(heights)
    n = h.shape[0] + 1
    # after m merges there are n - m clusters: the cut lies between merge n-k-1 and merge n-k
    lo = h[n - n_clusters - 1] if n - n_clusters - 1 >= 0 else 0.0
    hi = h[n - n_clusters] if n - n_clusters < h.shape[0] else lo * 2 + 1e-6
    value = float((lo + hi) / 2.0) if hi > lo else float(lo)
    if value <= 0:
        value = float(hi) / 2 if hi > 0 else float(np.nextafter(0.0, 1.0))
    return value


def merge_tree(Z: np.ndarray, linkage: str) -> np.ndarray:
    """The merge tree (a SciPy linkage matrix) that validation cuts: Ward's, or the linkage's in
    squared Euclidean distances (the unit of every calibrated pair-distance cut)."""
    if linkage == "ward":
        return ward_tree(Z)
    return ThresholdAgglomerative(n_clusters=1, linkage=linkage, distance="sqeuclidean",
                                  algorithm="dense").fit(Z).linkage_matrix_


#: the rows per identity a :class:`SizeCurve` calibrates its cuts at (below the largest identity)
SIZE_GRID = (2, 3, 5, 8, 12, 20, 30, 45, 70, 100, 150, 250)
#: seeded draws of rows per identity and size; a curve point is their median cut
SIZE_DRAWS = 5


@dataclass(frozen=True)
class SizeCurve:
    """A Ward and a complete-linkage cut calibrated on labelled identities (those a rule was
    calibrated on) cut down to ``s`` rows each, for each ``s`` of :data:`SIZE_GRID` up to the
    largest identity.

    Why: a calibrated cut holds for identities of the size it was calibrated on. A Ward merge
    height grows with the sizes of the clusters it merges, and a complete-linkage diameter
    grows too (more rows reach further), so a cut calibrated on identities of 180 rows merges
    a batch of identities of 20. Identities held out of the training data (``fit`` without
    ``X_val``) have the training data's size, which says nothing of the batch's; validation rows
    the user gives may hold larger identities than a batch. The curve
    gives the cut for any size, and :meth:`clusters_at_fixed_point` finds the batch's size as a fixed
    point of the complete-linkage curve (the cut at ``s`` finds clusters of ``s`` rows; a
    diameter depends less on sizes than a merge height, so it estimates ``s`` more steadily):
    ``results/benchmarks/held_out_size.md``. Heights are in the units of :func:`merge_tree`,
    made non-decreasing in ``s``.
    """

    sizes: tuple[float, ...]
    ward: tuple[float, ...]
    complete: tuple[float, ...]

    @classmethod
    def fit(cls, Z: np.ndarray, y: np.ndarray, *, seed: int = 0) -> SizeCurve:
        """The curve of the rows ``Z`` (in the rule's features) and their identities ``y``."""
        _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        k, top = counts.shape[0], int(counts.max())
        if k < 2:
            raise DataError(f"a size curve needs at least 2 identities, got {k}")
        sizes = [s for s in SIZE_GRID if s < top] + [top]
        rng = np.random.default_rng(seed)
        starts = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)  # each row's identity's first
        curve: dict[str, list[float]] = {"ward": [], "complete": []}
        for s in sizes:
            draws: dict[str, list[float]] = {lk: [] for lk in curve}
            for _ in range(SIZE_DRAWS if s < top else 1):  # at the top every row is kept: one draw
                # each identity's first s rows in a random order (all of a smaller one)
                order = rng.permutation(codes.shape[0])
                order = order[np.argsort(codes[order], kind="stable")]
                rows = np.sort(order[np.arange(order.shape[0]) - starts < s])
                for lk in curve:
                    draws[lk].append(cut_height(merge_tree(Z[rows], lk)[:, 2], k))
            for lk, heights in curve.items():
                heights.append(float(np.median(draws[lk])))
        return cls(tuple(float(s) for s in sizes), *(tuple(np.maximum.accumulate(curve[lk]).tolist())
                                                       for lk in ("ward", "complete")))

    def height(self, linkage: str, s: float) -> float:
        """The ``linkage`` ("ward" or "complete") cut for identities of ``s`` rows (interpolated in
        ``log s``; beyond the grid, its end)."""
        return float(np.interp(math.log(max(s, 1.0)), np.log(self.sizes), getattr(self, linkage)))

    def clusters_at_fixed_point(self, complete_tree: np.ndarray, s0: float) -> int:
        """The number of clusters ``k`` at the fixed point of the complete-linkage curve on a
        batch's tree: from ``s = s0``, cut at ``height("complete", s)`` and take ``s = n / k``,
        until ``k`` repeats (30 cuts at most). The batch's rows per identity are ``n / k``. From
        the curve's smallest size, the iteration stops at the smallest self-consistent size; the
        learner starts there (a larger fixed point can be pairs of identities merged)."""
        from scipy.cluster.hierarchy import fcluster

        n = complete_tree.shape[0] + 1
        s, seen, k = float(s0), set(), n
        for _ in range(30):
            k = int(fcluster(complete_tree, self.height("complete", s), criterion="distance").max())
            if k in seen:
                break
            seen.add(k)
            s = n / k
        return k

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "ward": list(self.ward), "complete": list(self.complete)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SizeCurve:
        return cls(*(tuple(float(v) for v in d[key]) for key in ("sizes", "ward", "complete")))


def labelled_pairs(
    y: np.ndarray, *, max_pairs: int = 200_000, stratify: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``i < j`` (or ``i != j`` when drawn) and whether each pair is *different*.

    All pairs when there are at most ``max_pairs``; otherwise a seeded draw: with ``stratify``
    half same-identity and half different-identity pairs (the class weights of a balanced
    logistic regression undo the ratio anyway), else uniform pairs (keeps the data's prior).

    Returns ``i, j`` (int64, shape (T,)) and ``different`` (bool, shape (T,)).
    """
    y = np.asarray(y)
    n = y.shape[0]
    if n < 2:
        raise DataError(f"calibration needs at least 2 samples, got {n}")
    if max_pairs < 2:
        raise ConfigError(f"max_pairs={max_pairs} must be >= 2")
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
        return i.astype(np.int64), j.astype(np.int64), y[i] != y[j]
    rng = np.random.default_rng(seed)
    if not stratify:
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n - 1, max_pairs)
        j += j >= i  # j != i, uniform over the others
        return i, j, y[i] != y[j]
    _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.shape[0] < 2:
        raise DataError(f"calibration needs both same- and different-identity pairs, but all {n} samples "
                        "have one label; give samples of at least two identities")
    half = max_pairs // 2
    order = np.argsort(inv, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    w = counts * (counts - 1) / 2.0  # same-identity pairs per identity
    parts_i, parts_j = [], []
    if w.sum() > 0:
        c = rng.choice(counts.shape[0], size=half, p=w / w.sum())  # identity of each positive pair
        r1 = (rng.random(half) * counts[c]).astype(np.int64)
        r2 = (rng.random(half) * (counts[c] - 1)).astype(np.int64)
        r2 += r2 >= r1
        parts_i.append(order[starts[c] + r1])
        parts_j.append(order[starts[c] + r2])
    need = max_pairs - half
    neg_i, neg_j = [], []
    while need > 0:  # rejection: a uniform pair is different with probability >= 1/2 typically
        i = rng.integers(0, n, 2 * need + 16)
        j = rng.integers(0, n, 2 * need + 16)
        keep = inv[i] != inv[j]
        neg_i.append(i[keep][:need])
        neg_j.append(j[keep][:need])
        need -= int(min(keep.sum(), need))
    i = np.concatenate(parts_i + neg_i)
    j = np.concatenate(parts_j + neg_j)
    return i, j, y[i] != y[j]


@dataclass(frozen=True)
class LogisticCalibration:
    """``p(different | d) = 1 / (1 + exp(−(coef·d + intercept)))`` for a pair at distance ``d``.

    Fit with :meth:`fit` (distances and labels) or :meth:`fit_embeddings` (embeddings and
    identities). ``coef > 0``: farther pairs are more likely different.

    Attributes
    ----------
    coef, intercept : float
        The logistic model on the distance (in units of ``distance``).
    distance : {"euclidean", "sqeuclidean", "cosine"}
        The distance the model reads; the ICPR paper regresses on Euclidean distance.
    n_pairs, n_different : int
        How many labelled pairs it was fitted on, and how many of them were different.
    class_weight : {"balanced", None}
        ``"balanced"`` weights same and different pairs equally, so the 0.5 crossing is where
        the two kinds of pairs are equally likely *per pair kind* — independent of how many
        identities the calibration set happens to have (with ``None`` the crossing moves
        towards smaller distances as the share of different pairs grows).
    """

    coef: float
    intercept: float
    distance: str = "euclidean"
    n_pairs: int = 0
    n_different: int = 0
    class_weight: str | None = "balanced"

    def __post_init__(self) -> None:
        check_distance(self.distance)
        if not (math.isfinite(self.coef) and math.isfinite(self.intercept)):
            raise ConfigError(f"coef={self.coef}, intercept={self.intercept} must be finite")

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        distances: np.ndarray,
        different: np.ndarray,
        *,
        distance: str = "euclidean",
        class_weight: str | None = "balanced",
        C: float = 100.0,
    ) -> LogisticCalibration:
        """Fit on pair distances (T,) and booleans ``different`` (T,) (True = other identity).

        ``C`` is sklearn's inverse L2 strength on the slope (the intercept is not penalised);
        the default 100 is nearly unregularised but stays finite on separable pairs.
        """
        from sklearn.linear_model import LogisticRegression

        d = np.asarray(distances, dtype=np.float64).reshape(-1)
        t = np.asarray(different).reshape(-1).astype(bool)
        if d.shape != t.shape:
            raise DataError(f"distances {d.shape} and different {t.shape} must have the same length")
        if not np.isfinite(d).all():
            raise DataError("pair distances contain NaN or inf")
        n_diff = int(t.sum())
        if n_diff == 0 or n_diff == t.shape[0]:
            raise DataError(
                f"logistic calibration needs both same- and different-identity pairs, got "
                f"{t.shape[0] - n_diff} same and {n_diff} different"
            )
        if class_weight not in ("balanced", None):
            raise ConfigError(f"class_weight={class_weight!r} must be 'balanced' or None")
        if not C > 0:
            raise ConfigError(f"C={C} must be > 0")
        model = LogisticRegression(C=C, class_weight=class_weight, max_iter=1000)
        model.fit(d[:, None], t.astype(np.int64))
        coef, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if coef <= 0:
            raise DataError(
                f"pair distances do not separate identities: fitted slope {coef:.3g} <= 0 "
                "(different-identity pairs are not farther apart than same-identity pairs)"
            )
        return cls(coef=coef, intercept=intercept, distance=distance, n_pairs=int(t.shape[0]),
                   n_different=n_diff, class_weight=class_weight)

    @classmethod
    def fit_embeddings(
        cls,
        Z: np.ndarray,
        y: np.ndarray,
        *,
        distance: str = "euclidean",
        class_weight: str | None = "balanced",
        max_pairs: int = 200_000,
        C: float = 100.0,
        seed: int = 0,
    ) -> LogisticCalibration:
        """Fit on the pairs of validation embeddings ``Z`` (n, d) with identities ``y`` (n,).

        All pairs when ``n(n−1)/2 <= max_pairs``, else a seeded draw (see :func:`labelled_pairs`).
        """
        Z = np.asarray(Z)
        y = np.asarray(y)
        if Z.ndim != 2 or y.shape != (Z.shape[0],):
            raise DataError(f"Z must have shape (n, d) and y shape (n,), got {Z.shape} and {y.shape}")
        check_distance(distance)
        i, j, different = labelled_pairs(y, max_pairs=max_pairs, stratify=class_weight == "balanced", seed=seed)
        return cls.fit(pair_distances(Z, i, j, distance), different, distance=distance,
                       class_weight=class_weight, C=C)

    # -------------------------------------------------------------- inference
    def cut_probability(self, d: np.ndarray | float) -> np.ndarray:
        """``p(different | d)`` for distances ``d`` (any shape, units of :attr:`distance`)."""
        z = self.coef * np.asarray(d, dtype=np.float64) + self.intercept
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = sigmoid(z), without overflow warnings

    def threshold(self) -> Threshold:
        """The 0.5 crossing ``d* = −intercept / coef`` as a :class:`~kfree.threshold.Threshold`."""
        value = -self.intercept / self.coef
        if not value > 0:
            raise DataError(
                f"the logistic model's 0.5 crossing is at d={value:.3g} <= 0: even identical points would "
                "be cut; the calibration pairs do not look like same-identity pairs at small distances"
            )
        return Threshold(value=float(value), distance=self.distance, source="logistic p(different)=0.5")

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "logistic", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticCalibration:
        if d.get("kind", "logistic") != "logistic":
            raise ConfigError(f"not a logistic calibration record: kind={d.get('kind')!r}")
        cw = d.get("class_weight", "balanced")
        return cls(coef=float(d["coef"]), intercept=float(d["intercept"]), distance=str(d["distance"]),
                   n_pairs=int(d.get("n_pairs", 0)), n_different=int(d.get("n_different", 0)),
                   class_weight=None if cw is None else str(cw))


#: how ``ClusterLearner(calibration=...)`` fits a threshold for a loss that implies none: the
#: #clusters match (:func:`threshold_for_n_clusters`) or :class:`LogisticCalibration`
CALIBRATION_METHODS: tuple[str, ...] = ("n_clusters", "logistic")

