"""P×K and noisy-triplet samplers: batch structure, clear errors, and measured noise rates."""

from __future__ import annotations

import numpy as np
import pytest

from kfree.data.samplers import PKSampler, TripletSampler
from kfree.exceptions import ConfigError, DataError

SIZES = [3, 5, 8, 10, 12, 1, 7, 9, 20, 4]  # 10 identities, one seen once, 79 samples
# the noise rates of the ICPR 2020 label-noise study (kfree_reproductions.icpr2020.protocol_b)
NOISE_GRID_POSITIVES = (0.0, 0.05, 0.10, 0.20)
NOISE_GRID_NEGATIVES = (0.0, 0.02, 0.05, 0.07, "random")


def triplet_noise_rates(labels: np.ndarray, triplets: np.ndarray) -> tuple[float, float]:
    """Measured shares of triplets (T, 3) = (anchor, positive, negative) whose positive has another
    identity than the anchor, and whose negative has the anchor's identity."""
    ya, yp, yn = (labels[triplets[:, i]] for i in range(3))
    return float(np.mean(yp != ya)), float(np.mean(yn == ya))


def random_negative_rate(labels: np.ndarray, anchors: np.ndarray) -> float:
    """The chance that a uniform draw among the other samples shares each anchor's identity,
    ``(n_c − 1)/(n − 1)``, averaged over the drawn anchors."""
    counts = np.bincount(labels)
    return float(np.mean((counts[labels[anchors]] - 1) / (labels.shape[0] - 1)))


@pytest.fixture
def labels() -> np.ndarray:
    return np.repeat(np.arange(len(SIZES)), SIZES)


# ------------------------------------------------------------------------------ P x K
def test_pk_batches_have_p_identities_k_each(labels):
    s = PKSampler(labels, p=4, k=3, seed=0)
    for batch in s:
        assert batch.shape == (12,)
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert ids.shape[0] == 4 and (counts == 3).all()
    assert len(s) == -(-labels.shape[0] // 12)


def test_pk_is_seeded_and_resumable(labels):
    a = [b.tolist() for b in PKSampler(labels, 4, 2, seed=3)]
    b = [b.tolist() for b in PKSampler(labels, 4, 2, seed=3)]
    assert a == b
    s = PKSampler(labels, 4, 2, seed=3)
    state = s.get_state()
    first = [b.tolist() for b in s]
    s.set_state(state)
    assert [b.tolist() for b in s] == first


def test_pk_without_repeats_rejects_singletons_and_small_identities(labels):
    with pytest.raises(DataError, match=r"1 identities have a single sample \(e.g. \[5\]\) but k=2"):
        PKSampler(labels, p=4, k=2, allow_repeats=False)
    with pytest.raises(DataError, match=r"identities have fewer than k=4 samples"):
        PKSampler(labels[labels != 5], p=4, k=4, allow_repeats=False)
    PKSampler(labels[labels != 5], p=4, k=3, allow_repeats=False)  # every identity has >= 3
    # with repeats allowed, the singleton is drawn k times and reported
    s = PKSampler(labels, p=4, k=2)
    assert s.n_small == 1 and "1 identities with < K samples" in s.describe()


def test_pk_cannot_fill_one_batch(labels):
    with pytest.raises(DataError, match=r"cannot fill one batch: p=12 identities per batch but only 10"):
        PKSampler(labels, p=12, k=1, allow_repeats=False)
    assert PKSampler(labels, p=12, k=1).p == 10  # repeats allowed: uses all identities
    with pytest.raises(DataError, match="at least 2 identities, got 1"):
        PKSampler(np.zeros(5), p=2, k=2)


@pytest.mark.parametrize("kwargs, match", [({"p": 1, "k": 2}, "p=1"), ({"p": 2, "k": 0}, "k=0"),
                                           ({"p": 2, "k": 2, "batches_per_epoch": 0}, "batches_per_epoch=0")])
def test_pk_bad_parameters(labels, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PKSampler(labels, **kwargs)


# ------------------------------------------------------------------------- triplets
def test_triplet_batches_are_valid_without_noise(labels):
    s = TripletSampler(labels, batch_size=16, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == -(-(labels.shape[0] - 1) // 16)  # the singleton is never an anchor
    for b in batches:
        assert b.shape == (48,)
        t = b.reshape(-1, 3)
        assert (labels[t[:, 0]] == labels[t[:, 1]]).all() and (t[:, 0] != t[:, 1]).all()
        assert (labels[t[:, 0]] != labels[t[:, 2]]).all()
    anchors = np.concatenate([b.reshape(-1, 3)[:, 0] for b in batches])
    # one epoch visits every eligible anchor once (the last batch wraps into the next permutation)
    assert set(anchors[: labels.shape[0] - 1].tolist()) == set(np.flatnonzero(labels != 5).tolist())
    assert 5 not in labels[anchors]


@pytest.mark.parametrize("wrong_pos", NOISE_GRID_POSITIVES)
@pytest.mark.parametrize("wrong_neg", NOISE_GRID_NEGATIVES)
def test_injected_noise_rates_are_the_requested_ones(labels, wrong_pos, wrong_neg):
    n = 60_000
    s = TripletSampler(labels, batch_size=100, wrong_positives=wrong_pos, wrong_negatives=wrong_neg, seed=7)
    t = np.concatenate([s.sample(1000) for _ in range(n // 1000)])
    assert (t[:, 0] != t[:, 1]).all() and (t[:, 0] != t[:, 2]).all()  # never the anchor itself
    measured_p, measured_n = triplet_noise_rates(labels, t)
    want_n = random_negative_rate(labels, t[:, 0]) if wrong_neg == "random" else wrong_neg
    # 5 standard errors of a binomial proportion over n triplets
    assert abs(measured_p - wrong_pos) <= 5 * np.sqrt(wrong_pos * (1 - wrong_pos) / n) + 1e-12
    assert abs(measured_n - want_n) <= 5 * np.sqrt(want_n * (1 - want_n) / n) + 1e-12


def test_random_negatives_are_wrong_about_one_in_k():
    y = np.repeat(np.arange(10), 50)  # 10 balanced identities, as CIFAR-10
    s = TripletSampler(y, 100, wrong_negatives="random", seed=0)
    t = s.sample(50_000)
    assert random_negative_rate(y, t[:, 0]) == pytest.approx(49 / 499)
    _, measured = triplet_noise_rates(y, t)
    assert measured == pytest.approx(0.1, abs=0.01)


def test_draws_are_uniform(labels):
    from scipy.stats import chisquare

    s = TripletSampler(labels, 10, wrong_positives=0.5, wrong_negatives=0.5, seed=1)
    t = s.sample(200_000)
    ya, yp, yn = labels[t[:, 0]], labels[t[:, 1]], labels[t[:, 2]]
    # wrong positives of identity-0 anchors: uniform over the 76 samples of other identities
    counts = np.bincount(t[(ya == 0) & (yp != 0), 1], minlength=labels.shape[0])[labels != 0]
    assert counts.min() > 0 and chisquare(counts).pvalue > 1e-3
    # true negatives of identity-8 anchors: uniform over the 59 samples of other identities
    counts = np.bincount(t[(ya == 8) & (yn != 8), 2], minlength=labels.shape[0])[labels != 8]
    assert counts.min() > 0 and chisquare(counts).pvalue > 1e-3
    # true positives of one identity-8 anchor: uniform over the 19 others, never itself
    a0 = t[ya == 8, 0][0]
    counts = np.bincount(t[(t[:, 0] == a0) & (yp == 8), 1], minlength=labels.shape[0])[labels == 8]
    assert counts[np.flatnonzero(labels == 8) == a0] == 0
    assert chisquare(counts[counts > 0]).pvalue > 1e-3 and (counts > 0).sum() == 19
    # anchors: every eligible sample equally often
    counts = np.bincount(t[:, 0], minlength=labels.shape[0])[labels != 5]
    assert counts.max() - counts.min() <= 1


def test_triplet_sampler_is_seeded_and_resumable(labels):
    a = np.concatenate(list(TripletSampler(labels, 8, wrong_positives=0.1, seed=2)))
    b = np.concatenate(list(TripletSampler(labels, 8, wrong_positives=0.1, seed=2)))
    assert (a == b).all()
    s = TripletSampler(labels, 8, wrong_negatives=0.05, seed=2)
    next(iter(s))
    state = s.get_state()
    rest = np.concatenate(list(s))
    s.set_state(state)
    assert (np.concatenate(list(s)) == rest).all()
    assert "wrong positives 0%, wrong negatives 5%" in s.describe()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"wrong_positives": 1.0}, "wrong_positives=1.0 must be a fraction in"),
        ({"wrong_positives": -0.1}, "wrong_positives=-0.1"),
        ({"wrong_negatives": 1.5}, "wrong_negatives=1.5"),
        ({"wrong_negatives": "uniform"}, "wrong_negatives='uniform'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"batches_per_epoch": 0}, "batches_per_epoch=0"),
    ],
)
def test_triplet_sampler_bad_parameters(labels, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TripletSampler(labels, **kwargs)


def test_triplet_sampler_bad_data():
    with pytest.raises(DataError, match="at least 2 identities, got 1"):
        TripletSampler(np.zeros(6))
    with pytest.raises(DataError, match="every identity has 1"):
        TripletSampler(np.arange(6))
