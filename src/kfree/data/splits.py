"""Split by identity, not by sample: the test identities are never seen in training.

That is the whole point of clustering with an unknown number of clusters: the clusters at test
time are of people (or intents) the embedding has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ConfigError, DataError


@dataclass(frozen=True)
class IdentitySplit:
    """Disjoint identity sets and the row indices that belong to each."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    test_ids: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray


def split_identities(
    y: np.ndarray, n_train: float, n_val: float, n_test: float | None = None, *, seed: int = 0
) -> IdentitySplit:
    """Randomly split identities into train/val/test.

    Counts may be integers (numbers of identities) or fractions in (0, 1). ``n_test=None`` gives
    the test set all remaining identities. Row indices keep the input order within each part.
    """
    y = np.asarray(y)
    ids = np.unique(y)
    k = ids.shape[0]

    def count(v: float, name: str) -> int:
        if isinstance(v, (float, np.floating)) and 0 < v < 1:
            return round(v * k)
        if int(v) != v or v < 0:
            raise ConfigError(f"{name}={v!r} must be a count >= 0 or a fraction in (0, 1)")
        return int(v)

    a, b = count(n_train, "n_train"), count(n_val, "n_val")
    c = k - a - b if n_test is None else count(n_test, "n_test")
    if a + b + c > k or c < 0:
        raise DataError(f"asked for {a}+{b}+{max(c, 0)} identities but the data has only {k}")
    rng = np.random.default_rng(seed)
    perm = ids[rng.permutation(k)]
    tr, va, te = perm[:a], perm[a : a + b], perm[a + b : a + b + c]
    return IdentitySplit(
        train_ids=np.sort(tr), val_ids=np.sort(va), test_ids=np.sort(te),
        train_idx=np.flatnonzero(np.isin(y, tr)),
        val_idx=np.flatnonzero(np.isin(y, va)),
        test_idx=np.flatnonzero(np.isin(y, te)),
    )
