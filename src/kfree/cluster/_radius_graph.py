"""Exact τ-radius graphs without n² memory: every pair at distance ``<= tau``, nothing else.

Candidates come from float32 GEMM tiles (``|x|² + |y|² − 2 x·y``) on centred rows (so float32
keeps the spread of the data, not its offset) with a small safety margin, then every
candidate's distance is recomputed from the original float64 rows exactly as scipy's ``pdist``
computes it (:func:`~kfree._exact_distances.pair_distances`; bit-identical for sqeuclidean and
euclidean) and compared with ``<= tau`` in the units of ``distance`` (for euclidean
``sqrt(d²) <= tau``, as scipy, not ``d² <= tau²``). So the graph is scipy's, while the
expensive part runs at BLAS speed in tiles of fixed size.

For large n the tiles are restricted with the triangle inequality: points are bucketed into
cells with centre ``c`` and radius ``R`` (max member distance); a point ``x`` can only have
τ-neighbours in cells with ``|x − c| <= sqrt(tau) + R``. That pruning is exact. It only pays
when cells are narrow, i.e. hold one cluster each: k-means cells are cut by complete linkage
so that no cell is wider than the radius, and the fragments of a cluster that k-means cut
apart are joined again (:func:`_tight_cells`, :func:`_merge_fragments`); a sample decides
whether the bound prunes at all (on overlapping data it does not, and all pairs are
compared). Checking every point against every cell costs about n × cells / 2 distance
evaluations (GEMM tiles on all threads) — so cells must be about as few as clusters.

:func:`radius_components` finds the connected components of the τ-graph without building it:
once two cells are in one component no pair between them is compared.

Before building, :func:`estimate_edges` samples rows to predict the number of edges, so a graph
that will not fit is reported instead of exhausting memory.
"""

from __future__ import annotations

import itertools
import logging
import math
import os

import numba as nb
import numpy as np

from .._exact_distances import gemm_ready, grid_centre, pair_distances
from ..distances import to_sq
from ..exceptions import ResourceError
from ..utils.signals import stoppable
from .labels import group_order
from .linkage_core import find_root, roots_to_labels, union_roots

__all__ = ["estimate_edges", "prepared_float32", "radius_components", "radius_edges"]

log = logging.getLogger(__name__)

#: tight cells are kept only while they hold at least this many points on average
MIN_MEAN_CELL = 4.0

#: bytes held per undirected edge at the peak: the edge list (int32 pairs, float64 distance:
#: 16 B) while the symmetric CSR of the complete-linkage kernel (2 × (int32 neighbour +
#: float64 distance + int32 twin position): 32 B) is built from it.
BYTES_PER_EDGE = 48


@nb.njit(cache=True)
def _tile_candidates(G, na, nb_, thr, i0, j0, upper, out_i, out_j, n_out):
    """Append (i, j) with na_i + nb_j − 2 G_ij <= thr to out buffers; returns new count or -1."""
    cap = out_i.shape[0]
    for r in range(G.shape[0]):
        gi = i0 + r
        base = na[r] - thr
        c0 = 0
        if upper:
            c0 = gi - j0 + 1
            c0 = max(c0, 0)
        for c in range(c0, G.shape[1]):
            if base + nb_[c] - 2.0 * G[r, c] <= 0.0:
                if n_out >= cap:
                    return -1
                out_i[n_out] = gi
                out_j[n_out] = j0 + c
                n_out += 1
    return n_out


def prepared_float32(X: np.ndarray, distance: str, *, chunk: int = 8192) -> np.ndarray:
    """Float32 copy of ``X`` for the candidate GEMMs: centred (sqeuclidean, euclidean, by
    :func:`~kfree._exact_distances.grid_centre`; the distances do not change, and float32 then
    keeps the spread of the data instead of its offset) or L2-normalised (cosine). The
    subtraction runs in float64 and is rounded once, chunk by chunk into the output."""
    X = np.ascontiguousarray(X)
    out = np.empty(X.shape, dtype=np.float32)
    if X.shape[0] == 0:
        return out
    centre = None if distance == "cosine" else grid_centre(X.min(axis=0), X.max(axis=0))
    for i0 in range(0, X.shape[0], chunk):
        out[i0 : i0 + chunk] = gemm_ready(X[i0 : i0 + chunk], distance, centre=centre)
    return out


def f32_slack(max_sq_a: float, max_sq_b: float, d: int) -> float:
    """Rounding of a float32 ``|a|² + |b|² − 2 a·b`` in ``d`` dimensions: about
    eps32 · (|a|² + |b|²) · sqrt(d). Every float32 bound is widened by it, so that no pair or
    candidate within the exact bound is lost."""
    return 4e-6 * (max_sq_a + max_sq_b + 1.0) * math.sqrt(d)


def widened_cut(thr_sq: float, max_sq: float, d: int) -> float:
    """The squared cut the float32 passes compare with: ``thr_sq`` plus a small relative margin
    and the rounding of rows whose largest squared norm is ``max_sq``."""
    return thr_sq + (1e-4 * max(thr_sq, 1e-12) + f32_slack(max_sq, max_sq, d))


def widened_bound2(rad: float, radii: np.ndarray, slack: float) -> np.ndarray:
    """``(rad + R)²`` of the triangle-inequality bounds, widened for float32 rounding."""
    return ((rad + radii) ** 2) * (1 + 1e-5) + slack


def _widened_cut_of(X32: np.ndarray, thr_sq: float) -> float:
    mx = float(np.max(np.einsum("ij,ij->i", X32, X32))) if X32.shape[0] else 0.0
    return widened_cut(thr_sq, mx, X32.shape[1])


def estimate_edges(X32: np.ndarray, thr_sq: float, *, sample: int = 1000, seed: int = 0) -> float:
    """Expected number of undirected τ-edges (pairs i < j), from ``sample`` random rows."""
    n = X32.shape[0]
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    m = min(n, sample)
    rows = np.sort(rng.choice(n, size=m, replace=False))
    Q = X32[rows]
    nq = np.einsum("ij,ij->i", Q, Q)
    nx = np.einsum("ij,ij->i", X32, X32)
    count = 0
    step = 16384
    for j0 in range(0, n, step):
        G = Q @ X32[j0 : j0 + step].T
        d2 = nq[:, None] + nx[None, j0 : j0 + step] - 2.0 * G
        count += int((d2 <= thr_sq).sum())
    per_row = max(count - m, 0) / m  # drop self matches
    return n * per_row / 2.0


def _kmeans_assign(Y: np.ndarray, k: int, seed: int) -> np.ndarray:
    import faiss

    if k <= 1 or Y.shape[0] <= k:
        return np.zeros(Y.shape[0], dtype=np.int64) if k <= 1 else np.arange(Y.shape[0])
    km = faiss.Kmeans(Y.shape[1], k, niter=6, seed=seed, verbose=False,
                      max_points_per_centroid=64, min_points_per_centroid=1)
    km.train(Y)
    _, a = km.index.search(Y, 1)
    return a.ravel().astype(np.int64)


def _cells(X32: np.ndarray, n_cells: int, seed: int):
    """Compact cells of about ``n / n_cells`` points: (assignment, centres, radii).

    Any partition works for the triangle-inequality bounds as long as each cell's centre and
    radius (max member distance) are exact; the cells only need to be compact. Up to 200,000
    points one k-means makes them; beyond, a coarse k-means (~128 cells' worth of points per
    coarse cell) is refined by a small k-means inside each coarse cell, so the cost stays
    O(n · cells per coarse cell) instead of O(n · n_cells).
    """
    n, d = X32.shape
    if n <= 200_000:
        assign = _kmeans_assign(X32, n_cells, seed)
    else:
        rng = np.random.default_rng(seed)
        k1 = max(16, n_cells // 128)
        import faiss

        km = faiss.Kmeans(d, k1, niter=8, seed=seed, verbose=False,
                          max_points_per_centroid=256, min_points_per_centroid=1)
        km.train(X32[rng.choice(n, size=min(n, k1 * 256), replace=False)])
        _, coarse = km.index.search(X32, 1)
        coarse = coarse.ravel()
        order, bounds = group_order(coarse, k1)
        assign = np.empty(n, dtype=np.int64)
        nxt = 0
        for c in range(k1):
            idx = order[bounds[c] : bounds[c + 1]]
            if idx.shape[0] == 0:
                continue
            kc = max(1, round(idx.shape[0] * n_cells / n))
            sub = _kmeans_assign(np.ascontiguousarray(X32[idx]), kc, seed + c)
            assign[idx] = nxt + sub
            nxt += int(sub.max()) + 1
    return _recentre(X32, assign)


def cell_order(X32: np.ndarray, assign: np.ndarray, centres: np.ndarray):
    """Each point's distance to its cell's centre (float64, in chunks), the points by cell and
    outermost first within a cell, and each cell's start: ``(rb, order, starts)``, the layout
    :func:`_components_kernel` scans."""
    n = X32.shape[0]
    rb = np.empty(n)
    for i0 in range(0, n, 65536):
        diff = X32[i0 : i0 + 65536].astype(np.float64) - centres[assign[i0 : i0 + 65536]]
        rb[i0 : i0 + 65536] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    order = np.lexsort((-rb, assign)).astype(np.int64)
    starts = np.searchsorted(assign[order], np.arange(centres.shape[0] + 1)).astype(np.int64)
    return rb, order, starts


def _recentre(X32: np.ndarray, assign: np.ndarray):
    """Exact centres (member means) and radii of the non-empty cells, renumbered 0..k-1."""
    _, assign = np.unique(assign, return_inverse=True)
    assign = assign.ravel()
    k = int(assign.max()) + 1
    by, starts = group_order(assign, k)
    first = starts[:-1]
    counts = np.diff(starts).astype(np.float64)
    centres = np.add.reduceat(X32[by].astype(np.float64), first, axis=0)
    centres = (centres / counts[:, None]).astype(np.float32)
    diff = X32 - centres[assign]
    dist = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    radii = np.zeros(k, dtype=np.float64)
    np.maximum.at(radii, assign, dist)
    return assign, centres, radii


def radius_edges(
    X,
    tau: float,
    distance: str = "sqeuclidean",
    *,
    max_edges: int | None = None,
    tile: int = 4096,
    prune: bool | None = None,
    seed: int = 0,
    hook=None,
    sink=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``distance(x_i, x_j) <= tau``, exactly.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    tau : float
        Radius in units of ``distance``.
    distance : {"sqeuclidean", "euclidean", "cosine"}
    max_edges : int, optional
        Raise :class:`~kfree.exceptions.ResourceError` as soon as more edges than this are found.
    tile : int
        Rows/columns per GEMM tile (memory ~ 4·tile² bytes).
    prune : bool, optional
        Try the triangle-inequality cell index (default: when n > 50,000); it is used only
        when a sample shows that it prunes.
    hook : callable, optional
        ``hook(step, completed=, total=)`` progress callback.
    sink : callable, optional
        ``sink(ei, ej, ed)`` receives the edges chunk by chunk instead of storing them; the
        function then returns empty arrays.

    Returns
    -------
    ei, ej : ndarray of shape (n_edges,), int32, with ei < ej
    ed : ndarray of shape (n_edges,), float64 distances in units of ``distance``
    """
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    n = X64.shape[0]
    X32 = prepared_float32(X64, distance)
    thr_sq = to_sq(tau, distance)
    thr_c = _widened_cut_of(X32, thr_sq)
    norms = np.einsum("ij,ij->i", X32, X32).astype(np.float32)
    cap = int(max_edges) if max_edges is not None else None
    buf = max(1 << 16, min(cap or (1 << 22), 1 << 22))
    out_i = np.empty(buf, dtype=np.int64)
    out_j = np.empty(buf, dtype=np.int64)
    parts_i: list[np.ndarray] = []
    parts_j: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    total = 0

    def flush(k: int) -> None:
        nonlocal total
        if k == 0:
            return
        ei = out_i[:k].copy()
        ej = out_j[:k].copy()
        # decided on scipy's own value, in the user's units (sqrt(d²) <= tau for euclidean,
        # not d² <= tau², which misses pairs at exactly tau)
        dd = pair_distances(X64, ei, ej, distance)
        keep = dd <= tau
        ei, ej, dd = ei[keep], ej[keep], dd[keep]
        total += ei.shape[0]
        if sink is not None:
            sink(ei, ej, dd)
            return
        parts_i.append(ei.astype(np.int32))
        parts_j.append(ej.astype(np.int32))
        parts_d.append(dd)
        if cap is not None and total > cap:
            raise ResourceError(
                f"the tau-graph at tau={tau} has more than max_edges={cap} edges "
                f"(~{BYTES_PER_EDGE * total / 2**30:.1f} GiB); lower the threshold, or raise the memory "
                "limit (GiB: kfree cluster --memory-limit, or $KFREE_MEMORY_LIMIT_GB)"
            )

    def run_tiles(rows: np.ndarray, cols: np.ndarray, upper: bool) -> None:
        """Candidates between index sets rows × cols (both sorted); upper: keep row < col."""
        k = 0
        for a0 in range(0, rows.shape[0], tile):
            ra = rows[a0 : a0 + tile]
            Xa = X32[ra]
            na = norms[ra]
            for b0 in range(0, cols.shape[0], tile):
                cb = cols[b0 : b0 + tile]
                if upper and cb[-1] <= ra[0]:
                    continue
                G = Xa @ X32[cb].T
                contiguous = upper and (ra[-1] - ra[0] == ra.shape[0] - 1) and (
                    cb[-1] - cb[0] == cb.shape[0] - 1
                )
                if contiguous:
                    # row chunks small enough that one chunk always fits the buffer
                    rows_per = max(1, out_i.shape[0] // G.shape[1])
                    nbc = norms[cb]
                    for r0 in range(0, G.shape[0], rows_per):
                        if k + rows_per * G.shape[1] > out_i.shape[0]:
                            flush(k)
                            k = 0
                        k = _tile_candidates(
                            G[r0 : r0 + rows_per], na[r0 : r0 + rows_per], nbc, thr_c,
                            int(ra[0]) + r0, int(cb[0]), True, out_i, out_j, k,
                        )
                else:
                    d2 = na[:, None] + norms[cb][None, :] - 2.0 * G
                    r, c = np.nonzero(d2 <= thr_c)
                    gi, gj = ra[r], cb[c]
                    sel = gi < gj if upper else gi != gj
                    gi, gj = gi[sel], gj[sel]
                    lo = np.minimum(gi, gj)
                    hi = np.maximum(gi, gj)
                    if k + lo.shape[0] > out_i.shape[0]:
                        flush(k)
                        k = 0
                    if lo.shape[0] > out_i.shape[0]:
                        parts = lo.shape[0]
                        for s in range(0, parts, out_i.shape[0]):
                            e = min(parts, s + out_i.shape[0])
                            out_i[: e - s] = lo[s:e]
                            out_j[: e - s] = hi[s:e]
                            flush(e - s)
                        continue
                    out_i[k : k + lo.shape[0]] = lo
                    out_j[k : k + lo.shape[0]] = hi
                    k += lo.shape[0]
        flush(k)

    if prune is None:
        prune = n > 50000
    cells = _pruning_cells(X32, math.sqrt(thr_c), seed) if prune else None
    if cells is None:
        allrows = np.arange(n)
        n_blocks = max(1, math.ceil(n / tile))
        for bi, a0 in enumerate(range(0, n, tile)):
            run_tiles(allrows[a0 : a0 + tile], allrows[a0:], True)
            if hook is not None:
                hook("radius graph", completed=bi + 1, total=n_blocks)
    else:
        assign, centres, radii, _ = cells
        n_cells = centres.shape[0]
        order, starts = group_order(assign, n_cells)
        qptr, qpts = _query_lists(X32, assign, centres, radii, math.sqrt(thr_c))
        for c in range(n_cells):
            members = order[starts[c] : starts[c + 1]]
            other = np.sort(qpts[qptr[c] : qptr[c + 1]])
            if members.shape[0] == 0:
                continue
            # a pair (x, y) is emitted only from the cell of the point with the larger cell
            # id (members) against queries from smaller cells, or within one cell with x < y:
            # both points see each other's cell (the bound is symmetric), so every edge is
            # found exactly once
            if other.shape[0]:
                run_tiles(other, members, False)
            if members.shape[0] > 1:
                run_tiles(members, members, True)
            if hook is not None and (c % 256 == 0 or c == n_cells - 1):
                hook("radius graph", completed=c + 1, total=n_cells)
    ei = _cat(parts_i, np.int32)
    ej = _cat(parts_j, np.int32)
    ed = _cat(parts_d, np.float64)
    return ei, ej, ed


def _cat(parts: list, dtype) -> np.ndarray:
    """Concatenate and free the parts as it goes (peak ~ the result plus one part)."""
    total = sum(p.shape[0] for p in parts)
    out = np.empty(total, dtype=dtype)
    pos = 0
    while parts:
        p = parts.pop(0)
        out[pos : pos + p.shape[0]] = p
        pos += p.shape[0]
    return out


@nb.njit(cache=True, fastmath=True)
def _d2(X32, a, b):
    s = np.float32(0.0)
    for k in range(X32.shape[1]):
        v = X32[a, k] - X32[b, k]
        s += v * v
    return s


@nb.njit(cache=True)
def sq_dist_rows(a, b):
    """Squared distance of two float32 rows, summed in float32 (the precision every τ-test of
    the graph passes uses, within their safety margin)."""
    s = np.float32(0.0)
    for k in range(a.shape[0]):
        v = a[k] - b[k]
        s += v * v
    return s


@nb.njit(cache=True)
def reach_limit(x, centre, rad):
    """``|x − centre| − rad`` in float64.

    A cell's members are scanned outermost first (ordered by their distance ``rb`` to the
    centre); by the triangle inequality ``|x − b| >= |x − centre| − rb[b]``, so the first
    member with ``rb[b] < reach_limit(x, centre, rad)`` and every one after it is out of reach
    of ``x`` and the scan stops there. Shared by the graph pass here and the Dask backend's
    shell and join kernels.
    """
    dc = 0.0
    for k in range(x.shape[0]):
        v = np.float64(x[k]) - np.float64(centre[k])
        dc += v * v
    return math.sqrt(dc) - rad


@nb.njit(cache=True)
def scan_cell(x, cx, X32, order, s0, s1, rb, comp, lim, thr, whole, parent):
    """Join query row ``x`` (union-find node ``cx``) to the members ``order[s0:s1]`` of one cell
    that are within ``thr`` (squared), member ``b`` being node ``comp[b]``.

    Members are ordered outermost first, so the scan stops at the first one with ``rb[b] <
    lim`` (``lim`` from :func:`reach_limit`: it and all after it are out of reach). In a
    ``whole`` cell (all members one component) the first join, or the first member found in
    ``cx``'s component, decides the rest. Shared by the graph pass here and the Dask backend's
    join kernel.
    """
    for p in range(s0, s1):
        b = order[p]
        if rb[b] < lim:
            return
        cb = comp[b]
        if find_root(parent, cx) == find_root(parent, cb):
            if whole:
                return
            continue
        if sq_dist_rows(x, X32[b]) <= thr:
            union_roots(parent, cx, cb)
            if whole:
                return


@nb.njit(cache=True)
def _components_kernel(X32, order, starts, qptr, qpts, thr, parent, tight, centres, rb):
    """Union every pair at squared distance <= thr, skipping pairs already connected.

    Per cell c: its own pairs (or, for a ``tight[c]`` cell, whose member pairs are all within
    the radius, its members at once), then the queries x (points of smaller cells that may
    have a τ-neighbour in c). A pair is compared only while its two points are in different
    components, and a query is dropped at once when the whole cell is already in its
    component; against a tight cell one neighbour found joins x to all of it. Members are
    ordered by ``rb`` (distance to their cell's centre, largest first): ``|x − b| >=
    |x − c| − rb[b]``, so the scan for x stops at the first member too close to the centre to
    be within the radius of x (most queries are points of other clusters near the bound).
    """
    rad = math.sqrt(thr)
    n_cells = starts.shape[0] - 1
    ident = np.arange(X32.shape[0])  # every point is its own union-find node here
    for c in range(n_cells):
        s0 = starts[c]
        s1 = starts[c + 1]
        if tight[c]:
            for p in range(s0 + 1, s1):
                union_roots(parent, order[s0], order[p])
            whole = True
        else:
            for p in range(s0, s1):
                a = order[p]
                for q in range(p + 1, s1):
                    b = order[q]
                    if find_root(parent, a) != find_root(parent, b) and _d2(X32, a, b) <= thr:
                        union_roots(parent, a, b)
            whole = True
            r0 = find_root(parent, order[s0])
            for p in range(s0 + 1, s1):
                if find_root(parent, order[p]) != r0:
                    whole = False
                    break
        for t in range(qptr[c], qptr[c + 1]):
            x = qpts[t]
            if whole and find_root(parent, x) == find_root(parent, order[s0]):
                continue
            scan_cell(X32[x], x, X32, order, s0, s1, rb, ident, reach_limit(X32[x], centres[c], rad),
                      thr, whole, parent)


def _split_block(X32, idx: np.ndarray, block: int, seed: int) -> list[np.ndarray]:
    """``idx`` cut into parts of at most ``block`` points (k-means, so parts stay compact)."""
    if idx.shape[0] <= block:
        return [idx]
    sub = _kmeans_assign(np.ascontiguousarray(X32[idx]), -(-2 * idx.shape[0] // block), seed)
    parts = [idx[sub == j] for j in np.unique(sub)]
    if len(parts) == 1:  # k-means could not split (duplicates): any partition is valid
        parts = np.array_split(idx, -(-idx.shape[0] // block))
        return list(parts)
    return [q for part in parts for q in _split_block(X32, part, block, seed + 1)]


def _complete_cut(Y: np.ndarray, rad: float) -> np.ndarray:
    """Labels 0..m-1 of complete linkage on ``Y`` cut at Euclidean distance ``rad``."""
    if Y.shape[0] < 2:
        return np.zeros(Y.shape[0], dtype=np.int64)
    import fastcluster
    from scipy.cluster.hierarchy import fcluster
    from scipy.spatial.distance import pdist

    d = pdist(Y.astype(np.float64))
    with stoppable():
        Z = fastcluster.linkage(d, "complete", preserve_input=False)
    return fcluster(Z, rad, "distance").astype(np.int64) - 1


def _kmeans_cells(X32, *, target: int = 512, seed: int = 0):
    """Compact k-means cells of about ``target`` points (a few dozen for small inputs)."""
    n = X32.shape[0]
    target = max(16, min(target, n // 32))
    return _cells(X32, max(1, n // target), seed)


def _tight_cells(X32, cells, rad: float, seed: int, *, block: int = 2048):
    """Cells of diameter at most ``rad``, about one per cluster: (assign, centres, radii, tight).

    The k-means ``cells`` (assign, centres, radii) whose radius is above ``rad / 2`` (whose
    diameter may exceed ``rad``) are cut by complete linkage at ``rad`` (in blocks of at most
    ``block`` points). Two reasons for that cut rather than a finer k-means: every member pair
    of a cell is then within ``rad`` (a cell is connected without comparing its pairs), and a
    cell never mixes two clusters — a mixed cell is wide, and a wide cell makes every point a
    candidate for it — while one cluster is not cut into many small cells (each cell costs one
    distance per point in the point-to-cell pass, so cells must be about as few as clusters).
    Every returned cell is tight (``tight`` is all True).
    """
    assign, centres, radii = cells
    n = X32.shape[0]
    k = centres.shape[0]
    order, starts = group_order(assign, k)
    new = np.empty(n, dtype=np.int64)
    nxt = 0
    for c in range(k):
        idx = order[starts[c] : starts[c + 1]]
        if radii[c] <= rad / 2 or idx.shape[0] < 2:
            new[idx] = nxt
            nxt += 1
            continue
        for part in _split_block(X32, idx, block, seed + c):
            lab = _complete_cut(X32[part], rad)
            new[part] = nxt + lab
            nxt += int(lab.max()) + 1
    return (*_recentre(X32, new), np.ones(nxt, dtype=bool))


@nb.njit(cache=True)
def _merge_kernel(X32, order, fstarts, pi, pj, half2, parent):
    """Greedy union of fragments (pairs in the given order) while the union's radius stays
    ``<= sqrt(half2)``: the exact radius of every candidate union is measured on its points
    (float64, stopping at the first point outside), so merged cells stay tight."""
    k = fstarts.shape[0] - 1
    d = X32.shape[1]
    gsum = np.zeros((k, d))
    cnt = np.zeros(k, dtype=np.int64)
    nxt = np.full(k, -1, dtype=np.int64)  # fragments of a group, as a linked list from its root
    tail = np.arange(k)
    for f in range(k):
        for p in range(fstarts[f], fstarts[f + 1]):
            for t in range(d):
                gsum[f, t] += X32[order[p], t]
        cnt[f] = fstarts[f + 1] - fstarts[f]
    cen = np.empty(d)
    for e in range(pi.shape[0]):
        a = find_root(parent, pi[e])
        b = find_root(parent, pj[e])
        if a == b:
            continue
        m = cnt[a] + cnt[b]
        for t in range(d):
            cen[t] = (gsum[a, t] + gsum[b, t]) / m
        ok = True
        for g in (a, b):
            f = g
            while f >= 0 and ok:
                for p in range(fstarts[f], fstarts[f + 1]):
                    x = order[p]
                    s = 0.0
                    for t in range(d):
                        v = X32[x, t] - cen[t]
                        s += v * v
                    if s > half2:
                        ok = False
                        break
                f = nxt[f]
            if not ok:
                break
        if not ok:
            continue
        lo, hi = (a, b) if a < b else (b, a)
        parent[hi] = lo
        for t in range(d):
            gsum[lo, t] += gsum[hi, t]
        cnt[lo] = m
        nxt[tail[lo]] = hi
        tail[lo] = tail[hi]


def centre_index(centres: np.ndarray, *, exact_up_to: int, nlist: int, nprobe: int):
    """A faiss L2 index over float32 ``centres``: exact up to ``exact_up_to`` centres, else IVF
    with ``nlist`` lists (fixed seed) searched over ``nprobe`` of them. Used where a nearest
    centre only decides where work happens (grouping, routing), never a result."""
    import faiss

    k, d = centres.shape
    if k <= exact_up_to:
        index = faiss.IndexFlatL2(d)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.cp.seed = 1234
        index.train(centres)
        index.nprobe = nprobe
    index.add(centres)
    return index


def near_centres(centres: np.ndarray, neighbours: int):
    """Each centre's ``neighbours`` nearest other centres (and itself), flattened: ``(rows, D,
    Ind)`` with squared float32 distances ``D`` and ``Ind = -1`` where none was found.

    Approximate above 20,000 centres (faiss IVF, fixed seed, 16 probes): callers use the pairs
    only to group cells for speed, so a missed pair costs time, never exactness.
    """
    k = centres.shape[0]
    cen = np.ascontiguousarray(centres, dtype=np.float32)
    kk = min(neighbours + 1, k)
    index = centre_index(cen, exact_up_to=20_000, nlist=int(4 * math.sqrt(k)), nprobe=16)
    D, Ind = index.search(cen, kk)
    return np.repeat(np.arange(k), kk), D.ravel(), Ind.ravel()


def _merge_fragments(X32, assign, centres, tight, rad: float, *, neighbours: int = 8):
    """Join tight fragments of one cluster into tight cells: (assign, centres, radii, tight).

    k-means splits a cluster wherever a cell boundary crosses it, so :func:`_tight_cells`
    leaves a cluster in several fragments, and every cell costs one distance per point later.
    Fragments whose centres are near (approximate nearest neighbours by faiss; a missed pair
    only costs speed) are joined, closest first, as long as the union's exact radius stays
    within ``rad / 2`` — so every cell is still tight (all member pairs within ``rad``).
    """
    k = centres.shape[0]
    if k < 2:
        return (*_recentre(X32, assign), tight)
    rows, D, Ind = near_centres(centres, neighbours)
    # two tight fragments of a tight cell: centres within rad
    ok = (Ind > rows) & (D <= rad * rad) & tight[rows] & tight[np.maximum(Ind, 0)]
    pi, pj, dd = rows[ok], Ind[ok].astype(np.int64), D[ok]
    by = np.argsort(dd, kind="stable")
    order, fstarts = group_order(assign, k)
    parent = np.arange(k, dtype=np.int64)
    # the kernel measures radii in float64; a hair inside rad/2 leaves room for its rounding
    _merge_kernel(X32, order, fstarts, pi[by], pj[by], (rad / 2) ** 2 * (1 - 1e-6), parent)
    group = roots_to_labels(parent)
    merged = np.bincount(group) > 1
    new_tight = merged.copy()  # a union was measured within rad / 2; a lone fragment keeps its flag
    new_tight[group[~merged[group]]] = tight[~merged[group]]
    return (*_recentre(X32, group[assign]), new_tight)


def _pruning_cells(X32, rad: float, seed: int, *, sample: int = 2000, useful: float = 0.2):
    """Cells ``(assign, centres, radii, tight)`` if the triangle-inequality bound prunes, else
    ``None``.

    On a sample of points, counts the cells each point could have τ-neighbours in; when that
    is more than ``useful`` of all cells (overlapping data, where every point is near every
    cell), pruning saves nothing and costs a point × cell pass, so callers compare all pairs.
    """
    km = _kmeans_cells(X32, seed=seed)
    assign, centres, radii, tight = _tight_cells(X32, km, rad, seed)
    assign, centres, radii, tight = _merge_fragments(X32, assign, centres, tight, rad)
    if centres.shape[0] > X32.shape[0] / MIN_MEAN_CELL:
        # a radius small next to the spacing of the points (almost nothing joins): tight cells
        # of one or two points would make the point-to-cell pass cost all n²/2 pairs, so keep
        # the k-means cells (those within rad / 2 are still tight)
        assign, centres, radii = km
        tight = radii <= rad / 2
    k = centres.shape[0]
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    S = X32[rng.choice(X32.shape[0], size=min(sample, X32.shape[0]), replace=False)]
    d2 = (np.einsum("ij,ij->i", S, S)[:, None] + np.einsum("ij,ij->i", centres, centres)[None, :]
          - 2.0 * (S @ centres.T))
    frac = float((d2 <= ((rad + radii) ** 2)[None, :]).mean())
    log.info("tau-graph cells: %d, a point is near %.1f %% of them", k, 100 * frac)
    return (assign, centres, radii, tight) if frac <= useful else None


@nb.njit(cache=True, nogil=True, fastmath=True)
def _filter_point_cells(G, pts, half_xn, u, assign, c0, out_p, out_c, k):
    """Append (pts[r], c0 + j) where G[r, j] >= half_xn[r] + u[j] and assign[x] < c0 + j.

    ``u`` holds ``(|c|² − bound²) / 2`` of the tile's cells, so the test is
    ``|x − c|² <= bound²``. Almost no entry passes, so each row is first counted over the
    whole tile (a branch-free loop from a constant start, which LLVM vectorises; a start that
    varies per row stops it) and scanned only when something passes. Returns the new count,
    or -1 when the buffers are full.
    """
    cap = out_p.shape[0]
    nc = G.shape[1]
    for r in range(G.shape[0]):
        t = half_xn[r]
        hits = 0
        for j in range(nc):
            hits += (G[r, j] - u[j]) >= t
        if hits == 0:
            continue
        x = pts[r]
        lo = max(assign[x] + 1 - c0, 0)
        for j in range(lo, nc):
            if G[r, j] - u[j] >= t:
                if k >= cap:
                    return -1
                out_p[k] = x
                out_c[k] = c0 + j
                k += 1
    return k


def _n_threads() -> int:
    """Threads for the point-to-cell pass: the BLAS thread budget (honours OMP_NUM_THREADS)."""
    from threadpoolctl import threadpool_info

    blas = [i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, min(blas) if blas else (os.cpu_count() or 1))


def _query_lists(X32, assign, centres, radii, rad, *, rows: int = 256, cols: int = 2048,
                 n_threads: int | None = None):
    """For each cell c, the points x with ``assign[x] < c`` and ``|x - c| <= rad + R_c`` (CSR
    by cell; a cell's points in increasing ``assign``, then input order).

    Points (in cell order, so a block only meets the cells above its own) × centres by GEMM in
    cache-sized tiles (float32, the bound widened for rounding), filtered in numba; blocks run
    on ``n_threads`` threads (default: the BLAS budget; a Dask task passes 1) with
    single-threaded BLAS each. The cost is about n × cells / 2 distance evaluations, memory the
    candidate lists. ``assign`` may be -1 (a point below every cell).
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..utils.blas import one_blas_thread

    n = X32.shape[0]
    k_cells = centres.shape[0]
    cen = np.ascontiguousarray(centres, dtype=np.float32)
    cn = np.einsum("ij,ij->i", cen, cen).astype(np.float32)
    xn = np.einsum("ij,ij->i", X32, X32).astype(np.float32)
    bound2 = widened_bound2(rad, radii, f32_slack(float(xn.max()), float(cn.max()), X32.shape[1]))
    u = ((cn - bound2) / 2).astype(np.float32)  # x passes c iff x·c >= |x|²/2 + u_c
    half_xn = (xn / 2).astype(np.float32)
    by_cell = np.argsort(assign, kind="stable").astype(np.int64)
    n_threads = n_threads or _n_threads()
    n_jobs = max(1, min(64 * n_threads, -(-n // rows)))
    edges = np.linspace(0, -(-n // rows), n_jobs + 1).astype(np.int64) * rows

    def job(lo_hi):
        lo, hi = lo_hi
        parts_p, parts_c = [], []
        buf_p = np.empty(1 << 20, dtype=np.int32)
        buf_c = np.empty(1 << 20, dtype=np.int32)
        k = 0
        for p0 in range(lo, min(hi, n), rows):
            pts = by_cell[p0 : p0 + rows]
            Xb = X32[pts]
            xb = half_xn[pts]
            first = max(0, int(assign[pts[0]]))  # smallest cell of the block
            for c0 in range(first - first % cols, k_cells, cols):
                G = Xb @ cen[c0 : c0 + cols].T
                while True:
                    k2 = _filter_point_cells(G, pts, xb, u[c0 : c0 + cols], assign, c0,
                                             buf_p, buf_c, k)
                    if k2 >= 0:
                        k = k2
                        break
                    parts_p.append(buf_p[:k].copy())  # flush and redo this tile
                    parts_c.append(buf_c[:k].copy())
                    k = 0
                    if G.size > buf_p.shape[0]:
                        buf_p = np.empty(G.size, dtype=np.int32)
                        buf_c = np.empty(G.size, dtype=np.int32)
        parts_p.append(buf_p[:k].copy())
        parts_c.append(buf_c[:k].copy())
        return parts_p, parts_c

    with one_blas_thread(), ThreadPoolExecutor(n_threads) as ex:
        done = list(ex.map(job, itertools.pairwise(edges)))
    pts = np.concatenate([q for pp, _ in done for q in pp])
    cells = np.concatenate([q for _, cc in done for q in cc])
    by, qptr = group_order(cells, k_cells)
    return qptr, pts[by].astype(np.int64)


def radius_components(
    X, tau: float, distance: str = "sqeuclidean", *, seed: int = 0, hook=None
) -> np.ndarray:
    """Connected components of (a superset of) the τ-graph, without building it.

    Pairs are compared in float32 with the same tiny safety margin as :func:`radius_edges`,
    so two points at distance ``<= tau`` always share a component (a component may also join
    points whose distance exceeds ``tau`` by less than the margin — callers that need exact
    components recheck each one). Components are what matter, not edges: once two cells are
    in one component no pair between them is compared, so inside a big cluster almost every
    distance is skipped. Memory O(n + neighbouring cell pairs); returns labels 0..k-1.
    """
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    n = X64.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    X32 = prepared_float32(X64, distance)
    thr_sq = to_sq(tau, distance)
    thr_c = _widened_cut_of(X32, thr_sq)
    if hook is not None:
        hook("tau components", completed=0, total=2)
    rad = math.sqrt(thr_c)
    cells = _pruning_cells(X32, rad, seed)
    if cells is None:  # one cell: all pairs, still skipping those already connected
        order = np.arange(n, dtype=np.int64)
        starts = np.array([0, n], dtype=np.int64)
        qptr, qpts = np.zeros(2, dtype=np.int64), np.empty(0, dtype=np.int64)
        centres = np.zeros((1, X32.shape[1]), dtype=np.float32)
        rb = np.full(n, np.inf)
        tight = np.zeros(1, dtype=bool)
    else:
        assign, centres, radii, tight = cells
        rb, order, starts = cell_order(X32, assign, centres)
        qptr, qpts = _query_lists(X32, assign, centres, radii, rad)
    if hook is not None:
        hook("tau components", completed=1, total=2)
    parent = np.arange(n, dtype=np.int64)
    with stoppable():  # (one compiled call, minutes at scale: a scale trial's kill waited for it)
        _components_kernel(X32, order, starts, qptr, qpts, thr_c, parent, tight,
                           np.ascontiguousarray(centres, dtype=np.float32), rb)
    if hook is not None:
        hook("tau components", completed=2, total=2)
    return roots_to_labels(parent)
