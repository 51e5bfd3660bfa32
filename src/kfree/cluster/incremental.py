"""Incremental threshold clustering: keep a clustering as a state, add new points to it exactly.

A full complete-linkage recompute costs minutes at a million points; a batch of new points
touches a few clusters. :class:`ClusterState` keeps what deciding membership needs, and
:func:`assign` adds a batch of new rows to it.

What the state holds
--------------------
The rows that were clustered (``X``: the embedding, or the raw features for a model-free
clustering), their ``labels``, the cut (``threshold``, ``distance``, ``linkage``; complete
linkage only), and

- the **τ-component** of every point (``components``): the connected components of the exact
  τ-graph (pairs at ``<= threshold``, decided as scipy's ``pdist``), i.e. the single-linkage
  clusters at τ. A complete-linkage cluster at τ is a clique of that graph, so it never crosses
  a component, and pairs in different components are farther than τ: a recompute of all points
  changes nothing in a component that no new point is within τ of;
- per cluster label a **reference point and radius** (``centres``, ``radii``, in the prepared
  coordinates below; ``sizes`` counts members, 0 for a retired label). By the triangle
  inequality a point ``x`` can have a member of cluster L within τ only if
  ``|x - c_L| <= s + R_L``, where ``s`` is τ as a Euclidean radius on prepared rows (``s²`` = τ,
  τ² or 2τ for sqeuclidean, euclidean, cosine), and can have *every* member within τ only if
  ``|x - c_L| <= s`` (the mean of points all within ``s`` of ``x`` is too; ``c_L`` is the
  members' mean, or after greedy joins the mean of the members it was computed from — any
  reference point works for the first bound as long as ``R_L`` bounds the members' distances
  to it). Those bounds only exclude clusters, with a generous rounding margin; every decision
  is then taken on the distances of the new point to *every* member of the candidate clusters,
  with the exactness rules of :mod:`kfree.cluster.threshold_hac`: a float64 GEMM on prepared
  rows, and every pair whose GEMM value lies within
  :func:`~kfree._exact_distances.gemm_band` of τ recomputed as scipy's ``pdist`` computes it
  (:func:`~kfree._exact_distances.pair_distances`, existing row first) and decided on that value
  (``<= threshold``; euclidean compares ``sqrt(d²) <= τ``). "Prepared" coordinates are the rows minus a fixed
  ``origin`` (sqeuclidean, euclidean; the grid centre of the first rows, so the GEMM of the
  bound does not lose the data's spread to its offset), or L2-normalised rows (cosine, where
  ``d_cos = |x̂ - ŷ|² / 2``).

How a batch is added
--------------------
:func:`assign` first finds, exactly, every τ-edge from a new point to an existing point (all
members of the clusters the bound leaves) and among the new points
(:func:`~kfree.cluster._radius_graph.radius_edges`), and joins the τ-components they connect:
a merged component keeps the smallest id among the existing ones it joins; new points that
touch no existing point get fresh ids.

Without ``recluster_affected``, the new points are placed one at a time in row order: a point
joins the cluster *all* of whose members (existing ones and the batch's points already placed
in it) are within τ; among several it takes the one with the smallest largest distance (the
complete-linkage height at which it would join), then the lowest label; with none it opens a
new cluster (label ``next_label``, counting up; labels are never reused). Existing points never
move. So every cluster still has all its pairs within τ (the complete-linkage invariant), and
a point with no cluster within τ always opens one. What may differ from a full recompute of
all points at τ:

- **regrouping in touched components.** New points change the order of complete-linkage
  merges, so a recompute may split an existing cluster of a touched component or move some of
  its members into a cluster with new points. (Two existing clusters never merge whole: some
  pair of them is farther than τ, and new points do not change that.) ``assign`` never moves
  an existing point.
- **the batch's own grouping** follows row order (greedy), not merge heights: a recompute may
  pair the new points differently, and a later point of the batch cannot pull an earlier one
  into a better cluster.

Neither can happen in a merged component whose points are all within τ of each other (below), so
the greedy mode marks the new rows of every other merged component: the state knows which
τ-components are *unsettled* (:attr:`ClusterState.n_unsettled` rows lie in them;
``meta["last_assign"]``), and ``kfree assign`` says so after each batch, as drift accumulates
silently otherwise.

With ``recluster_affected=True`` each merged component (the touched components' points and the
new points joined to them) is re-agglomerated exactly with
:class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative` at τ (rows in state order, then the
new rows, as a full recompute orders them), together with every component an earlier greedy
assign left unsettled; every other point keeps its label. A merged
component whose points are all within τ of each other — one existing component that is a single
cluster (a clique) plus new points within τ of all its members and of each other, or only new
points that are — is one cluster under any exact complete linkage, so it is not re-agglomerated
(on well-separated data that is nearly every touched component, and the mode costs little more
than the greedy one). Then the partition equals a full recompute of all points (away from exact
distance ties, where several complete-linkage cuts are valid and the merge order —
fastcluster's or the graph kernel's, which :class:`ThresholdAgglomerative` picks by size —
chooses one; see "Ties" in :mod:`~kfree.cluster.threshold_hac`). Recomputed clusters keep old
labels by largest overlap (ties: lowest old label), each old label used once; the others get
new labels, and old labels left unmatched are retired. Its cost is that of clustering the
touched components: on data whose τ-graph is one giant component (heavily overlapping
clusters) that is a full recompute.

Untouched clusters keep their labels across any number of assigns, in both modes.

On-disk format (``kfree-cluster-state/1``)
------------------------------------------
One file (conventionally ``.kstate``): an uncompressed zip holding ``state.json`` and ``.npy``
arrays (read with ``allow_pickle=False``; ``numpy.load`` opens it too). ``state.json``:
``format``, ``threshold``, ``distance``, ``linkage``, ``n_samples``, ``n_features``,
``n_clusters``, ``n_components``, ``next_label``, ``next_component``, ``model`` (``null``, or the
model file's name, SHA-256, the features it clusters and its threshold), ``created``,
``updated``, ``versions``, ``assigns`` (how many batches were added). Arrays: ``X`` (n, d, as
clustered: float32 from a model), ``labels`` (n,) int64, ``components`` (n,) int64, ``origin``
(d,) float64, ``centres`` (next_label, d) float64, ``radii`` (next_label,) float64, ``sizes``
(next_label,) int64; optional ``row_hashes`` (n,) uint64, ``ids`` (n,) int64 or str, ``photos``
(n,) str, ``boxes`` (n, 4) float64 and ``unsettled`` (n,) bool (a state without them was written before them, or from rows
without ids or photos, or has every component settled). :meth:`ClusterState.save` writes a temporary file beside the target and
renames it over the target only once it is complete (the zip's checksums catch a damaged
file), so a reader sees the old state or the new one, never a half-written one; an existing
file is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numba as nb
import numpy as np

from .._exact_distances import gemm_band, gemm_ready, grid_centre, pair_distances
from ..distances import (
    check_distance,
    check_features,
    length_range,
    refuse_zero_rows,
    to_sq,
    unlike_lengths,
)
from ..exceptions import ClusterStateError, ConfigError, DataError, OutputError, user_stacklevel
from ..utils.provenance import newer_format, utc_now, versions
from ._radius_graph import radius_components, radius_edges
from .labels import first_seen_labels, group_order
from .linkage_core import find_roots, union_pairs

__all__ = ["STATE_FORMAT", "ClusterState", "ClusterStateError", "assign", "row_hashes"]

log = logging.getLogger(__name__)

STATE_FORMAT = "kfree-cluster-state/1"
_ARRAYS = ("X", "labels", "components", "origin", "centres", "radii", "sizes")
#: arrays a state may hold (states written before them have none)
_OPTIONAL_ARRAYS = ("row_hashes", "ids", "photos", "boxes", "unsettled")
#: relative slack of the triangle-inequality bounds: far above the float64 rounding of the GEMM
#: (~1e-14), so a bound never excludes a cluster it should keep; it only costs exact checks
_BOUND_SLACK = 1e-7
#: (new row, cluster) candidate pairs that :func:`assign` checks in one pass (~100 bytes each)
_PAIRS_PER_PASS = 1 << 21
#: (row, cluster) bounds computed in one block (8 bytes each, a few arrays of them)
_NEAR_BLOCK = 1 << 20


def row_hashes(X: Any) -> np.ndarray:
    """A 64-bit hash of each row's values (shape (n,), uint64), the same for a float16, float32 or
    float64 copy of the same numbers: how a state recognises rows it already holds when a batch
    comes back reordered, halved or extended (a batch's own SHA-256 sees only the same bytes).

    FNV-1a over the rows' float64 words, each step followed by a shift-xor, so that every word
    reaches every bit (``-0.0`` and ``0.0`` differ, as their bits do)."""
    X = np.asarray(X)
    h = np.full(X.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    prime, shift = np.uint64(0x100000001B3), np.uint64(29)
    for j in range(X.shape[1]):  # a column at a time: no float64 copy of the whole matrix
        h ^= X[:, j].astype(np.float64).view(np.uint64)
        h *= prime
        h ^= h >> shift
    return h


#: the share of a state's rows that may equal another for it to still recognise rows it holds:
#: embeddings repeat only where an item was kept twice (photo libraries: a few %), integer or
#: categorical features far more (3 features of 3 values: most rows)
REPEATS_TOLERATED = 0.10


class ClusterState:
    """A threshold clustering that new points can be added to (see the module docstring).

    Build one with :meth:`from_fit` (from a fitted
    :class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative` and its rows) or :meth:`fit`,
    add points with :func:`assign`, persist with :meth:`save` / :meth:`load`.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        The clustered rows (embedding or raw features), in the order they were added.
    labels : ndarray of shape (n_samples,), int64
        Cluster labels; not necessarily contiguous after assigns (retired labels leave gaps).
    components : ndarray of shape (n_samples,), int64
        The exact τ-component id of each point.
    threshold : float
        τ, in units of ``distance``.
    distance : {"sqeuclidean", "euclidean", "cosine"}
    linkage : {"complete"}
    centres, radii, sizes : per-label reference points, radii (prepared coordinates) and sizes.
    origin : ndarray of shape (n_features,)
    next_component : int
    row_hashes : ndarray of shape (n_samples,), uint64, or None
        :func:`row_hashes` of the rows as they were given (before a model embedded them: its
        output can differ in the last bits with the batch it is computed in), so that a batch
        holding rows the state already has is recognised (:meth:`held`); None in states
        written before them.
    ids : ndarray of shape (n_samples,), int64 or str, or None
        Each row's own id (a ticket's, a photo's), distinct, when the rows were given with ids:
        a state's rows are then named by them (``kfree assign --all-rows``), not only by their
        position, and a batch reusing an id is refused.
    unsettled : ndarray of shape (n_samples,), bool, or None
        The rows an assign without ``recluster_affected`` placed greedily in a τ-component where a
        full recompute may group differently (see the module docstring); a component holding one
        is *unsettled* (:attr:`n_unsettled`), until an assign with ``recluster_affected``
        re-clusters it. None when every component is settled (a state's assigns drift
        silently otherwise: an operations trial's NMI fell from 0.953 to 0.910 over 199 batches
        with nothing suggesting ``--recluster-affected``). States written before it have none.
    boxes : ndarray of shape (n_samples, 4), float64, or None
        Each row's face box in its photo (left, top, right, bottom in the photo's pixels; NaN for a
        row added without one), kept with ``photos``: the whole library's report shows each face,
        not its whole photo (a group photo showed both people in both clusters: a photo-library
        trial).
    photos : ndarray of shape (n_samples,), str, or None
        The photo each row's face came from (``kfree encode faces``), when the state was made from
        such rows: ``kfree assign --all-rows`` names them, so the whole library can be shown
        (``kfree report --images``), not only each batch (found by a photo-library trial). A row
        added without one has ``""``.
    meta : dict — ``model`` (or None), ``created``, ``updated``, ``versions``, ``assigns``.
    """

    def __init__(self, *, X, labels, components, threshold, distance, linkage, origin, centres,
                 radii, sizes, next_component, meta=None, row_hashes=None, ids=None, photos=None,
                 boxes=None, unsettled=None) -> None:
        self.X = X
        self.labels = labels
        self.components = components
        self.threshold = float(threshold)
        self.distance = distance
        self.linkage = linkage
        self.origin = origin
        self.centres = centres
        self.radii = radii
        self.sizes = sizes
        self.next_component = int(next_component)
        self.row_hashes = row_hashes
        self.ids = ids
        self.photos = photos
        self.boxes = boxes
        self.unsettled = unsettled
        self.meta = dict(meta or {})
        self._csr: tuple[np.ndarray, np.ndarray] | None = None
        # one assign at a time (a web-service trial: two threads assigning at once kept 424 of 1,573
        # rows, and clusters wider than the cut); a lock cannot be pickled or copied: made anew
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def next_label(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(np.count_nonzero(self.sizes))

    @property
    def n_components(self) -> int:
        return int(np.unique(self.components).shape[0])

    @property
    def n_unsettled(self) -> int:
        """How many rows lie in τ-components where a full recompute may group differently (0 after
        ``kfree cluster --state`` and after an assign with ``recluster_affected``)."""
        return int(np.count_nonzero(self._unsettled_rows()))

    def _unsettled_components(self) -> np.ndarray:
        if self.unsettled is None:
            return np.empty(0, dtype=np.int64)
        return np.unique(self.components[self.unsettled])

    def _unsettled_rows(self) -> np.ndarray:
        return np.isin(self.components, self._unsettled_components())

    def held(self, rows: Any) -> np.ndarray:
        """Positions of the rows that the state already holds: ``rows`` are the rows as given
        (shape (m, n_input_features)) or their :func:`row_hashes` (shape (m,)).

        Empty for a state without hashes, and for one whose own rows repeat (more than
        :data:`REPEATS_TOLERATED` of them equal to another): in data where equal rows are common
        (integer or categorical features) an equal row is not the same item, while distinct
        embeddings are equal only when the same item comes back (or a photo kept twice: a library
        with 3 % duplicate photos had been taken for such data, and a re-exported day was added
        twice, silently; found by an embeddings trial)."""
        rows = np.asarray(rows)
        hashes = row_hashes(rows) if rows.ndim == 2 else rows
        if hashes.ndim != 1 or hashes.dtype != np.uint64:
            raise DataError("held takes the rows (n, d) or their row_hashes (n,) uint64, got an array of shape "
                            f"{rows.shape} and dtype {rows.dtype}")
        if not self.recognises_rows():
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.isin(hashes, self.row_hashes))

    def rows_of_ids(self, ids: Any) -> np.ndarray:
        """The state's row of each of ``ids`` (int64), -1 for an id it does not hold (and for
        every id of a state without ids, or of another kind than the state's)."""
        out = np.full(len(ids), -1, dtype=np.int64)
        if self.ids is None or not len(ids):
            return out
        a = _check_ids(ids, len(ids), "ids")
        if (a.dtype.kind == "U") != (self.ids.dtype.kind == "U"):
            return out
        order = np.argsort(self.ids, kind="stable")
        pos = np.minimum(np.searchsorted(self.ids[order], a), order.size - 1)
        found = self.ids[order][pos] == a
        out[found] = order[pos[found]]
        return out

    def recognises_rows(self) -> bool:
        """Whether :meth:`held` can tell single rows: the state has row hashes and its own rows are
        distinct (at most :data:`REPEATS_TOLERATED` equal to another)."""
        return (self.row_hashes is not None
                and np.unique(self.row_hashes).size >= (1.0 - REPEATS_TOLERATED) * self.n_samples)

    def __repr__(self) -> str:
        return (f"ClusterState(n_samples={self.n_samples}, n_features={self.n_features}, "
                f"n_clusters={self.n_clusters}, threshold={self.threshold!r}, "
                f"distance={self.distance!r}, linkage={self.linkage!r})")

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, X: Any, threshold: float, *, distance: str = "sqeuclidean",
            memory_limit: float | None = None, hook: Callable[..., None] | None = None,
            meta: dict | None = None, ids: Any = None) -> ClusterState:
        """Cluster ``X`` (n, d) with complete linkage at ``threshold`` and keep the result as a
        state (shorthand for :meth:`from_fit` of a fresh ThresholdAgglomerative)."""
        from .threshold_hac import ThresholdAgglomerative

        rows = check_features(X, min_samples=1)
        est = ThresholdAgglomerative(threshold, linkage="complete", distance=distance,
                                     memory_limit=memory_limit).fit(rows, hook=hook)
        return cls.from_fit(est, X, hook=hook, meta=meta, ids=ids)  # (X as given: a DataFrame's names kept)

    @classmethod
    def from_fit(cls, estimator: Any, X: Any, *, hook: Callable[..., None] | None = None,
                 meta: dict | None = None, input_hashes: np.ndarray | None = None,
                 ids: Any = None, photos: Any = None, boxes: Any = None) -> ClusterState:
        """The state of a fitted :class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative`.

        Parameters
        ----------
        estimator : ThresholdAgglomerative
            Fitted on ``X`` with complete linkage at a threshold (not at ``n_clusters``, and
            without constraints: a new point must be decidable from distances alone).
        X : array-like of shape (n_samples, n_features)
            The rows it was fitted on (kept in the state as given: float32 stays float32).
        hook : callable, optional
            ``hook(step, completed=, total=)`` progress of the τ-components pass.
        meta : dict, optional
            Provenance to keep (e.g. ``{"model": {...}}``).
        input_hashes : ndarray of shape (n_samples,), optional
            :func:`row_hashes` of the rows as the user gave them, when ``X`` is their embedding
            (default: those of ``X``).
        ids : array-like of shape (n_samples,), optional
            Each row's own id (whole numbers or text, distinct): the state keeps them, and each
            later batch must give its rows' ids (see :func:`assign`).
        photos, boxes : array-like of shape (n_samples,) and (n_samples, 4), optional
            Each row's photo and its face's box there (left, top, right, bottom; ``kfree encode
            faces``), kept for the whole library's report; boxes only with photos.
        """
        labels = getattr(estimator, "labels_", None)
        if labels is None:
            raise ConfigError("the estimator is not fitted: call fit(X) first, or use ClusterState.fit")
        cut = getattr(estimator, "threshold_", None)  # the Threshold the fit cut at (in distance_ units)
        if getattr(estimator, "n_clusters", None) is not None or (cut is None and
                                                                   getattr(estimator, "threshold", None) is None):
            raise ConfigError("a cluster state needs a clustering cut at a threshold, not at n_clusters: "
                              "fit ThresholdAgglomerative(threshold=...)")
        linkage = getattr(estimator, "linkage", None)
        if linkage != "complete":
            raise ConfigError(f"incremental assignment supports complete linkage only, got linkage={linkage!r}: "
                              "cluster with linkage='complete'")
        if getattr(estimator, "_constrained", False):
            raise ConfigError("the estimator was fitted with must-link or cannot-link constraints; a cluster "
                              "state cannot keep constraints: fit it without them")
        if cut is not None:
            tau, distance = float(cut.value), check_distance(cut.distance)
        else:
            tau, distance = float(estimator.threshold), check_distance(estimator.distance)
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None  # a DataFrame's
        X = _float_rows(check_features(X, min_samples=1))
        labels = np.asarray(labels)
        if labels.shape != (X.shape[0],):
            raise DataError(f"X has {X.shape[0]} rows but the estimator was fitted on {labels.shape[0]}: "
                            "pass the rows it was fitted on")
        fitted = getattr(estimator, "_fit_rows", None)
        if fitted is not None:
            from .threshold_hac import rows_fingerprint

            dtype = np.dtype(fitted[0])
            if rows_fingerprint(X.astype(dtype, copy=False)) != fitted:
                other = (f" (X is {X.dtype}, the estimator was fitted on {dtype} rows: give those)"
                         if X.dtype != dtype else "")
                raise DataError("X is not the rows the estimator was fitted on (same number, other values or "
                                f"order){other}: pass the rows it was fitted on, as they were given to fit")
        if names is not None:
            meta = {**(meta or {}), "feature_names": (meta or {}).get("feature_names") or names}
        coarse = getattr(estimator, "_coarse_components", None)  # its τ-components pass, if any
        if coarse is not None and np.shape(coarse) != (X.shape[0],):
            coarse = None
        hashes = row_hashes(X) if input_hashes is None else np.asarray(input_hashes, dtype=np.uint64)
        if hashes.shape != (X.shape[0],):
            raise DataError(f"input_hashes has shape {hashes.shape} but X has {X.shape[0]} rows: pass the "
                            "row_hashes of the rows X embeds")
        ids = None if ids is None else _check_ids(ids, X.shape[0], "ids")
        self = cls._build(X, first_seen_labels(labels), tau, distance, hook, meta, coarse=coarse)
        self.row_hashes, self.ids = hashes, ids
        self.photos = None if photos is None else _check_photos(photos, X.shape[0])
        if boxes is not None and photos is None:
            raise DataError("boxes locate faces in photos: give the rows' photos with them")
        self.boxes = None if boxes is None else _check_boxes(boxes, X.shape[0])
        return self

    @classmethod
    def _build(cls, X, labels, tau, distance, hook, meta, coarse=None) -> ClusterState:
        n, d = X.shape
        if distance == "cosine" or n == 0:
            origin = np.zeros(d)
        else:
            origin = grid_centre(X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64))
        k = int(labels.max()) + 1 if n else 0
        comps = _exact_components(X, labels, tau, distance, hook, coarse=coarse)
        self = cls(X=X, labels=labels.astype(np.int64), components=comps, threshold=tau,
                   distance=distance, linkage="complete", origin=origin,
                   centres=np.zeros((k, d)), radii=np.zeros(k), sizes=np.zeros(k, dtype=np.int64),
                   next_component=int(comps.max()) + 1 if n else 0, meta=meta)
        self._refresh(np.arange(k))
        now = utc_now()
        self.meta.setdefault("model", None)
        self.meta.update(created=now, updated=now, versions=versions(("numpy", "scipy")), assigns=0)
        if n >= 10:  # (what _warn_if_unlike checks batches against)
            self.meta["row_lengths"] = list(length_range(X))
        return self

    # ------------------------------------------------------------------ internals
    def _prepared(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the coordinates of ``centres`` (float64)."""
        return gemm_ready(rows, self.distance, centre=self.origin)

    def _members(self) -> tuple[np.ndarray, np.ndarray]:
        """Points sorted by label and each label's start (label L: ``order[starts[L]:starts[L+1]]``)."""
        if self._csr is None:
            self._csr = group_order(self.labels, self.next_label)
        return self._csr

    def _refresh(self, labs: np.ndarray, *, chunk: int = 65536) -> None:
        """Recompute the sizes, reference points (members' mean) and radii of labels ``labs``."""
        self._csr = None
        order, starts = self._members()
        labs = np.asarray(labs, dtype=np.int64)
        sizes = starts[labs + 1] - starts[labs]
        self.sizes[labs] = sizes
        self.centres[labs[sizes == 0]] = 0.0
        self.radii[labs[sizes == 0]] = 0.0
        labs = labs[sizes > 0]
        i = 0
        while i < labs.shape[0]:  # groups of labels with about `chunk` members
            j, tot = i, 0
            while j < labs.shape[0] and (j == i or tot + self.sizes[labs[j]] <= chunk):
                tot += int(self.sizes[labs[j]])
                j += 1
            group = labs[i:j]
            idx = np.concatenate([order[starts[g] : starts[g + 1]] for g in group])
            P = self._prepared(self.X[idx])
            seg = np.r_[0, np.cumsum(self.sizes[group])[:-1]]
            cen = np.add.reduceat(P, seg, axis=0) / self.sizes[group][:, None]
            diff = P - np.repeat(cen, self.sizes[group], axis=0)
            rad = np.sqrt(np.maximum.reduceat(np.einsum("ij,ij->i", diff, diff), seg))
            self.centres[group] = cen
            self.radii[group] = rad
            i = j

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the state to one file, atomically (see "On-disk format" in the module docstring).

        An existing file is replaced only with ``overwrite=True`` (else
        :class:`~kfree.exceptions.OutputError`); until the new file is complete the old one stays.
        """

        path = Path(path)
        if path.is_dir():
            raise OutputError(f"cannot write the cluster state to {path}: it is a directory; give a file name")
        if path.exists() and not overwrite:
            raise OutputError(f"{path} already exists; pass overwrite=True (--force) to replace it, "
                              "or choose another name")
        with self._lock:  # (not while an assign changes it: a whole state, checked as load checks it)
            self._check_consistent("the state to save")
            return self._write(path)

    def _write(self, path: Path) -> Path:
        from ..utils.io import atomic_path

        header = {  # provenance first, so that it never replaces a field of the state
            **self.meta,
            "format": STATE_FORMAT, "threshold": self.threshold, "distance": self.distance,
            "linkage": self.linkage, "n_samples": self.n_samples, "n_features": self.n_features,
            "n_clusters": self.n_clusters, "n_components": self.n_components,
            "next_label": self.next_label, "next_component": self.next_component,
            "dtype": str(self.X.dtype),
        }
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED,
                                                       allowZip64=True) as zf:
            zf.writestr("state.json", json.dumps(header, indent=1, sort_keys=True))
            for name in (*_ARRAYS, *(a for a in _OPTIONAL_ARRAYS if getattr(self, a) is not None)):
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(getattr(self, name)),
                                              allow_pickle=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClusterState:
        """Read a state written by :meth:`save`; a missing, foreign or damaged file raises
        :class:`ClusterStateError` saying which and what to do."""
        p = Path(path)
        if not p.exists():
            raise ClusterStateError(f"cluster state not found: {p}; create one with "
                                    f"`kfree cluster ... --state {p}` (or ClusterState.save)")
        if p.is_dir():
            raise ClusterStateError(f"{p} is a directory, not a cluster state file")
        try:
            with zipfile.ZipFile(p) as zf:
                names = set(zf.namelist())
                if packed := [i.filename for i in zf.infolist() if i.compress_type != zipfile.ZIP_STORED]:
                    # (save writes records stored: a compressed one would be inflated whole before the
                    # checks, gigabytes from a 1 MB file: a security review)
                    raise ClusterStateError(f"{p.name} holds compressed records ({packed[0]!r}…), which kfree "
                                            "never writes: a re-packed or foreign file, not read; give a file "
                                            "written by `kfree cluster --state`")
                if "state.json" not in names:
                    raise ClusterStateError(f"{p.name} is not a kfree cluster state (no state.json); "
                                            "give a file written by `kfree cluster --state`")
                header = json.loads(zf.read("state.json").decode("utf-8"))
                if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
                    got = header.get("format") if isinstance(header, dict) else None
                    raise ClusterStateError(f"{p.name} has format {got!r}; this kfree reads {STATE_FORMAT!r}"
                                            + (": it was written by a newer kfree, upgrade kfree to read it"
                                               if newer_format(got, STATE_FORMAT) else ""))
                missing = [a for a in _ARRAYS if f"{a}.npy" not in names]
                if missing:
                    raise ClusterStateError(f"{p.name} is a damaged cluster state: arrays {missing} are "
                                            "missing; recreate it with `kfree cluster --state`")
                arrays = {}
                for a in (*_ARRAYS, *(a for a in _OPTIONAL_ARRAYS if f"{a}.npy" in names)):
                    with zf.open(f"{a}.npy") as f:
                        arrays[a] = np.lib.format.read_array(f, allow_pickle=False)
        except ClusterStateError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                UnicodeDecodeError) as e:
            raise ClusterStateError(f"{p.name} is not a readable kfree cluster state ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:200]}); give a file written by "
                                    "`kfree cluster --state`") from None
        fields = ("format", "threshold", "distance", "linkage", "n_samples", "n_features", "n_clusters",
                  "n_components", "next_label", "next_component", "dtype")
        try:
            self = cls(X=arrays["X"], labels=arrays["labels"].astype(np.int64, copy=False),
                       components=arrays["components"].astype(np.int64, copy=False),
                       threshold=float(header["threshold"]), distance=check_distance(header["distance"]),
                       linkage=str(header["linkage"]), origin=arrays["origin"].astype(np.float64),
                       centres=arrays["centres"].astype(np.float64), radii=arrays["radii"].astype(np.float64),
                       sizes=arrays["sizes"].astype(np.int64), next_component=int(header["next_component"]),
                       meta={k: v for k, v in header.items() if k not in fields},
                       row_hashes=arrays.get("row_hashes"), ids=arrays.get("ids"), photos=arrays.get("photos"),
                       boxes=arrays.get("boxes"), unsettled=arrays.get("unsettled"))
            if (self.unsettled is None and int(self.meta.get("assigns") or 0) > 0
                    and "n_unsettled" not in (self.meta.get("last_assign") or {})):
                # grown by a kfree that did not mark where a recompute may differ: every row may, so the
                # next recluster_affected assign re-clusters them all (a review: such drift went unrepaired)
                self.unsettled = np.ones(self.n_samples, dtype=bool)
            if self.row_hashes is None and not self.meta.get("model"):  # written before row hashes:
                self.row_hashes = row_hashes(self.X)  # a model-free state's rows are the rows as given
        except (KeyError, TypeError, ValueError) as e:
            raise ClusterStateError(f"{p.name} is a damaged cluster state ({type(e).__name__}: {e}); "
                                    "recreate it with `kfree cluster --state`") from None
        self._check_consistent(p.name)
        return self

    def _check_consistent(self, name: str) -> None:
        n = self.labels.shape[0]
        k = self.sizes.shape[0]
        problems = []
        if self.X.ndim != 2 or self.X.shape[0] != n or self.components.shape != (n,):
            problems.append("X, labels and components have different lengths")
        elif self.X.dtype.kind != "f":
            problems.append(f"X has dtype {self.X.dtype}")
        if self.centres.shape != (k, self.X.shape[-1]) or self.radii.shape != (k,) or \
                self.origin.shape != (self.X.shape[-1],):
            problems.append("per-cluster arrays do not match")
        if n and (self.labels.min() < 0 or self.labels.max() >= k):
            problems.append("labels outside 0..next_label-1")
        elif not problems and not np.array_equal(np.bincount(self.labels, minlength=k), self.sizes):
            problems.append("cluster sizes do not match the labels")
        if n and (self.components.min() < 0 or self.components.max() >= self.next_component):
            problems.append("component ids outside 0..next_component-1")
        if self.row_hashes is not None and (self.row_hashes.shape != (n,) or self.row_hashes.dtype != np.uint64):
            problems.append("row_hashes do not match the rows")
        if self.ids is not None and (self.ids.shape != (n,) or self.ids.dtype.kind not in "iU"):
            problems.append("ids do not match the rows")
        if self.photos is not None and (self.photos.shape != (n,) or self.photos.dtype.kind != "U"):
            problems.append("photos do not match the rows")
        if self.boxes is not None and (self.boxes.shape != (n, 4) or self.boxes.dtype != np.float64
                                       or self.photos is None):
            problems.append("boxes do not match the rows")
        if self.unsettled is not None and (self.unsettled.shape != (n,) or self.unsettled.dtype != np.bool_):
            problems.append("unsettled does not match the rows")
        if self.linkage != "complete":
            problems.append(f"linkage {self.linkage!r} (only complete is supported)")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            problems.append(f"threshold {self.threshold!r}")
        if problems:
            raise ClusterStateError(f"{name} is a damaged cluster state: {'; '.join(problems)}; recreate it "
                                    "with `kfree cluster --state`")


def _warn_if_unlike(state: ClusterState, X_new: np.ndarray) -> None:
    """Warn when the new rows' median length lies outside the range of the state's rows' lengths
    (:func:`~kfree.distances.unlike_lengths`: from 3 new rows). Not for cosine distance, which
    ignores lengths, nor for a state of fewer than 10 rows; the rows are added all the same."""
    if state.distance == "cosine" or state.n_samples < 10:
        return
    # the lengths of the rows the state was made from (a state written before it: of all its rows), so
    # that a batch added after its warning does not widen the range later batches are checked against
    # (a photo-library trial's ×3 batch took it from 1.33–1.5 to 1.34–2.4)
    lo, hi = lengths = tuple(state.meta.get("row_lengths") or length_range(state.X))
    new = unlike_lengths(lengths, X_new)
    if new is not None:
        from ..exceptions import DataWarning

        warnings.warn(DataWarning(
            f"the new rows' median length is {new:.3g}, outside the state's rows' {lo:.3g}–{hi:.3g} (5th to 95th "
            "percentile): made by another model or encoder, or scaled otherwise? Rows are comparable with the "
            "state's only when embedded the way its rows were; they are added all the same"), stacklevel=user_stacklevel())


def _check_boxes(boxes: Any, n: int) -> np.ndarray:
    """``boxes`` as a state keeps them: (n, 4) float64 left, top, right, bottom (NaN: none)."""
    a = np.asarray(boxes, dtype=np.float64)
    if a.shape != (n, 4):
        raise DataError(f"boxes has shape {a.shape} but there are {n} rows: give one box (left, top, right, "
                        "bottom) per row")
    return a


def _check_photos(photos: Any, n: int) -> np.ndarray:
    """``photos`` as a state keeps them: n texts (a photo's path; ``""`` for none)."""
    a = np.asarray(["" if p is None else str(p) for p in photos], dtype=str).reshape(-1)
    if a.shape != (n,):
        raise DataError(f"photos has {a.shape[0]} entries but there are {n} rows: give one photo per row")
    return a


#: the longest text id a state keeps (it stores every id at the longest one's width)
MAX_ID_CHARS = 512


def _check_ids(ids: Any, n: int, name: str, held: np.ndarray | None = None) -> np.ndarray:
    """``ids`` as a state keeps them: n distinct whole numbers (int64) or texts (a fixed-width str
    array, no pickle), none of them among ``held`` (the state's), else a DataError naming one."""
    a = np.asarray(ids)
    if a.dtype.kind == "O" and all(isinstance(v, str) for v in a.tolist()):
        a = a.astype(str)
    if a.shape != (n,) or a.dtype.kind not in "iuU":
        raise DataError(f"{name} must be {n} whole numbers or texts, one per row (got {a.dtype} of shape {a.shape})")
    a = a.astype(np.int64) if a.dtype.kind in "iu" else a
    if a.dtype.kind == "U" and a.size:  # as wide as its longest id, not as declared (a review: U600 of "a", "bb")
        a = a.astype(f"U{max(1, int(np.char.str_len(a).max()))}")
    if a.dtype.kind == "U" and a.dtype.itemsize // 4 > MAX_ID_CHARS:
        # (a state keeps text ids at the longest one's width: one of 2,500 characters made 20,000 rows'
        # ids 200 MB, rewritten by every assign: a security review)
        longest = int(np.argmax(np.char.str_len(a)))
        raise DataError(f"{name}: the id of row {longest} (from 0) has {len(a[longest]):,} characters, more than "
                        f"the {MAX_ID_CHARS} a state keeps; is the id column a text column? Name the column of "
                        "short ids (--id-column)")
    if held is not None and held.size and (held.dtype.kind == "U") != (a.dtype.kind == "U"):
        raise DataError(f"{name} are {'texts' if a.dtype.kind == 'U' else 'numbers'} but the state's ids are "
                        f"{'texts' if held.dtype.kind == 'U' else 'numbers'} (e.g. {held[0].item()!r}): give "
                        "the ids of the same kind")
    values, counts = np.unique(a, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{name} repeat {values[counts > 1][0].item()!r}: give each row its own id")
    if held is not None and (again := np.intersect1d(values, held)).size:
        raise DataError(f"{again.size:,} of the {name} {'is' if again.size == 1 else 'are'} already in the state "
                        f"({', '.join(repr(v) for v in again[:5].tolist())}"
                        f"{'…' if again.size > 5 else ''}): give new rows new ids")
    return a


def _float_rows(X: np.ndarray) -> np.ndarray:
    """Floating-point rows as given (float32 stays float32); integers become float64."""
    return X if X.dtype.kind == "f" else X.astype(np.float64)


# ---------------------------------------------------------------------------- components
def _exact_components(X, labels, tau, distance, hook=None, coarse=None) -> np.ndarray:
    """Exact τ-components (ids 0..c-1, first appearance order) of points clustered by complete
    linkage at τ into ``labels``.

    :func:`~kfree.cluster._radius_graph.radius_components` gives components of a slightly wider
    graph (float32 with a margin) without storing edges. Each complete-linkage cluster is a
    clique of the τ-graph, so a wide component holding one cluster is exact; one holding several
    clusters has its exact τ-edges streamed (:func:`radius_edges` with a sink: each recomputed
    as scipy does) and its clusters joined along them. ``coarse``: that wider pass's components
    when the fit already made them (the per-component path of ThresholdAgglomerative at the same
    τ and distance, on the same rows), so it is not repeated.
    """
    n = X.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if coarse is None:
        coarse = radius_components(X, tau, distance, hook=hook)
    n_c = int(coarse.max()) + 1
    k = int(labels.max()) + 1
    per = np.bincount(np.unique(coarse * k + labels) // k, minlength=n_c)  # clusters per coarse component
    parent = np.arange(k, dtype=np.int64)  # union-find over the clusters
    multi = np.flatnonzero(per > 1)
    if multi.size:
        order, starts = group_order(coarse, n_c)
        for c in multi:
            pts = order[starts[c] : starts[c + 1]]
            lab = labels[pts]

            def sink(ei, ej, _dd, lab=lab):
                a, b = lab[ei], lab[ej]
                cross = a != b
                key = np.unique(np.minimum(a, b)[cross] * k + np.maximum(a, b)[cross])
                union_pairs(parent, key // k, key % k)

            radius_edges(X[pts], tau, distance, sink=sink)
    return first_seen_labels(find_roots(parent)[labels])


# ---------------------------------------------------------------------------- assign
def _near(P: np.ndarray, pn: np.ndarray, state: ClusterState, thr_sq: float, alive: np.ndarray):
    """Candidate (point, label) pairs, block by block of rows: labels that may hold a
    τ-neighbour of a prepared row (``|p - c| <= s + R``; ``pn``: the rows' squared norms); also
    whether every member may be within τ (``|p - c| <= s``). Blocks of rows hold about
    ``_NEAR_BLOCK`` (row, label) pairs."""
    C = state.centres[alive]
    R = state.radii[alive]
    cn = np.einsum("ij,ij->i", C, C)
    s = math.sqrt(thr_sq)
    block = max(1, min(256, _NEAR_BLOCK // max(1, alive.shape[0])))
    for p0 in range(0, P.shape[0], block):
        Pb, pb = P[p0 : p0 + block], pn[p0 : p0 + block]
        d2 = pb[:, None] + cn[None, :] - 2.0 * (Pb @ C.T)
        scale = (np.sqrt(pb)[:, None] + np.sqrt(cn)[None, :]) ** 2
        lim = (s + R)[None, :] ** 2 * (1 + _BOUND_SLACK) + _BOUND_SLACK * scale
        r, c = np.nonzero(d2 <= lim)
        yield r + p0, alive[c], d2[r, c] <= s * s * (1 + _BOUND_SLACK) + _BOUND_SLACK * scale[r, c]


def _touching(state: ClusterState, X_new: np.ndarray, P: np.ndarray, thr_sq: float):
    """The (new row, label) pairs where the row has a member of the label within τ: rows
    ``cp``, labels ``cl``, whether every member is within τ (``join``) and then the exact
    largest distance (``dmax``, else +inf); in row order, then label order.

    The bounds of :func:`_near` may leave thousands of clusters per row (faces, whose
    identities lie about as far apart as the cut); their candidates are checked in passes of
    about ``_PAIRS_PER_PASS``, so memory does not grow with the batch.
    """
    alive = np.flatnonzero(state.sizes > 0)
    pn = np.einsum("ij,ij->i", P, P)  # (once: every pass needs some of them)
    out: list[tuple[np.ndarray, ...]] = []
    pending: list[tuple[np.ndarray, ...]] = []
    count = 0

    def check() -> None:
        cp, cl, may_join = (np.concatenate(a) for a in zip(*pending, strict=True))
        join, dmax, touch = _member_checks(state, X_new, P, pn, cp, cl, may_join)
        keep = touch  # every member within τ implies some member within τ
        out.append((cp[keep], cl[keep], join[keep], dmax[keep]))

    if alive.size:
        for got in _near(P, pn, state, thr_sq, alive):
            pending.append(got)
            count += got[0].shape[0]
            if count >= _PAIRS_PER_PASS:
                check()
                pending, count = [], 0
        if pending:
            check()
    if not out:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0, dtype=bool), np.empty(0)
    return tuple(np.concatenate(a) for a in zip(*out, strict=True))


def _member_checks(state: ClusterState, X_new: np.ndarray, P: np.ndarray, pn: np.ndarray, cp: np.ndarray,
                   cl: np.ndarray, may_join: np.ndarray, *, block: int = 512):
    """For each candidate pair t (new row ``cp[t]``, label ``cl[t]``): whether every member is
    within τ (``join``), the exact largest distance when it is (``dmax``, else +inf), and
    whether some member is within τ (``touch``).

    Distances of all (row, member) pairs come from a float64 GEMM on prepared rows, one label's
    members at a time; as in :mod:`~kfree.cluster.threshold_hac`, every pair whose GEMM value
    lies within :func:`~kfree._exact_distances.gemm_band` of τ (the band of that label's
    members and rows) is recomputed as scipy's ``pdist`` does (existing row first) and decided
    on that value, and the largest distance is recomputed exactly from the members whose GEMM
    value is within twice the band of the largest.
    """
    t_n = cp.shape[0]
    join = np.zeros(t_n, dtype=bool)
    touch = np.zeros(t_n, dtype=bool)
    dmax = np.full(t_n, np.inf)
    if t_n == 0:
        return join, dmax, touch
    order, starts = state._members()
    tau, dist = state.threshold, state.distance
    thr_sq = to_sq(tau, dist)
    by = np.argsort(cl, kind="stable")
    labs = np.unique(cl)
    cut = np.r_[np.searchsorted(cl[by], labs), t_n]
    band = np.empty(t_n)
    gmin = np.empty(t_n)
    gmax = np.empty(t_n)
    need_t: list[np.ndarray] = []
    need_m: list[np.ndarray] = []  # state rows
    for j, lab in enumerate(labs.tolist()):
        members = order[starts[lab] : starts[lab + 1]]
        Mj = state._prepared(state.X[members])
        mnj = np.einsum("ij,ij->i", Mj, Mj)
        mine = by[cut[j] : cut[j + 1]]
        bj = gemm_band(thr_sq, float(max(pn[cp[mine]].max(), mnj.max())), Mj.shape[1], dist)
        band[mine] = bj
        for q0 in range(0, mine.shape[0], block):
            idx = mine[q0 : q0 + block]
            rows = cp[idx]
            G = pn[rows][:, None] + mnj[None, :] - 2.0 * (P[rows] @ Mj.T)
            lo_g, hi_g = G.min(axis=1), G.max(axis=1)
            gmin[idx], gmax[idx] = lo_g, hi_g
            # pairs to recompute: near the cut when the nearest member is; for a possible
            # join, those near the cut and those that may be the largest
            open_touch = np.abs(lo_g - thr_sq) <= bj
            open_join = may_join[idx] & (hi_g <= thr_sq + bj)
            if not (open_touch.any() or open_join.any()):
                continue
            lo = np.where(open_join, np.minimum(thr_sq - bj, hi_g - 2.0 * bj), np.inf)
            need = (G >= lo[:, None]) | (open_touch[:, None] & (np.abs(G - thr_sq) <= bj))
            r, c = np.nonzero(need)
            need_t.append(idx[r])
            need_m.append(members[c])
    touch[:] = gmin <= thr_sq - band
    open_join = may_join & (gmax <= thr_sq + band)
    if need_t:
        t_idx = np.concatenate(need_t)
        old_rows, m_at = np.unique(np.concatenate(need_m), return_inverse=True)
        new_rows, r_at = np.unique(cp[t_idx], return_inverse=True)
        X = np.concatenate([np.asarray(state.X[old_rows], dtype=np.float64),
                            np.asarray(X_new[new_rows], dtype=np.float64)])
        exact = pair_distances(X, m_at, old_rows.shape[0] + r_at, dist)  # existing row first
        hit = np.zeros(t_n, dtype=bool)
        np.logical_or.at(hit, t_idx, exact <= tau)
        touch |= (np.abs(gmin - thr_sq) <= band) & hit
        # a possible join holds unless a recomputed member is beyond tau; its dmax is the
        # largest recomputed value (the true largest is among them)
        worst = np.full(t_n, -np.inf)
        np.maximum.at(worst, t_idx, np.where(open_join[t_idx], exact, -np.inf))
        join = open_join & (worst <= tau)
        dmax = np.where(join, worst, np.inf)
    return join, dmax, touch


def _assign(state: ClusterState, X_new: Any, *, recluster_affected: bool = False,
           hook: Callable[..., None] | None = None, input_hashes: np.ndarray | None = None,
           ids: Any = None, photos: Any = None, boxes: Any = None, check_lengths: bool = True) -> np.ndarray:
    """Add the rows ``X_new`` to ``state`` (updated in place); returns their labels.

    Parameters
    ----------
    state : ClusterState
    X_new : array-like of shape (n_new, n_features)
        In the space the state clusters (the embedding: ``learner.transform(X)``, or the raw
        features of a model-free state). Rows are kept exactly as given: a float64 batch turns
        a float32 state into float64.
    recluster_affected : bool
        Re-agglomerate, exactly, the τ-components the new points touch (their existing points
        may then change cluster); the partition then equals a full recompute. Without it, new
        points join existing clusters or open new ones and no existing point moves.
    hook : callable, optional
        ``hook(step, completed=, total=)`` progress callback (the recompute's τ-graph).
    input_hashes : ndarray of shape (n_new,), optional
        :func:`row_hashes` of the rows as the user gave them, when ``X_new`` is their embedding
        (default: those of ``X_new``). Rows the state already holds are added again (check
        :meth:`ClusterState.held` first to refuse them).
    ids : array-like of shape (n_new,), optional
        The new rows' own ids, required by a state that keeps ids (:attr:`ClusterState.ids`) and
        refused by one that does not; each must be new to the state.
    boxes : array-like of shape (n_new, 4), optional
        The new rows' face boxes in their photos, kept by a state that keeps boxes (NaN for rows
        given without).
    photos : array-like of shape (n_new,), optional
        The new rows' photos, kept by a state that keeps photos (:attr:`ClusterState.photos`;
        ``""`` for rows given without); a state without them ignores them.
    check_lengths : bool
        Warn when the new rows' median length lies outside the state's rows' (another encoder?);
        off where the caller checked the rows before embedding them (``kfree assign MODEL``: the
        model's own check, said once).

    Threads may share a state: assigns to it (and :meth:`ClusterState.save`) run one at a time
    (a web-service trial: two threads at once kept 424 of 1,573 rows). Across processes, lock the
    state's file (``kfree assign`` does).

    Returns
    -------
    ndarray of shape (n_new,), int64 — the new rows' labels (existing or new cluster labels). A
    batch of no rows returns none and leaves the state as it was.

    See the module docstring for the exact rules and what may differ from a full recompute.
    """
    names = state.meta.get("feature_names")
    if names and hasattr(X_new, "columns") and [str(c) for c in X_new.columns] != list(names):
        got = [str(c) for c in X_new.columns]
        raise DataError("X_new's columns are not the state's (" + ("in another order" if set(got) == set(names)
                        else f"it has {sorted(set(got) - set(names))[:5]}, lacks {sorted(set(names) - set(got))[:5]}")
                        + "): give X_new[state.meta['feature_names']], so that each feature means what it meant")
    X_new = _float_rows(check_features(X_new, name="X_new", min_samples=0))
    hashes = None
    if state.row_hashes is not None:
        hashes = row_hashes(X_new) if input_hashes is None else np.asarray(input_hashes, dtype=np.uint64)
        if hashes.shape != (X_new.shape[0],):
            raise DataError(f"input_hashes has shape {hashes.shape} but X_new has {X_new.shape[0]} rows: pass "
                            "the row_hashes of the rows X_new embeds")
    if X_new.shape[1] != state.n_features:
        raise DataError(f"X_new has {X_new.shape[1]} features but the cluster state has {state.n_features}: "
                        "embed the new rows the way the state's rows were (same model, same features)")
    refuse_zero_rows(X_new, state.distance, "the new rows")
    if (ids is None) != (state.ids is None):
        raise DataError("the state names its rows by their ids: give the new rows' ids" if ids is None else
                        "the state keeps no ids (it was made without them): leave ids out")
    if ids is not None:
        ids = _check_ids(ids, X_new.shape[0], "ids", held=state.ids)
    if state.photos is not None:
        photos = _check_photos([""] * X_new.shape[0] if photos is None else photos, X_new.shape[0])
    if state.boxes is not None:
        boxes = _check_boxes(np.full((X_new.shape[0], 4), np.nan) if boxes is None else boxes, X_new.shape[0])
    if X_new.shape[0] == 0:  # a batch of no rows (a quiet day): nothing to add, and nothing recorded
        return np.empty(0, dtype=np.int64)
    if check_lengths:
        _warn_if_unlike(state, X_new)
    tau = state.threshold
    m, n = X_new.shape[0], state.n_samples
    thr_sq = to_sq(tau, state.distance)
    P = state._prepared(X_new)

    # 1. the existing clusters with a member within τ of a new row, from exact distances to every
    #    member of the clusters the bounds leave (and whether every member is within τ)
    cp, cl, joinable, dmax = _touching(state, X_new, P, thr_sq)
    order, starts = state._members()
    comp_of = state.components[order[starts[cl]]] if cl.size else np.empty(0, dtype=np.int64)

    # 2. exact τ-edges among the new rows, and the merged τ-components
    ei, ej, ed = radius_edges(X_new, tau, state.distance) if m > 1 else (
        np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0))
    # union-find over the existing components (ids 0..nc-1) and the new rows (nc + row): the
    # smaller root wins, so a set that holds an existing component is named by the smallest one
    nc = state.next_component
    parent = np.arange(nc + m, dtype=np.int64)
    union_pairs(parent, comp_of, nc + cp)
    union_pairs(parent, nc + ei.astype(np.int64), nc + ej.astype(np.int64))
    root = find_roots(parent)
    new_root = root[nc:]
    fresh = new_root >= nc  # new rows that joined no existing component: new ids in row order
    new_comp = new_root.copy()
    fresh_ids = first_seen_labels(new_root[fresh])
    new_comp[fresh] = nc + fresh_ids
    next_comp = nc + (int(fresh_ids.max()) + 1 if fresh_ids.size else 0)
    touched = np.unique(comp_of)
    # existing components merged into another (smaller) one through the new rows take its id; the
    # root of an untouched component is itself
    comps = root[state.components]

    old_next = state.next_label
    merged = {c: int(root[c]) for c in touched.tolist()}
    joined = set(zip(cp[joinable].tolist(), cl[joinable].tolist(), strict=True))
    groups = _merged_groups(state, merged, new_comp, joined, ei)
    unsettled = state.unsettled
    if recluster_affected:
        labels_all, refresh, moved, n_re, n_cliques, grown = _recluster(state, X_new, groups, hook)
        labels_new = labels_all[n:]
        unsettled = None  # every component a greedy assign left unsettled was re-clustered too
    else:
        labels_new = _greedy(state, m, cp[joinable], cl[joinable], dmax[joinable], ei, ej, ed)
        labels_all = np.concatenate([state.labels, labels_new])
        refresh, moved, n_re, n_cliques = None, 0, 0, groups.n_cliques
        if groups.redo_pts or unsettled is not None:
            unsettled = np.concatenate([np.zeros(n, dtype=bool) if unsettled is None else unsettled,
                                        np.zeros(m, dtype=bool)])
            unsettled[n + np.array(groups.redo_pts, dtype=np.int64)] = True
    # 3. append the rows, then update the per-cluster data
    state.X = np.concatenate([state.X, X_new])
    if hashes is not None:
        state.row_hashes = np.concatenate([state.row_hashes, hashes])
    if ids is not None:
        state.ids = np.concatenate([state.ids, ids])
    if state.photos is not None:
        state.photos = np.concatenate([state.photos, photos])
    if state.boxes is not None:
        state.boxes = np.concatenate([state.boxes, boxes])
    state.unsettled = unsettled
    state.labels = labels_all
    state.components = np.concatenate([comps, new_comp])
    state.next_component = next_comp
    grow = int(labels_all.max()) + 1 - old_next
    if grow > 0:
        state.centres = np.concatenate([state.centres, np.zeros((grow, state.n_features))])
        state.radii = np.concatenate([state.radii, np.zeros(grow)])
        state.sizes = np.concatenate([state.sizes, np.zeros(grow, dtype=np.int64)])
    state._csr = None
    if refresh is not None:
        state._refresh(refresh)
        if grown.any():
            _grow_clusters(state, P[grown], labels_new[grown], old_next)
    else:
        _grow_clusters(state, P, labels_new, old_next)
    if "row_lengths" not in state.meta and state.n_samples >= 10:  # (made from fewer rows: none was checked yet)
        state.meta["row_lengths"] = list(length_range(state.X))
    state.meta["assigns"] = int(state.meta.get("assigns") or 0) + 1
    state.meta["updated"] = utc_now()
    state.meta["last_assign"] = {"n_new": m, "recluster_affected": bool(recluster_affected),
                                 "n_reclustered": n_re, "n_existing_moved": moved,
                                 "n_components_kept_whole": n_cliques,
                                 "n_components_touched": int(touched.shape[0]),
                                 "n_placed_unsettled": 0 if recluster_affected else len(groups.redo_pts),
                                 "n_unsettled": state.n_unsettled}
    return labels_new


@functools.wraps(_assign)
def assign(state: ClusterState, X_new: Any, **kwargs: Any) -> np.ndarray:
    # one assign at a time per state (its lock): the text above is _assign's, which does the work
    with state._lock:
        return _assign(state, X_new, **kwargs)


def _greedy(state, m, jp, jl, jd, ei, ej, ed) -> np.ndarray:
    """Place the new rows one at a time in row order (see the module docstring).

    ``jp, jl, jd``: the existing clusters row ``jp[t]`` may join (every member within τ), with
    the largest distance; ``ei < ej``: the τ-edges among the new rows, ``ed`` their distances.
    Both go to the kernel grouped by row (the edges by their later row, the one placed after the
    other), in arrays: on faces a batch's τ-edges run to millions."""
    cptr = np.r_[0, np.cumsum(np.bincount(jp, minlength=m))].astype(np.int64)
    by = np.argsort(jp, kind="stable")
    order = np.argsort(ej, kind="stable")
    eptr = np.r_[0, np.cumsum(np.bincount(ej, minlength=m))].astype(np.int64)
    return _greedy_kernel(m, cptr, np.ascontiguousarray(jl[by], dtype=np.int64),
                          np.ascontiguousarray(jd[by], dtype=np.float64), eptr,
                          np.ascontiguousarray(ei[order], dtype=np.int64),
                          np.ascontiguousarray(ed[order], dtype=np.float64), state.next_label)


@nb.njit(cache=True)
def _greedy_kernel(m, cptr, clab, cd, eptr, eidx, ed, first_new):
    """Row i takes, among the existing clusters it may join (``clab[cptr[i]:cptr[i+1]]``, largest
    distance ``cd``) and the clusters this batch opened that hold a τ-neighbour of it, one whose
    every batch row placed so far is a τ-neighbour of i (``eidx[eptr[i]:eptr[i+1]]``, the
    earlier rows within τ of i); the smallest largest distance wins, then the lowest label; with
    none, it opens label ``first_new + k``. A label's batch rows are all neighbours of i exactly
    when i has as many neighbours in it as it has batch rows (``count`` against ``added``)."""
    n_labels = first_new + m
    out = np.empty(m, dtype=np.int64)
    added = np.zeros(n_labels, dtype=np.int64)  # the batch's rows placed in each label so far
    count = np.zeros(n_labels, dtype=np.int64)  # scratch: i's placed neighbours in each label
    far = np.full(n_labels, -np.inf)  # scratch: the largest distance to them
    nxt = first_new
    for i in range(m):
        for t in range(eptr[i], eptr[i + 1]):
            lab = out[eidx[t]]
            count[lab] += 1
            far[lab] = max(far[lab], ed[t])
        best_h = np.inf
        best = -1
        for t in range(cptr[i], cptr[i + 1]):
            lab = clab[t]
            if count[lab] == added[lab]:
                h = max(cd[t], far[lab])
                if best < 0 or h < best_h or (h == best_h and lab < best):
                    best_h, best = h, lab
        for t in range(eptr[i], eptr[i + 1]):
            lab = out[eidx[t]]
            if lab >= first_new and count[lab] == added[lab]:
                h = far[lab]
                if best < 0 or h < best_h or (h == best_h and lab < best):
                    best_h, best = h, lab
        for t in range(eptr[i], eptr[i + 1]):
            lab = out[eidx[t]]
            count[lab] = 0
            far[lab] = -np.inf
        if best < 0:
            best = nxt
            nxt += 1
        out[i] = best
        added[best] += 1
    return out


def _grow_clusters(state: ClusterState, P: np.ndarray, labels_new: np.ndarray, old_next: int) -> None:
    """After a greedy assign: sizes, radii of grown clusters (reference point fixed), and the
    reference points of new clusters."""
    np.add.at(state.sizes, labels_new, 1)
    old = labels_new < old_next
    if old.any():
        diff = P[old] - state.centres[labels_new[old]]
        np.maximum.at(state.radii, labels_new[old], np.sqrt(np.einsum("ij,ij->i", diff, diff)))
    if (~old).any():
        state._refresh(np.unique(labels_new[~old]))


class _Groups(NamedTuple):
    """How an assign's merged τ-components fall (:func:`_merged_groups`)."""

    final_new: np.ndarray  # (m,) a new row's label where its component is settled without re-clustering
    grown: np.ndarray  # (m,) bool: rows added whole to an existing cluster
    fresh: int  # placeholders -1 - j used for clusters that get a new label
    n_cliques: int
    redo_comps: list[int]  # existing components to re-agglomerate
    redo_pts: list[int]  # new rows to re-agglomerate with them


def _merged_groups(state: ClusterState, merged: dict[int, int], new_comp: np.ndarray,
                   joined: set[tuple[int, int]], ei: np.ndarray) -> _Groups:
    """Which merged τ-components (touched existing components + the new rows in them) are one
    cluster under any exact complete linkage, and which must be re-agglomerated.

    ``merged`` maps each touched existing component to its merged id, ``new_comp`` gives the new
    rows' merged ids, ``joined`` holds the (new row, label) pairs with every member within τ,
    ``ei`` the first ends of the τ-edges among the new rows. A merged component whose points are
    all within τ of each other (at most one existing component, holding one cluster — a clique —
    and new rows within τ of all its members and of each other) is one cluster, so it needs no
    re-agglomeration, and the greedy placement gives it too; the others (and the components an
    earlier greedy assign left unsettled) are re-agglomerated by :func:`_recluster`, and a greedy
    assign leaves them unsettled.
    """
    m = new_comp.shape[0]
    order, starts = state._members()
    alive = np.flatnonzero(state.sizes > 0)
    comp_lab = state.components[order[starts[alive]]]
    n_lab = dict(zip(*(a.tolist() for a in np.unique(comp_lab, return_counts=True)), strict=True))
    only = dict(zip(comp_lab.tolist(), alive.tolist(), strict=True))  # the label, where it is the only one
    unsettled = set(state._unsettled_components().tolist())
    groups: dict[int, list[int]] = {}
    for c, g in merged.items():
        groups.setdefault(g, []).append(c)
    pts_of: dict[int, list[int]] = {}
    for i, g in enumerate(new_comp.tolist()):
        pts_of.setdefault(g, []).append(i)
    edges_in = np.bincount(new_comp[ei], minlength=int(new_comp.max()) + 1) if ei.size else None
    final_new = np.full(m, -1, dtype=np.int64)
    grown = np.zeros(m, dtype=bool)
    fresh = cliques = 0
    redo_comps: list[int] = []
    redo_pts: list[int] = []
    for g, pts in pts_of.items():
        olds = groups.get(g, [])
        k = len(pts)
        clique = (k * (k - 1) // 2) == (0 if edges_in is None else int(edges_in[g]))
        if clique and not olds:
            final_new[pts] = -1 - fresh
            fresh += 1
            cliques += 1
        elif (clique and len(olds) == 1 and n_lab.get(olds[0]) == 1 and olds[0] not in unsettled
              and all((i, only[olds[0]]) in joined for i in pts)):
            final_new[pts] = only[olds[0]]
            grown[pts] = True
            cliques += 1
        else:
            redo_comps += olds
            redo_pts += pts
    touched = set(merged)
    redo_comps += sorted(unsettled - touched)
    return _Groups(final_new, grown, fresh, cliques, redo_comps, redo_pts)


def _recluster(state: ClusterState, X_new: np.ndarray, groups: _Groups, hook):
    """Re-agglomerate the merged τ-components :func:`_merged_groups` could not settle (and those
    earlier greedy assigns left unsettled), and relabel by overlap.

    They are re-agglomerated together by ThresholdAgglomerative (existing rows in state order,
    then the new rows): components are more than τ apart, so that is each one's partition in a
    full recompute.

    Returns the labels of all rows (existing, then new), the labels whose per-cluster data must
    be recomputed, the number of existing points that changed label, the number of rows
    re-agglomerated, the number of merged components found to be cliques, and which new rows
    joined an existing cluster whole (by that shortcut).
    """
    from .threshold_hac import ThresholdAgglomerative

    final_new, grown, fresh, cliques = groups.final_new.copy(), groups.grown, groups.fresh, groups.n_cliques
    redo_comps, redo_pts = groups.redo_comps, groups.redo_pts
    labels = state.labels.copy()
    aff = np.flatnonzero(np.isin(state.components, np.array(redo_comps, dtype=np.int64)))
    redo = np.array(sorted(redo_pts), dtype=np.int64)
    old = state.labels[aff]
    if redo.size or aff.size:
        Xa = np.concatenate([state.X[aff], X_new[redo]])  # state order, then the new rows
        est = ThresholdAgglomerative(state.threshold, linkage="complete", distance=state.distance)
        lab = est.fit(Xa, hook=hook).labels_  # 0..k-1 in order of first appearance
        na = aff.shape[0]
        mapping = np.full(int(lab.max()) + 1, -1, dtype=np.int64)
        if na:
            # recomputed cluster <- old label of largest overlap (ties: lowest old label, then
            # the recomputed cluster seen first); each old label used once
            key, cnt = np.unique(np.stack([lab[:na], old], axis=1), axis=0, return_counts=True)
            used: set[int] = set()
            for t in np.lexsort((key[:, 0], key[:, 1], -cnt)).tolist():
                new_l, old_l = int(key[t, 0]), int(key[t, 1])
                if mapping[new_l] < 0 and old_l not in used:
                    mapping[new_l] = old_l
                    used.add(old_l)
        unmatched = np.flatnonzero(mapping < 0)
        mapping[unmatched] = -1 - (fresh + np.arange(unmatched.shape[0]))
        final = mapping[lab]
        labels[aff] = final[:na]
        final_new[redo] = final[na:]
    # placeholders -> new labels, in order of first appearance (existing rows, then new rows)
    labels = np.concatenate([labels, final_new])
    ph = labels < 0
    if ph.any():
        labels[ph] = state.next_label + first_seen_labels(labels[ph])
    moved = int(np.count_nonzero(labels[aff] != old))
    # clusters that grew whole keep their reference point (radius updated by the caller); the
    # re-agglomerated and the new ones are recomputed
    refresh = np.unique(np.r_[old, labels[aff], labels[state.n_samples :][~grown]])
    return labels, refresh, moved, int(aff.shape[0] + redo.shape[0]), cliques, grown
