"""BCL loss against a brute-force loop, its threshold, and its behaviour on blobs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kfree.exceptions import ConfigError
from kfree.losses import BallClusterLoss


def brute_bcl(emb, labels, b, alpha_pos=4.0, alpha_neg=1.0, eps=0.05):
    classes = sorted(set(labels.tolist()))
    cents = {}
    for c in classes:
        members = [emb[i] for i in range(len(labels)) if labels[i] == c]
        m = torch.stack(members).mean(0)
        cents[c] = m / m.norm()
    total = 0.0
    for i in range(len(labels)):
        own = ((emb[i] - cents[int(labels[i])]) ** 2).sum()
        others = [((emb[i] - cents[c]) ** 2).sum() for c in classes if c != int(labels[i])]
        hardest = min(others)
        total = total + alpha_pos * torch.relu(own - b) + alpha_neg * torch.relu(9 * b + eps - hardest)
    return total / len(labels)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_brute_force_value_and_gradient(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=dtype)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = BallClusterLoss(init_h=-0.5).to(dtype)
    e1 = F.normalize(x.clone().requires_grad_(True), dim=1)
    x1 = x.clone().requires_grad_(True)
    v1 = loss(F.normalize(x1, dim=1), labels)
    v1.backward()
    x2 = x.clone().requires_grad_(True)
    b = F.softplus(torch.tensor(-0.5, dtype=dtype))
    v2 = brute_bcl(F.normalize(x2, dim=1), labels, b)
    v2.backward()
    assert float(v1.detach()) == pytest.approx(float(v2.detach()), rel=1e-5)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert loss.h.grad is not None and e1 is not None


def test_zero_when_balls_are_small_and_far():
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    loss = BallClusterLoss(init_h=math.log(math.expm1(0.1)))  # b = 0.1: 9b + eps = 0.95 < 4
    assert float(loss(emb, torch.tensor([0, 0, 1, 1])).detach()) == 0.0


def test_single_class_batch_gives_connected_zero():
    emb = torch.randn(4, 3, requires_grad=True)
    v = BallClusterLoss()(F.normalize(emb, dim=1), torch.zeros(4, dtype=torch.long))
    v.backward()
    assert float(v.detach()) == 0.0 and emb.grad is not None


def test_reference_initialisation_and_threshold():
    loss = BallClusterLoss()
    assert float(loss.radius_sq().detach()) == pytest.approx(math.log1p(math.exp(0.1)), rel=1e-6)  # ~0.744
    thr = loss.implied_threshold()
    assert thr.distance == "sqeuclidean" and thr.source == "4b"
    assert thr.value == pytest.approx(4 * 0.7444, rel=1e-3)


def test_radius_can_be_frozen():
    loss = BallClusterLoss(learn_radius=False)
    assert not loss.h.requires_grad


@pytest.mark.parametrize("kw", [{"alpha_pos": -1.0}, {"eps": -0.1}, {"radius_lr_scale": 0.0}, {"alpha_pos": 0, "alpha_neg": 0}])
def test_bad_hyperparameters(kw):
    with pytest.raises(ConfigError):
        BallClusterLoss(**kw)


def test_loss_decreases_radius_when_negatives_are_violated():
    # every point is near every centroid: the negative term pushes b down
    emb = F.normalize(torch.randn(20, 8) * 0.01 + 1.0, dim=1)
    labels = torch.arange(20) % 4
    loss = BallClusterLoss()
    loss(emb, labels).backward()
    assert float(loss.h.grad) > 0  # gradient descent lowers h, hence b
    assert np.isfinite(float(loss.h.grad))
