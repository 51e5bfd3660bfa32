"""Cluster labels in one canonical form, shared by every clusterer.

Labels ``0..k-1`` numbered in order of first appearance: deterministic, independent of how an
algorithm happened to number its clusters, and so comparable across methods and runs (two
clusterers that find the same partition return the same array).
"""

from __future__ import annotations

import numpy as np


def first_seen_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered ``0..k-1`` in order of first appearance (int64, same shape)."""
    labels = np.asarray(labels)
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv.ravel()].astype(np.int64)


def group_order(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices sorted by group (stable) and each group's start in them: group g is
    ``order[starts[g] : starts[g + 1]]`` for labels in 0..k-1 (a CSR of the groups' members)."""
    order = np.argsort(labels, kind="stable").astype(np.int64)
    return order, np.searchsorted(labels[order], np.arange(k + 1)).astype(np.int64)
