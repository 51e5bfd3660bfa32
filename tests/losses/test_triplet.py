"""TripletLoss: value and gradient against brute-force loops, margins, mining, PML equivalence."""

from __future__ import annotations

import math

import pytest
import torch
from _loss_brute import sqd, triplet_term, valid_triplets
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner
from pytorch_metric_learning.reducers import MeanReducer

from kfree import registry
from kfree.exceptions import ConfigError, DataError
from kfree.losses import TripletLoss

LABELS = [0, 0, 1, 1, 2, 2]


def _emb(seed: int = 0, n: int = 6, d: int = 3, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=dtype) * 0.6).requires_grad_(True)


def _brute_batch_all(x, labels, variant, alpha, beta, nonzero=False):
    terms = [triplet_term(variant, sqd(x, a, p), sqd(x, a, q), alpha, beta) for a, p, q in valid_triplets(labels)]
    if nonzero:
        terms = [t for t in terms if float(t.detach()) > 0]
    return sum(terms) / len(terms)


def _brute_batch_hard(x, labels, variant, alpha, beta):
    n = len(labels)
    terms = []
    for a in range(n):
        pos = [j for j in range(n) if j != a and labels[j] == labels[a]]
        neg = [j for j in range(n) if labels[j] != labels[a]]
        if not pos or not neg:
            continue
        p = max(pos, key=lambda j: float(sqd(x, a, j).detach()))
        q = min(neg, key=lambda j: float(sqd(x, a, j).detach()))
        terms.append(triplet_term(variant, sqd(x, a, p), sqd(x, a, q), alpha, beta))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("variant", ["l1", "l2", "l3"])
@pytest.mark.parametrize("reduction", ["mean", "mean-nonzero"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_all_matches_brute_force_value_and_gradient(variant, reduction, dtype):
    labels = torch.tensor(LABELS)
    x1, x2 = _emb(1, dtype=dtype), _emb(1, dtype=dtype)
    loss = TripletLoss(variant=variant, alpha=0.8, beta=0.4, mining="batch-all", reduction=reduction)
    got = loss(x1, labels)
    want = _brute_batch_all(x2, LABELS, variant, 0.8, 0.4, nonzero=reduction == "mean-nonzero")
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert float(got.detach()) > 0
    assert abs(float(got.detach()) - float(want.detach())) < tol
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=tol * 10)


@pytest.mark.parametrize("variant", ["l1", "l2", "l3"])
def test_batch_hard_matches_brute_force(variant):
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    x1, x2 = _emb(2), _emb(2)
    loss = TripletLoss(variant=variant, mining="batch-hard")
    got = loss(x1, labels)
    want = _brute_batch_hard(x2, labels.tolist(), variant, 0.8, 0.4)
    assert abs(float(got.detach()) - float(want.detach())) < 1e-10
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)


def test_given_triplets_use_layout_not_labels():
    # rows (a, p, n) x 2; the labels say the "positive" of triplet 1 is from another class (label
    # noise): the loss must still treat it as a positive.
    x1, x2 = _emb(3), _emb(3)
    labels = torch.tensor([0, 0, 1, 2, 5, 2])
    loss = TripletLoss(variant="l3", mining="given")
    got = loss(x1, labels)
    want = (triplet_term("l3", sqd(x2, 0, 1), sqd(x2, 0, 2), 0.8, 0.4)
            + triplet_term("l3", sqd(x2, 3, 4), sqd(x2, 3, 5), 0.8, 0.4)) / 2
    assert abs(float(got.detach()) - float(want.detach())) < 1e-10
    got.backward()
    want.backward()
    assert torch.allclose(x1.grad, x2.grad)
    with pytest.raises(DataError, match="multiple of 3"):
        loss(_emb(0, n=5), torch.zeros(5, dtype=torch.long))
    assert loss.batch_layout == "triplets" and TripletLoss().batch_layout == "labels"


def test_random_mining_draws_valid_uniform_triplets():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    torch.manual_seed(0)
    loss = TripletLoss(variant="l1", mining="random")
    x = _emb(4)
    counts = torch.zeros(6, 6)
    for _ in range(400):
        a, p, n = loss.mine(None, labels)  # type: ignore[arg-type]
        assert a.tolist() == [0, 1, 2, 3, 4]  # label 2 has no positive -> no anchor
        assert bool((labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all())
        counts[a, n] += 1
    # anchor 0's negatives {3, 4, 5} are drawn uniformly (400 draws, each ~133)
    assert counts[0, 3:].min() > 100 and counts[0, 3:].max() < 170
    v = loss(x, labels)
    v.backward()
    assert x.grad is not None


@pytest.mark.parametrize("variant", ["l1", "l2", "l3"])
@pytest.mark.parametrize("mining", ["batch-all", "batch-hard", "random"])
def test_zero_when_margins_are_met(variant, mining):
    # three identities on far-apart points, members within 0.01 of each other:
    # d²(a,p) <= 4e-4 < beta, d²(a,n) >= 8 > alpha and > d²(a,p) + alpha
    centres = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor(LABELS)
    x = (centres[labels] + 0.01 * torch.randn(6, 2, dtype=torch.float64)).requires_grad_(True)
    value = TripletLoss(variant=variant, mining=mining)(x, labels)
    assert float(value.detach()) == 0.0
    value.backward()
    assert torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize("mining", ["batch-all", "batch-hard", "random"])
def test_no_valid_triplet_gives_graph_connected_zero(mining):
    x = _emb(5)
    for labels in (torch.zeros(6, dtype=torch.long), torch.arange(6)):
        value = TripletLoss(mining=mining)(x, labels)
        assert float(value.detach()) == 0.0
        value.backward()


def test_l3_terms_act_separately():
    # positive too far (d² = 1 > beta) and negative too close (d² = 0.25 < alpha)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    loss = TripletLoss(variant="l3", mining="given")
    assert float(loss(x, labels).detach()) == pytest.approx((0.8 - 0.25) + (1.0 - 0.4))
    assert float(TripletLoss(variant="l1", mining="given")(x, labels)) == pytest.approx(1.0 - 0.25 + 0.8)
    assert float(TripletLoss(variant="l2", mining="given")(x, labels)) == pytest.approx(1.0 - 0.25 + 0.8 + 0.6)


# ------------------------------------------------------------------ PML equivalence
def _pml_distance():
    return LpDistance(power=2, normalize_embeddings=False)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [0.2, 0.8])
def test_l1_batch_all_equals_pml_triplet_margin_loss(seed, margin):
    # float64: in float32 a triplet sitting exactly on the margin (|loss| ~ 1e-8) can count as
    # non-zero in one implementation and zero in the other, which changes AvgNonZero's divisor
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(32, 8, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, 5, (32,), generator=g)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    # PML's default AvgNonZeroReducer averages over triplets with a positive loss
    ours = TripletLoss(variant="l1", alpha=margin, mining="batch-all", reduction="mean-nonzero")(x1, labels)
    theirs = TripletMarginLoss(margin=margin, distance=_pml_distance())(x2, labels)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-10)
    ours.backward()
    theirs.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    # MeanReducer averages over all triplets, like reduction="mean"
    ours_mean = TripletLoss(variant="l1", alpha=margin, reduction="mean")(x, labels)
    theirs_mean = TripletMarginLoss(margin=margin, distance=_pml_distance(), reducer=MeanReducer())(x, labels)
    assert float(ours_mean.detach()) == pytest.approx(float(theirs_mean.detach()), rel=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_l1_batch_hard_equals_pml_with_batch_hard_miner(seed):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.nn.functional.normalize(torch.randn(24, 8, generator=g), dim=1)
    labels = torch.arange(6).repeat_interleave(4)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = TripletLoss(variant="l1", alpha=0.8, mining="batch-hard")(x1, labels)
    miner = BatchHardMiner(distance=_pml_distance())
    pml = TripletMarginLoss(margin=0.8, distance=_pml_distance(), reducer=MeanReducer())
    theirs = pml(x2, labels, miner(x2, labels))
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    ours.backward()
    theirs.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


# ------------------------------------------------------------------ thresholds, config
def test_implied_thresholds():
    assert TripletLoss(variant="l1").implied_threshold() is None
    for v in ("l2", "l3"):
        t = TripletLoss(variant=v, alpha=0.8, beta=0.4).implied_threshold()
        assert t.distance == "euclidean" and t.value == pytest.approx(math.sqrt(0.6))
        assert t.to("sqeuclidean").value == pytest.approx(0.6)


def test_registry_names():
    assert registry.get("loss", "triplet-l1").variant == "l1"
    assert registry.get("loss", "triplet-l2").variant == "l2"
    assert registry.get("loss", "triplet-l3", alpha=1.0, beta=0.5).alpha == 1.0
    assert registry.get("loss", "triplet").variant == "l3"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 0.0}, "alpha=0.0 must be"),
        ({"alpha": -1.0}, "alpha=-1.0 must be"),
        ({"alpha": 0.8, "beta": 0.8}, "beta=0.8 must be < alpha=0.8"),
        ({"alpha": 0.8, "beta": 1.2}, "beta=1.2 must be < alpha"),
        ({"beta": 0.0}, "beta=0.0 must be"),
        ({"variant": "l4"}, "variant='l4'"),
        ({"mining": "semi-hard"}, "mining='semi-hard'"),
        ({"reduction": "sum"}, "reduction='sum'"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TripletLoss(**kwargs)


def test_l1_ignores_beta_and_shape_errors():
    TripletLoss(variant="l1", alpha=0.5, beta=2.0)  # beta unused by L1
    with pytest.raises(DataError, match="labels must have shape"):
        TripletLoss()(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="embeddings must have shape"):
        TripletLoss()(torch.zeros(4), torch.zeros(4, dtype=torch.long))
