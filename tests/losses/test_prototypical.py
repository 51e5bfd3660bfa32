"""PrototypicalLoss: brute-force value and gradient, limits, config errors."""

from __future__ import annotations

import pytest
import torch

from kfree import registry
from kfree.exceptions import ConfigError
from kfree.losses import PrototypicalLoss

LABELS = [0, 0, 1, 1, 1, 2]


def _emb(seed=0, n=6, d=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)


def _brute(x, labels, scale):
    classes = sorted(set(labels))
    protos = {c: sum(x[i] for i in range(len(labels)) if labels[i] == c) / labels.count(c) for c in classes}
    per_class = []
    for c in classes:
        terms = []
        for i in range(len(labels)):
            if labels[i] != c:
                continue
            logits = torch.stack([-scale * ((x[i] - protos[k]) ** 2).sum() for k in classes])
            terms.append(-(logits[classes.index(c)] - torch.logsumexp(logits, 0)))
        per_class.append(sum(terms) / len(terms))
    return sum(per_class) / len(per_class)


@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_brute_force_value_and_gradient(scale, dtype):
    x1, x2 = _emb(1, dtype=dtype), _emb(1, dtype=dtype)
    got = PrototypicalLoss(scale=scale)(x1, torch.tensor(LABELS))
    want = _brute(x2, LABELS, scale)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert abs(float(got.detach()) - float(want.detach())) < tol
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=tol * 10)


def test_loss_vanishes_as_classes_separate():
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor(LABELS)
    near = PrototypicalLoss(scale=1.0)(centres[labels] * 1.0, labels)
    far = PrototypicalLoss(scale=1.0)(centres[labels] * 10.0, labels)
    assert float(far.detach()) < 1e-20 < float(near.detach())


def test_one_class_gives_graph_connected_zero():
    x = _emb(2)
    value = PrototypicalLoss()(x, torch.zeros(6, dtype=torch.long))
    assert float(value.detach()) == 0.0
    value.backward()


def test_no_threshold_registry_and_errors():
    assert registry.get("loss", "prototypical").implied_threshold() is None
    with pytest.raises(ConfigError, match="scale=0"):
        PrototypicalLoss(scale=0)
    with pytest.raises(ConfigError, match="bad parameters"):
        registry.get("loss", "prototypical", alpha=1.0)
