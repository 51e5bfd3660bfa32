"""Cuts of a fitted dendrogram at many k without refitting (for NMI/WCP-vs-#clusters curves).

A fitted :class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative` exposes its merges in
increasing height (``merge_pairs_``, ``merge_heights_``). Applying them one by one in a single
union-find pass yields the partition at every number of clusters, so a whole curve costs one
pass over the merges plus O(n) per requested k — no metric code lives here (``cluster`` does
not depend on ``metrics``); pass a scoring function to :func:`score_curve`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from .linkage_core import roots_to_labels, union_roots


def iter_cuts(
    merge_pairs: np.ndarray, n_samples: int, ks: Iterable[int]
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, labels)`` for each reachable k in ``ks``, from most to fewest clusters.

    Parameters
    ----------
    merge_pairs : ndarray of shape (n_merges, 2)
        Merges in increasing height (one member of each joined cluster), e.g. a fitted model's
        ``merge_pairs_``.
    n_samples : int
    ks : iterable of int
        Numbers of clusters wanted; values the merges cannot reach (fewer clusters than remain
        after the last merge, or more than ``n_samples``) are skipped.
    """
    pairs = np.asarray(merge_pairs, dtype=np.int64)
    k_min = n_samples - pairs.shape[0]
    wanted = sorted({int(k) for k in ks if k_min <= int(k) <= n_samples}, reverse=True)
    parent = np.arange(n_samples)
    applied = 0
    for k in wanted:
        target = n_samples - k
        while applied < target:
            union_roots(parent, pairs[applied, 0], pairs[applied, 1])
            applied += 1
        yield k, roots_to_labels(parent)


def score_curve(
    model: Any,
    score: Callable[[np.ndarray], float] | dict[str, Callable[[np.ndarray], float]],
    ks: Iterable[int] | None = None,
) -> dict[str, np.ndarray]:
    """Scores of a fitted model's cuts at many k.

    Parameters
    ----------
    model : fitted ThresholdAgglomerative (anything with ``merge_pairs_`` and ``labels_``)
    score : callable or dict of name → callable
        ``score(labels) -> float``, e.g. ``lambda lab: nmi(y_true, lab)``.
    ks : iterable of int, optional
        Default: every reachable k.

    Returns
    -------
    dict with ``"k"`` (ndarray of int, decreasing) and one float array per score name
    (``"score"`` for a single callable).
    """
    if not hasattr(model, "merge_pairs_"):
        raise ConfigError("score_curve needs a fitted model with merge_pairs_; call fit first")
    n = int(model.labels_.shape[0])
    pairs = model.merge_pairs_
    if ks is None:
        ks = range(n - pairs.shape[0], n + 1)
    fns = score if isinstance(score, dict) else {"score": score}
    out: dict[str, list] = {"k": []}
    for name in fns:
        out[name] = []
    for k, labels in iter_cuts(pairs, n, ks):
        out["k"].append(k)
        for name, fn in fns.items():
            out[name].append(float(fn(labels)))
    return {name: np.asarray(v) for name, v in out.items()}
