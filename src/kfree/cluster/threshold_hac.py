"""Agglomerative clustering cut at a distance threshold (no K needed), or at K clusters.

This is the clustering step of Ball Cluster Learning: complete linkage on squared Euclidean
distances cut at ``tau = 4b``. A pair at exactly the threshold counts as joinable (``<=``), as in
scipy's ``fcluster(Z, t, 'distance')``.

Two exact algorithms give the same partition (up to relabelling, on data without distance ties):

- **dense** — fastcluster on the condensed distance matrix: the full dendrogram
  (``linkage_matrix_``), ``4·n²`` bytes; the choice for small n and for cuts at K.
- **sparse** — complete linkage merges two clusters at height h only if *every* cross pair is
  ``<= h``, so below the cut a pair farther than ``tau`` is as good as +inf. The agglomeration
  runs over the exact τ-radius graph, a merged cluster keeping only the neighbours both parts
  had: memory proportional to the τ-edges (a cluster of s points brings about s²/2), which
  are estimated before they are built and reported as a
  :class:`~kfree.exceptions.ResourceError` when they will not fit. Without constraints, above
  50,000 points, when the whole graph will not fit, or when it holds at least 2 % of all pairs
  (:data:`COMPONENTS_DENSITY`: large balls), it goes one connected component of the τ-graph at
  a time (found first without storing any edge,
  :func:`~kfree.cluster._radius_graph.radius_components`), so only the largest component's
  edges must fit; a component whose pairs are mostly within the cut (a cluster that is a ball,
  what a good embedding makes) is agglomerated densely by fastcluster, the same dendrogram up
  to the cut and faster than the sparse kernel on its s²/2 edges — and it needs only its
  condensed distances (4 bytes a pair) to fit, not its edges (48 bytes). Single
  linkage is the minimum spanning forest of the same graph. Average
  linkage is not local in that way: it is exact per connected component of the τ-graph (an
  average of distances all above ``tau`` stays above it), each component agglomerated densely.

Exactness. Every path decides each pair as scipy's ``pdist`` does. Distances come from one GEMM
(``|x|² + |y|² − 2 x·y``) on centred data (:func:`~kfree._exact_distances.grid_centre`: far
from the origin the uncentred formula loses everything to cancellation); every pair whose GEMM
value lies within a proven error band of the threshold (:func:`~kfree._exact_distances.gemm_band`,
about 1e-13 of the data's spread) is recomputed from the original rows with scipy's own
arithmetic (bit-identical for sqeuclidean and euclidean) and decided on that value; the sparse
τ-graph recomputes every edge so. Euclidean cuts compare ``sqrt(d²) <= tau`` as scipy does, not
``d² <= tau²``. So away from ties the partition at ``threshold`` is scipy's
``fcluster(linkage(pdist(X, distance), linkage), threshold, 'distance')``, a pair at exactly the
threshold joining (scikit-learn's ``AgglomerativeClustering(distance_threshold=t)`` merges only
below ``t``, and in Euclidean units: the default here is squared Euclidean). (Cosine follows scipy's formula with sums in coordinate order; scipy's compiled
loop may round its last bit differently.) Cuts of a dense tree at other heights
(:meth:`~ThresholdAgglomerative.labels_at`) use GEMM values there, good to ~1e-13 of the spread.

Ties. Where distances tie exactly (e.g. data on an integer grid), several partitions are valid
complete-linkage cuts and the order of merges decides. The dense path (fastcluster) breaks ties
exactly as scipy's ``linkage`` for complete and single linkage; for average linkage fastcluster
orders tied merges its own way (a scikit-learn trial: 6 of 200 random integer grids gave another
valid cut than scipy's, as fastcluster alone does). The graph paths (sparse, per component) run the
same nearest-neighbour chain on the τ-graph — chains start at the smallest active index, the
previous chain element wins a tie and then the smallest index, a merged cluster keeps the larger
index (:mod:`~kfree.cluster.linkage_core`) — and differ from scipy only where scipy's chain
starts at a cluster with no neighbour within the threshold and walks to tied pairs through a pair
above it, which a τ-graph cannot see. Example: ``X = [[0], [3], [4], [2]]``, euclidean threshold
1: scipy joins {3, 2}, the sparse path {3, 4}. On random integer-grid data with complete linkage
that is about 6 % of cuts. In the dense path, distances below the threshold within the GEMM
band of each other also count as ties (their order follows the GEMM's rounding).

Must-link pairs are merged before anything else (their transitive closure starts as one
cluster); clusters that would contain a cannot-link pair never merge (the pair's distance is set
beyond any threshold, as in the BCL reference code).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster
from sklearn.base import BaseEstimator, ClusterMixin

from ..config import check_choice
from ..distances import (
    check_distance,
    check_features,
    check_rows_dtype,
    condensed_distances_blocked,
    refuse_zero_rows,
    resolve_cut,
    to_sq,
)
from ..exceptions import (
    ConfigError,
    DataError,
    ParameterConflictWarning,
    ResourceError,
    user_stacklevel,
)
from ..registry import register
from ..threshold import Threshold
from ..utils.signals import stoppable
from . import linkage_core as core
from ._constraints import (
    cannot_link_keys,
    check_contradictions,
    check_pairs,
    must_link_groups,
    warn_wide_groups,
)
from ._radius_graph import (
    BYTES_PER_EDGE,
    estimate_edges,
    prepared_float32,
    radius_components,
    radius_edges,
)
from .labels import first_seen_labels, group_order

log = logging.getLogger(__name__)

LINKAGES = ("complete", "average", "single")
ALGORITHMS = ("auto", "dense", "sparse")
BACKENDS = ("local", "dask")
#: below this many samples, ``algorithm="auto"`` builds the full dense tree.
DENSE_MAX_SAMPLES = 5000
#: above this many samples (or when the τ-graph will not fit), unconstrained complete linkage
#: goes one connected component at a time.
COMPONENTS_MIN_SAMPLES = 50_000
#: ... unless the rows have fewer τ-neighbours than this on average and the τ-graph fits: then one
#: pass over the whole graph is faster (see ``_fit_graph``)
COMPONENTS_MIN_NEIGHBOURS = 50
#: ... and below it too when the τ-graph holds at least this share of all pairs: large balls of
#: points, which the per-component path agglomerates densely, several times faster (on
#: unit-norm blobs, one ball or 30, and on the Banking77 and CelebA embeddings), while sparse
#: overlapping data (a share of 0.001–0.005) is faster in one pass.
COMPONENTS_DENSITY = 0.02
#: per-component complete linkage goes dense (fastcluster on all pairs) for groups of at least
#: this many points whose sampled τ-edge density is at least DENSE_BATCH_DENSITY
DENSE_BATCH_MIN = 256
DENSE_BATCH_DENSITY = 0.25


def check_cut(threshold: Any, n_clusters: Any, *, merge_height: bool = False) -> None:
    """Validate where an agglomerative tree is cut (at fit time, as scikit-learn does:
    ``set_params`` never raises). One of ``threshold`` (finite, > 0) and ``n_clusters``
    (integer >= 1) must be set; when both are, ``n_clusters`` wins with a
    :class:`~kfree.exceptions.ParameterConflictWarning` and the threshold is not validated.
    ``merge_height``: the cut is Ward's, which alone may take a Ward merge height."""
    if threshold is None and n_clusters is None:
        raise ConfigError("set threshold or n_clusters: both are None")
    if n_clusters is not None:
        try:
            ok = int(n_clusters) == n_clusters and int(n_clusters) >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"n_clusters={n_clusters!r} must be an integer >= 1")
        if threshold is not None:
            warnings.warn(
                f"n_clusters={n_clusters!r} and threshold={threshold!r} are both "
                "set: the tree is cut into n_clusters clusters and threshold is ignored (set "
                "n_clusters=None to cut at the threshold)",
                ParameterConflictWarning,
                stacklevel=user_stacklevel(),
            )
        return
    resolve_cut(threshold, None, merge_height=merge_height)  # a finite number > 0, or a Threshold


def rows_fingerprint(X: np.ndarray) -> tuple[str, str]:
    """``(dtype, digest)`` of ``X``: its dtype, and a hash of its shape and every value
    (:func:`~kfree.utils.io.array_sha256`), so that rows in another order or with other values
    are told apart (it costs far less than the agglomeration it vouches for)."""
    from ..utils.io import array_sha256

    return np.asarray(X).dtype.str, array_sha256(X)


def memory_limit_bytes(memory_limit_gb: float | None) -> float:
    """A ``memory_limit`` parameter (GiB; None = :func:`default_memory_limit_gb`) in bytes."""
    gb = default_memory_limit_gb() if memory_limit_gb is None else float(memory_limit_gb)
    return gb * 2**30


#: the variable that sets the default ``memory_limit`` (GiB) of every clusterer, in this process and
#: in the Dask workers kfree starts (``kfree cluster --memory-limit`` sets it)
MEMORY_LIMIT_ENV = "KFREE_MEMORY_LIMIT_GB"
#: how every "needs more memory" error says to allow more
RAISE_LIMIT = f"raise memory_limit (GiB: kfree cluster --memory-limit, or ${MEMORY_LIMIT_ENV})"


def default_memory_limit_gb() -> float:
    """``$KFREE_MEMORY_LIMIT_GB`` when set, else half of this machine's physical memory, in GiB
    (8 GiB when it cannot be read)."""
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = float("nan")
        if not gb > 0 or gb == float("inf"):
            raise ConfigError(f"${MEMORY_LIMIT_ENV}={env!r} must be a number of GiB > 0")
        return gb
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 / 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8.0


def linkage_cut_at_k(Z: np.ndarray, k: int) -> np.ndarray:
    """Labels (first-seen order) of the first ``n − k`` merges of a scipy linkage matrix: exactly
    ``k`` clusters. (``fcluster(Z, k, "maxclust")`` cuts at a height, and where merges tie at
    that height it cannot split them: it returns fewer than ``k`` clusters.)"""
    n = Z.shape[0] + 1
    pairs, _ = _dense_merges_from_linkage(Z, n)
    return core.union_find_labels(n, pairs[:, 0].copy(), pairs[:, 1].copy(), n - int(k))


def _dense_merges_from_linkage(Z: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Representative point pairs (m, 2) and heights (m,) of a scipy linkage matrix."""
    rep = np.empty(2 * n - 1, dtype=np.int64)
    rep[:n] = np.arange(n)
    a = Z[:, 0].astype(np.int64)
    b = Z[:, 1].astype(np.int64)
    for t in range(Z.shape[0]):
        rep[n + t] = rep[a[t]]
    pairs = np.stack([rep[a], rep[b]], axis=1)
    return pairs, Z[:, 2].astype(np.float64)


@register("cluster", "hac")
class ThresholdAgglomerative(ClusterMixin, BaseEstimator):
    """Hierarchical agglomerative clustering cut at ``threshold`` (or at ``n_clusters``).

    Parameters
    ----------
    threshold : float or Threshold, optional
        Cut height; pairs at ``<= threshold`` may be joined. A float is in units of ``distance``
        (for unit-norm embeddings typically ``[0, 4]`` sqeuclidean); a
        :class:`~kfree.threshold.Threshold` carries its own kind (see ``distance``).
    n_clusters : int, optional
        Cut the tree into exactly this many clusters instead (needs the full, dense tree). Set
        one of the two. As in scikit-learn's ``AgglomerativeClustering``, parameters are checked
        in :meth:`fit`, never in ``__init__``/``set_params``; unlike it, setting both is not an
        error: ``n_clusters`` then wins and ``threshold`` is ignored, with a
        :class:`~kfree.exceptions.ParameterConflictWarning`. (That is what ``n_clusters`` means
        elsewhere in kfree — "cut at K instead" — and scikit-learn's estimator checks set
        ``n_clusters`` on any clusterer that has it.) Both ``None`` raises a ConfigError.
    linkage : {"complete", "average", "single"}
    distance : {"sqeuclidean", "euclidean", "cosine"}, optional
        ``None`` (default): the threshold's own kind when it is a Threshold, else sqeuclidean.
        Set, a Threshold of another Euclidean kind is converted (the same pairs are cut); see
        :func:`kfree.distances.resolve_cut`.
    algorithm : {"auto", "dense", "sparse"}
        ``"auto"`` uses the dense tree for fewer than 5,000 samples without constraints, the
        sparse τ-graph otherwise. Both give scipy's partition at ``threshold`` (where distances
        tie exactly, see "Ties" in the module docstring). Constraints always use the graph path
        (merges from must-link groups; no scipy linkage matrix).
    memory_limit : float, optional
        GiB the fit may use for distances/edges (default: half the physical memory). A fit
        predicted to need more raises :class:`~kfree.exceptions.ResourceError` before it starts.
        With ``backend="dask"``: per exact agglomeration task.
    backend : {"local", "dask"}
        ``"dask"`` runs the τ-components in blocks and each component's agglomeration as tasks
        on a Dask cluster (:mod:`kfree.cluster.distributed`; needs ``pip install 'kfree[dask]'``):
        the same partition, for data larger than one machine. ``X`` may then also be a
        ``dask.array``, or the path of a ``.npy`` (memory-mapped) or ``.parquet`` file. Cuts at
        a threshold only (no ``n_clusters``, no constraints); ``labels_at`` works up to it.
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: a scheduler address (``"tcp://host:8786"``) or a connected
        client. ``None`` starts a ``LocalCluster`` for the fit and closes it after.
    n_workers : int, optional
        Worker processes of that ``LocalCluster`` (default: the CPU count, at most 4).
    dtype : {None, "float32", "float64"}
        Round the rows to this precision before clustering; ``None`` keeps X's own (float16 is
        computed in float32). A pair within rounding of the cut can fall on either side in
        float32 and float64: kfree's CLI reads files as float32 and passes ``"float32"`` to the
        Dask backend, whose workers read the file themselves, so both back-ends cluster the
        same values.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    n_clusters_ : int
    linkage_matrix_ : ndarray of shape (n_samples - 1, 4) or None
        The scipy-format dendrogram (dense algorithm without constraints), so :meth:`labels_at`
        cuts at other heights without refitting. ``None`` for sparse fits.
    merge_pairs_ : ndarray of shape (n_merges, 2)
        One member of each of the two clusters joined by every merge, in increasing height;
        for sparse fits only the merges up to ``threshold`` exist. Must-link merges come first
        (height 0). Feed it to :mod:`kfree.cluster.curves` for cuts at every k.
    merge_heights_ : ndarray of shape (n_merges,)
    threshold_ : Threshold or None
        The cut made, in ``distance_`` units (``None`` when cut at ``n_clusters``).
    distance_ : str
        The distance measured in.
    algorithm_ : {"dense", "sparse"}
    n_edges_ : int or None
        Number of τ-edges (sparse fits).
    """

    #: what :meth:`fit` can be told (see :data:`kfree.cluster.CAPABILITIES`)
    capabilities = frozenset({"distance", "linkage", "n_clusters", "threshold"})

    requires_n_clusters = False
    #: ``fit`` takes ``hook`` (its stages, for a progress bar: minutes at scale)
    reports_progress = True

    def __init__(
        self,
        threshold: float | Threshold | None = None,
        *,
        n_clusters: int | None = None,
        linkage: str = "complete",
        distance: str | None = None,
        algorithm: str = "auto",
        memory_limit: float | None = None,
        backend: str = "local",
        scheduler: Any = None,
        n_workers: int | None = None,
        dtype: str | None = None,
    ) -> None:
        self.threshold = threshold
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.distance = distance
        self.algorithm = algorithm
        self.memory_limit = memory_limit
        self.backend = backend
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.dtype = dtype

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:  # type: ignore[override]
        # validated here, at fit time, as scikit-learn does: set_params never raises
        check_cut(self.threshold, self.n_clusters)
        if self.linkage == "ward":  # (a scikit-learn user's trial: AgglomerativeClustering takes it)
            raise ConfigError("linkage='ward' is not one of ('complete', 'average', 'single'): Ward's cut is a merge "
                              "height, not a distance between two rows; use kfree.cluster.WardThreshold(threshold) "
                              "or WardThreshold(n_clusters=K)")
        check_choice("linkage", self.linkage, LINKAGES)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        if self.memory_limit is not None and not float(self.memory_limit) > 0:
            raise ConfigError(f"memory_limit={self.memory_limit!r} GiB must be > 0")
        if self.distance is not None:
            check_distance(self.distance)
        if self.n_clusters is None:
            self.threshold_ = resolve_cut(self.threshold, self.distance, by_pairs=self.linkage != "average")
            self.distance_ = self.threshold_.distance
        else:  # cut at K: the threshold (if any) only names the kind when distance is None
            self.threshold_ = None
            kind = self.threshold.distance if isinstance(self.threshold, Threshold) else "sqeuclidean"
            self.distance_ = self.distance if self.distance is not None else kind
        check_choice("backend", self.backend, BACKENDS)
        check_rows_dtype(self.dtype)
        if self.backend == "local" and (self.scheduler is not None or self.n_workers is not None):
            raise ConfigError("scheduler and n_workers are for backend='dask'; set backend='dask' "
                              "or leave them None")

    def _limit_bytes(self) -> float:
        return memory_limit_bytes(self.memory_limit)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        must_link: Any = None,
        cannot_link: Any = None,
        hook: Callable[..., None] | None = None,
    ) -> ThresholdAgglomerative:
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        must_link, cannot_link : array-like of shape (n_pairs, 2), optional
            Sample index pairs that must / must not end in one cluster.
        hook : callable, optional
            ``hook(step, completed=, total=)`` progress callback for the τ-graph build.
        """
        self._validate_params()
        # the float32 τ-components pass of the per-component path, kept for this fit only
        # (ClusterState.from_fit reuses it instead of repeating it)
        self._coarse_components = None
        self._fit_rows = None
        if self.backend == "dask":  # blocks on a Dask cluster: kfree.cluster.distributed
            from .distributed import fit_dask

            return fit_dask(self, X, must_link, cannot_link, hook)
        X = check_features(X, min_samples=1)
        refuse_zero_rows(X, self.distance_)
        if self.dtype is not None:
            X = X.astype(self.dtype, copy=False)
        n = X.shape[0]
        if self.n_clusters is not None and int(self.n_clusters) > n:
            raise DataError(f"n_samples={n} must be >= n_clusters={self.n_clusters}")
        self.n_features_in_ = X.shape[1]
        self._fit_rows = rows_fingerprint(X)  # (ClusterState.from_fit checks it is given these rows)
        ml = check_pairs(must_link, n, "must_link")
        cl = check_pairs(cannot_link, n, "cannot_link")
        groups = must_link_groups(n, ml)
        check_contradictions(groups, cl)
        constrained = ml.shape[0] > 0 or cl.shape[0] > 0
        self.linkage_matrix_ = None
        self.n_edges_ = None
        self._groups = groups
        self._constrained = constrained  # (a cluster state cannot keep constraints)
        if n == 1:
            self.linkage_matrix_ = np.zeros((0, 4))
            self.merge_pairs_ = np.zeros((0, 2), dtype=np.int64)
            self.merge_heights_ = np.zeros(0)
            self.algorithm_ = "dense"
            self._tree_top = np.inf
            self.labels_ = np.zeros(1, dtype=np.int64)
            self.n_clusters_ = 1
            return self

        full_tree = self.n_clusters is not None
        if full_tree:
            algo = "dense"
        elif self.algorithm == "auto":
            algo = "dense" if (n < DENSE_MAX_SAMPLES and not constrained) else "sparse"
        else:
            algo = "sparse" if constrained else self.algorithm
        self.algorithm_ = algo

        if algo == "dense" and not constrained:
            self._fit_dense(X)
        else:
            cut = np.inf if full_tree else self.threshold_.value
            self._fit_graph(X, cut, groups, ml, cl, hook)

        if full_tree:
            self.labels_ = self.labels_at_k(int(self.n_clusters))
        else:
            self.labels_ = self.labels_at(self.threshold_.value)
            if ml.shape[0] and self.linkage == "complete":
                warn_wide_groups(X, groups, self.labels_, self.threshold_.value, self.distance_)
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self

    def _fit_dense(self, X: np.ndarray) -> None:
        import fastcluster

        n = X.shape[0]
        need = 4.0 * n * n + 8.0 * n * 2048
        if need > self._limit_bytes():
            raise ResourceError(
                f"dense HAC of n_samples={n} needs ~{need / 2**30:.1f} GiB for the distance "
                f"matrix, more than memory_limit={self._limit_bytes() / 2**30:.3g} GiB; cut at a "
                f"threshold with algorithm='sparse', or {RAISE_LIMIT}"
            )
        # pairs near the threshold are recomputed as scipy computes them, so the cut at the
        # threshold decides every pair as pdist would (a pair at exactly tau joins)
        near = None if self.n_clusters is not None else self.threshold_.value
        d = condensed_distances_blocked(X, self.distance_, exact_near=near)
        with stoppable():  # (Ctrl-C and kill end a long linkage at once)
            Z = fastcluster.linkage(d, method=self.linkage, preserve_input=False)
        del d
        self.linkage_matrix_ = Z
        self.merge_pairs_, self.merge_heights_ = _dense_merges_from_linkage(Z, n)
        self._tree_top = np.inf

    def _fit_graph(self, X, cut, groups, ml, cl, hook) -> None:
        """Exact agglomeration over the τ-graph of must-link groups (cut may be +inf)."""
        n = X.shape[0]
        limit = self._limit_bytes()
        n_groups = int(groups.max()) + 1
        if np.isfinite(cut):
            simple = self.linkage == "complete" and not (ml.shape[0] or cl.shape[0])
            X32 = prepared_float32(X, self.distance_)
            est = estimate_edges(X32, to_sq(cut, self.distance_))  # (about a second per 100,000 rows)
            need = est * BYTES_PER_EDGE
            del X32
            log.info("tau-graph: ~%.3g edges estimated (~%.2f GiB)", est, need / 2**30)
            dense_graph = est > 0 and est >= COMPONENTS_DENSITY * n * (n - 1) / 2
            # few τ-neighbours per row (many small clusters: faces by person) leave the components pass
            # little to skip, and its cell pruning little to prune in high dimensions, while one pass
            # over the whole graph is BLAS (a scale trial's 100k face descriptors, 5.5 neighbours per
            # row: 212 s against 30 s, the same clusters; 64-d balls of 1,256 per row: 5 s against 18 s)
            few = 2 * est / max(n, 1) < COMPONENTS_MIN_NEIGHBOURS
            if simple and ((n > COMPONENTS_MIN_SAMPLES and not few) or need > limit or dense_graph):
                # exact per connected component: never more than one component's edges in
                # memory, and at scale faster too (the components pass skips most distances);
                # below ~50k points one pass over the whole τ-graph is faster when it fits and
                # is sparse (COMPONENTS_DENSITY)
                a, b, h, n_edges, comp = _complete_by_components(X, cut, self.distance_, limit,
                                                                 hook)
                self._coarse_components = comp
                order = np.argsort(h, kind="stable")
                self.n_edges_ = int(n_edges)
                self.merge_pairs_ = np.stack([a[order], b[order]], axis=1).astype(np.int64)
                self.merge_heights_ = h[order].astype(np.float64)
                self._n_forced = 0
                self._tree_top = cut
                return
            if need > limit:
                raise ResourceError(
                    f"threshold HAC at threshold={cut} would need ~{est:.3g} tau-edges "
                    f"(~{need / 2**30:.3g} GiB), more than memory_limit={limit / 2**30:.3g} GiB. "
                    "The largest clusters dominate (a cluster of s points brings s²/2 edges): "
                    f"lower the threshold, {RAISE_LIMIT}, or cluster part of the rows and add the rest "
                    "with kfree assign (a new row is checked against clusters, not against every pair)"
                )
            ei, ej, ed = radius_edges(
                X, cut, self.distance_, max_edges=int(limit / BYTES_PER_EDGE), hook=hook
            )
        else:
            need = 24.0 * n * n
            if need > limit:
                raise ResourceError(
                    f"a full constrained tree of n_samples={n} needs ~{need / 2**30:.1f} GiB; "
                    f"cut at a threshold instead, or {RAISE_LIMIT}"
                )
            ei, ej = (a.astype(np.int32) for a in np.triu_indices(n, k=1))
            from scipy.spatial.distance import pdist

            ed = pdist(np.asarray(X, dtype=np.float64), metric=self.distance_)
        self.n_edges_ = int(ei.shape[0])
        # collapse must-link groups; a representative point per group
        rep = np.full(n_groups, -1, dtype=np.int64)
        rep[groups[::-1]] = np.arange(n)[::-1]
        forced_pairs = np.empty((0, 2), dtype=np.int64)
        if ml.shape[0]:
            # one merge per non-representative member of every group
            members = np.arange(n)
            nonrep = members[rep[groups] != members]
            forced_pairs = np.stack([rep[groups[nonrep]], nonrep], axis=1)
        if n_groups == n:
            lo, hi = ei, ej  # no must-link groups: the point graph is the group graph
        else:
            gi, gj = groups[ei], groups[ej]
            keep = gi != gj
            gi, gj, ed = gi[keep], gj[keep], ed[keep]
            lo = np.minimum(gi, gj)
            hi = np.maximum(gi, gj)
            del gi, gj
        del ei, ej
        forbid = cannot_link_keys(groups, cl, n_groups)
        sizes = np.bincount(groups, minlength=n_groups).astype(np.int64)

        if self.linkage == "complete" or (self.linkage == "single" and forbid.size == 0):
            if n_groups < n:
                lo, hi, ed, counts = _aggregate(lo, hi, ed, n_groups, self.linkage)
                if self.linkage == "complete":
                    full = counts == sizes[lo] * sizes[hi]
                    lo, hi, ed = lo[full], hi[full], ed[full]
            if forbid.size:
                bad = np.isin(lo.astype(np.int64) * n_groups + hi, forbid)
                lo, hi, ed = lo[~bad], hi[~bad], ed[~bad]
            if self.linkage == "complete":
                edges = [lo, hi, ed]
                del lo, hi, ed
                a, b, h = _complete_merges(n_groups, edges, sizes)
            else:
                a, b, h = core.kruskal_merges(n_groups, lo, hi, ed)
        else:
            a, b, h = self._componentwise(X, cut, groups, n_groups, sizes, lo, hi, forbid)
        order = np.argsort(h, kind="stable")
        pairs = np.stack([rep[a[order]], rep[b[order]]], axis=1)
        heights = h[order]
        if forced_pairs.shape[0]:
            pairs = np.concatenate([forced_pairs, pairs])
            heights = np.concatenate([np.zeros(forced_pairs.shape[0]), heights])
        self.merge_pairs_ = pairs.astype(np.int64)
        self.merge_heights_ = heights.astype(np.float64)
        self._n_forced = int(forced_pairs.shape[0])
        self._tree_top = cut

    def _componentwise(self, X, cut, groups, n_groups, sizes, lo, hi, forbid):
        """Average (and constrained single) linkage: dense agglomeration per τ-component."""
        from scipy.spatial.distance import cdist

        comp = core.connected_components(n_groups, lo, hi)
        n_comp = int(comp.max()) + 1
        pt_comp = comp[groups]
        comp_pts = np.bincount(pt_comp, minlength=n_comp)
        biggest = int(comp_pts.max())
        need = 16.0 * biggest * biggest
        if need > self._limit_bytes():
            raise ResourceError(
                f"{self.linkage} linkage at threshold={cut} has a connected component of "
                f"{biggest} samples, whose dense distances need ~{need / 2**30:.1f} GiB (more than "
                f"memory_limit={self._limit_bytes() / 2**30:.3g} GiB); lower the threshold, use complete "
                f"linkage, which stays sparse, or {RAISE_LIMIT}"
            )
        code = core.LINKAGE_CODES[self.linkage]
        Xf = np.asarray(X, dtype=np.float64)
        order, starts = group_order(pt_comp, n_comp)
        f_lo = forbid // n_groups
        f_hi = forbid % n_groups
        # a cannot-link pair matters only inside one τ-component (across two, no merge below the
        # cut can join them anyway)
        f_comp = np.where(comp[f_lo] == comp[f_hi], comp[f_lo], -1) if forbid.size \
            else np.empty(0, dtype=np.int64)
        pos = np.full(n_groups, -1, dtype=np.int64)
        out_a, out_b, out_h = [], [], []
        for c in range(n_comp):
            pts = order[starts[c] : starts[c + 1]]
            g = groups[pts]
            ug, local = np.unique(g, return_inverse=True)
            m = ug.shape[0]
            if m < 2:
                continue
            D = cdist(Xf[pts], Xf[pts], metric=self.distance_)
            if m == pts.shape[0]:
                G = D[np.argsort(local)][:, np.argsort(local)] if (np.diff(local) < 0).any() else D
            elif self.linkage == "average":
                S = np.zeros((m, m))
                np.add.at(S, (local[:, None], local[None, :]), D)
                cnt = sizes[ug].astype(np.float64)
                G = S / np.outer(cnt, cnt)
            else:  # single
                G = np.full((m, m), np.inf)
                np.minimum.at(G, (local[:, None], local[None, :]), D)
            sel = f_comp == c
            if sel.any():
                pos[ug] = np.arange(m)
                x, y = pos[f_lo[sel]], pos[f_hi[sel]]
                G[x, y] = np.inf
                G[y, x] = np.inf
            np.fill_diagonal(G, 0.0)
            a, b, h = core.dense_nn_chain(G, sizes[ug], code, cut)
            out_a.append(ug[a])
            out_b.append(ug[b])
            out_h.append(h)
        if not out_a:
            e = np.empty(0, dtype=np.int64)
            return e, e, np.empty(0)
        return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_h)

    # ------------------------------------------------------------------ cuts
    def _check_tree(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "merge_heights_", msg="this %(name)s is not fitted yet; call fit(X) before cutting its tree")

    def labels_at(self, threshold: float | Threshold) -> np.ndarray:
        """Labels for a cut at ``threshold`` (``<=`` joins, as scipy), from the fitted tree.

        A sparse fit knows the tree only up to its own ``threshold``; asking for a higher cut
        raises a ConfigError (refit with the larger threshold). Its merge heights are scipy's
        distances, so every cut decides pairs as scipy. A dense fit recomputed exactly only the
        pairs near its own ``threshold``: elsewhere a pair within ~1e-13 of the data's spread of
        the cut may fall on the other side than in scipy.
        """
        self._check_tree()
        if isinstance(threshold, Threshold):
            threshold = resolve_cut(threshold, self.distance_, by_pairs=self.linkage != "average").value
        if not np.isfinite(threshold):
            raise ConfigError(f"threshold={threshold!r} must be finite")
        if self.linkage_matrix_ is not None:
            return self._dense_cut(float(threshold))
        if threshold > self._tree_top:
            raise ConfigError(
                f"this sparse fit knows the tree only up to threshold={self._tree_top}; "
                f"refit with threshold >= {threshold} to cut there"
            )
        m = int(np.searchsorted(self.merge_heights_, threshold, side="right"))
        return self._cut(m)

    def _dense_cut(self, t: float) -> np.ndarray:
        """scipy's cut of the fitted dense tree at height ``t`` (``fcluster``), relabelled in
        first-seen order."""
        Z = self.linkage_matrix_
        if Z.shape[0] == 0:  # one sample
            return np.zeros(1, dtype=np.int64)
        return first_seen_labels(fcluster(Z, t=t, criterion="distance"))

    def labels_at_k(self, k: int) -> np.ndarray:
        """Labels for a cut into ``k`` clusters, from the fitted tree."""
        self._check_tree()
        n = self._groups.shape[0]
        if not 1 <= int(k) <= n:
            raise ConfigError(f"k={k} must be between 1 and n_samples={n}")
        m = n - int(k)
        if self.linkage_matrix_ is not None:  # the first m merges: exactly k clusters, also on ties
            return self._cut(m)
        n_forced = getattr(self, "_n_forced", 0)
        if m < n_forced:
            raise ConfigError(
                f"k={k} is more clusters than the {n - n_forced} must-link groups allow"
            )
        if m > self.merge_pairs_.shape[0] and not np.isfinite(self._tree_top):
            raise ConfigError(f"k={k} is fewer than the {n - self.merge_pairs_.shape[0]} clusters the "
                              "cannot-link constraints allow")
        if m > self.merge_pairs_.shape[0]:
            raise ConfigError(
                f"k={k} is fewer than the {n - self.merge_pairs_.shape[0]} clusters this sparse "
                f"fit has at its threshold={self._tree_top}; refit with a larger threshold or "
                "with n_clusters (dense)"
            )
        return self._cut(m)

    def _cut(self, m: int) -> np.ndarray:
        n = self._groups.shape[0]
        p = self.merge_pairs_
        return core.union_find_labels(n, p[:, 0].copy(), p[:, 1].copy(), m)


def _complete_merges(n_nodes, edges: list, sizes):
    """Sparse complete linkage of an edge list ``[lo, hi, ed]``: merges (a, b, h) in node ids.

    The list is emptied and its arrays are consumed (``lo`` is overwritten with CSR positions),
    so the edge list is freed while its symmetric CSR is built (callers must not keep other
    references): the peak is about the CSR plus half the edge list.
    """
    lo, hi, ed = edges
    edges.clear()
    m = lo.shape[0]
    small = 2 * m < 2**31
    rev = np.empty(2 * m, dtype=np.int32 if small else np.int64)
    # positions go into lo itself when its dtype holds them: hi can go before dist is built
    pos = lo if (small or lo.dtype == np.int64) else np.empty(m, dtype=np.int64)
    indptr, nbr = core.csr_structure(n_nodes, lo, hi, rev, pos)
    del lo, hi
    dist = np.empty(2 * m, dtype=np.float64)
    core.csr_fill_distances(pos, rev, ed, dist)
    del pos, ed
    return core.sparse_complete_nn_chain(indptr, nbr, dist, rev, sizes)


def _complete_by_components(X, cut, distance, limit, hook, batch_points=4096):
    """Exact complete linkage at ``cut`` one group of τ-components at a time.

    Pass 1 finds the connected components of the τ-graph without storing it
    (:func:`~kfree.cluster._radius_graph.radius_components`, memory O(n), and most distances
    inside big clusters skipped). Complete-linkage clusters never span two components, and
    pairs in different components are farther than ``cut``, so components can be agglomerated
    separately — and small ones together in batches of about ``batch_points`` points. Pass 2
    rebuilds each batch's τ-graph exactly (float64) and runs the sparse kernel on it: memory
    O(edges of the largest batch), which is estimated before it is built. (Pass 1 compares in
    float32 with a tiny margin, so a component may be the union of two true ones; pass 2 is
    exact either way.) Returns merges (a, b, h) in sample ids, the number of τ-edges, and the
    pass-1 components.
    """
    comp = radius_components(X, cut, distance, hook=hook)
    n_comp = int(comp.max()) + 1
    order, starts = group_order(comp, n_comp)
    out_a, out_b, out_h = [], [], []
    total_edges = 0
    Xf = np.asarray(X)
    thr_sq = to_sq(cut, distance)
    for a0, b0 in component_batches(starts, batch_points):
        pts = order[a0:b0]
        s = pts.shape[0]
        if s < 2:
            continue
        # the dense route first: a group whose τ-graph would not fit may still fit as condensed
        # distances (4 bytes a pair against 48 an edge), which a ball of points needs anyway
        dense = dense_is_faster(Xf[pts], cut, distance, limit)
        if not dense and s * (s - 1) / 2 * BYTES_PER_EDGE > limit:
            est = estimate_edges(prepared_float32(Xf[pts], distance), thr_sq)
            if est * BYTES_PER_EDGE > limit:
                raise ResourceError(
                    f"threshold HAC at threshold={cut}: a connected group of {s} samples has "
                    f"~{est:.3g} tau-edges (~{est * BYTES_PER_EDGE / 2**30:.3g} GiB), more than "
                    f"memory_limit={limit / 2**30:.3g} GiB, and its condensed distances "
                    f"(~{4.0 * s * s / 2**30:.3g} GiB) do not fit in half of it either; lower the "
                    f"threshold, {RAISE_LIMIT}, or cluster part of the rows and add the rest with kfree "
                    "assign (a new row is checked against clusters, not against every pair)"
                )
        if dense:
            a, b, h, m = _dense_component_merges(Xf[pts], cut, distance)
            total_edges += m
            out_a.append(pts[a])
            out_b.append(pts[b])
            out_h.append(h)
            continue
        ei, ej, ed = radius_edges(
            Xf[pts], cut, distance, prune=s > 50000, max_edges=int(limit / BYTES_PER_EDGE)
        )
        total_edges += ei.shape[0]
        if ei.shape[0] == 0:
            continue
        edges = [ei, ej, ed]
        del ei, ej, ed
        a, b, h = _complete_merges(s, edges, np.ones(s, dtype=np.int64))
        out_a.append(pts[a])
        out_b.append(pts[b])
        out_h.append(h)
    if not out_a:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0), total_edges, comp
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_h), total_edges, comp


def component_batches(starts: np.ndarray, batch_points: int):
    """``(a, b)`` ranges of points sorted by component (``starts``: each component's first
    position, then the total): whole components, small ones together up to ``batch_points``."""
    c, n_comp = 0, starts.shape[0] - 1
    while c < n_comp:
        e = c + 1
        while e < n_comp and starts[e + 1] - starts[c] <= batch_points:
            e += 1
        yield int(starts[c]), int(starts[e])
        c = e


def dense_is_faster(X, cut, distance: str, limit: float, *, max_rows: int | None = None) -> bool:
    """Whether a component is agglomerated densely (:func:`_dense_component_merges`): a dense
    component (a cluster that is a ball within the cut, the common case for a good embedding)
    is several times faster by dense complete linkage than by the sparse kernel on its ~s²/2
    edges, with the same dendrogram up to the cut. Decided from its size (its condensed
    distances within half of ``limit`` bytes, and at most ``max_rows``) and a sampled τ-edge
    density."""
    s = X.shape[0]
    if s < DENSE_BATCH_MIN or 4.0 * s * s > limit / 2 or (max_rows is not None and s > max_rows):
        return False
    est = estimate_edges(prepared_float32(X, distance), to_sq(cut, distance), sample=256)
    return est >= DENSE_BATCH_DENSITY * s * (s - 1) / 2


def _dense_component_merges(X, cut, distance):
    """Complete-linkage merges up to ``cut`` of one (dense) group, by fastcluster on all pairs:
    (a, b, h) in local ids and the number of pairs within ``cut`` (its τ-edges).

    Pairs near ``cut`` are recomputed exactly (as in the sparse graph), and every pair above
    ``cut`` is given one common height above all others: fastcluster's nearest-neighbour chain
    then sweeps the clusters without a neighbour within ``cut`` together above the cut and
    enters each τ-component at its smallest active index, which is the tie order of
    :func:`~kfree.cluster.linkage_core.sparse_complete_nn_chain` — so this path and the sparse
    kernel give the same partition even on exact ties.
    """
    import fastcluster

    n = X.shape[0]
    d = condensed_distances_blocked(X, distance, exact_near=cut)
    above = d > cut
    m = int(d.shape[0] - np.count_nonzero(above))
    d[above] = 2.0 * abs(cut) + 1.0
    del above
    with stoppable():
        Z = fastcluster.linkage(d, method="complete", preserve_input=False)
    del d
    pairs, h = _dense_merges_from_linkage(Z, n)
    keep = h <= cut
    return pairs[keep, 0], pairs[keep, 1], h[keep], m


def _aggregate(lo, hi, ed, n_groups, linkage):
    """Reduce point edges to group edges: (lo, hi, distance, pair count)."""
    if lo.shape[0] == 0:  # no τ-edge between two groups
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0), e
    key = lo * n_groups + hi
    order = np.argsort(key, kind="stable")
    key = key[order]
    ed = ed[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, key.shape[0]])
    if linkage == "complete":
        d = np.maximum.reduceat(ed, starts) if ed.size else ed
    else:
        d = np.minimum.reduceat(ed, starts) if ed.size else ed
    uk = key[starts]
    return uk // n_groups, uk % n_groups, d, counts
