"""Minimum cost multicut heuristics in numba: GAEC, then Kernighan–Lin with joins (KLj).

After Keuper, Levinkov, Bonneel, Lavoué, Brox, Andres, *Efficient Decomposition of Image and
Mesh Graphs by Lifted Multicuts*, ICCV 2015. Costs follow the minimisation convention: the
objective is the sum of the costs of the *cut* edges, so a positive cost says "keep together"
(``log((1 - p) / p)`` with p the probability that the endpoints differ).

The kernels work on a dense symmetric cost matrix (a missing edge has cost 0, which contributes
nothing to any objective). A complete graph on 10,000 points is 0.8 GB in float64, and every
operation below is O(n) per contraction or per node move, so the dense form is both the
simplest and the fastest representation at that size.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .linkage_core import roots_to_labels


@nb.njit(cache=True)
def _row_best(C, r, active):
    best = -np.inf
    arg = -1
    for w in range(C.shape[0]):
        if w != r and active[w]:
            v = C[r, w]
            if v > best:
                best = v
                arg = w
    return best, arg


@nb.njit(cache=True)
def gaec_dense(C):
    """Greedy additive edge contraction on the dense cost matrix ``C`` (modified in place).

    Repeatedly contracts the edge of largest positive cost (parallel edges add up) until no
    positive edge is left. Returns node labels (0..k-1) and the number of contractions.
    """
    n = C.shape[0]
    active = np.ones(n, dtype=np.bool_)
    parent = np.arange(n)
    rowmax = np.full(n, -np.inf)
    rowarg = np.full(n, -1, dtype=np.int64)
    for r in range(n):
        rowmax[r], rowarg[r] = _row_best(C, r, active)
    # rowmax is exact where stale is False and an upper bound where it is True (a row whose
    # best edge lost value); a stale row is rescanned only when it reaches the top
    stale = np.zeros(n, dtype=np.bool_)
    n_contract = 0
    while True:
        u = -1
        best = 0.0
        for r in range(n):
            if active[r] and rowmax[r] > best:
                best = rowmax[r]
                u = r
        if u < 0:
            break
        if stale[u]:
            rowmax[u], rowarg[u] = _row_best(C, u, active)
            stale[u] = False
            continue
        v = rowarg[u]
        # contract v into u
        for w in range(n):
            if active[w] and w != u and w != v:
                s = C[u, w] + C[v, w]
                C[u, w] = s
                C[w, u] = s
        active[v] = False
        parent[v] = u
        n_contract += 1
        rowmax[u], rowarg[u] = _row_best(C, u, active)
        stale[u] = False
        rowmax[v] = -np.inf
        for w in range(n):
            if not active[w] or w == u:
                continue
            cwu = C[u, w]
            if cwu >= rowmax[w]:
                # at least the (upper bound of the) old maximum: the new exact maximum
                rowmax[w] = cwu
                rowarg[w] = u
                stale[w] = False
            elif rowarg[w] == u or rowarg[w] == v:
                # the best edge of w lost value: keep the old maximum as an upper bound
                stale[w] = True
    return roots_to_labels(parent), n_contract


@nb.njit(cache=True)
def multicut_objective(C, labels):
    """Sum of the costs of the cut edges (i < j with different labels)."""
    n = C.shape[0]
    total = 0.0
    for i in range(n):
        li = labels[i]
        for j in range(i + 1, n):
            if labels[j] != li:
                total += C[i, j]
    return total


@nb.njit(cache=True)
def _members(labels, k):
    """CSR of members per cluster: (indptr, idx)."""
    n = labels.shape[0]
    cnt = np.zeros(k + 1, dtype=np.int64)
    for i in range(n):
        cnt[labels[i] + 1] += 1
    indptr = np.cumsum(cnt)
    fill = indptr[:-1].copy()
    idx = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = labels[i]
        idx[fill[c]] = i
        fill[c] += 1
    return indptr, idx


@nb.njit(cache=True)
def _kl_pair(C, nodes, side, d0, d1, eps, patience):
    """One Kernighan–Lin pass on the bipartition ``side`` (0/1) of ``nodes``.

    Nodes are moved one at a time, best gain first (negative gains allowed, to climb out of
    local optima); the sequence stops after ``patience`` moves without a new best prefix.

    ``d0[x]`` / ``d1[x]``: summed cost from node x to the side-0 / side-1 nodes (itself
    excluded). Returns (best_gain, n_moves, order): applying the first ``n_moves`` moves of ``order``
    (each flips a node's side) decreases the objective by ``best_gain``.
    """
    s = nodes.shape[0]
    d0 = d0.copy()
    d1 = d1.copy()
    # gains are sums of many costs: demand more than their rounding error to call it a gain
    scale = 0.0
    for x in range(s):
        scale += abs(d0[x]) + abs(d1[x])
    eps = max(eps, 1e-12 * scale)
    moved = np.zeros(s, dtype=np.bool_)
    order = np.empty(s, dtype=np.int64)
    cur = side.copy()
    cum = 0.0
    best = eps
    best_m = 0
    for step in range(s):
        bx = -1
        bg = -np.inf
        for x in range(s):
            if not moved[x]:
                g = d1[x] - d0[x] if cur[x] == 0 else d0[x] - d1[x]
                if g > bg:
                    bg = g
                    bx = x
        if bx < 0:
            break
        moved[bx] = True
        order[step] = bx
        cum += bg
        old = cur[bx]
        cur[bx] = 1 - old
        vb = nodes[bx]
        for y in range(s):
            if y != bx:
                c = C[nodes[y], vb]
                if old == 0:
                    d0[y] -= c
                    d1[y] += c
                else:
                    d1[y] -= c
                    d0[y] += c
        if cum > best:
            best = cum
            best_m = step + 1
        elif step + 1 - best_m >= patience:
            break  # no new best for `patience` moves: the rest of the sequence is not tried
    return best, best_m, order


@nb.njit(cache=True)
def kernighan_lin_joins(C, labels, max_rounds, eps, patience=32):
    """KLj local search from ``labels``; returns improved labels (0..k-1) and rounds run.

    Each round visits every pair of clusters joined by at least one positive-cost edge, and
    every cluster against an empty one: it runs a Kernighan–Lin move sequence on the pair and
    keeps the best prefix, or joins the two clusters if that gains more. Pairs of clusters with
    no attractive edge between them are skipped (moving nodes between them can gain no more
    than moving the same nodes to a new, empty cluster, which is tried). Stops when a round
    changes nothing or after ``max_rounds``. Each move sequence stops after ``patience``
    moves without improvement (the full sequence costs O(s²) per pair and gains little on
    large pairs; ``patience >= n`` gives the full Kernighan–Lin pass).
    """
    n = C.shape[0]
    lab = labels.copy()
    k = 0
    for i in range(n):
        k = max(k, lab[i] + 1)
    cap = 2 * n + 2
    lab_new = np.empty(n, dtype=np.int64)
    dirty = np.ones(cap, dtype=np.bool_)
    rounds = 0
    for rnd in range(max_rounds):
        rounds = rnd + 1
        indptr, idx = _members(lab, k)
        # candidate pairs: clusters joined by a positive edge
        pa = np.empty(0, dtype=np.int64)
        pos = np.zeros((k, k), dtype=np.bool_)
        for i in range(n):
            li = lab[i]
            for j in range(i + 1, n):
                lj = lab[j]
                if lj != li and C[i, j] > 0.0:
                    if li < lj:
                        pos[li, lj] = True
                    else:
                        pos[lj, li] = True
        n_pairs = 0
        for a in range(k):
            for b in range(a + 1, k):
                if pos[a, b] and (dirty[a] or dirty[b]):
                    n_pairs += 1
        pa = np.empty(n_pairs + k, dtype=np.int64)
        pb = np.empty(n_pairs + k, dtype=np.int64)
        t = 0
        for a in range(k):
            if dirty[a]:
                pa[t] = a
                pb[t] = -1
                t += 1
            for b in range(a + 1, k):
                if pos[a, b] and (dirty[a] or dirty[b]):
                    pa[t] = a
                    pb[t] = b
                    t += 1
        new_dirty = np.zeros(cap, dtype=np.bool_)
        # live member lists: linked lists rebuilt from indptr/idx
        head = np.full(cap, -1, dtype=np.int64)
        nxt = np.full(n, -1, dtype=np.int64)
        size = np.zeros(cap, dtype=np.int64)
        for c in range(k):
            prev = -1
            for p in range(indptr[c + 1] - 1, indptr[c] - 1, -1):
                v = idx[p]
                nxt[v] = prev
                prev = v
            head[c] = prev
            size[c] = indptr[c + 1] - indptr[c]
        intra = np.zeros(n)
        for c in range(k):
            for p in range(indptr[c], indptr[c + 1]):
                v = idx[p]
                acc = 0.0
                for q2 in range(indptr[c], indptr[c + 1]):
                    w = idx[q2]
                    if w != v:
                        acc += C[v, w]
                intra[v] = acc
        k_cur = k
        changed = False
        for q in range(t):
            a = pa[q]
            b = pb[q]
            if size[a] == 0 or (b >= 0 and size[b] == 0):
                continue
            sb = size[b] if b >= 0 else 0
            s = size[a] + sb
            nodes = np.empty(s, dtype=np.int64)
            side = np.zeros(s, dtype=np.int64)
            x = 0
            v = head[a]
            while v >= 0:
                nodes[x] = v
                x += 1
                v = nxt[v]
            if b >= 0:
                v = head[b]
                while v >= 0:
                    nodes[x] = v
                    side[x] = 1
                    x += 1
                    v = nxt[v]
            # within-cluster sums are cached per node; only the cross sums cost |A|·|B|
            sa = size[a]
            d0 = np.zeros(s)
            d1 = np.zeros(s)
            join_gain = -np.inf
            if b >= 0:
                join_gain = 0.0
            for x in range(sa):
                d0[x] = intra[nodes[x]]
            for y in range(sa, s):
                d1[y] = intra[nodes[y]]
            for x in range(sa):
                vx = nodes[x]
                acc = 0.0
                for y in range(sa, s):
                    c = C[vx, nodes[y]]
                    acc += c
                    d0[y] += c
                d1[x] = acc
                join_gain += acc
            gain, m, order = _kl_pair(C, nodes, side, d0, d1, eps, patience)
            if join_gain > max(eps, gain) and join_gain >= gain:
                for y in range(size[a], s):
                    side[y] = 0
            elif m > 0:
                for z in range(m):
                    side[order[z]] = 1 - side[order[z]]
            else:
                continue
            changed = True
            target_b = b
            if b < 0:
                target_b = k_cur
                k_cur += 1
            # rebuild the two member lists
            head[a] = -1
            size[a] = 0
            head[target_b] = -1
            size[target_b] = 0
            for x in range(s):
                v = nodes[x]
                c = a if side[x] == 0 else target_b
                nxt[v] = head[c]
                head[c] = v
                size[c] += 1
                lab[v] = c
            for x in range(s):
                v = nodes[x]
                acc = 0.0
                for y in range(s):
                    if y != x and side[y] == side[x]:
                        acc += C[v, nodes[y]]
                intra[v] = acc
            new_dirty[a] = True
            new_dirty[target_b] = True
        if not changed:
            break
        # compact labels to 0..k-1 in first-appearance order
        remap = np.full(k_cur, -1, dtype=np.int64)
        kk = 0
        for i in range(n):
            c = lab[i]
            if remap[c] < 0:
                remap[c] = kk
                kk += 1
            lab_new[i] = remap[c]
        dirty[:] = False
        for c in range(k_cur):
            if remap[c] >= 0 and new_dirty[c]:
                dirty[remap[c]] = True
        lab[:] = lab_new
        k = kk
    return lab, rounds
