"""ContrastiveLoss: brute-force value and gradient, margins, learned margin, config errors."""

from __future__ import annotations

import math

import pytest
import torch

from kfree import registry
from kfree.exceptions import ConfigError
from kfree.losses import ContrastiveLoss

LABELS = [0, 0, 1, 1, 1, 2]


def _emb(seed=0, n=6, d=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=dtype) * 0.5).requires_grad_(True)


def _brute(x, labels, m):
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            d = torch.sqrt(((x[i] - x[j]) ** 2).sum())
            if labels[i] == labels[j]:
                pos.append(0.5 * d**2)
            else:
                neg.append(0.5 * torch.clamp(m - d, min=0) ** 2)
    return sum(pos) / len(pos) + sum(neg) / len(neg)


@pytest.mark.parametrize("margin", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_brute_force_value_and_gradient(margin, dtype):
    x1, x2 = _emb(1, dtype=dtype), _emb(1, dtype=dtype)
    labels = torch.tensor(LABELS)
    got = ContrastiveLoss(margin=margin)(x1, labels)
    want = _brute(x2, LABELS, margin)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert abs(float(got.detach()) - float(want.detach())) < tol
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=tol * 10)


def test_zero_when_margins_are_met():
    # identical members (d = 0), identities 3 apart (> m = 1)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    x = centres[torch.tensor(LABELS)].clone().requires_grad_(True)
    value = ContrastiveLoss(margin=1.0)(x, torch.tensor(LABELS))
    assert float(value.detach()) == 0.0
    value.backward()
    assert torch.count_nonzero(x.grad) == 0


def test_single_class_and_all_distinct_still_backward():
    x = _emb(2)
    for labels in (torch.zeros(6, dtype=torch.long), torch.arange(6)):
        value = ContrastiveLoss()(x, labels)
        value.backward()
    # only negatives: ½[m − d]²_+ alone
    x = torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    assert float(ContrastiveLoss(margin=1.0)(x, torch.tensor([0, 1]))) == pytest.approx(0.5 * 0.5**2)


def test_coincident_negatives_have_finite_gradient():
    x = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    ContrastiveLoss()(x, torch.tensor([0, 1, 2, 3])).backward()
    assert torch.isfinite(x.grad).all()


def test_learned_margin_starts_at_margin_and_can_only_shrink():
    loss = ContrastiveLoss(margin=1.3, learn_margin=True)
    assert float(loss.margin().detach()) == pytest.approx(1.3)
    assert loss.h.requires_grad and not ContrastiveLoss().h.requires_grad
    x = _emb(3)
    loss(x, torch.tensor(LABELS)).backward()
    assert float(loss.h.grad) >= 0  # gradient descent lowers h, hence m
    # the default is the reference code's initialisation h = 1, i.e. margin = softplus(1)
    assert float(ContrastiveLoss(learn_margin=True).h.detach()) == pytest.approx(1.0)
    assert float(ContrastiveLoss().margin()) == pytest.approx(math.log1p(math.e))


def test_random_negatives_match_positive_count():
    torch.manual_seed(0)
    x = _emb(4, n=12)
    labels = torch.arange(12) // 4  # 3 ids x 4: 18 positive pairs, 48 negative pairs
    value = ContrastiveLoss(negatives="random")(x, labels)
    value.backward()
    assert float(value.detach()) > 0


def test_no_threshold_and_registry():
    loss = registry.get("loss", "contrastive", margin=0.7)
    assert loss.implied_threshold() is None
    assert loss.hparams()["margin"] == pytest.approx(0.7)


@pytest.mark.parametrize("kwargs, match", [({"margin": 0}, "margin=0"), ({"margin": -1.0}, "margin=-1.0"),
                                           ({"negatives": "hard"}, "negatives='hard'"),
                                           ({"margin_lr_scale": 0}, "margin_lr_scale=0")])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ContrastiveLoss(**kwargs)


def test_pair_enumeration_and_averaging_agree_with_pml():
    # PML has no squared-hinge contrastive configuration; its ContrastiveLoss computes
    # relu(d - pos_margin) and relu(neg_margin - d). A test-only subclass that squares those two
    # per-pair terms checks the rest of the pipeline against ours: the pairs of the batch
    # (PML uses ordered pairs, we use unordered ones: same means), their split and the averaging.
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import ContrastiveLoss as PMLContrastive
    from pytorch_metric_learning.reducers import MeanReducer

    class SquaredHinge(PMLContrastive):
        def pos_calc(self, d, margin):
            return torch.nn.functional.relu(d - margin) ** 2

        def neg_calc(self, d, margin):
            return torch.nn.functional.relu(margin - d) ** 2

    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.nn.functional.normalize(torch.randn(24, 8, generator=g, dtype=torch.float64), dim=1)
        labels = torch.randint(0, 4, (24,), generator=g)
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ours = ContrastiveLoss(margin=1.2)(x1, labels)
        pml = SquaredHinge(pos_margin=0.0, neg_margin=1.2, distance=LpDistance(power=1, normalize_embeddings=False),
                           reducer=MeanReducer())
        theirs = 0.5 * pml(x2, labels)
        # torch.cdist (PML) computes distances through a matrix product: ~1e-9 relative error
        assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-7)
        ours.backward()
        theirs.backward()
        assert torch.allclose(x1.grad, x2.grad, atol=1e-7)
