"""Batched, gradient-free encoding of a feature matrix with a trained embedder."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def encode(model: nn.Module, X: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Embed ``X`` (ndarray of shape (n, in_dim)) → float32 ndarray of shape (n, out_dim)."""
    was_training = model.training
    model.eval()
    try:
        out = [
            model(torch.from_numpy(_writable(X[i : i + batch_size]))).numpy()
            for i in range(0, X.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, getattr(model, "out_dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def _writable(rows: np.ndarray) -> np.ndarray:
    """``rows`` as float32 that torch may share: copied only when read-only (rows read from
    Parquet or a memory map), which torch warns about, or not C-contiguous (torch refuses
    negative strides, e.g. ``X[::-1]``); a writable contiguous float32 batch is not copied."""
    b = np.ascontiguousarray(rows, dtype=np.float32)
    return b if b.flags.writeable else b.copy()
