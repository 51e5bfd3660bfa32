"""Batched encoding: read-only inputs (Parquet columns, memory maps) are embedded without a warning."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from kfree.embed.encode import encode
from kfree.embed.models import MLPEmbedder


def test_read_only_rows_are_copied_before_torch_sees_them(monkeypatch):
    torch.manual_seed(0)
    model = MLPEmbedder(6, (8, 4))
    X = np.random.default_rng(0).normal(size=(25, 6)).astype(np.float32)  # float32: no conversion copies it
    ref = encode(model, X.copy(), batch_size=10)
    X.setflags(write=False)
    seen = []
    from_numpy = torch.from_numpy

    def checked(a):  # torch warns once per process on a read-only buffer, so check the buffer itself
        seen.append(a.flags.writeable)
        return from_numpy(a)

    monkeypatch.setattr(torch, "from_numpy", checked)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = encode(model, X, batch_size=10)
    assert seen == [True, True, True]  # three batches, each a writable copy
    np.testing.assert_array_equal(got, ref)
    assert got.shape == (25, 4) and got.dtype == np.float32


def test_rows_with_negative_strides_are_encoded():
    torch.manual_seed(0)
    model = MLPEmbedder(6, (8, 4))
    X = np.random.default_rng(1).normal(size=(12, 6)).astype(np.float32)
    # (other batches: equal up to float rounding)
    np.testing.assert_allclose(encode(model, X[::-1], batch_size=5), encode(model, X, batch_size=5)[::-1], atol=1e-6)
