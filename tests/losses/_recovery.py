"""Shared set-up of the #clusters-recovery tests: unseen test identities, small linear head.

Blobs on the unit sphere (``spread`` 0.35 in 32-d): 60 training, 20 validation and 30 test
identities, 6 samples each, all disjoint. The head is one linear layer + L2 normalisation (deeper
heads overfit 60 identities and then over-cluster unseen ones, which is a property of this toy
data, not of the losses); 300 Adam steps on 8x4 batches.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from kfree.data.synthetic import sphere_blobs
from kfree.learner import ClusterLearner

N_TRAIN, N_VAL, N_TEST = 60, 20, 30
#: the model alone at its own threshold, selected per epoch: what these tests check is the loss,
#: not the learner's choice among rules (tests/test_selection.py covers that)
PAPER_STYLE = dict(head="mlp", linkage="complete", threshold_mode="learned", compare_raw=False,
                   eval_every_steps=None, patience=None)


@functools.lru_cache(maxsize=1)
def blobs() -> tuple[np.ndarray, ...]:
    X, y = sphere_blobs(N_TRAIN + N_VAL + N_TEST, 6, 32, spread=0.35, seed=0)
    tr, va = y < N_TRAIN, (y >= N_TRAIN) & (y < N_TRAIN + N_VAL)
    te = y >= N_TRAIN + N_VAL
    return X[tr], y[tr], X[va], y[va], X[te], y[te]


def fit(loss: str, **loss_params) -> ClusterLearner:
    """Fitted learner (cached per loss and parameters within a test session)."""
    return _fit(loss, tuple(sorted(loss_params.items())))


@functools.cache
def _fit(loss: str, params: tuple) -> ClusterLearner:
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only contend on a shared machine
    try:
        X_tr, y_tr, X_va, y_va, _, _ = blobs()
        return ClusterLearner.from_params(loss=loss, loss_params=dict(params), dims=(32,), epochs=30, batches_per_epoch=10,
                                  p=8, k=4, eval_every=10, seed=0, **PAPER_STYLE).fit(X_tr, y_tr, X_val=X_va, y_val=y_va)
    finally:
        torch.set_num_threads(n_threads)


def within(n_found: int, n_true: int, tol: float = 0.10) -> bool:
    return abs(n_found - n_true) <= tol * n_true
