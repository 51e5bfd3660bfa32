"""Exact τ-radius graphs without n² memory: every pair at distance ``<= tau``, nothing else.

Candidates come from float32 GEMM tiles (``|x|² + |y|² − 2 x·y``) with a small safety margin,
then every candidate's distance is recomputed in float64 from the coordinate differences, the
way scipy's ``pdist`` does, and compared with ``<=``. So the graph is exact (to float64) while
the expensive part runs at BLAS speed in tiles of fixed size.

For large n the tiles are restricted with the triangle inequality: points are bucketed by a
k-means (faiss) into cells with centre ``c`` and radius ``R`` (max member distance); a point
``x`` can only have τ-neighbours in cells with ``|x − c| <= sqrt(tau) + R``. That pruning is
exact, and it is what makes a million well-clustered points feasible.

Before building, :func:`estimate_edges` samples rows to predict the number of edges, so a graph
that will not fit is reported instead of exhausting memory.
"""

from __future__ import annotations

import logging
import math

import numba as nb
import numpy as np

from ..exceptions import ResourceError

log = logging.getLogger(__name__)

#: bytes held per undirected edge at the peak: the edge list (int32 pairs, float64 distance:
#: 16 B) while the symmetric CSR of the complete-linkage kernel (2 × (int32 neighbour +
#: float64 distance + int32 twin position): 32 B) is built from it.
BYTES_PER_EDGE = 48


def sq_units(tau: float, distance: str) -> float:
    """The cut ``tau`` (in units of ``distance``) as a squared Euclidean radius on prepared data."""
    if distance == "sqeuclidean":
        return float(tau)
    if distance == "euclidean":
        return float(tau) ** 2
    return 2.0 * float(tau)  # cosine on unit vectors: d_sq = 2 d_cos


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
            if c0 < 0:
                c0 = 0
        for c in range(c0, G.shape[1]):
            if base + nb_[c] - 2.0 * G[r, c] <= 0.0:
                if n_out >= cap:
                    return -1
                out_i[n_out] = gi
                out_j[n_out] = j0 + c
                n_out += 1
    return n_out


@nb.njit(cache=True)
def _exact_sq(X, ei, ej):
    m = ei.shape[0]
    d = X.shape[1]
    out = np.empty(m, dtype=np.float64)
    for t in range(m):
        s = 0.0
        a = ei[t]
        b = ej[t]
        for k in range(d):
            v = X[a, k] - X[b, k]
            s += v * v
        out[t] = s
    return out


def _margin(X32: np.ndarray, thr_sq: float) -> float:
    mx = float(np.max(np.einsum("ij,ij->i", X32, X32))) if X32.shape[0] else 0.0
    return 1e-4 * max(thr_sq, 1e-12) + 4e-6 * (2.0 * mx + 1.0) * math.sqrt(X32.shape[1])


def _to_distance(sq: np.ndarray, X64: np.ndarray, ei, ej, distance: str) -> np.ndarray:
    if distance == "sqeuclidean":
        return sq
    if distance == "euclidean":
        return np.sqrt(sq)
    # cosine, as scipy computes it: 1 - u.v / (|u| |v|) on the original (unnormalised) rows
    uv = np.einsum("ij,ij->i", X64[ei], X64[ej])
    nu = np.sqrt(np.einsum("ij,ij->i", X64[ei], X64[ei]))
    nv = np.sqrt(np.einsum("ij,ij->i", X64[ej], X64[ej]))
    return np.maximum(1.0 - uv / (nu * nv), 0.0)


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


def _cells(X32: np.ndarray, n_cells: int, seed: int):
    """k-means cells: (assignment, centres, radii) with radii = max member distance."""
    import faiss

    n, d = X32.shape
    rng = np.random.default_rng(seed)
    # the cells only need to be compact, not optimal: a modest sample and few iterations
    train = X32[rng.choice(n, size=min(n, max(n_cells * 16, 20000)), replace=False)]
    km = faiss.Kmeans(d, n_cells, niter=6, seed=seed, verbose=False, max_points_per_centroid=64)
    km.train(train)
    _, assign = km.index.search(X32, 1)
    assign = assign.ravel()
    centres = km.centroids.astype(np.float32)
    diff = X32 - centres[assign]
    dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    radii = np.zeros(n_cells, dtype=np.float64)
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
        Use the triangle-inequality cell index (default: when n > 50,000).
    hook : callable, optional
        ``hook(step, completed=, total=)`` progress callback.
    sink : callable, optional
        ``sink(ei, ej, ed)`` receives the edges chunk by chunk instead of storing them (the
        pruned path may then deliver a pair twice); the function then returns empty arrays.

    Returns
    -------
    ei, ej : ndarray of shape (n_edges,), int32, with ei < ej
    ed : ndarray of shape (n_edges,), float64 distances in units of ``distance``
    """
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    n = X64.shape[0]
    if distance == "cosine":
        Xp = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
    else:
        Xp = X64
    X32 = np.ascontiguousarray(Xp, dtype=np.float32)
    thr_sq = sq_units(tau, distance)
    thr_c = thr_sq + _margin(X32, thr_sq)
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
        sq = _exact_sq(Xp, ei, ej)
        keep = sq <= thr_sq if distance != "cosine" else np.ones(k, dtype=bool)
        ei, ej = ei[keep], ej[keep]
        dd = _to_distance(sq[keep], X64, ei, ej, distance)
        if distance == "cosine":
            ok = dd <= tau
            ei, ej, dd = ei[ok], ej[ok], dd[ok]
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
                f"(~{BYTES_PER_EDGE * total / 2**30:.1f} GiB); lower the threshold, or raise "
                "the memory limit"
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
    if not prune:
        allrows = np.arange(n)
        n_blocks = max(1, math.ceil(n / tile))
        for bi, a0 in enumerate(range(0, n, tile)):
            run_tiles(allrows[a0 : a0 + tile], allrows[a0:], True)
            if hook is not None:
                hook("radius graph", completed=bi + 1, total=n_blocks)
    else:
        # small cells (~16 points): their radii must stay well below the gaps between clusters
        # for the triangle-inequality bound to prune
        n_cells = int(min(max(16, n // 16), 65536))
        assign, centres, radii = _cells(X32, n_cells, seed)
        order = np.argsort(assign, kind="stable")
        starts = np.searchsorted(assign[order], np.arange(n_cells + 1))
        rad = math.sqrt(thr_c)
        # for each point, the cells it may have neighbours in: |x - c| <= rad + R_c, found by
        # blocks of points against all centres (GEMM), so memory is one block × n_cells
        cn = np.einsum("ij,ij->i", centres, centres)
        bound = (rad + radii + 1e-6).astype(np.float32)
        pts_parts, cell_parts = [], []
        for p0 in range(0, n, 4096):
            d2 = norms[p0 : p0 + 4096, None] + cn[None, :] - 2.0 * (X32[p0 : p0 + 4096] @ centres.T)
            np.maximum(d2, 0.0, out=d2)
            r, c = np.nonzero(np.sqrt(d2) <= bound[None, :])
            pts_parts.append((r + p0).astype(np.int64))
            cell_parts.append(c.astype(np.int64))
        pts = np.concatenate(pts_parts)
        cells = np.concatenate(cell_parts)
        del pts_parts, cell_parts
        by_cell = np.argsort(cells, kind="stable")
        pts, cells = pts[by_cell], cells[by_cell]
        cstarts = np.searchsorted(cells, np.arange(n_cells + 1))
        for c in range(n_cells):
            q = pts[cstarts[c] : cstarts[c + 1]]
            members = order[starts[c] : starts[c + 1]]
            if q.shape[0] == 0 or members.shape[0] == 0:
                continue
            # each pair is found from the query side whose cell holds the other point; keep
            # only pairs (query x, member y) with x < y so every edge is emitted once
            run_tiles(np.sort(q), np.sort(members), False)
            if hook is not None and (c % 256 == 0 or c == n_cells - 1):
                hook("radius graph", completed=c + 1, total=n_cells)
        ei = _cat(parts_i, np.int32)
        ej = _cat(parts_j, np.int32)
        ed = _cat(parts_d, np.float64)
        # a pair x<y is found once from x's query set (y's cell) — but also from y's query set
        # (x's cell) when x's cell is among y's candidates: deduplicate
        key = ei.astype(np.int64) * n + ej
        _, first = np.unique(key, return_index=True)
        del key
        return ei[first], ej[first], ed[first]
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
