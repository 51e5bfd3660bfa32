"""Compiled agglomeration kernels (numba) used by :mod:`kfree.cluster.threshold_hac`.

Three kernels, each returning the merges it made as ``(rep_a, rep_b, height)`` where ``rep_*``
are *point/node indices* (any member of each merged cluster), so a union-find over the merges
reproduces every cut:

- :func:`sparse_complete_nn_chain` — complete linkage on a sparse graph in which a missing edge
  means "farther than the cut" (+inf). A merged cluster keeps only the neighbours *both* parts
  had, at the larger distance, which is exactly dense complete linkage below the cut. Works in
  place on a symmetric CSR graph (rows in any order), memory O(edges).
- :func:`dense_nn_chain` — complete / average / single linkage on a dense square matrix with
  initial cluster sizes (used per connected component, and when must-link groups start as
  clusters); ``inf`` marks a cannot-link pair and dominates every update.
- :func:`kruskal_merges` — single linkage = minimum spanning forest of the graph.

All three use the nearest-neighbour chain (complete, average and single are reducible
linkages), which produces the same dendrogram as the greedy "merge the closest pair" loop, as
scipy and fastcluster do.

Ties. Where distances tie, the partition depends on the order of merges. The two chain kernels
follow scipy's ``linkage`` (and fastcluster's): a chain starts at the smallest active index; the
nearest neighbour of its top is the previous element if that is among the nearest, else the
smallest index; a merged cluster keeps the larger of the two indices. The one difference is
inherent to working below the cut: scipy also walks through pairs above the cut, so when its
chain starts at a cluster with no neighbour within the cut it continues to that cluster's
nearest cluster (above the cut) and may enter a group of tied pairs elsewhere; these kernels
start at the smallest active index that has a neighbour within the cut.
"""

from __future__ import annotations

import numba as nb
import numpy as np

COMPLETE, AVERAGE, SINGLE = 0, 1, 2
LINKAGE_CODES = {"complete": COMPLETE, "average": AVERAGE, "single": SINGLE}


@nb.njit(cache=True)
def find_root(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@nb.njit(cache=True)
def union_find_labels(n, a, b, n_merges):
    """Component labels (0..k-1, in order of first appearance) after the first ``n_merges``."""
    parent = np.arange(n)
    for t in range(n_merges):
        union_roots(parent, a[t], b[t])
    return roots_to_labels(parent)


@nb.njit(cache=True)
def csr_structure(n, ei, ej, rev, pos):
    """Symmetric CSR structure of an edge list: int64 indptr and int32 neighbours.

    Fills ``rev[p]`` (the position of the twin entry of p in the neighbour's row) and
    ``pos[t]`` (the position of edge t in row ``ei[t]``); ``pos`` may be ``ei`` itself when its
    dtype holds positions up to 2m, so the caller can drop ``ej`` before the distances are
    placed by :func:`csr_fill_distances` (a lower peak than building everything at once).
    """
    m = ei.shape[0]
    deg = np.zeros(n + 1, dtype=np.int64)
    for t in range(m):
        deg[ei[t] + 1] += 1
        deg[ej[t] + 1] += 1
    indptr = np.cumsum(deg)
    fill = indptr[:-1].copy()
    nbr = np.empty(2 * m, dtype=np.int32)
    for t in range(m):
        i = ei[t]
        j = ej[t]
        pi = fill[i]
        pj = fill[j]
        nbr[pi] = j
        nbr[pj] = i
        rev[pi] = pj
        rev[pj] = pi
        fill[i] += 1
        fill[j] += 1
        pos[t] = pi
    return indptr, nbr


@nb.njit(cache=True)
def csr_fill_distances(pos, rev, ed, dist):
    """Place edge t's distance at both of its CSR entries (``pos[t]`` and its twin)."""
    for t in range(ed.shape[0]):
        p = pos[t]
        dist[p] = ed[t]
        dist[rev[p]] = ed[t]


@nb.njit(cache=True)
def _nearest(x, indptr, length, nbr, dist, active, prev):
    """Nearest live neighbour of x, ties as scipy's ``linkage``: ``prev`` (the chain's previous
    element) if it is among the nearest, else the smallest index (rows need not be sorted)."""
    best = -1
    best_d = np.inf
    s = indptr[x]
    for p in range(s, s + length[x]):
        d = dist[p]
        if d <= best_d and d < np.inf:
            z = nbr[p]
            if active[z] and (
                d < best_d or (best != prev and (z == prev or z < best))
            ):
                best_d = d
                best = z
    return best, best_d


@nb.njit(cache=True)
def sparse_complete_nn_chain(indptr, nbr, dist, rev, sizes):
    """Complete linkage over a sparse graph (missing edge = +inf); modifies the graph in place.

    Every merge costs O(deg(a) + deg(b)): the intersection of the two rows is found with a
    marker array, and the twin entries in the neighbours' rows are reached through ``rev``.
    Returns (a, b, h) arrays of the merges (``a``/``b`` node ids, ``h`` heights), unsorted.
    """
    n = indptr.shape[0] - 1
    length = np.empty(n, dtype=np.int64)
    for i in range(n):
        length[i] = indptr[i + 1] - indptr[i]
    active = np.ones(n, dtype=np.bool_)
    size = sizes.astype(np.int64).copy()
    mark_pos = np.zeros(n, dtype=np.int64)
    mark_st = np.zeros(n, dtype=np.int64)
    stamp = 0
    out_a = np.empty(max(n - 1, 0), dtype=np.int64)
    out_b = np.empty(max(n - 1, 0), dtype=np.int64)
    out_h = np.empty(max(n - 1, 0), dtype=np.float64)
    n_out = 0
    chain = np.empty(n + 1, dtype=np.int64)
    chain_len = 0
    start = 0
    while True:
        if chain_len == 0:
            found = False
            while start < n:
                if active[start]:
                    y, d = _nearest(start, indptr, length, nbr, dist, active, -1)
                    if y >= 0:
                        found = True
                        break
                start += 1
            if not found:
                break
            chain[0] = start
            chain_len = 1
        x = chain[chain_len - 1]
        prev = chain[chain_len - 2] if chain_len > 1 else -1
        y, d = _nearest(x, indptr, length, nbr, dist, active, prev)
        if y < 0:
            chain_len -= 1
            continue
        if not (chain_len > 1 and y == prev):
            chain[chain_len] = y
            chain_len += 1
            continue
        chain_len -= 2
        # the merged cluster keeps the larger index, as in scipy and fastcluster (the index
        # decides later ties)
        a = max(x, y)
        b = min(x, y)
        out_a[n_out] = a
        out_b[n_out] = b
        out_h[n_out] = d
        n_out += 1
        stamp += 1
        sb = indptr[b]
        eb = sb + length[b]
        for p in range(sb, eb):
            k = nbr[p]
            if k != a and active[k] and dist[p] < np.inf:
                mark_pos[k] = p
                mark_st[k] = stamp
        sa = indptr[a]
        ea = sa + length[a]
        w = sa
        for p in range(sa, ea):
            k = nbr[p]
            da = dist[p]
            if k == b or not active[k] or not da < np.inf:
                continue
            rk = rev[p]
            if mark_st[k] == stamp:
                q = mark_pos[k]
                db = dist[q]
                nd = max(db, da)
                nbr[w] = k
                dist[w] = nd
                rev[w] = rk
                rev[rk] = w
                dist[rk] = nd
                dist[rev[q]] = np.inf
                mark_st[k] = 0
                w += 1
            else:
                dist[rk] = np.inf
        for p in range(sb, eb):
            k = nbr[p]
            if mark_st[k] == stamp:
                dist[rev[p]] = np.inf
                mark_st[k] = 0
        length[a] = w - sa
        length[b] = 0
        active[b] = False
        size[a] += size[b]
    return out_a[:n_out], out_b[:n_out], out_h[:n_out]


@nb.njit(cache=True)
def dense_nn_chain(D, sizes, linkage, cut):
    """Agglomerate a dense symmetric matrix ``D`` (modified in place) with initial ``sizes``.

    ``inf`` entries are forbidden pairs (cannot-link); they dominate every update, so two
    clusters containing a forbidden pair never merge. Stops merging above ``cut``. Returns
    (a, b, h) merges in chain order (node ids are row indices of ``D``).
    """
    n = D.shape[0]
    active = np.ones(n, dtype=np.bool_)
    size = sizes.astype(np.float64).copy()
    out_a = np.empty(max(n - 1, 0), dtype=np.int64)
    out_b = np.empty(max(n - 1, 0), dtype=np.int64)
    out_h = np.empty(max(n - 1, 0), dtype=np.float64)
    n_out = 0
    done = np.zeros(n, dtype=np.bool_)
    chain = np.empty(n + 1, dtype=np.int64)
    chain_len = 0
    start = 0
    while True:
        if chain_len == 0:
            while start < n and (not active[start] or done[start]):
                start += 1
            if start >= n:
                break
            chain[0] = start
            chain_len = 1
        x = chain[chain_len - 1]
        best = -1
        best_d = np.inf
        if chain_len > 1:
            best = chain[chain_len - 2]
            best_d = D[x, best]
            if not best_d <= cut:
                best = -1
                best_d = np.inf
        for z in range(n):
            if z != x and active[z]:
                dz = D[x, z]
                if dz < best_d and dz <= cut:
                    best_d = dz
                    best = z
        if best < 0:
            done[x] = True
            chain_len -= 1
            continue
        if not (chain_len > 1 and best == chain[chain_len - 2]):
            chain[chain_len] = best
            chain_len += 1
            continue
        chain_len -= 2
        a = max(x, best)  # the merged cluster keeps the larger index, as scipy
        b = min(x, best)
        out_a[n_out] = a
        out_b[n_out] = b
        out_h[n_out] = best_d
        n_out += 1
        na = size[a]
        nbb = size[b]
        for k in range(n):
            if not active[k] or k == a or k == b:
                continue
            da = D[a, k]
            db = D[b, k]
            if np.isinf(da) or np.isinf(db):
                nd = np.inf
            elif linkage == 0:
                nd = max(db, da)
            elif linkage == 1:
                nd = (na * da + nbb * db) / (na + nbb)
            else:
                nd = min(db, da)
            D[a, k] = nd
            D[k, a] = nd
        active[b] = False
        size[a] = na + nbb
    return out_a[:n_out], out_b[:n_out], out_h[:n_out]


@nb.njit(cache=True)
def kruskal_merges(n, ei, ej, ed):
    """Single linkage on a graph: minimum spanning forest edges in increasing order."""
    order = np.argsort(ed, kind="mergesort")
    parent = np.arange(n)
    out_a = np.empty(max(n - 1, 0), dtype=np.int64)
    out_b = np.empty(max(n - 1, 0), dtype=np.int64)
    out_h = np.empty(max(n - 1, 0), dtype=np.float64)
    m = 0
    for t in order:
        ra = find_root(parent, ei[t])
        rb = find_root(parent, ej[t])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            out_a[m] = ei[t]
            out_b[m] = ej[t]
            out_h[m] = ed[t]
            m += 1
    return out_a[:m], out_b[:m], out_h[:m]


@nb.njit(cache=True)
def connected_components(n, ei, ej):
    """Labels of the connected components of an edge list (0..c-1, first appearance order)."""
    return union_find_labels(n, ei, ej, ei.shape[0])


@nb.njit(cache=True)
def union_roots(parent, a, b):
    """Join the sets of a and b (the smaller root id becomes the root)."""
    ra = find_root(parent, a)
    rb = find_root(parent, b)
    if ra != rb:
        if ra < rb:
            parent[rb] = ra
        else:
            parent[ra] = rb


@nb.njit(cache=True)
def union_pairs(parent, a, b):
    """Join the sets of ``a[t]`` and ``b[t]`` for every t (smaller root ids win)."""
    for t in range(a.shape[0]):
        union_roots(parent, a[t], b[t])


@nb.njit(cache=True)
def find_roots(parent):
    """The root of every element (compresses ``parent`` on the way)."""
    out = np.empty(parent.shape[0], dtype=np.int64)
    for i in range(parent.shape[0]):
        out[i] = find_root(parent, i)
    return out


@nb.njit(cache=True)
def roots_to_labels(parent):
    n = parent.shape[0]
    lab = np.full(n, -1, dtype=np.int64)
    root_lab = np.full(n, -1, dtype=np.int64)
    k = 0
    for i in range(n):
        r = find_root(parent, i)
        if root_lab[r] < 0:
            root_lab[r] = k
            k += 1
        lab[i] = root_lab[r]
    return lab
