"""Threshold calibration: validation #clusters match and logistic regression on pair distances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kfree.cluster.threshold_hac import ThresholdAgglomerative
from kfree.data.synthetic import sphere_blobs
from kfree.evaluate.calibrate import (
    LogisticCalibration,
    SizeCurve,
    cut_height,
    labelled_pairs,
    merge_tree,
    threshold_for_n_clusters,
)
from kfree.exceptions import ConfigError, DataError


@pytest.fixture
def blobs():
    return sphere_blobs(12, 10, 16, spread=0.3, seed=3)


def test_n_clusters_match_gives_exact_count(blobs):
    X, _ = blobs
    for k in (5, 12, 30):
        t = threshold_for_n_clusters(X, k)
        assert ThresholdAgglomerative(t.value, distance=t.distance).fit(X).n_clusters_ == k
        assert t.source == f"validation #clusters={k}"
    with pytest.raises(DataError, match="n_clusters=120"):
        threshold_for_n_clusters(X, 120)


def test_cut_height_is_the_midpoint_between_bracketing_merges():
    heights = np.array([0.4, 0.1, 0.2, 0.8])  # 5 points, merges in any order
    assert cut_height(heights, 3) == pytest.approx(0.3)  # between the 2nd and 3rd merge
    assert cut_height(heights, 5) == pytest.approx(0.05)  # every point alone: below the first merge
    assert cut_height(heights, 1) == pytest.approx((0.8 + 1.6 + 1e-6) / 2)  # above the last one
    assert cut_height(np.array([0.1, 0.2, 0.2, 0.8]), 3) == 0.2  # tied merges: no cut gives exactly 3
    assert cut_height(np.zeros(3), 2) > 0  # duplicates: still a valid (positive) threshold


def test_logistic_recovers_known_model():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, 200_000)
    different = rng.random(d.shape[0]) < 1 / (1 + np.exp(-(4.0 * d - 3.0)))
    cal = LogisticCalibration.fit(d, different, class_weight=None, C=1e6)
    assert cal.coef == pytest.approx(4.0, abs=0.1) and cal.intercept == pytest.approx(-3.0, abs=0.1)
    assert cal.threshold().value == pytest.approx(0.75, abs=0.01)
    assert cal.n_pairs == 200_000 and cal.n_different == int(different.sum())


def test_crossing_lies_between_separated_pair_distances():
    rng = np.random.default_rng(1)
    same = rng.uniform(0.0, 0.4, 500)
    diff = rng.uniform(0.8, 1.6, 5000)  # 10x more different pairs, as with many identities
    d = np.concatenate([same, diff])
    t = np.r_[np.zeros(500, bool), np.ones(5000, bool)]
    cal = LogisticCalibration.fit(d, t)
    thr = cal.threshold()
    assert 0.4 < thr.value < 0.8 and thr.distance == "euclidean"
    assert thr.source == "logistic p(different)=0.5"
    assert cal.cut_probability(thr.value) == pytest.approx(0.5)
    p = cal.cut_probability(np.linspace(0, 2, 50))
    assert (np.diff(p) >= 0).all() and p[0] < 0.01 and p[-1] > 0.99


def test_balanced_crossing_does_not_depend_on_the_number_of_identities():
    rng = np.random.default_rng(2)
    same = rng.normal(0.5, 0.1, 2000)
    thresholds = {}
    for ratio in (2, 20):
        diff = rng.normal(1.1, 0.1, 2000 * ratio)
        d = np.concatenate([same, diff])
        t = np.r_[np.zeros(2000, bool), np.ones(diff.shape[0], bool)]
        thresholds[ratio] = (LogisticCalibration.fit(d, t).threshold().value,
                             LogisticCalibration.fit(d, t, class_weight=None).threshold().value)
    assert thresholds[2][0] == pytest.approx(0.8, abs=0.02) == thresholds[20][0]
    assert thresholds[20][1] < thresholds[2][1] - 0.02  # the unweighted crossing drifts with the prior


def test_fit_embeddings_threshold_recovers_clusters(blobs):
    X, y = blobs
    for distance in ("euclidean", "sqeuclidean"):
        cal = LogisticCalibration.fit_embeddings(X, y, distance=distance)
        thr = cal.threshold()
        assert thr.distance == distance
        assert ThresholdAgglomerative(thr.value, distance=distance).fit(X).n_clusters_ == 12
        assert cal.n_pairs == 120 * 119 // 2


def test_serialisation_roundtrip(blobs):
    X, y = blobs
    cal = LogisticCalibration.fit_embeddings(X, y)
    d = json.loads(json.dumps(cal.to_dict()))
    assert d["kind"] == "logistic"
    back = LogisticCalibration.from_dict(d)
    assert back == cal
    assert back.threshold() == cal.threshold()
    with pytest.raises(ConfigError, match="kind='validation'"):
        LogisticCalibration.from_dict({**d, "kind": "validation"})


def test_labelled_pairs_all_and_sampled():
    y = np.repeat(np.arange(5), [2, 3, 4, 5, 30])
    i, j, diff = labelled_pairs(y)
    assert i.shape[0] == 44 * 43 // 2 and (i < j).all()
    assert (diff == (y[i] != y[j])).all()
    i, j, diff = labelled_pairs(y, max_pairs=400, seed=1)
    assert i.shape[0] == 400 and (i != j).all() and (diff == (y[i] != y[j])).all()
    assert diff.sum() == 200  # stratified: half same, half different
    i, j, diff = labelled_pairs(y, max_pairs=400, stratify=False, seed=1)
    assert (i != j).all() and 0 < diff.sum() < 400
    with pytest.raises(DataError, match="at least 2 samples, got 1"):
        labelled_pairs(np.zeros(1))
    # one identity, more pairs than max_pairs: no different pair exists to draw (this hung)
    with pytest.raises(DataError, match="all 100 samples have one label"):
        labelled_pairs(np.zeros(100, dtype=int), max_pairs=100)
    with pytest.raises(DataError, match="one label"):
        LogisticCalibration.fit_embeddings(np.random.default_rng(0).random((1000, 4)), np.zeros(1000))


@pytest.mark.parametrize("method", ["n_clusters", "logistic"])
def test_without_validation_identities_the_learner_calibrates_on_training_identities(blobs, method):
    """A loss that implies no threshold, nothing held out: the estimator calibrates by either
    method on the training identities' embeddings, and says so in the threshold's source."""
    from kfree import ClusterLearner, TrainConfig

    X, y = blobs
    est = ClusterLearner(TrainConfig(loss="triplet-l1", dims=(16,), epochs=2, p=6, k=4, seed=0),
                         val_identities=0, calibration=method).fit(X, y)
    thr = est.threshold_
    assert thr.source.endswith(" (on training identities)") and est.rule_.mode == "recalibrated"
    if method == "n_clusters":
        assert est.calibration_ is None and thr.source.startswith("validation #clusters=12")
        assert ThresholdAgglomerative(thr.value, distance=thr.distance).fit(est.embed(X)).n_clusters_ == 12
    else:
        assert est.calibration_ is not None and thr.value == est.calibration_.threshold().value
    with pytest.raises(ConfigError, match="calibration='bisect' is not one of"):
        ClusterLearner(val_identities=0, calibration="bisect").fit(X, y)


def test_errors():
    d = np.linspace(0, 1, 10)
    with pytest.raises(DataError, match="both same- and different-identity pairs, got 10 same and 0"):
        LogisticCalibration.fit(d, np.zeros(10, bool))
    with pytest.raises(DataError, match=r"slope .* <= 0"):
        LogisticCalibration.fit(d, d < 0.5)  # near pairs labelled different
    with pytest.raises(DataError, match="same length"):
        LogisticCalibration.fit(d, np.zeros(5, bool))
    with pytest.raises(ConfigError, match="class_weight='auto'"):
        LogisticCalibration.fit(d, d > 0.5, class_weight="auto")
    with pytest.raises(DataError, match="0.5 crossing is at d="):
        LogisticCalibration(coef=2.0, intercept=1.0).threshold()
    with pytest.raises(ConfigError, match="distance='manhattan'"):
        LogisticCalibration(coef=1.0, intercept=-1.0, distance="manhattan")


def test_a_size_curve_calibrates_a_cut_for_each_size_and_ends_at_the_identities_own(blobs):
    X, y = blobs  # 12 identities of 10 rows
    curve = SizeCurve.fit(X, y, seed=0)
    assert curve.sizes == (2, 3, 5, 8, 10)  # the grid below the largest identity, then its size
    for heights in (curve.ward, curve.complete):
        assert len(heights) == 5 and all(np.diff(heights) >= 0)  # more rows reach further
    # at the identities' own size every row is kept: the cut calibrated on all of them
    assert curve.complete[-1] == threshold_for_n_clusters(X, 12).value
    assert curve.ward[-1] == cut_height(merge_tree(X, "ward")[:, 2], 12)
    assert curve.ward[0] < curve.ward[-1]  # a Ward height grows with the sizes it merges
    assert curve.height("ward", 10) == curve.ward[-1] == curve.height("ward", 500)  # beyond the grid: its end
    assert curve.height("ward", 1) == curve.ward[0]
    assert curve.ward[0] < curve.height("ward", 2.5) < curve.ward[1]
    assert SizeCurve.from_dict(json.loads(json.dumps(curve.to_dict()))) == curve  # kept in a model file
    assert SizeCurve.fit(X, y, seed=0) == curve  # seeded
    with pytest.raises(DataError, match="at least 2 identities"):
        SizeCurve.fit(X[y == 0], y[y == 0])


def test_the_fixed_point_finds_the_rows_per_identity_of_a_batch_of_smaller_identities():
    """Identities of 3 rows against validation identities of 30: the cuts calibrated at 30 rows
    merge them (Ward: 4 clusters for 30), the curve's fixed point finds their number, and the
    Ward cut read at their size separates them."""
    from scipy.cluster.hierarchy import fcluster

    X, y = sphere_blobs(40, 30, 16, spread=0.5, seed=3)
    curve = SizeCurve.fit(X[y < 10], y[y < 10])
    batch = X[np.concatenate([np.flatnonzero(y == k)[:3] for k in range(10, 40)])]
    ward = merge_tree(batch, "ward")
    assert fcluster(ward, curve.ward[-1], "distance").max() < 10
    k = curve.clusters_at_fixed_point(merge_tree(batch, "complete"), s0=30)
    assert abs(k - 30) <= 2
    assert fcluster(ward, curve.height("ward", batch.shape[0] / k), "distance").max() == 30
