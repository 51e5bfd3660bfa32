"""Clustering metrics used everywhere in kfree.

All functions take ``labels_true`` and ``labels_pred`` (any hashable labels, shape
``(n_samples,)``) and work on one sparse contingency matrix, so they stay cheap for millions of
points. The predicted number of clusters may differ from the true one.

Conventions (the ones the source papers use):

- **NMI** uses arithmetic normalisation, ``2 I(Y;C) / (H(Y) + H(C))`` (scikit-learn's default
  and the BCL reference code).
- **WCP**, weighted cluster purity: ``sum over clusters of its majority count / N``.
- **ACC**, clustering accuracy: best one-to-one map between clusters and classes (Hungarian);
  clusters left unmatched count as wrong.
- Pairwise precision/recall/F1 over the ``n(n-1)/2`` pairs; BCubed per-item precision/recall.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from ..distances import labels_array
from ..exceptions import DataError, DataWarning, user_stacklevel


def _check_labels(labels_true: Any, labels_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = labels_array(labels_true, "labels_true")
    p = labels_array(labels_pred, "labels_pred")
    if t.ndim != 1 or p.ndim != 1:
        raise DataError(f"labels must be 1-d, got shapes {t.shape} and {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise DataError(f"labels_true has {t.shape[0]} items but labels_pred has {p.shape[0]}")
    if t.shape[0] == 0:
        raise DataError("labels are empty: nothing to evaluate")
    return t, p


def _codes(labels: np.ndarray, name: str) -> np.ndarray:
    """Each label's index among the distinct labels; a label that is no class (NaN, None) or a
    mix of types that cannot be ordered is a DataError, not a silent class of its own."""
    if labels.dtype.kind == "f":
        missing = np.isnan(labels).any()
    else:
        import pandas as pd  # (its isna sees None and NaN in an object array in one pass)

        missing = labels.dtype.kind == "O" and bool(pd.isna(labels).any())
    if missing:
        raise DataError(f"{name} contain NaN or None; a missing label is no class: drop those rows first")
    try:
        _, codes = np.unique(labels, return_inverse=True)
    except TypeError:
        raise DataError(f"{name} mix types that cannot be compared (e.g. numbers and text, or None); "
                        "give every label as the same type") from None
    return codes.ravel()


def contingency(labels_true: Any, labels_pred: Any) -> sp.csr_matrix:
    """Sparse contingency matrix of shape (n_classes, n_clusters) with integer counts."""
    t, p = _check_labels(labels_true, labels_pred)
    ti = _codes(t, "labels_true")
    pi = _codes(p, "labels_pred")
    m = sp.coo_matrix(
        (np.ones(ti.shape[0], dtype=np.int64), (ti, pi)), shape=(ti.max() + 1, pi.max() + 1)
    )
    return m.tocsr()


def _entropy(counts: np.ndarray, n: int) -> float:
    c = counts[counts > 0].astype(np.float64)
    return float(-(c / n * np.log(c / n)).sum())


def nmi(labels_true: Any, labels_pred: Any) -> float:
    """Normalised mutual information with arithmetic normalisation, in [0, 1].

    Two trivial partitions (one cluster each) agree perfectly: 1.0, as in scikit-learn.
    """
    c = contingency(labels_true, labels_pred)
    n = int(c.sum())
    a = np.asarray(c.sum(axis=1)).ravel()
    b = np.asarray(c.sum(axis=0)).ravel()
    ha, hb = _entropy(a, n), _entropy(b, n)
    if ha == 0.0 and hb == 0.0:
        return 1.0
    coo = c.tocoo()
    nij = coo.data.astype(np.float64)
    mi = float((nij / n * (np.log(nij * n) - np.log(a[coo.row] * b[coo.col].astype(np.float64)))).sum())
    denom = (ha + hb) / 2.0
    if denom <= 0:
        return 0.0
    return float(min(max(mi / denom, 0.0), 1.0))


def wcp(labels_true: Any, labels_pred: Any) -> float:
    """Weighted cluster purity: fraction of items that belong to their cluster's majority class."""
    c = contingency(labels_true, labels_pred)
    return float(np.asarray(c.max(axis=0).todense()).sum() / c.sum())


#: classes × clusters up to which ACC matches on the dense table (80 MB); beyond, on the sparse one
DENSE_MATCHING_CELLS = 10_000_000


def clustering_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Clustering accuracy (ACC): best one-to-one cluster→class map (Hungarian), in [0, 1].

    Only the non-zero cells of the contingency table can add to the best map, so a large table
    (6,000 classes × 60,000 clusters would be 2.7 GiB dense) is matched sparsely: every class may
    also stay unmatched, worth ``1 / (2 (r + 1))`` (less than one item for all r classes together),
    which keeps a full matching possible and never outweighs a matched item.
    """
    c = contingency(labels_true, labels_pred)
    if c.shape[0] * c.shape[1] <= DENSE_MATCHING_CELLS:
        d = c.toarray()
        rows, cols = linear_sum_assignment(d, maximize=True)
        return float(d[rows, cols].sum() / d.sum())
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    if c.shape[0] > c.shape[1]:
        c = c.T.tocsr()
    r = c.shape[0]
    coo = c.tocoo()
    stay = 1.0 / (2 * (r + 1))  # each class's own "unmatched" column
    w = sp.csr_matrix((np.concatenate([coo.data.astype(np.float64), np.full(r, stay)]),
                       (np.concatenate([coo.row, np.arange(r)]), np.concatenate([coo.col, c.shape[1] + np.arange(r)]))),
                      shape=(r, c.shape[1] + r))
    rows, cols = min_weight_full_bipartite_matching(w, maximize=True)
    real = cols < c.shape[1]
    return float(np.asarray(c[rows[real], cols[real]]).sum() / c.sum())


def _comb2(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float((x * (x - 1) / 2.0).sum())


def pairwise_prf(labels_true: Any, labels_pred: Any) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 over all unordered pairs of items.

    Precision = same-class pairs among same-cluster pairs; recall = same-cluster pairs among
    same-class pairs. With no positive pairs on a side, that side is defined as 1.0.
    """
    c = contingency(labels_true, labels_pred)
    tp = _comb2(c.data)
    pred_pairs = _comb2(np.asarray(c.sum(axis=0)).ravel())
    true_pairs = _comb2(np.asarray(c.sum(axis=1)).ravel())
    precision = tp / pred_pairs if pred_pairs > 0 else 1.0
    recall = tp / true_pairs if true_pairs > 0 else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def bcubed(labels_true: Any, labels_pred: Any) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 (Bagga & Baldwin), averaged over items."""
    cc = contingency(labels_true, labels_pred)
    c = cc.tocoo()
    n = float(cc.sum())
    a = np.asarray(cc.sum(axis=1)).ravel().astype(np.float64)
    b = np.asarray(cc.sum(axis=0)).ravel().astype(np.float64)
    nij = c.data.astype(np.float64)
    precision = float((nij**2 / b[c.col]).sum() / n)
    recall = float((nij**2 / a[c.row]).sum() / n)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, float(f1)


def adjusted_rand(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index (Hubert & Arabie), as scikit-learn's ``adjusted_rand_score``."""
    c = contingency(labels_true, labels_pred)
    n = float(c.sum())
    sum_comb = _comb2(c.data)
    sum_a = _comb2(np.asarray(c.sum(axis=1)).ravel())
    sum_b = _comb2(np.asarray(c.sum(axis=0)).ravel())
    total = n * (n - 1) / 2.0
    expected = sum_a * sum_b / total if total > 0 else 0.0
    max_index = (sum_a + sum_b) / 2.0
    if max_index == expected:
        return 1.0
    return float((sum_comb - expected) / (max_index - expected))


def n_clusters(labels: Any) -> int:
    """Number of distinct labels (NaN, None or labels of mixed types: a DataError, as everywhere)."""
    return int(_codes(labels_array(labels), "labels").max(initial=-1)) + 1


def noise_as_singletons(labels_pred: Any) -> Any:
    """Predicted labels with each negative one (-1: noise, as HDBSCAN and DBSCAN write it) made a
    cluster of its own, with a :class:`~kfree.exceptions.DataWarning` saying how many. Scored as
    given, -1 would be one cluster of every unclustered point, and a density method would be
    scored below what kfree's ``hdbscan`` method (which gives noise points clusters of their own)
    scores for the same clustering. Numbers held as objects (a pandas column of object dtype) are
    numbers too (a metrics audit: their -1s were scored as one cluster, silently). Other labels
    are returned as they are."""
    a = as_numbers(labels_pred)
    if a is None or not (a < 0).any():
        return labels_pred
    warnings.warn(f"{int((a < 0).sum()):,} of the {a.size:,} rows have a negative cluster label (noise, as HDBSCAN and "
                  "DBSCAN write -1): each is scored as a cluster of its own, as kfree's hdbscan method gives them; "
                  "relabel them first to score them otherwise", DataWarning, stacklevel=user_stacklevel())
    return singletons_for_noise(a)


def as_numbers(labels: Any) -> np.ndarray | None:
    """``labels`` as an int or float array when they are numbers (also numbers held as objects,
    a pandas object column), else None (text labels, or none at all)."""
    a = np.asarray(labels)
    if a.dtype.kind == "O" and a.size and all(isinstance(v, (int, float, np.integer, np.floating))
                                              and not isinstance(v, bool) for v in a.tolist()):
        a = a.astype(np.float64 if any(isinstance(v, (float, np.floating)) for v in a.tolist()) else np.int64)
    return a if a.dtype.kind in "iuf" and a.size else None


def singletons_for_noise(labels: Any) -> np.ndarray:
    """``labels`` (integer or float numbers) with each negative one (noise) a cluster of its own,
    numbered after the others; a copy (int64 for integers)."""
    out = np.asarray(labels)
    out = out.copy() if out.dtype.kind == "f" else out.astype(np.int64)
    noise = out < 0
    out[noise] = out[~noise].max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return out


def evaluate_clustering(labels_true: Any, labels_pred: Any) -> dict[str, float | int]:
    """All metrics in one dict (the keys the CLI and reports print). Negative predicted labels
    are noise (:func:`noise_as_singletons`)."""
    labels_pred = noise_as_singletons(labels_pred)
    p, r, f = pairwise_prf(labels_true, labels_pred)
    bp, br, bf = bcubed(labels_true, labels_pred)
    return {
        "n_samples": int(np.asarray(labels_true).shape[0]),
        "n_true": n_clusters(labels_true),
        "n_clusters": n_clusters(labels_pred),
        "nmi": nmi(labels_true, labels_pred),
        "wcp": wcp(labels_true, labels_pred),
        "acc": clustering_accuracy(labels_true, labels_pred),
        "ari": adjusted_rand(labels_true, labels_pred),
        "pairwise_precision": p,
        "pairwise_recall": r,
        "pairwise_f1": f,
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": bf,
    }


def _majority(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (codes 0..G-1): the value most of its rows hold (ties: the first distinct value in
    sorted order) and how many distinct values it holds."""
    v = _codes(values, "labels")
    n_values = int(v.max()) + 1
    pair = groups.astype(np.int64) * n_values + v
    keys, counts = np.unique(pair, return_counts=True)
    g, val = keys // n_values, keys % n_values
    order = np.lexsort((val, -counts, g))  # per group: most rows first, then the lower value
    first = np.ones(order.size, dtype=bool)
    first[1:] = g[order][1:] != g[order][:-1]
    top = np.empty(int(groups.max()) + 1, dtype=np.int64)
    top[g[order][first]] = val[order][first]
    kinds = np.bincount(g, minlength=top.size)
    return np.unique(values)[top], kinds


def evaluate_by_group(labels_true: Any, labels_pred: Any, groups: Any) -> dict[str, float | int]:
    """:func:`evaluate_clustering` with each group of rows (a face track: the frames of one person
    on screen) scored as one item, as the BCL paper scores tracks: a group takes the cluster most
    of its rows are in and the label most of them have. Scored per row, a long track weighs as
    much as hundreds of short ones, and its frames, trivially together, lift every score.

    Adds ``n_rows``; ``groups_split``, the groups whose rows lie in more than one cluster (an
    over-split the per-group score hides: each group counts once, in its majority cluster); and
    ``groups_mixed``, the groups whose rows have more than one true label (a track that follows
    two people: the data's error, not the clustering's)."""
    labels_true, labels_pred, groups = (labels_array(a, n) for a, n in ((labels_true, "labels_true"),
                                                                        (labels_pred, "labels_pred"), (groups, "groups")))
    if not labels_true.shape == labels_pred.shape == groups.shape or labels_true.ndim != 1:
        raise DataError(f"labels_true, labels_pred and groups must be 1-d of one length, got shapes "
                        f"{labels_true.shape}, {labels_pred.shape} and {groups.shape}")
    if labels_true.size == 0:
        raise DataError("no rows to score")
    g = _codes(groups, "groups")
    pred, split = _majority(g, np.asarray(noise_as_singletons(labels_pred)))
    true, mixed = _majority(g, labels_true)
    return {**evaluate_clustering(true, pred), "n_rows": int(labels_true.size),
            "groups_split": int((split > 1).sum()), "groups_mixed": int((mixed > 1).sum())}
