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
