"""Exact minimum cost multicut of small graphs, as a certificate for the heuristics.

An integer linear program over binary cut variables ``x_e`` (1 = edge cut) minimising
``sum c_e x_e`` subject to the cycle inequalities ``x_e <= sum_{f in C - e} x_f`` for every cycle
C through e, which are exactly the conditions for the cut edges to form a multicut. There are
exponentially many, so they are separated lazily: solve, and for every cut edge uv whose
endpoints are still joined by a path of uncut edges add the inequality of the shortest such
path (breadth-first search); stop when no cut edge is violated — that integer solution is a
multicut and, since only valid inequalities were added, an optimal one. On a complete graph
the triangle inequalities (which suffice there) are all added up front instead.

Uses HiGHS (``pip install highspy``; part of ``kfree[test]``). Meant for tens of nodes: sparse
graphs with i.i.d. Gaussian costs solve in well under a second at 60 nodes here, while complete
graphs with i.i.d. Gaussian costs defeat the solver from ~24 nodes on (its LP bound is weak).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from .linkage_core import connected_components
from .multicut import check_graph


def exact_multicut(
    edges: Any,
    costs: Any,
    n_nodes: int | None = None,
    *,
    max_rounds: int = 500,
    time_limit: float | None = None,
) -> tuple[float, np.ndarray, bool]:
    """Solve the multicut of ``edges`` (m, 2) with ``costs`` (m,) exactly.

    Costs follow :class:`~kfree.cluster.MulticutClustering`'s convention (positive = keep
    together); parallel edges must be summed by the caller.

    Returns
    -------
    objective : float
        Sum of the costs of the cut edges.
    labels : ndarray of shape (n_nodes,)
        Components of the uncut edges (0..k-1).
    optimal : bool
        ``False`` when ``time_limit`` stopped a solve first (the objective is then the best
        multicut found so far, not a certificate) or the rounds ran out.
    """
    try:
        import highspy
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("exact_multicut needs HiGHS: pip install highspy") from e
    E, c, n = check_graph(edges, costs, n_nodes)
    E = E.astype(np.int64)
    m = E.shape[0]
    h = _quiet_highs(highspy)
    h.setOptionValue("mip_rel_gap", 0.0)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    inf = h.getInfinity()
    none = np.array([], np.int32)
    h.addCols(m, c, np.zeros(m), np.ones(m), 0, none, none, np.array([]))
    h.changeColsIntegrality(m, np.arange(m, dtype=np.int32), np.ones(m, dtype=np.uint8))
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (u, v) in enumerate(E.tolist()):
        adj[u].append((v, k))
        adj[v].append((u, k))
    if n >= 3 and m == n * (n - 1) // 2:
        _add_triangles(h, E, n, inf)
    optimal = False
    x = np.zeros(m, dtype=int)
    for _ in range(max_rounds):
        h.run()
        stopped = h.getModelStatus() != highspy.HighsModelStatus.kOptimal
        x = np.round(np.asarray(h.getSolution().col_value)).astype(int)
        labels = _uncut_components(n, E, x)
        violated = [k for k in np.flatnonzero(x == 1) if labels[E[k, 0]] == labels[E[k, 1]]]
        if stopped:
            break
        if not violated:
            optimal = True
            break
        for k in violated:
            path = _uncut_path(adj, x, int(E[k, 0]), int(E[k, 1]))
            idx = np.array([k, *path], dtype=np.int32)
            h.addRow(-inf, 0.0, idx.shape[0], idx, np.r_[1.0, -np.ones(len(path))])
    labels = _uncut_components(n, E, x)
    # the labels' own objective: a stopped solve may leave cut edges inside a component
    cut = labels[E[:, 0]] != labels[E[:, 1]] if m else np.zeros(0, bool)
    return float(c[cut].sum()), labels, optimal


def _add_triangles(h, E, n: int, inf: float) -> None:
    """All triangle inequalities of a complete graph, up front.

    They describe its multicuts exactly, so every incumbent the solver finds (also one cut
    short by a time limit) is a valid multicut; added lazily instead, a time-limited first
    solve could stop at a point that is no multicut at all.
    """
    var = -np.ones((n, n), dtype=np.int64)
    var[E[:, 0], E[:, 1]] = np.arange(E.shape[0])
    var[E[:, 1], E[:, 0]] = np.arange(E.shape[0])
    i, j, k = np.array([(i, j, k) for i in range(n) for j in range(i + 1, n)
                        for k in range(j + 1, n)]).T
    a, b, c = var[i, j], var[i, k], var[j, k]
    R = np.concatenate([np.stack(t, 1) for t in ((a, b, c), (b, a, c), (c, a, b))]).astype(np.int32)
    h.addRows(len(R), np.full(len(R), -inf), np.zeros(len(R)), 3 * len(R),
              np.arange(0, 3 * len(R), 3, dtype=np.int32), R.ravel(),
              np.tile([1.0, -1.0, -1.0], len(R)))


def _uncut_components(n: int, E: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Node labels (first appearance order) of the components of the uncut edges."""
    keep = np.asarray(x) == 0
    return connected_components(n, E[keep, 0].astype(np.int64), E[keep, 1].astype(np.int64))


def _uncut_path(adj, x, u: int, v: int) -> list[int]:
    """Edge ids of a shortest path of uncut edges from u to v (they are known to be joined)."""
    prev: dict[int, tuple[int, int] | None] = {u: None}
    dq = deque([u])
    while dq and v not in prev:
        a = dq.popleft()
        for b, e in adj[a]:
            if x[e] == 0 and b not in prev:
                prev[b] = (a, e)
                dq.append(b)
    path, b = [], v
    while prev[b] is not None:
        b, e = prev[b]  # type: ignore[misc]
        path.append(e)
    return path


def _quiet_highs(highspy):
    """A HiGHS instance that prints nothing. HiGHS writes its copyright banner to the process's
    standard output as the instance is made, before ``output_flag`` can be set (HiGHS 1.16), so
    file descriptor 1 points to /dev/null for that moment."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return h
