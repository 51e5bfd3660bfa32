"""The estimator: BCL on separated blobs of unseen identities finds K exactly, reproducibly.

These tests pin the paper's set-up (an MLP head at its own threshold, never swapped for the raw
features); the learner's choice among rules is tested in tests/test_selection.py.
"""

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from kfree import ClusterLearner, TrainConfig
from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import ConfigError, DataError, DataTypeError, DataWarning
from kfree.metrics import nmi

PAPER = dict(head="mlp", linkage="complete", threshold_mode="learned", compare_raw=False,
             eval_every_steps=None, patience=None)


@pytest.fixture(scope="module")
def blobs():
    X, y = sphere_blobs(30, 12, dim=16, spread=0.25, seed=1)
    train = y < 18
    val = (y >= 18) & (y < 22)
    test = y >= 22
    return X[train], y[train], X[val], y[val], X[test], y[test]


@pytest.fixture(scope="module")
def fitted(blobs):
    Xtr, ytr, Xva, yva, _, _ = blobs
    kw = dict(dims=(64, 32), epochs=40, p=8, k=6, loss_params={"radius_lr_scale": 10.0}, seed=3, **PAPER)
    return ClusterLearner.from_params(**kw).fit(Xtr, ytr, X_val=Xva, y_val=yva), kw


def test_hac_at_4b_recovers_exact_number_of_unseen_clusters(blobs, fitted):
    learner, _ = fitted
    *_, Xte, yte = blobs
    labels = learner.cluster(Xte)
    assert len(np.unique(labels)) == 8
    assert nmi(yte, labels) == pytest.approx(1.0)
    thr = learner.threshold_
    assert thr.source == "4b" and thr.distance == "sqeuclidean"
    assert thr.value == pytest.approx(4 * float(learner.loss_.radius_sq().detach()))
    assert thr.value < 4 * 0.744  # b moved from its initial value


def test_seeded_runs_are_bit_identical(blobs, fitted):
    learner, kw = fitted
    Xtr, ytr, Xva, yva, Xte, _ = blobs
    again = ClusterLearner.from_params(**kw).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    np.testing.assert_array_equal(learner.transform(Xte), again.transform(Xte))
    assert learner.threshold_ == again.threshold_


def test_transform_shapes_and_unit_norm(blobs, fitted):
    learner, _ = fitted
    Z = learner.transform(blobs[4])
    assert Z.shape == (blobs[4].shape[0], 32)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_save_load_round_trip(tmp_path, blobs, fitted):
    learner, _ = fitted
    path = learner.save(tmp_path / "m.kfree")
    loaded = ClusterLearner.load(path)
    np.testing.assert_array_equal(loaded.transform(blobs[4]), learner.transform(blobs[4]))
    assert loaded.threshold_ == learner.threshold_
    assert loaded.provenance_["loss"] == "bcl" and loaded.provenance_["seed"] == 3
    assert "torch" in loaded.provenance_["versions"]


def test_threshold_override_changes_the_cut(blobs, fitted):
    learner, _ = fitted
    assert len(np.unique(learner.cluster(blobs[4], threshold=3.99))) == 1
    # kfree's own Threshold is taken in the rule's units (an embeddings trial: refused as "not a
    # finite number > 0"); one of another kind is converted, or refused where the cut would change
    from kfree.threshold import Threshold

    rule = learner.rule_.threshold
    cut = 0.5 * rule.value
    want = learner.cluster(blobs[4], threshold=cut)
    np.testing.assert_array_equal(learner.cluster(blobs[4], threshold=Threshold(cut, rule.distance)), want)
    with pytest.raises(ConfigError, match="cosine units"):
        learner.cluster(blobs[4], threshold=Threshold(0.3, "cosine"))


def test_fit_predict_sets_labels(blobs):
    Xtr, ytr, *_ = blobs
    est = ClusterLearner.from_params(dims=(16,), epochs=2, p=4, k=3)
    labels = est.fit_predict(Xtr, ytr)
    assert labels.shape == (Xtr.shape[0],) and est.n_clusters_ == len(np.unique(labels))


def test_numpy_scalars_and_what_validation_is_given(blobs):
    """What arrays hand out (np.float32) means what the same Python number means; validation the
    learner cannot do as asked is refused or said, never changed silently (found by review)."""
    from kfree.threshold import Threshold

    Xtr, ytr, Xva, yva, *_ = blobs
    quick = dict(dims=(8,), epochs=1, p=4, k=3, eval_every_steps=None, patience=None)
    # a float32 fraction is a fraction: 0.5 of 18 identities, not int(0.5) -> 2
    half = ClusterLearner.from_params(**quick, val_identities=np.float32(0.5)).fit(Xtr, ytr)
    assert half.provenance_["n_val_identities"] == 9
    with pytest.warns(DataWarning, match="val_identities=1: holding out 2 of the 18"):
        ClusterLearner.from_params(**quick, val_identities=1).fit(Xtr, ytr)
    with pytest.raises(DataError, match=r"y_val \(the --validation file\) holds one identity: a cut is checked on 2"):
        ClusterLearner.from_params(**quick).fit(Xtr, ytr, X_val=Xva[yva == yva[0]], y_val=yva[yva == yva[0]])
    with pytest.raises(ConfigError, match="give X_val and y_val together"):
        ClusterLearner.from_params(**quick).fit(Xtr, ytr, y_val=yva)
    # NumPy scalars are numbers to every scale check, and a threshold keeps a plain float (JSON)
    t = Threshold(np.float32(1.5))
    assert t.value == 1.5 and type(t.value) is float
    assert TrainConfig(loss="triplet-l2", loss_params={"alpha": np.float32(0.8), "beta": np.float32(0.4)})
    with pytest.raises(ConfigError, match="threshold='x' must be a finite number > 0"):
        ClusterLearner.from_params(**quick, threshold="x").fit(Xtr, ytr)
    # labels_ of an earlier fit_predict do not survive a fit on other data
    est = ClusterLearner.from_params(**quick)
    est.fit_predict(Xtr, ytr)
    est.fit(Xtr[:60], ytr[:60])
    assert not hasattr(est, "labels_") and not hasattr(est, "n_clusters_")


def test_bad_input(blobs, fitted):
    learner, _ = fitted
    Xtr, ytr, *_ = blobs
    with pytest.raises(DataError, match="at least 2 identities"):
        ClusterLearner.from_params(epochs=1).fit(Xtr, np.zeros(len(Xtr)))
    with pytest.raises(DataError, match="is expecting 16 features"):
        learner.cluster(np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"^X has 1 sample \(row\); at least 2 are needed here$"):
        learner.cluster(Xtr[:1], method="multicut")
    with pytest.raises(DataTypeError, match=r"X: Complex data not supported; .*np.hstack\(\[X.real, X.imag\]\)"):
        learner.cluster(Xtr + 1j)  # (scikit-learn's message printed the whole array: a scikit-learn user's trial)
    assert learner.cluster(Xtr[:1]).tolist() == [0]  # one row, one cluster
    with pytest.raises(ConfigError, match="threshold=-1 must be a finite number"):  # its options still checked
        learner.cluster(Xtr[:1], threshold=-1)
    bad = Xtr.copy()
    bad[0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        ClusterLearner.from_params(epochs=1).fit(bad, ytr)
    with pytest.raises(DataError, match="y must have shape"):
        ClusterLearner.from_params(epochs=1).fit(Xtr, ytr[:-1])
    # a NaN label is no identity (its rows were silently dropped from training and validation)
    y_nan = ytr.astype(float)
    y_nan[:5] = np.nan
    with pytest.raises(DataError, match="5 NaN labels"):
        ClusterLearner.from_params(epochs=1).fit(Xtr, y_nan)
    y_mixed = ytr.astype(object)
    y_mixed[0] = "a"
    with pytest.raises(DataError, match="mixes label types"):
        ClusterLearner.from_params(epochs=1).fit(Xtr, y_mixed)
    for v in (float("nan"), -3, 2.5, True):
        with pytest.raises(ConfigError, match="val_identities"):
            ClusterLearner.from_params(epochs=1, val_identities=v).fit(Xtr, ytr)
    # numpy scalars from a grid are plain values in the config (a seed of np.int64 failed deep inside)
    cfg = TrainConfig(seed=np.int64(3), lr=np.float64(1e-3))
    assert type(cfg.seed) is int and type(cfg.lr) is float
    with pytest.raises(ConfigError, match="seed"):
        TrainConfig(seed=-1)


def test_logistic_calibration_is_saved_and_feeds_multicut(tmp_path, blobs):
    Xtr, ytr, Xva, yva, Xte, yte = blobs
    est = ClusterLearner.from_params(loss="triplet-l1", dims=(32,), epochs=15, p=6, k=4, calibration="logistic", seed=0,
                             **{**PAPER, "threshold_mode": "recalibrated"})
    est.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert est.calibration_ is not None
    assert est.threshold_.source == est.calibration_.threshold().source
    loaded = ClusterLearner.load(est.save(tmp_path / "l1.kfree"))
    assert loaded.calibration_.to_dict() == est.calibration_.to_dict()
    hac = loaded.cluster(Xte)
    mc = loaded.cluster(Xte, method="multicut")
    assert abs(len(np.unique(hac)) - 8) <= 1
    assert abs(len(np.unique(mc)) - 8) <= 1 and nmi(yte, mc) > 0.9


def test_multicut_cuts_by_the_pair_model_of_the_held_out_identities(tmp_path):
    """multicut weighs each pair by p(different | d) fitted on the held-out pairs; the chosen
    complete-linkage cut (a cluster's diameter) as its threshold joined neighbouring identities
    (7 clusters for 10 here, NMI 0.90)."""
    X, y = sphere_blobs(30, 12, dim=6, spread=0.3, seed=0)
    seen = y < 20
    est = ClusterLearner(TrainConfig(epochs=3, p=6, k=5, dims=(16, 8), seed=0)).fit(X[seen], y[seen])
    assert est.pair_calibration_ is not None and est.pair_model() is est.pair_calibration_
    assert est.pair_calibration_.threshold().value > 0
    mc = est.cluster(X[~seen], method="multicut")
    assert abs(len(np.unique(mc)) - 10) <= 1 and nmi(y[~seen], mc) > 0.98
    loaded = ClusterLearner.load(est.save(tmp_path / "m.kfree"))
    assert loaded.pair_calibration_.to_dict() == est.pair_calibration_.to_dict()
    np.testing.assert_array_equal(loaded.cluster(X[~seen], method="multicut"), mc)
    # an explicit threshold still wins over the pair model
    one = est.cluster(X[~seen], method="multicut", threshold=1e-9)
    assert len(np.unique(one)) == int((~seen).sum())


def test_transform_sha256_changes_with_anything_that_changes_the_transform(tmp_path):
    """What kfree assign accepts a retrained model by: equal for a save/load round trip, other for
    other weights and for a head setting outside them (an MLP head's normalize: a review)."""
    X, y = sphere_blobs(8, 10, dim=6, spread=0.3, seed=0)
    est = ClusterLearner(TrainConfig(epochs=2, p=4, k=5, dims=(8,), seed=0), head="mlp", compare_raw=False).fit(X, y)
    sha = est.transform_sha256()
    assert ClusterLearner.load(est.save(tmp_path / "m.kfree")).transform_sha256() == sha
    before = est.transform(X)
    est.model_.normalize = not est.model_.normalize
    assert not np.allclose(est.transform(X), before) and est.transform_sha256() != sha
    est.model_.normalize = not est.model_.normalize
    with torch.no_grad():
        next(est.model_.parameters()).add_(1e-3)
    assert est.transform_sha256() != sha


def test_a_number_threshold_is_in_the_chosen_rules_units_for_every_method():
    """Found by a research trial: with a Ward rule chosen (Euclidean merge heights), cluster(method=
    'multicut', threshold=0.7746) read the paper's Euclidean τ as a squared distance (19 clusters, ACC
    0.43, against 36 and 0.56 with the Threshold), while method='hac' read it as Euclidean."""
    from kfree.cluster import MulticutClustering
    from kfree.threshold import Threshold

    X, y = sphere_blobs(30, 12, dim=6, spread=0.3, seed=0)
    seen = y < 20
    est = ClusterLearner(TrainConfig(epochs=2, p=6, k=5, dims=(16, 8), seed=0), linkage="ward").fit(X[seen], y[seen])
    unit = est.threshold_.distance
    assert est.rule_.linkage == "ward" and unit == "euclidean" != est.rule_for("multicut").threshold.distance
    Z = est.transform(X[~seen])
    tau = float(np.median(np.sqrt(((Z[:40, None] - Z[None, :40]) ** 2).sum(-1))))  # a cut where units matter
    got = est.cluster(X[~seen], method="multicut", threshold=tau)
    np.testing.assert_array_equal(got, est.cluster(X[~seen], method="multicut", threshold=Threshold(tau, unit)))
    np.testing.assert_array_equal(got, MulticutClustering(threshold=Threshold(tau, unit)).fit_predict(Z))
    assert not np.array_equal(got, MulticutClustering(threshold=Threshold(tau, "sqeuclidean")).fit_predict(Z))


def test_noisy_triplet_sampler_through_the_learner(blobs):
    Xtr, ytr, Xva, yva, *_ = blobs
    est = ClusterLearner.from_params(loss="triplet-l3", dims=(16,), epochs=2, sampler="triplets", triplets_per_batch=30,
                             wrong_positives=0.1, wrong_negatives="random", seed=0, **PAPER)
    est.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert est.provenance_["train_config"]["wrong_negatives"] == "random"
    assert est.threshold_.distance == "euclidean"
    with pytest.raises(ValueError, match="calibration"):
        ClusterLearner.from_params(calibration="magic").fit(Xtr, ytr)


def test_one_train_config_and_the_flat_spellings_agree(blobs):
    from kfree import TrainConfig
    from kfree.exceptions import ConfigError
    from kfree.learner import BallClusterLearner

    Xtr, ytr, Xva, yva, Xte, _ = blobs
    cfg = TrainConfig(dims=(16,), epochs=2, p=6, k=4, seed=1)
    a = ClusterLearner(cfg, linkage="complete").fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert a.get_params()["train"] is cfg  # one config object, as given (sklearn's clone relies on it)
    b = ClusterLearner.from_params(dims=(16,), epochs=2, p=6, k=4, seed=1, linkage="complete")
    assert b.train == cfg and b.linkage == "complete"
    with pytest.warns(DeprecationWarning, match="use ClusterLearner"):
        old = BallClusterLearner(dims=(16,), epochs=2, p=6, k=4, seed=1, linkage="complete")
    assert old.train == cfg and isinstance(old, ClusterLearner)
    old.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    np.testing.assert_array_equal(old.transform(Xte), a.transform(Xte))
    with pytest.raises(ConfigError, match=r"unknown learner parameter\(s\) \['epoch'\]"):
        ClusterLearner.from_params(epoch=3)
    with pytest.raises(ConfigError, match="train must be a kfree.config.TrainConfig"):
        ClusterLearner({"epochs": 3}).fit(Xtr, ytr)


def test_the_model_file_is_a_checkpoint_that_never_runs_code(fitted, tmp_path):
    from kfree.exceptions import ModelError
    from kfree.utils.checkpoint import read_checkpoint_config, save_checkpoint

    learner, _ = fitted
    path = learner.save(tmp_path / "m.kfree")
    config = read_checkpoint_config(path)
    assert config["kind"] == "kfree-model/3" and config["params"]["train"]["seed"] == 3
    save_checkpoint(tmp_path / "ckpt.pt", {"x": torch.zeros(1)}, config={"epochs": 1})
    with pytest.raises(ModelError, match="not a kfree model file"):
        ClusterLearner.load(tmp_path / "ckpt.pt")
    torch.save({"format": "kfree-model/2", "params": {}, "evil": ClusterLearner()}, tmp_path / "evil.kfree")
    with pytest.raises(ModelError, match="not a kfree model file"):
        ClusterLearner.load(tmp_path / "evil.kfree")
    # valid checkpoints with damaged contents: one ModelError each (these were raw tracebacks, or
    # a rule that silently clustered the embedding)
    from kfree.utils.checkpoint import load_checkpoint

    state = load_checkpoint(path, allow_legacy=True)
    damaged = {"history": lambda s: s.pop("history"), "provenance": lambda s: s.update(provenance=[1]),
               "model_config": lambda s: s.update(model_config=None),
               "features": lambda s: s["selection"]["chosen"].update(features="zzz")}
    for name, spoil in damaged.items():
        bad = load_checkpoint(path, allow_legacy=True)
        spoil(bad)
        save_checkpoint(tmp_path / f"{name}.kfree", bad, config=config)
        with pytest.raises(ModelError, match="damaged kfree model file"):
            ClusterLearner.load(tmp_path / f"{name}.kfree")
    torch.save({**state, "format": "kfree-model/2", "params": [1, 2]}, tmp_path / "list.kfree")
    with pytest.raises(ModelError, match="damaged kfree model file"):
        ClusterLearner.load(tmp_path / "list.kfree")
    save_checkpoint(tmp_path / "newer.kfree", state, config={**config, "kind": "kfree-model/4"})
    with pytest.raises(ModelError, match=r"written by a newer kfree \(format kfree-model/4"):
        ClusterLearner.load(tmp_path / "newer.kfree")
    # a newer checkpoint container too (an operations trial: "not a kfree model file")
    import kfree.utils.checkpoint as ckpt

    payload = torch.load(tmp_path / "newer.kfree", weights_only=True)
    torch.save({**payload, "format": "kfree-checkpoint/9"}, tmp_path / "container.kfree")
    with pytest.raises(ModelError, match=r"^container.kfree was written by a newer kfree \(format kfree-checkpoint/9; "
                                         rf"this kfree reads {ckpt.FORMAT}\); upgrade kfree to read it$"):
        ClusterLearner.load(tmp_path / "container.kfree")
    # a newer kfree that only added options keeps the format name: its file names the options
    # this kfree does not know, instead of being called damaged; written by this very version,
    # such a file is damaged
    newer = {**state, "provenance": {**state["provenance"], "versions": {"kfree": "9.9.9"}}}
    for extra in ({"train": {**config["params"]["train"], "warmup": 3}}, {"temperature": 0.5}):
        cfg = {**config, "params": {**config["params"], **extra}}
        save_checkpoint(tmp_path / "added.kfree", newer, config=cfg)
        with pytest.raises(ModelError, match=r"options this kfree .* does not know \((train\.)?(warmup|temperature);"
                                             r" written by kfree 9.9.9\): .*upgrade kfree"):
            ClusterLearner.load(tmp_path / "added.kfree")
        save_checkpoint(tmp_path / "same.kfree", state, config=cfg)
        with pytest.raises(ModelError, match=r"damaged kfree model file \(options"):
            ClusterLearner.load(tmp_path / "same.kfree")
    odd = {**newer, "provenance": {**state["provenance"], "versions": "1.0"}}  # not a mapping: no traceback
    save_checkpoint(tmp_path / "odd.kfree", odd, config=cfg)
    with pytest.raises(ModelError, match="written by kfree unknown"):
        ClusterLearner.load(tmp_path / "odd.kfree")


def test_counts_and_rates_are_checked_where_configured():
    """Found by review: epochs=2.5 or eval_every_steps=2.5 passed and failed deep inside (or
    validated every 5 steps), select_best="no" kept selection on, dims=[8.5] became 8, NaN or
    infinite lr, weight decay and BCL settings trained on into NaN losses or a raw traceback."""
    from kfree.losses.ball_cluster import BallClusterLoss

    assert TrainConfig(epochs=2.0, dims=np.array([8, 4])).epochs == 2  # whole numbers, NumPy's too
    bad = [dict(epochs=2.5), dict(eval_every_steps=2.5), dict(p=3.5), dict(batches_per_epoch=0.5),
           dict(select_best="no"), dict(dims=[8.5]), dict(lr=float("inf")), dict(lr=float("nan")),
           dict(weight_decay=float("nan")), dict(dropout=float("nan")), dict(epochs=True)]
    for kw in bad:
        with pytest.raises(ConfigError, match=next(iter(kw))):
            TrainConfig(**kw)
    for kw in (dict(eps=float("nan")), dict(alpha_pos=float("inf")), dict(init_h="abc"),
               dict(radius_lr_scale=float("nan")), dict(alpha_pos=0, alpha_neg=0)):
        with pytest.raises(ConfigError):
            BallClusterLoss(**kw)
    # a radius that training shrank below float32 is the smallest cut, not an error at validation
    collapsed = BallClusterLoss(init_h=-200.0)
    assert float(collapsed.radius_sq().detach()) == 0.0 and 0 < collapsed.implied_threshold().value < 1e-300


def test_scikit_learn_habits_found_by_review(blobs, fitted):
    """Nested set_params (GridSearchCV, Pipeline) reached TrainConfig and failed in scikit-learn;
    TrainConfig.replace(patience=None) kept 5; three identities skipped validation without a
    word; cluster(n_clusters=2.5) gave 2 clusters."""
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert TrainConfig(patience=5).replace(patience=None).patience is None
    est = ClusterLearner(TrainConfig(epochs=3)).set_params(train__epochs=5, train__patience=None, head="mlp")
    assert (est.train.epochs, est.train.patience, est.head) == (5, None, "mlp")
    assert clone(est).train == est.train
    pipe = make_pipeline(StandardScaler(), ClusterLearner()).set_params(clusterlearner__train__lr=0.01)
    assert pipe[-1].train.lr == 0.01
    with pytest.raises(ConfigError, match=r"unknown training option\(s\) \['epoch'\]"):
        ClusterLearner().set_params(train__epoch=3)
    with pytest.raises(ConfigError, match="epochs=2.5"):
        ClusterLearner().set_params(train__epochs=2.5)
    with pytest.raises(ConfigError, match="train must be a kfree.config.TrainConfig"):
        ClusterLearner(train={"epochs": 3}).set_params(train__lr=0.1)
    Xtr, ytr, *_ = blobs
    three = np.isin(ytr, [0, 1, 2])
    with pytest.warns(DataWarning, match="only 3 identities: none held out for validation"):
        few = ClusterLearner(TrainConfig(dims=(8,), epochs=1, p=3, k=3)).fit(Xtr[three], ytr[three])
    assert "that needs 4 identities or more" in few.summary()
    learner, _ = fitted
    with pytest.raises(ConfigError, match="n_clusters=2.5 must be an int >= 1"):
        learner.cluster(Xtr, n_clusters=2.5)


def test_logistic_calibration_is_used_or_refused_never_ignored(blobs):
    """Found by review: with a loss that implies a threshold (BCL), calibration='logistic' was
    ignored without a word; its recalibrated cuts now use it, and where only the loss's own
    threshold is kept it is refused."""
    Xtr, ytr, Xva, yva, *_ = blobs
    quick = dict(dims=(8,), epochs=1, p=4, k=3, eval_every_steps=None, patience=None, calibration="logistic")
    est = ClusterLearner.from_params(**quick).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert est.calibration_ is not None
    recal = [c for c in est.selection_["candidates"]
             if c["features"] == "model" and c["linkage"] == "complete" and c["mode"] == "recalibrated"]
    assert recal and recal[0]["threshold"]["source"].startswith("logistic")
    with pytest.raises(ConfigError, match="calibration='logistic' fits the recalibrated cut"):
        ClusterLearner.from_params(**quick, threshold_mode="learned").fit(Xtr, ytr, X_val=Xva, y_val=yva)


def test_a_ward_cut_gives_way_on_clusters_far_smaller_or_larger_than_it_was_calibrated_on(monkeypatch):
    """Found by review: a Ward height grows with cluster sizes, so a cut calibrated on identities
    of ~12 rows put a batch of one row per identity into one cluster (and, found by a photo-library
    user, split 120 people of 167 rows each into 1,141 clusters). There the best validated
    complete-linkage cut clusters, with a warning."""
    import warnings

    import kfree.learner as learner_module
    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(40, 12, dim=16, spread=0.5, seed=3)
    seen = y < 30
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="auto").fit(X[seen], y[seen])
    learner.rule_ = learner._ward_rule()  # whichever won: the Ward candidate is what is checked here
    learner.selection_.pop("size_curve", None)  # the size check alone, as without a size curve
    assert learner.selection_["val_rows_per_identity"] == pytest.approx(12.0)
    Xt, yt = X[~seen], y[~seen]
    one_each = Xt[np.unique(yt, return_index=True)[1]]  # 10 rows, 10 identities
    Z = learner.transform(one_each)
    assert np.unique(learner.rule_.cluster(Z)).size < 10 // 2  # what Ward alone does to them
    with pytest.warns(ClusterSizeWarning, match="calibrated on identities of 12.0 rows") as caught:
        labels, applied = learner.cluster(one_each, return_rule=True)  # the rule says which cut was used
    assert caught[0].message.replaced
    assert applied == learner.state_rule() and applied.linkage == "complete"
    np.testing.assert_array_equal(labels, learner.state_rule().cluster(Z))
    with warnings.catch_warnings():  # drawn like the validation identities: Ward, no word
        warnings.simplefilter("error", ClusterSizeWarning)
        labels, applied = learner.cluster(Xt, return_rule=True)
        np.testing.assert_array_equal(labels, learner.rule_.cluster(learner.transform(Xt)))
        assert applied is learner.rule_
        assert learner.cluster(Xt, method="ward", return_rule=True)[1] is None  # the rule is hac's
    # far larger identities (ten times the rows): Ward would split them, its complete-linkage
    # counterpart is used (results/benchmarks/ward_size.md), also when the sizes are estimated
    # on a sample (above WARD_SIZE_CHECK_ROWS rows)
    many = np.repeat(Xt, 10, axis=0) + np.random.default_rng(0).normal(0, 1e-4, (Xt.shape[0] * 10, Xt.shape[1]))
    Zm = learner.transform(many)
    assert np.unique(learner.rule_.cluster(Zm)).size > 2 * np.unique(learner.state_rule().cluster(Zm)).size
    for check_rows, said in [(5_000, "rows per cluster"), (300, "(estimated on 300 of them)")]:
        monkeypatch.setattr(learner_module, "WARD_SIZE_CHECK_ROWS", check_rows)
        with pytest.warns(ClusterSizeWarning, match="would split identities with many more rows") as caught:
            labels, applied = learner.cluster(many, return_rule=True)
        assert caught[0].message.replaced and applied == learner.state_rule()
        assert check_rows == 5_000 or said in str(caught[0].message)
        np.testing.assert_array_equal(labels, learner.state_rule().cluster(Zm))


def test_a_ward_cut_calibrated_on_held_out_identities_is_read_at_the_batch_size(tmp_path, monkeypatch):
    """Found by a benchmark (results/benchmarks/held_out_size.md): without X_val the validation
    identities are held out of the training data and have its size, so the Ward cut calibrated on
    Banking77 intents of ~180 rows put 27 unseen intents of 20 rows into 11-13 clusters (NMI 0.65
    -0.69), and the size check let it pass. Such a model keeps a size curve and reads its Ward cut
    at the batch's rows per identity (0.85-0.87 there); validation rows the user gives keep it near
    their size."""
    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(30, 40, dim=16, spread=0.5, seed=3)
    seen = y < 20
    learner = ClusterLearner(TrainConfig(epochs=1, seed=0), linkage="ward").fit(X[seen], y[seen])
    assert learner._held_out_of_training() and learner.provenance_["n_val_identities"] == 4
    assert learner.selection_["size_curve"]["sizes"][-1] == 40
    assert "reads it at each batch's rows per identity, on a size curve" in learner.summary()
    other = copy.copy(learner)
    other.rule_ = dataclasses.replace(learner.rule_, linkage="complete")  # (a fine-tuned model's) reads no curve
    assert "size curve" not in other.summary()
    yt, Xt = y[~seen], X[~seen]
    small = np.concatenate([np.flatnonzero(yt == c)[:4] for c in np.unique(yt)])  # 10 identities of 4 rows
    without = copy.copy(learner)
    without.selection_ = {k: v for k, v in learner.selection_.items() if k != "size_curve"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert without.cluster(Xt[small]).max() + 1 <= 3  # the cut as calibrated merges them
    with pytest.warns(ClusterSizeWarning, match=r"of the training data \(no --validation\), of 40.0 rows each; these 40 "
                                                r"rows look like identities of 4.0 rows, so the Ward cut for that size "
                                                r"is used \(calibrated on those identities cut down to it\)"):
        labels, rule = learner.cluster(Xt[small], return_rule=True)
    assert nmi(yt[small], labels) == 1.0
    assert rule.linkage == "ward" and rule.threshold.is_ward_height and "read at 4.0 rows" in rule.threshold.source
    assert rule.threshold.value < learner.rule_.threshold.value
    # above WARD_SIZE_CHECK_ROWS rows the size comes from a seeded sample: the identities it shows are
    # counted into their size (rows_per_identity), not taken as the batch's clusters
    import kfree.learner as learner_module

    # (a sample of 100 of 600 rows of 3 each shows ~80 identities: 7.5 rows each, taken as its clusters)
    many, many_y = sphere_blobs(200, 3, dim=16, spread=0.5, seed=9)
    with monkeypatch.context() as m:
        m.setattr(learner_module, "WARD_SIZE_CHECK_ROWS", 100)
        with pytest.warns(ClusterSizeWarning, match=r"look like identities of [3-5]\.\d rows \(estimated on 100 of them\)"):
            assert nmi(many_y, learner.cluster(many)) > 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)  # at the held-out size: read there, no word
        np.testing.assert_array_equal(learner.cluster(Xt), without.cluster(Xt))
        assert nmi(yt, learner.cluster(Xt)) == 1.0
        # method="ward" keeps the cut as calibrated
        np.testing.assert_array_equal(learner.cluster(Xt[small], method="ward"), without.cluster(Xt[small], method="ward"))
    again = ClusterLearner.load(learner.save(tmp_path / "m.kfree"))  # the curve goes with the model
    assert again.selection_["size_curve"] == learner.selection_["size_curve"]
    with pytest.warns(ClusterSizeWarning):
        np.testing.assert_array_equal(again.cluster(Xt[small]), labels)
    # validation rows given (drawn like the data, as the README asks): the curve is read only for
    # identities under half their size, where the size check would use the complete-linkage cut
    va = (y >= 16) & seen
    given = ClusterLearner(TrainConfig(epochs=1, seed=0), linkage="ward").fit(X[seen & ~va], y[seen & ~va],
                                                                             X_val=X[va], y_val=y[va])
    assert "size_curve" in given.selection_ and "under half the validation ones' size (40 rows each)" in given.summary()
    given_without = copy.copy(given)
    given_without.selection_ = {k: v for k, v in given.selection_.items() if k != "size_curve"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)
        np.testing.assert_array_equal(given.cluster(Xt), given_without.cluster(Xt))
    with pytest.warns(ClusterSizeWarning, match=r"calibrated on the validation identities, of 40.0 rows each; these "
                                                r"40 rows look like identities of 4.0 rows"):
        assert nmi(yt[small], given.cluster(Xt[small])) == 1.0
    # a cut calibrated on fewer than SIZE_CURVE_MIN_IDENTITIES (7 here: raw features, 5 trained and 2
    # held out), or a complete-linkage rule: no curve
    few = ClusterLearner(TrainConfig(epochs=1, seed=0), linkage="ward").fit(X[y < 7], y[y < 7])
    complete = ClusterLearner(TrainConfig(epochs=1, seed=0), linkage="complete").fit(X[seen], y[seen])
    assert few.provenance_["n_val_identities"] == 2
    assert not any("size_curve" in m.selection_ for m in (few, complete))


def test_the_ward_size_check_compares_what_one_cut_finds_on_both_sides():
    """Found by a research trial: the check compared the rows per cluster of the complete-linkage
    cut on a batch with the validation identities' *true* size. Where that cut over-splits (10
    intents of 40 rows in 47 clusters), the validation rows themselves were called a mismatch, and
    the Ward cut chosen on them (NMI 0.961) gave way to the complete cut (0.786). The reference is
    now what that cut finds on the validation rows."""
    import warnings

    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(40, 12, dim=16, spread=0.5, seed=3)
    tr, va = y < 24, (y >= 24) & (y < 32)
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="auto").fit(X[tr], y[tr], X_val=X[va],
                                                                               y_val=y[va])
    learner.rule_ = learner._ward_rule()
    learner.selection_.pop("size_curve", None)  # the size check alone, as without a size curve
    k = int(learner.state_rule().cluster(learner.transform(X[va])).max()) + 1
    assert learner.selection_["val_complete_rows_per_cluster"] == pytest.approx(va.sum() / k)
    # identities three times the size of what that cut finds on them (as the trial's intents were)
    learner.selection_["val_rows_per_identity"] = 3 * va.sum() / k
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)
        labels, applied = learner.cluster(X[va], return_rule=True)
    assert applied is learner.rule_ and applied.linkage == "ward"
    # a model file from before the figure was stored: the identities' size is the reference, as it was
    del learner.selection_["val_complete_rows_per_cluster"]
    with pytest.warns(ClusterSizeWarning, match=r"would merge too much.* give kfree train --validation rows drawn like these \(X_val, y_val\)"):
        assert learner.cluster(X[va], return_rule=True)[1].linkage == "complete"


def test_a_batch_like_identities_held_out_of_training_but_far_from_their_size_is_warned_about():
    """Found by a ticket trial: without --validation, intents of 40 rows were clustered by a Ward cut
    calibrated on held-out intents of 130; the complete-linkage cut found ~75 rows per cluster on
    both (over-splitting the one, merging the other), so the batch passed as drawn like validation,
    and Ward gave 24 clusters for 71 intents without a word. Held out of the training data, the
    validation rows say nothing of the batch's sizes: such a batch is warned about (Ward kept)."""
    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(40, 12, dim=16, spread=0.5, seed=3)
    seen = y < 32
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="auto").fit(X[seen], y[seen])
    assert learner._held_out_of_training()
    learner.rule_ = learner._ward_rule()
    learner.selection_.pop("size_curve", None)  # the size check alone, as without a size curve
    batch = X[~seen]
    k = int(learner.state_rule().cluster(learner.transform(batch)).max()) + 1
    learner.selection_["val_complete_rows_per_cluster"] = batch.shape[0] / k  # what that cut found on validation
    learner.selection_["val_rows_per_identity"] = 3 * batch.shape[0] / k  # identities three times that
    with pytest.warns(ClusterSizeWarning, match=r"identities held out of the training data, no --validation\), so "
                                                r"the Ward cut is kept.*if their identities hold fewer rows"):
        assert learner.cluster(batch, return_rule=True)[1].linkage == "ward"


def test_a_ward_cut_kept_on_larger_identities_says_it_may_split_them():
    """Found by a ticket trial: validated on a random 15 % of tickets (16 rows per intent), Ward cut
    4,504 tickets of 77 intents into 250 clusters without a word: the complete-linkage cut found
    clusters of 2.06 times the validation identities' rows, under the 2.5 where it takes over (and
    where it scored lower). Ward is kept, with a warning, from 1.5 times (WARD_WARN_SIZE_RATIO)."""
    import warnings

    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(40, 12, dim=16, spread=0.5, seed=3)
    seen = y < 30
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="auto").fit(X[seen], y[seen])
    learner.rule_ = learner._ward_rule()
    learner.selection_.pop("size_curve", None)  # the size check alone, as without a size curve
    Xt = X[~seen]
    m_new = Xt.shape[0] / (int(learner.state_rule().cluster(learner.transform(Xt)).max()) + 1)
    learner.selection_.pop("val_complete_rows_per_cluster", None)
    learner.selection_["val_rows_per_identity"] = m_new / 2  # the batch's clusters twice the validation's
    with pytest.warns(ClusterSizeWarning, match="splits them into more clusters than there are identities") as caught:
        labels, applied = learner.cluster(Xt, return_rule=True)
    assert applied is learner.rule_ and not getattr(caught[0].message, "replaced", False)
    learner.selection_["val_rows_per_identity"] = m_new / 1.2  # within 1.5: no word
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)
        assert learner.cluster(Xt, return_rule=True)[1] is learner.rule_
    # a promise trial: identities of 0.30 the validation's size, estimated at 0.58 (that cut merges the
    # smaller ones too), and Ward found 12 clusters for 27 without a word: from under 0.7 it is said
    learner.selection_["val_rows_per_identity"] = m_new / 0.6
    with pytest.warns(ClusterSizeWarning, match=r"likely smaller .* may merge them into fewer clusters than there "
                                                r"are identities\. The Ward cut is kept .* --validation") as caught:
        assert learner.cluster(Xt, return_rule=True)[1] is learner.rule_
    assert not getattr(caught[0].message, "replaced", False)
    learner.selection_["val_rows_per_identity"] = m_new / 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)
        assert learner.cluster(Xt, return_rule=True)[1] is learner.rule_


def test_a_complete_linkage_cut_says_when_the_clusters_are_far_larger_than_its_validation_identities():
    """Found by a user trial: a labelled 10 % of each product's photos was the validation, so the
    complete-linkage cut was calibrated on identities of ~10 rows, and products of 500 photos came
    out in 3-9 clusters without a word. The cut is used as validated, and the warning says why
    it may split (by the size of the cluster an average row sits in: singletons do not hide it)."""
    import warnings

    from kfree.exceptions import ClusterSizeWarning

    X, y = sphere_blobs(40, 6, dim=16, spread=0.3, seed=3)
    seen = y < 30
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="complete").fit(X[seen], y[seen])
    assert learner.selection_["val_rows_per_row_identity"] == pytest.approx(6.0)
    Xt = X[~seen]
    with warnings.catch_warnings():  # drawn like the validation identities: no word
        warnings.simplefilter("error", ClusterSizeWarning)
        small = learner.cluster(Xt)
    rng = np.random.default_rng(0)
    large = np.repeat(Xt, 10, axis=0) + rng.normal(0, 1e-4, (Xt.shape[0] * 10, Xt.shape[1]))  # 60 rows each
    large = np.vstack([large, sphere_blobs(30, 1, dim=16, spread=0.3, seed=9)[0]])  # and 30 singletons
    with pytest.warns(ClusterSizeWarning, match=r"a row's cluster holds \d+ rows on average, a validation row's "
                                                r"identity 6. Either these rows hold larger identities.*; or the cut "
                                                r"merged identities"):
        labels = learner.cluster(large)
    np.testing.assert_array_equal(labels, learner.rule_.cluster(learner.transform(large)))  # used as validated
    assert small.size == Xt.shape[0]


def test_the_sampled_size_check_counts_identities_not_sample_clusters(monkeypatch):
    """Found by review: above WARD_SIZE_CHECK_ROWS the check took n over the sample's cluster
    count as the rows per identity, so identities of 3 rows in 45,000 were called 10 rows and a
    correct Ward cut was replaced. The sample's count is corrected for the identities it misses
    or sees once; a check that does not fit in memory keeps Ward, saying so."""
    import warnings

    import kfree.learner as learner_module
    from kfree.exceptions import ClusterSizeWarning, ResourceError
    from kfree.learner import rows_per_identity

    for m in (1, 3, 10, 167):
        k = round(45_000 / m * (1 - (1 - 5_000 / 45_000) ** m))  # identities a 5,000-row sample shows
        assert rows_per_identity(45_000, k, 5_000) == pytest.approx(m, rel=0.02)
    assert 45_000 / round(45_000 / 3 * (1 - (8 / 9) ** 3)) > 10  # (what n/k said)
    X, y = sphere_blobs(60, 4, dim=16, spread=0.3, seed=4)  # 4 rows per identity, as validation's
    seen = y < 30
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="auto").fit(X[seen], y[seen])
    learner.rule_ = learner._ward_rule()
    learner.selection_.pop("size_curve", None)  # the size check alone, as without a size curve
    Z = learner.transform(X[~seen])
    monkeypatch.setattr(learner_module, "WARD_SIZE_CHECK_ROWS", 60)  # half of the 120 rows: sampled
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterSizeWarning)
        np.testing.assert_array_equal(learner.cluster(X[~seen]), learner.rule_.cluster(Z))  # Ward, no word

    class NoRoom:
        def cluster(self, Z, **kw):
            raise ResourceError("threshold HAC would need ~9 GiB; lower the threshold")

    monkeypatch.setattr(learner, "state_rule", lambda: NoRoom())
    with pytest.warns(ClusterSizeWarning, match="did not fit in memory, so the Ward cut is used unchecked"):
        np.testing.assert_array_equal(learner.cluster(X[~seen]), learner.rule_.cluster(Z))


def test_a_dataframe_fit_keeps_its_column_names_through_save_and_load(tmp_path):
    import pandas as pd

    X, y = sphere_blobs(12, 8, dim=6, spread=0.3, seed=0)
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(6)])
    learner = ClusterLearner(TrainConfig(epochs=1, seed=0)).fit(df, y)
    assert list(learner.feature_names_in_) == list(df.columns)
    again = ClusterLearner.load(learner.save(tmp_path / "m.kfree"))
    assert list(again.feature_names_in_) == list(df.columns)
    with pytest.raises(DataError, match=r"it has \['d0'\] that it was not, lacks \['c0'\]"):
        again.transform(df.rename(columns={"c0": "d0"}))
    # arrays are taken as they are, with scikit-learn's warning (a trial passed the columns reversed, unwarned)
    from kfree.exceptions import FeatureNamesWarning

    with pytest.warns(FeatureNamesWarning, match=r"X has no column names, but ClusterLearner was fitted on a "
                                                 r"DataFrame with them \(c0, c1, c2, c3, …\): its columns are taken"):
        np.testing.assert_array_equal(again.cluster(df), learner.cluster(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DataFrame of the trained columns: nothing to say
        again.transform(df)
    assert not hasattr(learner.fit(X, y), "feature_names_in_")  # refitted on an array: no names
    # ... and a DataFrame's names then mean nothing to it, which it says, as scikit-learn does (a trial)
    with pytest.warns(FeatureNamesWarning, match=r"X has feature names, but ClusterLearner was fitted without "
                                                 r"feature names: its columns are taken by position"):
        learner.transform(df.iloc[:, ::-1])


def test_with_fewer_than_4_validation_identities_the_reason_says_why_the_model_cannot_count():
    """Found by review: with 2 validation identities the summary quoted the model's in-sample NMI
    1.000 against the raw features' 0.000, then used the raw rule, without saying why."""
    X, y = sphere_blobs(5, 6, dim=8, spread=0.3, seed=0)
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0)).fit(X, y)  # 2 of 5 identities held out
    assert learner.uses_raw_
    assert all(c["extra"].get("in_sample") for c in learner.selection_["candidates"]
               if c["features"] == "model" and c["mode"] == "recalibrated")
    reason = learner.summary()
    assert "with 2 validation identities there are no halves" in reason and "in-sample" in reason, reason
    assert "ranked on the training and validation identities together" in reason, reason
    # no fair contest was possible, so none is claimed lost (a promise trial)
    assert "are used, as the learned model could not be compared with them fairly:" in reason and "did NOT beat" not in reason, reason


@pytest.mark.parametrize("chosen", ["complete", "ward"])
def test_cluster_keeps_must_link_and_cannot_link_pairs(chosen):
    """Frames of one track must share a cluster, tracks seen together must not: the chosen rule
    cuts with the pairs (a Ward rule gives way to its complete-linkage cut, with a warning)."""
    import warnings

    from kfree.exceptions import ParameterConflictWarning

    X, y = sphere_blobs(30, 10, dim=16, spread=0.3, seed=2)
    seen = y < 22
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0)).fit(X[seen], y[seen])
    learner.rule_ = learner._ward_rule() if chosen == "ward" else learner.state_rule()
    Xt, yt = X[~seen], y[~seen]
    a, b = np.flatnonzero(yt == yt[0])[:2], np.flatnonzero(yt != yt[0])[0]
    must, cannot = np.array([[a[0], b]]), np.array([[a[0], a[1]]])  # join two people, split one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels, applied = learner.cluster(Xt, must_link=must, cannot_link=cannot, return_rule=True)
    assert labels[a[0]] == labels[b] and labels[a[0]] != labels[a[1]]
    said = [w for w in caught if issubclass(w.category, ParameterConflictWarning)]
    assert bool(said) == (chosen == "ward")
    rule = learner.state_rule()
    assert applied == rule
    np.testing.assert_array_equal(labels, rule.cluster(learner.transform(Xt), must_link=must, cannot_link=cannot))
    with pytest.raises(ConfigError, match="must_link/cannot_link are for method='hac'"):
        learner.cluster(Xt, method="multicut", must_link=must)


def test_a_model_whose_loss_is_not_registered_here_is_not_called_damaged(tmp_path, monkeypatch):
    """Found by a newcomer: a model trained with a plugin's loss, loaded where that plugin is not
    imported, was "a damaged kfree model file"; the file is whole, its loss is not known here."""
    from kfree import registry
    from kfree.exceptions import ModelError

    X, y = sphere_blobs(6, 6, dim=8, spread=0.3, seed=0)
    path = ClusterLearner(TrainConfig(epochs=1, seed=0)).fit(X, y).save(tmp_path / "m.kfree")
    entries = dict(registry._entries("loss"))
    entries.pop("bcl")
    monkeypatch.setitem(registry._REGISTRY, "loss", entries)
    with pytest.raises(ModelError, match="^m.kfree was trained with loss 'bcl', which this kfree does not know: "
                                         "import") as caught:  # (the whole message: it had been wrapped as damage)
        ClusterLearner.load(path)
    assert "damaged" not in str(caught.value)


def test_x_val_on_another_scale_than_x_is_warned_about():
    """Found by a notebook user: in a Pipeline(StandardScaler(), ClusterLearner()), X_val passed as
    a fit parameter skips the scaler, and every cut was calibrated in the wrong units (1,290
    clusters for 75 people), silently."""
    import warnings

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kfree.exceptions import DataWarning

    X, y = sphere_blobs(16, 8, dim=6, spread=0.3, seed=0)
    X = 50.0 * X + 20.0  # raw units far from the scaler's
    seen = y < 12
    pipe = make_pipeline(StandardScaler(), ClusterLearner(TrainConfig(epochs=1, seed=0)))
    with pytest.warns(DataWarning, match=r"X_val is on another scale than X .* pipeline\[:-1\]\.transform\(X_val\)"):
        pipe.fit(X[seen & (y < 8)], y[seen & (y < 8)], clusterlearner__X_val=X[seen & (y >= 8)],
                 clusterlearner__y_val=y[seen & (y >= 8)])
    Xv = pipe[:-1].transform(X[seen & (y >= 8)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # transformed: no word
        pipe.fit(X[seen & (y < 8)], y[seen & (y < 8)], clusterlearner__X_val=Xv, clusterlearner__y_val=y[seen & (y >= 8)])


def test_rows_of_another_length_than_the_training_rows_are_warned_about(tmp_path, blobs, fitted):
    """An embeddings trial's rows ×3 were 1,810 clusters for 99 people without a word: rows whose
    median length lies outside the training rows' are said by cluster, transform and embed, also
    after save and load; rows of the training kind are not."""
    learner, _ = fitted
    Xte = blobs[4]
    loaded = ClusterLearner.load(learner.save(tmp_path / "m.kfree"))
    lo, hi = loaded.provenance_["row_lengths"]
    assert 0 < lo <= hi
    for model in (learner, loaded):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.cluster(Xte), model.transform(Xte), model.embed(Xte)
        for scaled in (Xte * 3, Xte / 3):
            for call in (model.cluster, model.transform, model.embed):
                with pytest.warns(DataWarning, match=r"the rows' median length is .*, outside the training rows' "
                                                     r".* \(L2-normalise both, or neither\)") as got:
                    call(scaled)
                assert got[0].filename == __file__, (call, got[0].filename)  # (points at the caller's line)
    del loaded.provenance_["row_lengths"]  # a model saved before kfree kept the range: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.transform(Xte * 3)


def test_cluster_refuses_arguments_it_would_drop():
    """Found by a notebook user: a threshold beside n_clusters, or for k-means, was dropped
    silently, and rule_for('bogus') returned a rule."""
    X, y = sphere_blobs(12, 8, dim=6, spread=0.3, seed=0)
    learner = ClusterLearner(TrainConfig(epochs=1, seed=0)).fit(X[y < 8], y[y < 8])
    with pytest.raises(ConfigError, match="threshold=0.5 and n_clusters=5 both decide where the clusters end"):
        learner.cluster(X[y >= 8], n_clusters=5, threshold=0.5)
    with pytest.raises(ConfigError, match="threshold \\(--threshold\\) does not apply to method 'xmeans'"):
        learner.cluster(X[y >= 8], method="xmeans", threshold=1.0)
    with pytest.raises(ConfigError, match="unknown cluster 'bogus'"):
        learner.rule_for("bogus")
    with pytest.raises(ConfigError, match="method 'kmeans' takes no threshold, so no rule of the model"):
        learner.rule_for("kmeans")  # (it returned a pair-distance rule k-means never cuts at)
    assert learner.rule_for("multicut").linkage != "ward"  # (a pair-distance rule)


def test_x_val_scaled_while_x_is_raw_is_warned_about_too():
    from kfree.exceptions import DataWarning

    X, y = sphere_blobs(16, 8, dim=6, spread=0.3, seed=0)
    X = 50.0 * X  # raw; X_val standardised by hand
    tr, va = y < 8, (y >= 8) & (y < 12)
    Xv = (X[va] - X[tr].mean(0)) / X[tr].std(0)
    with pytest.warns(DataWarning, match="X_val is on another scale than X"):
        ClusterLearner(TrainConfig(epochs=1, seed=0)).fit(X[tr], y[tr], X_val=Xv, y_val=y[va])


def test_the_scale_check_is_quiet_on_float16_and_constant_columns():
    """Found by review: float16 sums overflowed (a spread of inf read as 0), and columns constant
    on either side (padding, a word absent from the validation texts) dragged the median to 0."""
    import warnings

    from kfree.learner import _warn_other_scale

    X, y = sphere_blobs(20, 40, dim=8, spread=0.3, seed=0)
    X = X + 3 + np.random.default_rng(0).normal(size=X.shape)
    pad = np.zeros((X.shape[0], 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = np.tile(X, (50, 1)).astype(np.float16)  # 40,000 rows: float16 sums pass 65,504
        _warn_other_scale(big, X[y >= 15].astype(np.float16), 5)
        _warn_other_scale(np.hstack([X[y < 15], pad[y < 15]]), np.hstack([X[y >= 15], pad[y >= 15]]), 5)


def test_a_constructor_threshold_a_method_does_not_use_is_said():
    import warnings

    from kfree.exceptions import ParameterConflictWarning

    X, y = sphere_blobs(12, 8, dim=6, spread=0.3, seed=0)
    learner = ClusterLearner(TrainConfig(epochs=1, seed=0), threshold=0.5).fit(X[y < 8], y[y < 8])
    with pytest.warns(ParameterConflictWarning, match="threshold=0.5 is not used: n_clusters=4 decides the cut"):
        learner.cluster(X[y >= 8], n_clusters=4)
    with pytest.warns(ParameterConflictWarning, match="method 'xmeans' cuts at no threshold"):
        learner.cluster(X[y >= 8], method="xmeans")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParameterConflictWarning)
        learner.cluster(X[y >= 8])  # (hac uses it)


def test_a_stopped_fit_resumes_from_its_checkpoint_to_the_model_of_an_uninterrupted_one(tmp_path):
    """An operations trial: a stopped kfree train started again from step 0 (the trainer could
    resume, but neither ClusterLearner nor the CLI gave it a checkpoint)."""
    X, y = sphere_blobs(12, 10, dim=8, spread=0.3, seed=0)
    cfg = TrainConfig(epochs=6, seed=0, eval_every_steps=2, patience=100)
    straight = ClusterLearner(cfg).fit(X, y)

    class Stop(Exception):
        pass

    def stop_at_3(step, completed=0, **_):
        if step == "train" and completed == 3:
            raise Stop

    ckpt = tmp_path / "run.checkpoint"
    with pytest.raises(Stop):
        ClusterLearner(cfg).fit(X, y, checkpoint=ckpt, hook=stop_at_3)
    assert ckpt.is_file()
    seen = []
    resumed = ClusterLearner(cfg).fit(X, y, checkpoint=ckpt, hook=lambda step, completed=0, **_: seen.append(completed))
    assert seen == [3, 4, 5, 6]  # epochs 1-2, saved before the stop in epoch 3, were not trained again
    a, b = straight.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed.best_step_ == straight.best_step_
    assert resumed.threshold_ == straight.threshold_
    from kfree.exceptions import CheckpointError

    with pytest.raises(CheckpointError, match="was written by another run"):
        ClusterLearner(cfg).fit(X[:-10], y[:-10], checkpoint=ckpt)


def test_a_method_cutting_in_units_of_its_own_gets_the_cut_with_its_kind(blobs, fitted, monkeypatch,
                                                                         own_units_method):
    """Found by a contributor trial: a registered method that declares "threshold" but not
    "distance" (it cuts in units of its own, as CONTRIBUTING.md says) was given the model's cut as a
    bare number in squared units and read it in its own (ARI 0.52 against the cut meant)."""
    from kfree.threshold import Threshold

    learner, _ = fitted
    OwnUnits = own_units_method
    seen = []
    real_fit = OwnUnits.fit
    monkeypatch.setattr(OwnUnits, "fit", lambda self, X, y=None: seen.append(self) or real_fit(self, X))
    learner.cluster(blobs[4], method="_test-own-units")
    rule = learner.rule_for("_test-own-units").threshold
    assert seen[-1].threshold_.value == pytest.approx(rule.to("euclidean").value)
    learner.cluster(blobs[4], method="_test-own-units", threshold=0.25)  # an override: in the rule's units
    assert seen[-1].threshold_.value == pytest.approx(Threshold(0.25, rule.distance).to("euclidean").value)


def test_a_threshold_object_keeps_its_kind_until_the_clusterer_and_the_constructor_refuses_one(blobs, fitted,
                                                                                               monkeypatch):
    """A review: a Threshold passed with method='multicut' to a Ward model was reduced to a number
    in the Ward rule's units and measured in squared ones (222 clusters for 20); and
    ClusterLearner(threshold=Threshold(...)) fitted, then failed in threshold_, summary and save."""
    from kfree import registry
    from kfree.threshold import Threshold

    learner, _ = fitted
    t = Threshold(0.8, "euclidean")
    told = {}
    real = registry.get

    def spy(kind, name, **kw):
        told.update(kw)
        return real(kind, name, **kw)

    monkeypatch.setattr(registry, "get", spy)
    learner.cluster(blobs[4], method="multicut", threshold=t)
    assert told["threshold"] is t and told["distance"] == "euclidean"  # as MulticutClustering(t) alone measures
    Xtr, ytr, *_ = blobs
    with pytest.raises(ConfigError, match=r"the constructor's threshold is a number .* cluster\(threshold=\.\.\.\)"):
        ClusterLearner(threshold=Threshold(1.0, "sqeuclidean")).fit(Xtr, ytr)


def test_the_progress_hook_gets_each_epoch_s_own_mean_loss(blobs):
    """A notebook trial: the hook was handed the latest history row's loss, NaN in the first epochs
    (no evaluation step yet) and then the same value over several epochs."""
    Xtr, ytr, *_ = blobs
    calls = []
    learner = ClusterLearner(TrainConfig(epochs=4, eval_every_steps=1000, seed=0)).fit(
        Xtr, ytr, hook=lambda stage, **s: calls.append((stage, s)))
    assert [s["completed"] for _, s in calls] == [1, 2, 3, 4] and {stage for stage, _ in calls} == {"train"}
    losses = [s["loss"] for _, s in calls]
    assert all(np.isfinite(losses)) and len(set(losses)) == 4, losses
    assert losses[-1] == pytest.approx(learner.history_[-1]["loss"])
    # the latest validation scores come with the rule they are of (here step 0's: the next validation
    # is the last step's, after the last epoch's call)
    assert calls[-1][1]["val_rule"] == learner.history_[0]["val_rule"]
    assert calls[-1][1]["val_nmi"] == learner.history_[0]["val_nmi"]


def test_loading_a_model_leaves_torch_s_random_stream_alone(tmp_path, blobs):
    """A web-service trial: building the head (and a softmax loss's class weights) before the saved
    weights replace them drew from torch's global generator, so each model reload moved the
    service's own random stream."""
    Xtr, ytr, *_ = blobs
    for loss in ("bcl", "softmax"):
        path = ClusterLearner(TrainConfig(loss=loss, epochs=1, seed=0)).fit(Xtr, ytr).save(tmp_path / f"{loss}.kfree")
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        ClusterLearner.load(path)
        assert torch.equal(torch.random.get_rng_state(), before), loss


def test_finetune_on_pairs_keeps_the_head_only_where_held_out_pairs_say_it_is_better(tmp_path, monkeypatch):
    """The BCL paper's BCL-FT on a user's own rows (in the reproductions only before; two research
    trials looked for it): a copy fine-tuned on must-link / cannot-link pairs at the frozen cut,
    kept only where it puts more held-out pairs on their side than the head it started from."""
    import kfree.train.finetune as ft
    from kfree.train.finetune import FinetuneConfig

    X, y = sphere_blobs(24, 12, dim=8, spread=0.45, seed=2)
    seen = y < 16
    est = ClusterLearner(TrainConfig(loss="bcl", epochs=2, p=4, k=6, dims=(16, 8), seed=0),
                         compare_raw=False).fit(X[seen], y[seen])
    Xn, yn = X[~seen], y[~seen]
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(yn), (2, 600))
    must = np.stack([i, j], 1)[(yn[i] == yn[j]) & (i != j)]
    cannot = np.stack([i, j], 1)[yn[i] != yn[j]][:150]
    before = est.embed(Xn)
    tuned = est.finetune(Xn, must_link=must, cannot_link=cannot, config=FinetuneConfig(iterations=60))
    np.testing.assert_array_equal(est.embed(Xn), before)  # the learner itself is left as it was
    rec = tuned.finetune_
    assert rec["kept_finetuned_head"] == (rec["heldout_pairs_on_their_side_after"] > rec["heldout_pairs_on_their_side_before"])
    assert rec["n_heldout_must_link"] >= 1 and rec["n_heldout_cannot_link"] >= 1 and rec["iterations_run"] >= 1
    # must-links are held out by whole groups: no held-out pair is implied by trained ones through a row
    from kfree.learner import _held_out_pairs

    m_tr, m_ho, c_tr, c_ho = _held_out_pairs(np.unique(np.sort(must, 1), axis=0), cannot, 0.2, 0)
    assert not set(m_tr.ravel()) & set(m_ho.ravel()) and len(c_ho) == round(0.2 * len(cannot))
    assert rec["cut"]["source"].startswith("4b")  # BCL at its own threshold: BCL-FT, b frozen
    assert tuned.provenance_["finetune"] == rec
    again = ClusterLearner.load(tuned.save(tmp_path / "ft.kfree"))
    np.testing.assert_array_equal(again.embed(Xn), tuned.embed(Xn))
    assert again.provenance_["finetune"]["kept_finetuned_head"] == rec["kept_finetuned_head"]

    def ruin(model, *a, **k):  # a fine-tuning that makes the head worse is not kept
        import torch

        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        return {"iterations_run": 1}

    monkeypatch.setattr(ft, "finetune_head", ruin)
    kept = est.finetune(Xn, must_link=must, cannot_link=cannot)
    assert not kept.finetune_["kept_finetuned_head"]
    np.testing.assert_array_equal(kept.embed(Xn), before)

    def merge(model, *a, **k):  # every row one point: every must-link kept, every cannot-link broken (a review:
        import torch  # with no held-out cannot-link it was kept, and 8 identities became 1 cluster)

        model.forward = lambda x: torch.zeros(x.shape[0], 8)
        return {"iterations_run": 1}

    monkeypatch.setattr(ft, "finetune_head", merge)
    for few in (2, 3, len(cannot)):
        assert not est.finetune(Xn, must_link=must, cannot_link=cannot[:few]).finetune_["kept_finetuned_head"]
    with pytest.raises(DataError, match="2 or more distinct pairs of each kind"):
        est.finetune(Xn, must_link=must, cannot_link=cannot[:1])
    # a kept head of a Ward-chosen model clusters at the complete cut it was tuned for, also once saved (a review:
    # the file went back to the old head's Ward height)
    monkeypatch.undo()
    ward = copy.deepcopy(est)
    ward.rule_ = ward._ward_rule()
    ward.selection_ = {**ward.selection_, "chosen": ward.rule_.to_dict()}
    scores = iter([(0.5, 0.5), (0.6, 0.6)])
    monkeypatch.setattr(ft, "pair_shares", lambda *a: next(scores))
    tuned = ward.finetune(Xn, must_link=must, cannot_link=cannot, config=FinetuneConfig(iterations=5))
    assert tuned.finetune_["kept_finetuned_head"] and tuned.rule_.linkage == "complete"
    assert ClusterLearner.load(tuned.save(tmp_path / "w.kfree")).rule_.linkage == "complete"
    raw = ClusterLearner(TrainConfig(epochs=1, p=4, k=6, seed=0)).fit(X[seen], y[seen])
    if raw.uses_raw_:
        with pytest.raises(ConfigError, match="clusters the raw features"):
            raw.finetune(Xn, must_link=must, cannot_link=cannot)


def test_a_selection_on_few_validation_identities_says_its_scores_are_noisy():
    """A ticket trial: 20 intents held out 4, halves of 2, whose NMIs (0.153 and 0.789) differed by far
    more than the rules they ranked, and nothing said so."""
    X, y = sphere_blobs(20, 10, dim=6, spread=0.3, seed=0)
    few = ClusterLearner(TrainConfig(epochs=1, p=4, k=5, seed=0), val_identities=4).fit(X, y)
    assert "each half holds 2 identities: scores of so few vary much" in few.summary()
    many = ClusterLearner(TrainConfig(epochs=1, p=4, k=5, seed=0), val_identities=8).fit(X, y)
    assert "vary much" not in many.summary()
