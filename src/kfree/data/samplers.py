"""Batch samplers for metric learning.

:class:`PKSampler` draws P identities × K samples per batch, so every batch holds at least two
identities (BCL's negative term and every triplet need one) and enough positives per identity.
Identities with fewer than K samples are sampled with replacement (clearly reported by
:meth:`PKSampler.describe`), and all randomness comes from one seeded generator so runs repeat
exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..exceptions import ConfigError, DataError


class PKSampler:
    """Yield index arrays of shape (P*K,) — P identities, K samples each.

    Parameters
    ----------
    labels : ndarray of shape (n,)
    p, k : identities per batch and samples per identity (``k >= 1``, ``p >= 2``).
    batches_per_epoch : default ``ceil(n / (p*k))`` so one epoch sees about n samples.
    allow_repeats : if False, identities with fewer than ``k`` samples raise a DataError.
    """

    def __init__(
        self,
        labels: np.ndarray,
        p: int,
        k: int,
        *,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        allow_repeats: bool = True,
    ) -> None:
        labels = np.asarray(labels)
        if p < 2:
            raise ConfigError(f"p={p} identities per batch must be >= 2 (a batch needs negatives)")
        if k < 1:
            raise ConfigError(f"k={k} samples per identity must be >= 1")
        ids, inv = np.unique(labels, return_inverse=True)
        if ids.shape[0] < 2:
            raise DataError(
                f"training needs at least 2 identities, got {ids.shape[0]}; add labelled data of other identities"
            )
        self.groups = [np.flatnonzero(inv == i) for i in range(ids.shape[0])]
        small = [int(ids[i]) if np.issubdtype(ids.dtype, np.integer) else str(ids[i])
                 for i, g in enumerate(self.groups) if g.shape[0] < k]
        if small and not allow_repeats:
            raise DataError(
                f"{len(small)} identities have fewer than k={k} samples (e.g. {small[:3]}); "
                "lower k or allow repeats"
            )
        self.n_small = len(small)
        self.p = min(int(p), ids.shape[0])
        self.k = int(k)
        self.n = labels.shape[0]
        self.batches_per_epoch = batches_per_epoch or max(1, -(-self.n // (self.p * self.k)))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[np.ndarray]:
        n_ids = len(self.groups)
        for _ in range(self.batches_per_epoch):
            chosen = self.rng.choice(n_ids, size=self.p, replace=False)
            parts = []
            for c in chosen:
                g = self.groups[c]
                parts.append(self.rng.choice(g, size=self.k, replace=g.shape[0] < self.k))
            yield np.concatenate(parts)

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def describe(self) -> str:
        return (f"P={self.p} identities x K={self.k} samples, {self.batches_per_epoch} batches/epoch"
                + (f", {self.n_small} identities with < K samples drawn with repeats" if self.n_small else ""))
