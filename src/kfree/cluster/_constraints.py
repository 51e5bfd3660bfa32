"""Must-link / cannot-link pair constraints shared by the clustering back-ends.

Must-link pairs are closed transitively into *groups* that start as one cluster each; a
cannot-link pair forbids any cluster that would contain both points. A cannot-link pair inside
one must-link group is a contradiction and is reported with the pair that causes it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..exceptions import DataError, DataWarning, user_stacklevel
from .linkage_core import connected_components


def check_pairs(pairs: Any, n: int, name: str) -> np.ndarray:
    """Validate an array of index pairs into shape (m, 2) int64 (``None`` → empty)."""
    if pairs is None:
        return np.empty((0, 2), dtype=np.int64)
    try:
        arr = np.asarray(pairs)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise DataError(f"{name} could not be read as an array of index pairs: {e}") from None
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{name} must have shape (n_pairs, 2), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"{name} must hold integer sample indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        r = int(np.where(bad.any(axis=1))[0][0])
        raise DataError(
            f"{name} pair {tuple(int(v) for v in arr[r])} (row {r}) is out of range for "
            f"n_samples={n}; indices must be in [0, {n - 1}]"
        )
    return arr


def must_link_groups(n: int, must_link: np.ndarray) -> np.ndarray:
    """Group id (0..G-1) of every sample after closing must-link pairs transitively."""
    if must_link.shape[0] == 0:
        return np.arange(n, dtype=np.int64)
    return connected_components(n, must_link[:, 0], must_link[:, 1])


def check_contradictions(groups: np.ndarray, cannot_link: np.ndarray) -> None:
    """Raise if a cannot-link pair lies inside one must-link group."""
    if cannot_link.shape[0] == 0:
        return
    same = groups[cannot_link[:, 0]] == groups[cannot_link[:, 1]]
    if same.any():
        r = int(np.where(same)[0][0])
        i, j = (int(v) for v in cannot_link[r])
        what = (f"it pairs sample {i} with itself" if i == j else
                "the two samples are joined by must-link pairs")
        raise DataError(f"cannot_link pair ({i}, {j}) contradicts the must-link constraints: {what}; remove the pair "
                        "from one of the two lists")


def cannot_link_keys(groups: np.ndarray, cannot_link: np.ndarray, n_groups: int) -> np.ndarray:
    """Sorted unique keys ``lo * n_groups + hi`` of group pairs that must stay apart."""
    if cannot_link.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    a = groups[cannot_link[:, 0]]
    b = groups[cannot_link[:, 1]]
    return np.unique(np.minimum(a, b) * n_groups + np.maximum(a, b))


def warn_wide_groups(X: np.ndarray, groups: np.ndarray, labels: np.ndarray, cut: float, distance: str) -> None:
    """Warn when must-link groups are wider than a complete-linkage cut.

    Complete linkage keeps a group with other rows only when every pair is within the cut, so a
    group whose own rows lie farther apart (a face track through a turn of the head, a pose
    change) joins almost nothing and stays a cluster of its own: a TV-episode trial's tracks gave
    132 clusters for 25 characters, against 44 without them, silently. Average linkage measures
    groups by their mean distance and is not held back so."""
    from scipy.spatial.distance import cdist

    from .labels import group_order

    n_groups = int(groups.max()) + 1
    order, starts = group_order(groups, n_groups)
    sizes = np.diff(starts)
    multi = np.flatnonzero(sizes > 1)
    if multi.size == 0:
        return
    widest = np.zeros(n_groups)
    for g in multi:
        rows = np.asarray(X[order[starts[g]:starts[g + 1]]], dtype=np.float64)
        for a in range(0, rows.shape[0], 2048):  # (blocks: a long track need not hold s² distances at once)
            widest[g] = max(widest[g], float(cdist(rows[a:a + 2048], rows[a:], metric=distance).max()))
    wide = multi[widest[multi] > cut]
    if wide.size == 0:
        return
    cluster_sizes = np.bincount(labels)
    alone = int((cluster_sizes[labels[order[starts[wide]]]] == sizes[wide]).sum())
    far = float(np.median(widest[multi])) > 100 * cut
    why = ("most groups' own rows lie over 100× the threshold apart: are the features on the scale the threshold was "
           "set for (no ids, frames, times or boxes among them)? Else, " if far else "")
    warnings.warn(f"{wide.size:,} of {multi.size:,} must-link groups (tracks) are wider than the threshold {cut:.6g} "
                  f"(their rows up to {widest[wide].max():.4g} apart, {distance}), and {alone:,} of them stayed "
                  f"clusters of their own: complete linkage joins a group to other rows only when every pair is "
                  f"within the threshold. {why}Average linkage measures groups by their mean distance "
                  "(linkage='average': kfree cluster --linkage average, or for a model kfree train --linkage average); "
                  "or check that each group is one identity",
                  DataWarning, stacklevel=user_stacklevel())
