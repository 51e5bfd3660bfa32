"""Model selection on validation classes: step-wise validation, the identity-start head, the rule
chosen among the loss's own threshold, recalibrated cuts and the raw features."""

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import fcluster, linkage

from kfree import ClusterLearner, TrainConfig
from kfree.cluster import ThresholdAgglomerative
from kfree.cluster.ward import WardThreshold
from kfree.data.synthetic import sphere_blobs
from kfree.embed.encode import encode
from kfree.embed.models import ResidualEmbedder
from kfree.evaluate.selection import (
    ClusterRule,
    ValidationSet,
    best_rule,
    choose_rule,
    subsample_classes,
)
from kfree.exceptions import DataError, DataWarning
from kfree.learner import LEARNER_PARAMS
from kfree.metrics import nmi
from kfree.threshold import Threshold


@pytest.fixture(scope="module")
def blobs():
    X, y = sphere_blobs(30, 10, dim=16, spread=0.3, seed=4)
    tr, va, te = y < 18, (y >= 18) & (y < 24), y >= 24
    return X[tr], y[tr], X[va], y[va], X[te], y[te]


def test_residual_head_starts_as_the_normalised_identity():
    torch.manual_seed(0)
    X = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32) * 3 + 1
    head = ResidualEmbedder(12, (32, 16))
    head.set_standardization(torch.tensor(X.mean(0)), torch.tensor(X.std(0)))
    Z = encode(head, X)
    assert Z.shape == (20, 12)
    np.testing.assert_allclose(Z, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_ward_threshold_matches_scipy():
    X, _ = sphere_blobs(6, 15, dim=8, spread=0.5, seed=2)
    Zs = linkage(X.astype(np.float64), "ward")
    for t in (0.3, 0.8, 1.5, 3.0):
        ours = WardThreshold(t).fit(X).labels_
        ref = fcluster(Zs, t, "distance")
        assert nmi(ref, ours) == pytest.approx(1.0) and len(np.unique(ours)) == len(np.unique(ref))
    assert WardThreshold(n_clusters=6).fit(X).n_clusters_ == 6


def test_subsample_keeps_whole_classes():
    y = np.repeat(np.arange(50), 100)
    idx = subsample_classes(y, 1000, seed=0)
    kept = np.unique(y[idx])
    assert idx.shape[0] <= 1000 and idx.shape[0] == 100 * kept.shape[0]


def test_rules_key_prefers_nmi_then_count_then_margin():
    thr = Threshold(1.0)
    a = ClusterRule("raw", "complete", thr, "recalibrated", 0.9, 5, 5, val_margin=0.1)
    b = ClusterRule("model", "complete", thr, "learned", 0.95, 7, 5)
    c = ClusterRule("model", "ward", thr, "recalibrated", 0.95, 5, 5, val_margin=0.05)
    d = ClusterRule("model", "ward", thr, "recalibrated", 0.95, 5, 5, val_margin=0.5)
    assert best_rule([a, b]) is b
    assert best_rule([a, b, c]) is c
    assert best_rule([a, b, c, d]) is d
    assert best_rule([c, c]) is c  # a tie goes to the earlier candidate
    assert ClusterRule.from_dict(d.to_dict()) == d


def test_recalibrated_rules_hit_the_true_number_of_validation_classes(blobs):
    _, _, Xva, yva, _, _ = blobs
    vset = ValidationSet(yva, linkages=("complete", "ward"))
    rules = vset.rules(Xva, features="raw", learned=Threshold(0.05), modes=("learned", "recalibrated"))
    assert [(r.linkage, r.mode) for r in rules] == [("complete", "learned"), ("complete", "recalibrated"),
                                                    ("ward", "recalibrated")]
    for r in rules[1:]:
        # calibrated on all 6 classes it gives 6 clusters; calibrated on one half of the classes
        # and scored on the other (the transfer score), it is still exact on separated blobs
        assert r.val_clusters == 6 and len(np.unique(r.cluster(Xva))) == 6
        assert r.val_nmi == pytest.approx(1.0) and r.extra["val_gap"] == 0
    assert rules[0].val_clusters > 6  # a tiny threshold over-splits


def test_stepwise_validation_history_patience_and_best_step(blobs):
    Xtr, ytr, Xva, yva, *_ = blobs
    est = ClusterLearner.from_params(epochs=50, p=6, k=4, eval_every_steps=3, patience=4, seed=0)
    est.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    steps = [r["step"] for r in est.history_]
    assert steps[0] == 0 and all(s % 3 == 0 for s in steps) and steps == sorted(steps)
    assert est.provenance_["stopped_early"] and est.provenance_["steps"] < 50 * 4  # 4 batches per epoch
    keys = [(round(r["val_nmi"], 12), -round(r["val_gap"], 9)) for r in est.history_]
    best = max(keys)
    assert keys[steps.index(est.best_step_)] == best
    assert all(k < best for k in keys[steps.index(est.best_step_) + 1:])  # the last of the best is kept
    # it stopped `patience` validations after the last strict improvement (ties do not count)
    assert len(keys) - 1 - keys.index(best) == 4


def test_raw_features_are_used_when_the_model_does_not_beat_them(blobs, tmp_path):
    Xtr, ytr, Xva, yva, Xte, yte = blobs
    # an MLP head trained for one epoch is a near-random projection: worse than the separated raw blobs
    est = ClusterLearner.from_params(head="mlp", dims=(8,), epochs=1, p=6, k=4, eval_every_steps=1, seed=0)
    est.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert est.uses_raw_ and est.rule_.features == "raw"
    assert "did NOT beat the raw features" in est.summary()
    # the scores compared half by half are shown (a mean alone read as a contradiction on a tie)
    halves = est.rule_.extra["val_nmi_halves"]
    assert f"the raw features {halves[0]:.3f} and {halves[1]:.3f}" in est.summary()
    assert est.selection_["compared_with_raw"]
    np.testing.assert_array_equal(est.transform(Xte), Xte.astype(np.float32))
    labels = est.cluster(Xte)
    np.testing.assert_array_equal(labels, est.rule_.cluster(Xte))
    assert nmi(yte, labels) == pytest.approx(1.0)
    back = ClusterLearner.load(est.save(tmp_path / "m.kfree"))
    assert back.uses_raw_ and back.summary() == est.summary()
    np.testing.assert_array_equal(back.cluster(Xte), labels)
    # multicut on raw features cuts at a pair-distance threshold, never at a Ward height
    mc = back.cluster(Xte, method="multicut")
    assert abs(len(np.unique(mc)) - 6) <= 1


def test_the_chosen_rule_is_the_best_candidate_and_beats_or_equals_raw(blobs):
    Xtr, ytr, Xva, yva, *_ = blobs
    est = ClusterLearner.from_params(epochs=20, p=6, k=4, seed=1).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    cands = [ClusterRule.from_dict(c) for c in est.selection_["candidates"]]
    assert {c.features for c in cands} == {"raw", "model"}
    raw = [c for c in cands if c.features == "raw"]
    model = [c for c in cands if c.features == "model"]
    # each cut says whose number of classes it matches (the raw features' count the training ones)
    n_all = len(np.unique(ytr)) + len(np.unique(yva))
    assert all(f"training+validation #clusters={n_all}" in c.threshold.source for c in raw), raw
    assert all("validation #clusters" not in c.threshold.source.replace("training+validation", "") for c in raw)
    assert all(c.threshold.source.endswith(f"validation #clusters={len(np.unique(yva))}") for c in model
               if c.mode == "recalibrated" and est.calibration == "n_clusters")
    chosen = choose_rule(raw, model)
    assert chosen.to_dict() == est.selection_["chosen"]
    if est.uses_raw_:
        assert chosen.key() == best_rule(raw).key()
    else:  # the model must beat the best raw rule overall and on each half of the validation classes
        best_raw = best_rule(raw)
        assert chosen.key() > best_raw.key()
        assert all(m > r for m, r in zip(chosen.extra["val_nmi_halves"], best_raw.extra["val_nmi_halves"]))


def test_raw_rules_are_calibrated_on_every_labelled_class():
    from kfree.evaluate.selection import raw_calibration_set

    y_tr = np.repeat([10, 11, 12], [50, 8, 20])
    X_tr = np.arange(y_tr.shape[0] * 2, dtype=np.float32).reshape(-1, 2)
    y_va = np.repeat([1, 2, 3], [10, 12, 14])
    X_va = -np.ones((y_va.shape[0], 2), dtype=np.float32)
    X, y = raw_calibration_set(X_tr, y_tr, X_va, y_va, seed=0)
    ids, counts = np.unique(y, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist())) == {1: 10, 2: 12, 3: 14, 10: 12, 11: 8, 12: 12}
    np.testing.assert_array_equal(X[:36], X_va)  # validation rows first, all of them


def test_threshold_modes_restrict_the_candidates(blobs):
    Xtr, ytr, Xva, yva, *_ = blobs
    learned = ClusterLearner.from_params(epochs=3, p=6, k=4, threshold_mode="learned", compare_raw=False, seed=0)
    learned.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert {(c["features"], c["mode"]) for c in learned.selection_["candidates"]} == {("model", "learned")}
    assert learned.threshold_.source == "4b"
    recal = ClusterLearner.from_params(epochs=3, p=6, k=4, threshold_mode="recalibrated", linkage="ward", seed=0)
    recal.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert {c["mode"] for c in recal.selection_["candidates"]} == {"recalibrated"}
    assert {c["linkage"] for c in recal.selection_["candidates"]} == {"ward"}
    with pytest.raises(ValueError, match="threshold_mode"):
        ClusterLearner.from_params(threshold_mode="magic").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="linkage"):
        ClusterLearner.from_params(linkage="centroid").fit(Xtr, ytr)


def test_without_validation_the_model_is_used_and_says_it_was_not_checked(blobs):
    Xtr, ytr, *_ = blobs
    est = ClusterLearner.from_params(epochs=2, p=6, k=4, val_identities=0, seed=0).fit(Xtr, ytr)
    assert not est.uses_raw_ and not est.selection_["compared_with_raw"]
    assert "not compared with the raw features" in est.summary()


def _legacy_model_file(est, path, fmt):
    """What kfree 0.1 wrote: one torch.save'd dict with every option flat (kfree-model/2), or
    before heads and rule selection (kfree-model/1)."""
    flat = {**est.train.to_dict(), **{k: getattr(est, k) for k in LEARNER_PARAMS}}
    flat.pop("select_best")
    payload = {"format": fmt, "params": flat, "model_config": dict(est.model_.config()),
               "model_state": est.model_.state_dict(), "loss_state": est.loss_.state_dict(),
               "threshold": est.learned_threshold_.to_dict(), "selection": est.selection_, "calibration": None,
               "provenance": est.provenance_, "history": est.history_}
    if fmt == "kfree-model/1":
        del payload["selection"]
        payload["model_config"].pop("kind")
        for key in ("head", "eval_every_steps", "patience", "threshold_mode", "compare_raw"):
            payload["params"].pop(key)
    torch.save(payload, path)
    return path


def test_model_files_of_the_previous_formats_still_load(blobs, tmp_path):
    """kfree-model/1 files (MLP head, no rule selection) load as the model at its own threshold;
    kfree-model/2 files (flat options) load with the same rule as when they were written."""
    Xtr, ytr, Xva, yva, Xte, _ = blobs
    est = ClusterLearner(TrainConfig(dims=(16,), epochs=3, p=6, k=4, seed=0), head="mlp", threshold_mode="learned",
                         compare_raw=False, linkage="complete").fit(Xtr, ytr, X_val=Xva, y_val=yva)
    old = ClusterLearner.load(_legacy_model_file(est, tmp_path / "old.kfree", "kfree-model/1"))
    assert not old.uses_raw_ and old.rule_.mode == "learned" and old.threshold_ == est.learned_threshold_
    assert "kfree-model/1" in old.summary()
    np.testing.assert_array_equal(old.cluster(Xte), est.cluster(Xte))
    v2 = ClusterLearner.load(_legacy_model_file(est, tmp_path / "v2.kfree", "kfree-model/2"))
    assert v2.train == est.train and v2.head == "mlp" and v2.rule_ == est.rule_
    np.testing.assert_array_equal(v2.cluster(Xte), est.cluster(Xte))


def test_in_sample_model_cuts_do_not_replace_raw_rules_scored_on_transfer():
    thr = Threshold(1.0)
    raw = ClusterRule("raw", "ward", thr, "recalibrated", 0.80, 2, 2,  # cut where the training classes put it
                      extra={"val_gap": 0.0, "val_nmi_halves": [0.8], "in_sample": False})
    lucky = ClusterRule("model", "ward", thr, "recalibrated", 0.99, 2, 2,
                        extra={"val_gap": 0.0, "val_nmi_halves": [0.99], "in_sample": True})
    own = ClusterRule("model", "complete", thr, "learned", 0.95, 2, 2,
                      extra={"val_gap": 0.0, "val_nmi_halves": [0.95], "in_sample": False})
    assert choose_rule([raw], [lucky]) is raw
    assert choose_rule([raw], [lucky, own]) is own  # the loss's own threshold is not fitted on validation
    assert choose_rule([], [lucky]) is lucky
    halves = ClusterRule("raw", "ward", thr, "recalibrated", 0.80, 4, 4, extra={"val_nmi_halves": [0.8, 0.8]})
    with pytest.raises(DataError, match="scored on different halves"):
        choose_rule([halves], [own])


def test_raw_features_are_scored_on_the_models_own_halves(blobs):
    """Found by review: the raw features were scored on the training and validation identities
    together (30–160 of them) and the model on the validation ones (6–44); NMI depends on how
    many identities share a tree, so the model had a head start and the halves compared were not
    the same identities. Now both are scored on the same halves, and the raw cut of each half is
    calibrated on the training identities and the other half."""
    from kfree.evaluate.selection import raw_rules

    Xtr, ytr, Xva, yva, _, _ = blobs
    vset = ValidationSet(yva, linkages=("complete", "ward"), seed=0)
    rules, X_rc, y_rc = raw_rules(vset, Xva, yva, Xtr, ytr, seed=0)
    assert [r.linkage for r in rules] == ["complete", "ward"] and len(y_rc) > len(yva)
    for r in rules:
        assert r.val_true == vset.n_true and len(r.extra["val_nmi_halves"]) == len(vset.folds) == 2
        assert not r.extra["in_sample"] and r.threshold.source.endswith(f"#clusters={np.unique(y_rc).size}")
    # half 0 by hand: cut at the height that gives the true count on the training classes + half 1
    from kfree.cluster.ward import ward_tree
    from kfree.evaluate.calibrate import cut_height

    f0, f1 = vset.folds
    Xv, yv = np.asarray(Xva, dtype=np.float32)[vset.idx], vset.y
    X_cal = np.concatenate([X_rc[len(yva):], Xv[f1]])
    h = cut_height(ward_tree(X_cal)[:, 2], np.unique(np.concatenate([y_rc[len(yva):], yv[f1]])).size)
    assert rules[1].extra["val_nmi_halves"][0] == pytest.approx(nmi(yv[f0], fcluster(ward_tree(Xv[f0]), h, "distance")))
    est = ClusterLearner.from_params(epochs=2, p=6, k=4, seed=0).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    raw = [c for c in est.selection_["candidates"] if c["features"] == "raw"]
    model = [c for c in est.selection_["candidates"] if c["features"] == "model"]
    assert {c["val_true"] for c in raw} == {c["val_true"] for c in model} == {len(np.unique(yva))}


def test_two_validation_classes_give_in_sample_recalibrated_scores(blobs):
    _, _, Xva, yva, _, _ = blobs
    two = np.isin(yva, np.unique(yva)[:2])
    rules = ValidationSet(yva[two], linkages=("ward",)).rules(Xva[two], features="model", learned=Threshold(0.5))
    assert [r.extra["in_sample"] for r in rules] == [False, True]


def test_method_ward_cuts_at_a_ward_height_never_at_a_pair_distance(blobs):
    Xtr, ytr, Xva, yva, Xte, yte = blobs
    est = ClusterLearner.from_params(epochs=3, p=6, k=4, seed=0).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    ward = [c for c in est.selection_["candidates"]
            if c["linkage"] == "ward" and c["features"] == est.rule_.features]
    expected = WardThreshold(max(ward, key=lambda c: ClusterRule.from_dict(c).key())["threshold"]["value"])
    np.testing.assert_array_equal(est.cluster(Xte, method="ward"), expected.fit(est.transform(Xte)).labels_)
    only_complete = ClusterLearner.from_params(epochs=2, p=6, k=4, linkage="complete", seed=0).fit(
        Xtr, ytr, X_val=Xva, y_val=yva)
    with pytest.raises(ValueError, match="no calibrated Ward cut"):
        only_complete.cluster(Xte, method="ward")
    assert len(np.unique(only_complete.cluster(Xte, method="ward", n_clusters=6))) == 6


def test_with_ward_alone_the_models_pair_cut_is_a_complete_linkage_cut(blobs):
    """A loss that implies no threshold, linkage='ward': the model's own cut (what multicut and
    a cluster state cut at) is calibrated by complete linkage, not taken from Ward's merge height."""
    Xtr, ytr, Xva, yva, Xte, yte = blobs
    est = ClusterLearner.from_params(loss="softmax", linkage="ward", compare_raw=False, epochs=3, p=6, k=4,
                                     seed=0).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert est.rule_.linkage == "ward" and est.rule_.features == "model"
    thr = est.learned_threshold_
    assert thr.source.startswith("validation #clusters") and thr.value != est.rule_.threshold.value
    n_val = len(np.unique(yva))
    assert ThresholdAgglomerative(thr.value, distance=thr.distance).fit(est.transform(Xva)).n_clusters_ == n_val


def test_raw_cuts_rank_on_every_identity_and_meet_the_model_on_the_halves():
    """Among themselves the raw features' cuts rank by their score on all labelled identities
    (on CelebA the validation halves' 22 identities put complete linkage ahead by noise, all 163
    put Ward ahead, as the unseen identities did); against the model, the halves decide."""
    def raw(lk, halves, rank):
        return ClusterRule("raw", lk, Threshold(1.0), "recalibrated", float(np.mean(halves)), 5, 5,
                           extra={"val_gap": 0.0, "val_nmi_halves": halves, "rank_nmi": rank, "rank_gap": 0.0,
                                  "rank_margin": 0.0})

    complete, ward = raw("complete", [0.984, 0.960], 0.952), raw("ward", [0.978, 0.964], 0.963)
    assert best_rule([complete, ward]) is ward and choose_rule([complete, ward], []) is ward
    model = ClusterRule("model", "ward", Threshold(1.0), "recalibrated", 0.975, 5, 5,
                        extra={"val_gap": 0.0, "val_nmi_halves": [0.979, 0.971]})
    assert choose_rule([complete, ward], [model]) is model  # beats Ward on each half (not complete's 0.984)
    model_lost = ClusterRule("model", "ward", Threshold(1.0), "recalibrated", 0.975, 5, 5,
                             extra={"val_gap": 0.0, "val_nmi_halves": [0.990, 0.960]})
    assert choose_rule([complete, ward], [model_lost]) is ward


def test_a_model_must_beat_the_raw_features_on_each_half():
    """A better mean is not enough: the model replaces the raw features only where it scores
    higher on both halves of the same validation identities."""
    def rule(features, halves, mode="recalibrated"):
        return ClusterRule(features, "complete", Threshold(1.0), mode, float(np.mean(halves)), 5, 5,
                           extra={"val_gap": 0.0, "val_nmi_halves": halves})

    raw = [rule("raw", [0.6, 0.99])]
    assert choose_rule(raw, [rule("model", [0.97, 0.97], "learned")]).features == "raw"
    assert choose_rule(raw, [rule("model", [0.9, 0.995], "learned")]).features == "model"
    assert choose_rule(raw, [rule("model", [0.6, 0.99], "learned")]).features == "raw"  # a tie: raw


def test_a_score_that_could_not_be_computed_ranks_last():
    nan_rule = ClusterRule("model", "complete", Threshold(1.0), "learned", float("nan"), 5, 5)
    good = ClusterRule("model", "complete", Threshold(2.0), "learned", 0.2, 5, 5)
    assert best_rule([nan_rule, good]) is good and best_rule([good, nan_rule]) is good


def test_a_logistic_cut_is_scored_on_each_half_by_the_other_halfs_fit():
    """The logistic model the learner passes was fitted on all validation classes; scored on the
    same classes it would be in-sample, so each half is cut where a fit on the other half says."""
    from kfree.evaluate.calibrate import LogisticCalibration

    X, y_all = sphere_blobs(30, 10, dim=16, spread=0.9, seed=4)  # overlapping: the cuts matter
    Xva, yva = X[y_all >= 24], y_all[y_all >= 24]
    vs = ValidationSet(yva, linkages=("complete",), seed=0)
    logistic = LogisticCalibration.fit_embeddings(Xva, yva)
    rule = next(r for r in vs.rules(Xva, features="raw", modes=("recalibrated",), logistic=logistic)
                if r.linkage == "complete")
    Z, y = Xva[vs.idx], vs.y
    assert len(vs.folds) == 2
    expected = []
    for i in range(2):
        other = vs.folds[1 - i]
        t = LogisticCalibration.fit_embeddings(Z[other], y[other], seed=0).threshold()
        lab = ThresholdAgglomerative(t.value, distance=t.distance).fit(Z[vs.folds[i]]).labels_
        expected.append(nmi(y[vs.folds[i]], lab))
    np.testing.assert_allclose(rule.extra["val_nmi_halves"], expected)
    assert rule.threshold == logistic.threshold() and not rule.extra["in_sample"]
    in_sample = [nmi(y[f], ThresholdAgglomerative(logistic.threshold().value).fit(Z[f]).labels_) for f in vs.folds]
    assert not np.allclose(in_sample, expected)  # (what it was scored at before)


def test_validation_labels_shared_with_training_are_flagged(blobs):
    """Labels name identities: y_val values that y also holds are identities the model trains on
    (or two label sets numbered separately), so the fit says so; distinct values say nothing."""
    import warnings

    Xtr, ytr, Xva, yva, *_ = blobs
    fast = dict(epochs=1, p=6, k=4, seed=0)
    with pytest.warns(DataWarning, match=r"6 label value\(s\) of y_val are also in y \(e.g. 0\)"):
        ClusterLearner.from_params(**fast).fit(Xtr, ytr, X_val=Xva, y_val=yva - 18)  # numbered 0..5 again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClusterLearner.from_params(**fast).fit(Xtr, ytr, X_val=Xva, y_val=yva)


def test_raw_features_at_a_ward_cut_have_their_own_pair_distance_cut(blobs, tmp_path):
    """Trained with linkage="ward" and the raw features chosen, the threshold back-ends (knn-cc,
    multicut with a threshold) cut the raw features at a complete-linkage cut calibrated on them,
    not at the model's own cut (model units: on raw rows 10x the scale it made every row a
    cluster of its own)."""
    from kfree import registry
    from kfree.exceptions import ConfigError
    from kfree.threshold import Threshold

    Xtr, ytr, Xva, yva, Xte, yte = blobs
    est = ClusterLearner.from_params(epochs=1, p=6, k=4, linkage="ward", seed=0).fit(10 * Xtr, ytr)
    assert est.uses_raw_ and est.rule_.linkage == "ward"
    cut = Threshold.from_dict(est.selection_["raw_pair_cut"])
    rule = est.rule_for("multicut")
    assert (rule.features, rule.linkage, rule.threshold) == ("raw", "complete", cut)
    assert cut.value > 10 * est.learned_threshold_.value  # the raw features' units, not the model's
    est.pair_calibration_ = None  # without a pair model, multicut cuts at the pair-distance rule
    got = est.cluster(10 * Xte, method="multicut")
    ref = registry.get("cluster", "multicut", threshold=cut.value, distance=cut.distance).fit(10 * Xte).labels_
    np.testing.assert_array_equal(got, ref)
    assert len(np.unique(got)) < len(np.unique(yte)) + 3  # clusters, not one per row
    again = ClusterLearner.load(est.save(tmp_path / "m.kfree"))
    np.testing.assert_array_equal(again.cluster(10 * Xte, method="multicut"), got)
    del again.selection_["raw_pair_cut"]  # a file from before the cut was recorded
    with pytest.raises(ConfigError, match="holds no pair-distance cut for them"):
        again.cluster(10 * Xte, method="multicut")
    np.testing.assert_array_equal(again.cluster(10 * Xte), est.cluster(10 * Xte))  # the Ward cut itself
    # k-NN components chain single pairs: no validated rule fits them, so a threshold is asked for
    # (found by review: the model's complete-linkage cut put 27 unseen intents in one cluster)
    with pytest.raises(ConfigError, match="cuts at a threshold that is no cluster's diameter"):
        est.cluster(10 * Xte, method="knn-cc")
    by_hand = registry.get("cluster", "knn-cc", threshold=cut.value, distance=cut.distance).fit(10 * Xte).labels_
    np.testing.assert_array_equal(est.cluster(10 * Xte, method="knn-cc", threshold=cut), by_hand)
    # a number is in the chosen rule's units (its Ward heights': Euclidean), as for every method
    assert est.threshold_.distance == "euclidean" and cut.distance == "sqeuclidean"
    np.testing.assert_array_equal(est.cluster(10 * Xte, method="knn-cc", threshold=float(np.sqrt(cut.value))), by_hand)


def test_cross_fitting_scores_each_half_at_the_step_chosen_on_the_other():
    """The winner's curse: the step kept is the best of many on the same validation identities, so
    its score flatters it. Each half is scored at the step (and rule) chosen on the other half."""
    from kfree.evaluate.selection import cross_fitted

    history = [
        {"step": 0, "val_halves": {"complete/learned": [[0.80, 1.0], [0.80, 1.0]]}},
        # lucky on half 0 only
        {"step": 10, "val_halves": {"complete/learned": [[0.95, 0.0], [0.70, 2.0]],
                                    "ward/recalibrated": [[0.90, 0.0], [0.75, 1.0]]}},
        # lucky on half 1 only
        {"step": 20, "val_halves": {"complete/learned": [[0.72, 2.0], [0.93, 0.0]]}},
        {"step": 25, "loss": 0.1},  # a row without validation
    ]
    cross = cross_fitted(history)
    # half 0 is scored at the pick of half 1 (step 20: 0.72), half 1 at the pick of half 0 (step 10: 0.70)
    assert cross["nmi"] == [0.72, 0.70] and cross["gap"] == [2.0, 2.0]
    assert cross["picks"] == [[20, "complete/learned"], [10, "complete/learned"]]
    # without select_best the last validated step is the one kept: no choice of step to pay for
    assert cross_fitted(history, select_best=False)["nmi"] == [0.72, 0.93]
    # a tie between steps goes to the later one, as in the trainer
    tie = [{"step": s, "val_halves": {"c/l": [[0.9, 0.0], [v, 0.0]]}} for s, v in ((5, 0.1), (6, 0.2))]
    assert cross_fitted(tie)["picks"][1] == [6, "c/l"]
    # nothing to cross: no halves (fewer than 4 validation identities), or rows from an older kfree
    assert cross_fitted([{"step": 0, "val_nmi": 0.9, "val_halves": {}}]) is None
    assert cross_fitted([{"step": 0, "val_nmi": 0.9}]) is None
    # a run resumed from rows of an older kfree: the old steps were candidates too, so no cross
    assert cross_fitted([{"step": 0, "val_nmi": 0.9}, {"step": 2, "val_nmi": 0.8, **tie[0]}]) is None
    # within a step, NMI, then gap, then the margin of the cut on that half (as ClusterRule.key)
    row = {"step": 3, "val_halves": {"complete/learned": [[1.0, 0.0, 0.1], [0.80, 0.0, 0.1]],
                                     "ward/recalibrated": [[1.0, 0.0, 0.9], [0.95, 0.0, 0.9]]}}
    assert cross_fitted([row])["picks"][1] == [3, "ward/recalibrated"] and cross_fitted([row])["nmi"][1] == 0.95
    assert cross_fitted([row])["unit"] == "step" and not cross_fitted([row])["steps_chosen"]
    # across steps the margin does not count (the trainer keeps the later step on NMI and gap)
    wide = {"step": 1, "val_halves": {"ward/recalibrated": [[0.5, 0.0, 0.1], [0.95, 0.0, 5.0]]}}
    narrow = {"step": 2, "val_halves": {"ward/recalibrated": [[0.9, 0.0, 0.1], [0.95, 0.0, 0.1]]}}
    assert cross_fitted([wide, narrow])["picks"][0] == [2, "ward/recalibrated"]


def test_a_model_must_beat_the_raw_features_without_the_credit_of_its_chosen_step():
    def rule(features, halves):
        return ClusterRule(features, "complete", Threshold(1.0), "recalibrated", float(np.mean(halves)), 5, 5,
                           extra={"val_gap": 0.0, "val_nmi_halves": halves})

    raw, model = [rule("raw", [0.85, 0.85])], [rule("model", [0.95, 0.93])]
    assert choose_rule(raw, model).features == "model"
    assert choose_rule(raw, model, cross={"nmi": [0.84, 0.90], "gap": [0.0, 0.0]}).features == "raw"
    assert choose_rule(raw, model, cross={"nmi": [0.86, 0.90], "gap": [0.0, 0.0]}).features == "model"
    assert choose_rule(raw, model, cross={"nmi": [0.86, 0.90], "gap": [3.0, 3.0]}).features == "model"
    assert choose_rule(raw, model, cross={"nmi": [0.85, 0.90], "gap": [0.0, 0.0]}).features == "raw"  # a tie: raw
    # the cross-fitted win is needed on top of the win at the kept step, not instead of it (a logistic
    # cut, fitted after training, is not among the cross-fitted rules)
    behind = [rule("model", [0.80, 0.80])]
    assert choose_rule(raw, behind, cross={"nmi": [0.9, 0.9], "gap": [0.0, 0.0]}).features == "raw"


def test_the_learner_records_and_uses_the_cross_fitted_model_score(blobs, monkeypatch, tmp_path):
    from kfree.evaluate.selection import cross_fitted

    Xtr, ytr, Xva, yva, _, _ = blobs
    est = ClusterLearner.from_params(epochs=3, p=6, k=4, eval_every_steps=2, seed=0).fit(
        Xtr, ytr, X_val=Xva, y_val=yva)
    rows = [r for r in est.history_ if "val_nmi" in r]
    assert rows and all(set(r["val_halves"]) >= {"complete/learned", "ward/recalibrated"} for r in rows)
    for r in rows:  # the row's score is the best rule's mean over the halves
        assert r["val_nmi"] == pytest.approx(max(np.mean([h[0] for h in v]) for v in r["val_halves"].values()))
    cross = est.selection_["model_cross_fit"]
    assert cross == cross_fitted(est.history_)
    assert f"{cross['nmi'][0]:.3f} and {cross['nmi'][1]:.3f} at the step and rule chosen on the other half" \
        in est.selection_["reason"]
    # and fit hands it to the choice
    from kfree.evaluate import selection

    handed = {}
    real_choose = selection.choose_rule
    monkeypatch.setattr(selection, "choose_rule", lambda raw, model, **kw: handed.update(kw) or real_choose(
        raw, model, **kw))
    again = ClusterLearner.from_params(epochs=3, p=6, k=4, eval_every_steps=2, seed=0).fit(
        Xtr, ytr, X_val=Xva, y_val=yva)
    assert handed["cross"] == cross_fitted(again.history_) is not None
    # the validation curve draws that score beside the raw features' line
    from kfree.report import validation

    seen = {}
    real = validation.plot_validation_curve
    monkeypatch.setattr(validation, "plot_validation_curve",
                        lambda history, path, **kw: seen.update(kw) or real(history, path, **kw))
    assert validation.plot_learner_validation(est, tmp_path / "curve.png").stat().st_size > 1000
    assert seen["cross_nmi"] == pytest.approx(np.mean(cross["nmi"]))


def test_the_reason_says_why_a_raw_cut_below_another_on_the_halves_was_chosen():
    """Found by a photo-library user: the table showed raw complete linkage at validation NMI 0.979
    and raw Ward at 0.974, yet Ward was chosen, by a score (on all 150 identities) never printed."""
    from kfree.learner import _selection_reason
    from kfree.threshold import Threshold

    extra = {"val_nmi_halves": [0.97, 0.98], "in_sample": False, "rank_identities": 150, "rank_gap": 0.0,
             "rank_margin": 0.1}
    ward = ClusterRule("raw", "ward", Threshold(1.257, "euclidean", "Ward, training+validation #clusters=150"),
                       "recalibrated", 0.974, 30, 30, val_margin=0.1, extra={**extra, "rank_nmi": 0.956})
    comp = ClusterRule("raw", "complete", Threshold(0.58, "sqeuclidean", "training+validation #clusters=150"),
                       "recalibrated", 0.979, 30, 30, val_margin=0.1, extra={**extra, "rank_nmi": 0.950})
    model = ClusterRule("model", "complete", Threshold(0.8, "sqeuclidean", "4b"), "learned", 0.9, 30, 30,
                        extra={"val_nmi_halves": [0.9, 0.9]})
    reason = _selection_reason(ward, [ward, comp, model], True, True)
    assert ("ranked on all 150 training and validation identities, where it scored NMI 0.956 and complete "
            "linkage 0.950; on the validation halves alone complete linkage scored higher, 0.979 against 0.974"
            in reason), reason
    assert "ranked on all" not in _selection_reason(comp, [ward, comp, model], True, True)


def test_a_cut_calibrated_on_a_sample_of_the_identities_says_so():
    """Found by an embeddings trial: "training+validation #clusters=110" for 300 identities read as
    a miscount; the cuts are calibrated on a sample of whole identities (MAX_VALIDATION_SAMPLES rows)."""
    from kfree.evaluate.selection import MAX_VALIDATION_SAMPLES, ValidationSet

    y = np.repeat(np.arange(300), 30)
    vset = ValidationSet(y, linkages=("complete",), classes="training+validation")
    assert vset.n_true == MAX_VALIDATION_SAMPLES // 30
    assert vset.classes == f"a sample of {vset.n_true} of 300 training+validation"
    assert ValidationSet(y[:600], linkages=("complete",)).classes == "validation"  # all of them: as before
