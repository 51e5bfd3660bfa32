"""Softmax and normalised-softmax classification losses: brute force, PML, the class hook."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import NormalizedSoftmaxLoss as PMLNormalizedSoftmax

from kfree import registry
from kfree.exceptions import ConfigError, DataError
from kfree.losses import NormalizedSoftmaxLoss, SoftmaxLoss

LABELS = torch.tensor([0, 0, 1, 2, 2, 3])


def _emb(seed=0, n=6, d=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)


def _brute_ce(logit_fn, n, labels):
    terms = []
    for i in range(n):
        logits = logit_fn(i)
        terms.append(torch.logsumexp(logits, 0) - logits[labels[i]])
    return sum(terms) / n


def test_softmax_matches_brute_force():
    loss = SoftmaxLoss(n_classes=4, dim=4).double()
    W, c = loss.classifier.weight, loss.classifier.bias
    x1, x2 = _emb(1), _emb(1)
    got = loss(x1, LABELS)
    want = _brute_ce(lambda i: torch.stack([(W[k] * x2[i]).sum() + c[k] for k in range(4)]), 6, LABELS.tolist())
    assert abs(float(got.detach()) - float(want.detach())) < 1e-10
    got.backward()
    gw = W.grad.clone()
    W.grad = None
    want.backward()
    assert torch.allclose(x1.grad, x2.grad) and torch.allclose(gw, W.grad)


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_normalized_softmax_matches_brute_force(temperature):
    loss = NormalizedSoftmaxLoss(temperature=temperature, n_classes=4, dim=4).double()
    W = loss.W
    x1, x2 = _emb(2), _emb(2)
    got = loss(x1, LABELS)

    def logits(i):
        f = x2[i] / torch.sqrt((x2[i] ** 2).sum())
        return torch.stack([(f * W[:, k]).sum() / torch.sqrt((W[:, k] ** 2).sum()) for k in range(4)]) / temperature

    want = _brute_ce(logits, 6, LABELS.tolist())
    assert abs(float(got.detach()) - float(want.detach())) < 1e-10
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad)


@pytest.mark.parametrize("seed", range(3))
def test_normalized_softmax_equals_pml(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (20,), generator=g)
    ours = NormalizedSoftmaxLoss(temperature=0.05, n_classes=5, dim=8).double()
    theirs = PMLNormalizedSoftmax(num_classes=5, embedding_size=8, temperature=0.05)
    with torch.no_grad():
        theirs.W.data = ours.W.detach().clone()
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = ours(x1, labels), theirs(x2, labels)
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-10)
    a.backward()
    b.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    assert torch.allclose(ours.W.grad, theirs.W.grad, atol=1e-10)


@pytest.mark.parametrize("cls", [SoftmaxLoss, NormalizedSoftmaxLoss])
def test_on_num_classes_hook_creates_trainable_weights(cls):
    loss = cls()
    with pytest.raises(ConfigError, match="on_num_classes"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    assert not list(loss.parameters())
    loss.on_num_classes(3, 5)
    params = list(loss.parameters())
    assert params and all(p.requires_grad for p in params)
    before = [p.detach().clone() for p in params]
    loss.on_num_classes(3, 5)  # same sizes: weights kept (a resumed/loaded model keeps its classifier)
    assert all(torch.equal(a, b) for a, b in zip(before, loss.parameters()))
    x = torch.randn(6, 5, requires_grad=True)
    v = loss(x, torch.tensor([0, 1, 2, 0, 1, 2]))
    v.backward()
    assert all(p.grad is not None for p in loss.parameters())
    assert loss.implied_threshold() is None
    with pytest.raises(DataError, match=r"labels must be class indices in \[0, 2\]"):
        loss(x, torch.tensor([0, 1, 3, 0, 1, 2]))
    with pytest.raises(DataError, match="dim 4"):
        loss(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))


def test_state_dict_roundtrip_after_hook():
    a = registry.get("loss", "norm-softmax")
    a.on_num_classes(4, 6)
    b = registry.get("loss", "norm-softmax")
    b.on_num_classes(4, 6)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.W, b.W)


def test_bad_hyperparameters():
    with pytest.raises(ConfigError, match="temperature=0"):
        NormalizedSoftmaxLoss(temperature=0)
    with pytest.raises(ConfigError, match="n_classes=1"):
        SoftmaxLoss(n_classes=1, dim=3)
    with pytest.raises(ConfigError, match="dim=0"):
        SoftmaxLoss().on_num_classes(3, 0)
