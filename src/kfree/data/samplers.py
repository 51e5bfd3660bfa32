"""Batch samplers for metric learning.

:class:`PKSampler` draws P identities × K samples per batch, so every batch holds at least two
identities (BCL's negative term and every triplet need one) and enough positives per identity.
Identities with fewer than K samples are sampled with replacement (clearly reported by
:meth:`PKSampler.describe`), and all randomness comes from one seeded generator so runs repeat
exactly.

:class:`TripletSampler` draws explicit (anchor, positive, negative) triplets from the whole data
set with controlled **label noise**, the protocol of the ICPR 2020 study: a fraction of wrong
positives (the "positive" is from another identity), a fraction of wrong negatives (the
"negative" is from the anchor's identity), or "random" negatives drawn without looking at labels
(wrong with probability ≈ 1/k for k balanced identities). Its batches are laid out as
consecutive ``(a, p, n)`` rows, read by ``TripletLoss(mining="given")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..config import check_label_noise
from ..exceptions import ConfigError, DataError


class PKSampler:
    """Yield index arrays of shape (P*K,) — P identities, K samples each.

    Parameters
    ----------
    labels : ndarray of shape (n,)
    p, k : identities per batch and samples per identity (``k >= 1``, ``p >= 2``).
    batches_per_epoch : default ``ceil(n / (p*k))`` so one epoch sees about n samples.
    allow_repeats : if False, identities with fewer than ``k`` samples (for ``k >= 2``, in
        particular identities with a single sample) and data with fewer than ``p`` identities
        raise a DataError; if True (default) small identities are drawn with replacement and
        ``p`` is lowered to the number of identities.
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
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ConfigError(f"batches_per_epoch={batches_per_epoch} must be >= 1 (or None for about n/(p*k))")
        self.groups = [np.flatnonzero(inv == i) for i in range(ids.shape[0])]
        def shown(i: int) -> int | str:
            return int(ids[i]) if np.issubdtype(ids.dtype, np.integer) else str(ids[i])

        small = [shown(i) for i, g in enumerate(self.groups) if g.shape[0] < k]
        if small and not allow_repeats:
            singles = [shown(i) for i, g in enumerate(self.groups) if g.shape[0] == 1]
            if singles and k >= 2:
                what = (f"{len(singles)} identities have a single sample (e.g. {singles[:3]}) but k={k} "
                        "needs k distinct samples of each")
            else:
                what = f"{len(small)} identities have fewer than k={k} samples (e.g. {small[:3]})"
            raise DataError(f"{what}; lower k, drop those identities, or allow repeats")
        if not allow_repeats and ids.shape[0] < p:
            raise DataError(
                f"the data cannot fill one batch: p={p} identities per batch but only {ids.shape[0]} "
                "identities; lower p or allow repeats (which uses all of them)"
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


class TripletSampler:
    """Yield index arrays of shape (3*batch_size,): ``batch_size`` triplets ``(a, p, n)`` in a row.

    Every identity with at least two samples serves as anchor identity; each epoch visits its
    samples as anchors in a fresh random order (identities seen once can still be negatives).
    Given an anchor of identity ``c``:

    - the positive is a uniform draw from ``c`` without the anchor — or, with probability
      ``wrong_positives``, a uniform draw from all samples of other identities;
    - the negative is a uniform draw from other identities — or, with probability
      ``wrong_negatives``, a uniform draw from ``c`` without the anchor; with
      ``wrong_negatives="random"`` it is a uniform draw from all samples but the anchor,
      regardless of labels (the ICPR paper's "random" column: wrong with probability
      ``(n_c − 1)/(n − 1)``, ≈ 1/k for k balanced identities).

    Noise is drawn independently per triplet from one seeded generator, so the measured rates
    converge to the requested ones and runs repeat exactly.

    Parameters
    ----------
    labels : ndarray of shape (n,)
    batch_size : int
        Triplets per batch (>= 1); a batch holds ``3 * batch_size`` indices. The ICPR setup uses
        batches of 100 images.
    wrong_positives : float
        Fraction of triplets with a wrong positive, in ``[0, 1)`` (ICPR grid: 0, 0.05, 0.1, 0.2).
    wrong_negatives : float or "random"
        Fraction of triplets with a wrong negative, in ``[0, 1)`` (ICPR grid: 0, 0.02, 0.05, 0.07),
        or ``"random"``.
    batches_per_epoch : int, optional
        Default ``ceil(n_anchors / batch_size)``, so an epoch uses every eligible sample as an
        anchor once.
    seed : int
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int = 32,
        *,
        wrong_positives: float = 0.0,
        wrong_negatives: float | str = 0.0,
        batches_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise DataError(f"labels must have shape (n,), got {labels.shape}")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ConfigError(f"batch_size={batch_size!r} triplets per batch must be an int >= 1")
        check_label_noise(wrong_positives, wrong_negatives)
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ConfigError(f"batches_per_epoch={batches_per_epoch} must be >= 1 (or None)")
        ids, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if ids.shape[0] < 2:
            raise DataError(f"triplets need at least 2 identities, got {ids.shape[0]}")
        if counts.max() < 2:
            raise DataError("triplets need an identity with at least 2 samples (anchor + positive); every identity has 1")
        order = np.argsort(inv, kind="stable")  # sample indices grouped by identity
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._order = order
        self._pos_in_order = np.empty_like(order)
        self._pos_in_order[order] = np.arange(order.shape[0])  # where each sample sits in `order`
        self._inv = inv
        self._starts = starts
        self._counts = counts
        self._anchors = np.flatnonzero(counts[inv] >= 2)
        self.n = labels.shape[0]
        self.n_identities = int(ids.shape[0])
        self.batch_size = int(batch_size)
        self.wrong_positives = float(wrong_positives)
        self.wrong_negatives: float | str = wrong_negatives if isinstance(wrong_negatives, str) else float(wrong_negatives)
        self.batches_per_epoch = batches_per_epoch or max(1, -(-self._anchors.shape[0] // self.batch_size))
        self.rng = np.random.default_rng(seed)
        self._queue = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _next_anchors(self, m: int) -> np.ndarray:
        while self._queue.shape[0] < m:
            self._queue = np.concatenate([self._queue, self.rng.permutation(self._anchors)])
        out, self._queue = self._queue[:m], self._queue[m:]
        return out

    def _same(self, a: np.ndarray) -> np.ndarray:
        """Uniform draws from the anchors' identities, excluding the anchors themselves."""
        c = self._inv[a]
        r = (self.rng.random(a.shape[0]) * (self._counts[c] - 1)).astype(np.int64)  # [0, n_c - 1)
        r += r >= (self._pos_in_order[a] - self._starts[c])  # skip the anchor's own slot
        return self._order[self._starts[c] + r]

    def _other(self, a: np.ndarray) -> np.ndarray:
        """Uniform draws from all samples of other identities."""
        c = self._inv[a]
        r = (self.rng.random(a.shape[0]) * (self.n - self._counts[c])).astype(np.int64)  # [0, n - n_c)
        r += np.where(r >= self._starts[c], self._counts[c], 0)  # jump over the anchor's identity
        return self._order[r]

    def _any_but_self(self, a: np.ndarray) -> np.ndarray:
        r = (self.rng.random(a.shape[0]) * (self.n - 1)).astype(np.int64)  # [0, n - 1)
        return r + (r >= a)

    def sample(self, n_triplets: int) -> np.ndarray:
        """``n_triplets`` triplets as an array of shape (n_triplets, 3): anchor, positive, negative."""
        a = self._next_anchors(n_triplets)
        p = self._same(a)
        wrong_p = self.rng.random(n_triplets) < self.wrong_positives
        if wrong_p.any():
            p[wrong_p] = self._other(a[wrong_p])
        if self.wrong_negatives == "random":
            q = self._any_but_self(a)
        else:
            q = self._other(a)
            wrong_n = self.rng.random(n_triplets) < self.wrong_negatives
            if wrong_n.any():
                q[wrong_n] = self._same(a[wrong_n])
        return np.stack([a, p, q], axis=1)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.batches_per_epoch):
            yield self.sample(self.batch_size).reshape(-1)  # (3*batch_size,): a0 p0 n0 a1 p1 n1 ...

    def get_state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "queue": self._queue.copy()}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._queue = np.asarray(state["queue"], dtype=np.int64)

    def describe(self) -> str:
        neg = self.wrong_negatives if isinstance(self.wrong_negatives, str) else f"{self.wrong_negatives:.0%}"
        return (f"{self.batch_size} triplets per batch, {self.batches_per_epoch} batches/epoch, "
                f"wrong positives {self.wrong_positives:.0%}, wrong negatives {neg}")
