"""PairwiseConstraintLoss (BCL-FT / TRI-FT): brute force over explicit pairs, both entry points."""

from __future__ import annotations

import math

import pytest
import torch

from kfree import registry
from kfree.exceptions import ConfigError, DataError
from kfree.losses import BallClusterLoss, PairwiseConstraintLoss
from kfree.threshold import Threshold

ML = torch.tensor([[0, 1], [2, 3], [4, 5]])
CL = torch.tensor([[0, 2], [1, 4], [3, 5], [0, 5]])


def _emb(seed=0, n=6, d=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)


def _brute(x, ml, cl, cut, eps, orig=None):
    pos = []
    for t, (i, j) in enumerate(ml.tolist()):
        bound = cut if orig is None else min(float(orig[t]), cut)
        pos.append(torch.clamp(((x[i] - x[j]) ** 2).sum() - bound, min=0))
    neg = [torch.clamp(cut + eps - ((x[i] - x[k]) ** 2).sum(), min=0) for i, k in cl.tolist()]
    return sum(pos) / len(pos) + sum(neg) / len(neg)


@pytest.mark.parametrize("with_orig", [False, True])
def test_bcl_variant_matches_brute_force(with_orig):
    b = 0.2
    orig = torch.tensor([0.1, 2.0, 0.5], dtype=torch.float64) if with_orig else None
    x1, x2 = _emb(1), _emb(1)
    loss = PairwiseConstraintLoss(variant="bcl", b=b)
    got = loss(x1, must_link=ML, cannot_link=CL, orig_sq_dist=orig)
    want = _brute(x2, ML, CL, 4 * b, 0.05, orig)
    assert abs(float(got.detach()) - float(want.detach())) < 1e-12
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad)


def test_orig_distance_tightens_must_links():
    # pair already at d² = 0.1 < 4b = 0.8: with d²_orig = 0.05 it must come closer; without, not
    x = torch.tensor([[0.0, 0.0], [math.sqrt(0.1), 0.0]], dtype=torch.float64)
    loss = PairwiseConstraintLoss(b=0.2)
    ml = torch.tensor([[0, 1]])
    assert float(loss(x, must_link=ml).detach()) == 0.0
    assert float(loss(x, must_link=ml, orig_sq_dist=torch.tensor([0.05])).detach()) == pytest.approx(0.05)


@pytest.mark.parametrize("distance, thr, cut", [("sqeuclidean", 0.6, 0.6), ("euclidean", 0.8, 0.64)])
def test_plain_variant_matches_brute_force(distance, thr, cut):
    x1, x2 = _emb(2), _emb(2)
    loss = PairwiseConstraintLoss(variant="plain", threshold=thr, distance=distance)
    got = loss(x1, must_link=ML, cannot_link=CL)
    want = _brute(x2, ML, CL, cut, 0.0)
    assert abs(float(got.detach()) - float(want.detach())) < 1e-12
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad)
    t = loss.implied_threshold()
    assert t.distance == distance and t.value == pytest.approx(thr)


def test_labels_entry_point_uses_all_pairs():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    x = _emb(3)
    loss = PairwiseConstraintLoss(b=0.2)
    ml = torch.tensor([[i, j] for i in range(6) for j in range(i + 1, 6) if labels[i] == labels[j]])
    cl = torch.tensor([[i, j] for i in range(6) for j in range(i + 1, 6) if labels[i] != labels[j]])
    assert float(loss(x, labels).detach()) == pytest.approx(float(_brute(x, ml, cl, 0.8, 0.05).detach()), abs=1e-12)
    with pytest.raises(DataError, match="either labels or"):
        loss(x, labels, must_link=ml)


def test_zero_when_constraints_hold_and_empty_pairs():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [2.0, 0.0], [2.1, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = PairwiseConstraintLoss(b=0.2)
    v = loss(x, must_link=torch.tensor([[0, 1], [2, 3]]), cannot_link=torch.tensor([[0, 2], [1, 3]]))
    assert float(v.detach()) == 0.0
    v.backward()
    assert torch.count_nonzero(x.grad) == 0
    e = loss(x, must_link=None, cannot_link=torch.empty(0, 2, dtype=torch.long))
    assert float(e.detach()) == 0.0
    e.backward()


def test_from_bcl_freezes_radius_and_from_threshold():
    bcl = BallClusterLoss(init_h=-1.4799)
    ft = PairwiseConstraintLoss.from_bcl(bcl)
    assert ft.implied_threshold().value == pytest.approx(bcl.implied_threshold().value)
    assert ft.implied_threshold().distance == "sqeuclidean"
    assert not list(ft.parameters())  # nothing to learn: the threshold is frozen
    tri = PairwiseConstraintLoss.from_threshold(Threshold(0.7746, "euclidean", "sqrt((alpha+beta)/2)"))
    assert tri.cut_sq == pytest.approx(0.6, abs=1e-4)
    cos = PairwiseConstraintLoss.from_threshold(Threshold(0.3, "cosine", "validation"))
    assert cos.cut_sq == pytest.approx(0.6)


def test_registry():
    assert registry.get("loss", "bcl-ft", b=0.2).variant == "bcl"
    assert registry.get("loss", "pairwise", variant="plain", threshold=0.5).cut_sq == 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "needs b="),
        ({"b": 0.0}, "b=0.0 must be"),
        ({"b": 0.2, "threshold": 0.5}, "only for variant='plain'"),
        ({"variant": "plain"}, "needs threshold="),
        ({"variant": "plain", "threshold": -1.0}, "threshold=-1.0"),
        ({"variant": "plain", "threshold": 1.0, "b": 0.2}, "b=0.2 is only"),
        ({"variant": "tri"}, "variant='tri'"),
        ({"b": 0.2, "eps": -0.1}, "eps=-0.1"),
        ({"b": 0.2, "distance": "cosine"}, "distance='cosine'"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PairwiseConstraintLoss(**kwargs)


def test_bad_pairs():
    loss = PairwiseConstraintLoss(b=0.2)
    x = _emb(4)
    with pytest.raises(DataError, match=r"must_link must have shape \(n_pairs, 2\)"):
        loss(x, must_link=torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match=r"cannot_link indices must lie in \[0, 5\], got range \[0, 6\]"):
        loss(x, cannot_link=torch.tensor([[0, 6]]))
    with pytest.raises(DataError, match=r"orig_sq_dist must have shape \(1,\)"):
        loss(x, must_link=torch.tensor([[0, 1]]), orig_sq_dist=torch.tensor([0.1, 0.2]))
    with pytest.raises(DataError, match="only used by variant='bcl'"):
        PairwiseConstraintLoss(variant="plain", threshold=0.5)(x, must_link=torch.tensor([[0, 1]]),
                                                             orig_sq_dist=torch.tensor([0.1]))
