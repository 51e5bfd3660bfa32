"""Metrics against scikit-learn where it has them, and hand-computed small cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from kfree.exceptions import DataError
from kfree.metrics import (
    adjusted_rand,
    bcubed,
    clustering_accuracy,
    evaluate_clustering,
    n_clusters,
    nmi,
    pairwise_prf,
    wcp,
)

labels = st.lists(st.integers(0, 5), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(labels, st.data())
def test_nmi_and_ari_match_sklearn(t, data):
    p = data.draw(st.lists(st.integers(0, 7), min_size=len(t), max_size=len(t)))
    assert nmi(t, p) == pytest.approx(skm.normalized_mutual_info_score(t, p), abs=1e-9)
    assert adjusted_rand(t, p) == pytest.approx(skm.adjusted_rand_score(t, p), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(labels, st.data())
def test_pairwise_prf_matches_pair_confusion(t, data):
    p = data.draw(st.lists(st.integers(0, 7), min_size=len(t), max_size=len(t)))
    (tn, fp), (fn, tp) = skm.pair_confusion_matrix(t, p) / 2
    prec, rec, f1 = pairwise_prf(t, p)
    assert prec == pytest.approx(tp / (tp + fp) if tp + fp else 1.0)
    assert rec == pytest.approx(tp / (tp + fn) if tp + fn else 1.0)


def test_hand_computed_case():
    t = [0, 0, 0, 1, 1, 2]
    p = [5, 5, 7, 7, 7, 7]
    # cluster 5: {0,0} majority 2; cluster 7: {0,1,1,2} majority 2 -> WCP 4/6
    assert wcp(t, p) == pytest.approx(4 / 6)
    # Hungarian: 5->0 (2), 7->1 (2) = 4/6
    assert clustering_accuracy(t, p) == pytest.approx(4 / 6)
    # pairs: same-cluster pairs = C(2,2)+C(4,2)=1+6=7; true positives: (0,0) in 5:1, in 7: (1,1):1 -> 2
    prec, rec, _ = pairwise_prf(t, p)
    assert prec == pytest.approx(2 / 7)
    # same-class pairs: C(3,2)+C(2,2)=4 -> recall 2/4
    assert rec == pytest.approx(2 / 4)
    # BCubed precision: items in 5: each 2/2=1 (x2); in 7: item0 1/4, item1 2/4 x2, item2 1/4 -> (2 + .25+.5+.5+.25)/6
    bp, br, _ = bcubed(t, p)
    assert bp == pytest.approx((2 + 0.25 + 0.5 + 0.5 + 0.25) / 6)
    # BCubed recall: class0 items: in 5 -> 2/3 each (x2), in 7 -> 1/3; class1 -> 2/2 each; class2 -> 1
    assert br == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1 + 1) / 6)
    assert n_clusters(p) == 2


def test_perfect_and_permuted_labels():
    t = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([9, 9, 4, 4, 1, 1])
    m = evaluate_clustering(t, p)
    for key in ("nmi", "wcp", "acc", "ari", "pairwise_f1", "bcubed_f1"):
        assert m[key] == pytest.approx(1.0), key
    assert m["n_clusters"] == 3 and m["n_true"] == 3


def test_nmi_uses_arithmetic_normalisation():
    t = [0, 0, 1, 1, 1, 2]
    p = [0, 1, 1, 1, 1, 1]  # H(C) != H(Y), so the normalisations differ
    expected = skm.normalized_mutual_info_score(t, p, average_method="arithmetic")
    assert nmi(t, p) == pytest.approx(expected)
    assert nmi(t, p) != pytest.approx(skm.normalized_mutual_info_score(t, p, average_method="geometric"))


def test_singletons_have_full_purity_but_low_nmi():
    t = [0, 0, 0, 1, 1, 1]
    p = list(range(6))
    assert wcp(t, p) == 1.0
    assert nmi(t, p) < 0.7
    assert pairwise_prf(t, p)[1] == 0.0


@pytest.mark.parametrize("t,p,msg", [([0, 1], [0], "2 items"), ([], [], "empty"), ([[0, 1]], [[0, 1]], "1-d"),
                                     ([0.0, float("nan")], [0, 1], "labels_true contain NaN"),
                                     ([0, 1], np.array(["a", 1, None], dtype=object)[:2], "labels_pred mix types"),
                                     # (a notebook trial: NumPy made the list texts, and '1' and 1 one label)
                                     (["1", 1, 2], [0, 1, 2], "labels_true mix types"),
                                     ([0, 1], np.array([None, "a"], dtype=object), "labels_pred contain NaN or None"),
                                     (np.array([1.0, float("nan")], dtype=object), [0, 1], "contain NaN or None")])
def test_bad_input(t, p, msg):
    with pytest.raises(DataError, match=msg):
        nmi(t, p)
    with pytest.raises(DataError):
        evaluate_clustering(t, p)


def test_accuracy_of_a_large_table_is_matched_sparsely_to_the_same_value(monkeypatch):
    """ACC built a dense classes × clusters table: 6,000 × 60,000 needed 2.7 GiB (found by review).
    The sparse matching gives the dense (Hungarian) value, here on small random tables."""
    import kfree.metrics.clustering as M

    rng = np.random.default_rng(0)
    cases = []
    for trial in range(200):
        n, kt, kp = rng.integers(1, 150), rng.integers(1, 25), rng.integers(1, 50)
        t = rng.integers(0, kt, n)
        p = (t * 7 + rng.integers(0, 2, n)) % kp if trial % 3 == 0 else rng.integers(0, kp, n)
        cases.append((t, p, M.clustering_accuracy(t, p)))
    monkeypatch.setattr(M, "DENSE_MATCHING_CELLS", 0)
    for t, p, dense in cases:
        assert M.clustering_accuracy(t, p) == pytest.approx(dense, abs=1e-12)
    monkeypatch.undo()
    t = np.arange(60_000) % 6_000  # 6,000 classes of 10, every item its own cluster
    assert M.clustering_accuracy(t, np.arange(60_000)) == pytest.approx(0.1)


def test_noise_labels_are_scored_as_singletons_and_said():
    """Found by a user trial: scikit-learn's HDBSCAN writes -1 for noise, and scoring it as given
    made every unclustered point one cluster (NMI 0.955 where kfree's own hdbscan method, whose
    noise points are clusters of their own, scored 0.991 on the same run)."""
    import warnings

    from kfree.exceptions import DataWarning
    from kfree.metrics import evaluate_clustering

    y = np.repeat(np.arange(5), 4)
    pred = y.copy()
    pred[[0, 5, 10]] = -1
    as_singletons = y.copy()
    as_singletons[[0, 5, 10]] = [5, 6, 7]
    with pytest.warns(DataWarning, match=r"3 of the 20 rows have a negative cluster label \(noise"):
        got = evaluate_clustering(y, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        want = evaluate_clustering(y, as_singletons)
    assert got == want and got["n_clusters"] == 8
    with pytest.warns(DataWarning):
        assert evaluate_clustering(y, np.full(20, -1))["n_clusters"] == 20  # all noise: 20 singletons, not 1
    # numbers held as objects (a pandas object column) are numbers (a metrics audit: one cluster, unsaid)
    with pytest.warns(DataWarning, match="3 of the 20 rows"):
        assert evaluate_clustering(y, pred.astype(object)) == want
    with pytest.warns(DataWarning, match="3 of the 20 rows"):
        assert evaluate_clustering(y, pred.astype(float).astype(object)) == want


def test_groups_of_rows_are_scored_as_one_item_each():
    """Face tracks scored as the BCL paper scores them (a TV-episode trial had only per-frame
    scores, where one long track weighs as much as many short ones): a group takes the cluster and
    label most of its rows have (ties: the lower), and the groups split or mixed are counted."""
    from kfree.metrics import evaluate_by_group, evaluate_clustering

    y = np.array(list("aaaabbbbccd"))
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    groups = np.array(["t0"] * 4 + ["t1"] * 4 + ["t2"] * 2 + ["t3"])
    got = evaluate_by_group(y, pred, groups)
    assert got == {**evaluate_clustering(list("abcd"), [0, 1, 2, 2]), "n_rows": 11, "groups_split": 1,
                   "groups_mixed": 0}
    tie = evaluate_by_group(list("aabb"), [3, 5, 7, 7], [0, 0, 1, 1])  # group 0: clusters 3 and 5, 3 kept
    assert tie["n_clusters"] == 2 and tie["groups_split"] == 1
    assert evaluate_by_group(list("ab"), [0, 0], [9, 9])["groups_mixed"] == 1  # a track of two people
    with pytest.raises(DataError, match="1-d of one length"):
        evaluate_by_group(y, pred, groups[:3])


def test_a_list_mixing_text_and_numbers_is_refused_everywhere_labels_are_taken():
    from kfree import ClusterLearner
    from kfree.metrics import n_clusters
    from kfree.metrics.clustering import evaluate_by_group

    with pytest.raises(DataError, match="labels mix types"):
        n_clusters(["1", 1, 2])
    with pytest.raises(DataError, match="groups mix types"):
        evaluate_by_group([0, 0, 1], [0, 0, 1], ["a", 1, "a"])
    assert n_clusters(["1", "1", "2"]) == 2 and n_clusters([1, 1, 2]) == 2
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(DataError, match="y mix types"):
        ClusterLearner().fit(X, ["a", "a", "b", "b", 1, 1])
    with pytest.raises(DataError, match=r"got \(6, 1\) \(a column: give y.ravel\(\)"):
        ClusterLearner().fit(X, np.arange(6).reshape(-1, 1))
    with pytest.raises(DataError, match=r"got \(6, 1\) \(a column: give y.ravel\(\)"):  # (a list of lists too)
        ClusterLearner().fit(X, [["a"], ["b"], ["a"], ["b"], ["a"], ["b"]])
    from kfree.report import cluster_report  # (a review: the page counted '0' and 0 as one cluster)

    with pytest.raises(DataError, match="labels mix types"):
        cluster_report("never", ["0"] * 5 + [0] * 5 + [1] * 5)
    with pytest.raises(DataError, match="truth mix types"):
        cluster_report("never", [0, 0, 1, 1], truth=["1", 1, 2, 2])
