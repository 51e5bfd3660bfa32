"""Python-API defects a notebook user met (each of these was silent or pointed to the wrong fix)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kfree import ClusterLearner
from kfree.exceptions import ConfigError, ModelError


def test_a_montage_of_float_images_in_0_1_is_not_black(tmp_path):
    pytest.importorskip("matplotlib")
    from kfree.report.montage import _as_uint8, cluster_montage

    imgs = np.random.default_rng(0).random((12, 8, 8))  # floats in [0, 1]
    np.testing.assert_array_equal(_as_uint8(imgs[0]), (imgs[0] * 255).astype(np.uint8))
    assert _as_uint8(np.array([[300.0, -2.0]])).tolist() == [[255, 0]]
    assert cluster_montage(imgs, np.arange(12) % 3, tmp_path / "m.png").stat().st_size > 0


def test_ward_with_a_cosine_threshold_names_what_to_do():
    from kfree.cluster import WardThreshold
    from kfree.threshold import Threshold

    with pytest.raises(ConfigError, match="Ward cuts at a merge height in Euclidean units.*L2-normalise"):
        WardThreshold(Threshold(0.3, "cosine")).fit(np.random.default_rng(0).normal(size=(10, 3)))


def test_plot_of_an_unfitted_learner_says_not_fitted(tmp_path):
    pytest.importorskip("matplotlib")
    from sklearn.exceptions import NotFittedError

    from kfree.report.validation import plot_learner_validation

    with pytest.raises(NotFittedError):
        plot_learner_validation(ClusterLearner(), tmp_path / "v.png")


def test_a_pairwise_loss_without_b_gives_the_python_spelling():
    from kfree import registry

    with pytest.raises(ConfigError, match=r"TrainConfig\(loss_params=\{'b': 0.2\}\), or kfree train --loss-param b=0.2"):
        registry.get("loss", "bcl-ft")


def test_loading_a_foreign_pickle_leaks_no_torch_warning(tmp_path):
    import pickle

    (tmp_path / "x.joblib").write_bytes(pickle.dumps({"a": np.arange(3)}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Detected pickle protocol 4 …" would fail here
        with pytest.raises(ModelError):
            ClusterLearner.load(tmp_path / "x.joblib")


@pytest.mark.parametrize("compare_raw", [True, False])
def test_set_output_pandas_names_the_columns_and_cluster_still_works(compare_raw):
    """Found by a notebook user: help() listed set_output, which raised (no get_feature_names_out)."""
    import pandas as pd

    from kfree import TrainConfig
    from kfree.data.synthetic import sphere_blobs

    X, y = sphere_blobs(12, 8, dim=6, spread=0.3, seed=0)
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(6)])
    learner = ClusterLearner(TrainConfig(epochs=1, seed=0), compare_raw=compare_raw).fit(df[y < 8], y[y < 8])
    plain = learner.cluster(df[y >= 8])
    out = learner.set_output(transform="pandas").transform(df[y >= 8])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ([f"c{i}" for i in range(6)] if learner.uses_raw_ else
                                 [f"clusterlearner{i}" for i in range(out.shape[1])])
    np.testing.assert_array_equal(learner.cluster(df[y >= 8]), plain)  # (clustering reads arrays)


def test_multicut_checks_its_pair_model_and_edges():
    from kfree.cluster import MulticutClustering
    from kfree.exceptions import DataError

    X = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(ConfigError, match=r"cut_probability must give probabilities in \[0, 1\]"):
        MulticutClustering(cut_probability=lambda d: d * 100).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's exp overflow stayed inside
        MulticutClustering(cut_probability=(-5, 5)).fit(X)
    with pytest.raises(DataError, match="edge endpoints are node ids >= 0; got -1"):
        MulticutClustering().fit_graph(np.array([[0, -1]]), np.array([1.0]))


def test_a_stack_of_dark_float_images_on_the_0_255_scale_is_not_rescaled(tmp_path):
    pytest.importorskip("matplotlib")
    from kfree.report import montage

    seen = []
    real = montage._as_uint8
    imgs = np.random.default_rng(0).random((6, 4, 4)) * 200
    imgs[0] = 0.5  # a dark image: no pixel above 1, on the 0-255 scale like the rest
    try:
        montage._as_uint8 = lambda img, unit: seen.append(unit) or real(img, unit)
        montage.cluster_montage(imgs, np.arange(6) % 2, tmp_path / "m.png")
    finally:
        montage._as_uint8 = real
    assert seen and not any(seen)  # decided once for the stack: not the [0, 1] scale


def test_texts_given_for_their_embeddings_are_refused_in_one_short_line():
    """Found by a notebook trial: ClusterLearner.cluster(texts) raised a 38,742-character error that
    printed every ticket and advised reshape(-1, 1), which led to a third error; a DataFrame with
    its text column left in named neither the column nor the fix, and one with a label column of
    digit strings was clustered with the labels as a feature."""
    import pandas as pd

    from kfree.cluster import ThresholdAgglomerative
    from kfree.exceptions import DataTypeError

    texts = [f"ticket number {i} about my card that never arrived, " * 20 for i in range(300)]
    y = np.arange(300) % 3
    for X in (texts, np.array(texts), np.array(texts).reshape(-1, 1), [[t] for t in texts]):
        with pytest.raises(DataTypeError, match=r"^X: it holds text \('ticket number 0 about my card that never…'\); "
                                                r"kfree clusters numeric features: embed the texts first \(kfree"
                                                r".TextEncoder\(\).encode\(texts\)") as e:
            ClusterLearner().fit(X, y)
        assert len(str(e.value)) < 300
    with pytest.raises(DataTypeError, match="it holds text"):
        ThresholdAgglomerative(0.5).fit(texts)
    frame = pd.DataFrame({"score": np.arange(300.0), "ticket": texts})
    with pytest.raises(DataTypeError, match=r"column 'ticket' holds text \('ticket number 0"):
        ClusterLearner().fit(frame, y)
    frame = pd.DataFrame({"score": np.arange(300.0), "intent": y.astype(str)})
    with pytest.raises(DataTypeError, match=r"column 'intent' holds numbers written as text \('0'\): a label or id "
                                            "column"):
        ClusterLearner().fit(frame, y)
    frame = pd.DataFrame({"score": np.arange(300.0), "sku": [f"SKU-{i}" for i in range(300)]})
    with pytest.raises(DataTypeError, match=r"column 'sku' holds strings \('SKU-0'\), and features are numbers"):
        ClusterLearner().fit(frame, y)
    # numbers in an object array are numbers; scikit-learn's long messages are cut
    from kfree.distances import check_features

    assert check_features(np.array([[1, 2]], dtype=object)).dtype == np.float64
    with pytest.raises(ValueError, match="Expected 2D array.*…$") as e:  # (it prints the array)
        check_features([0.123456789] * 900)
    assert len(str(e.value)) <= 401


def test_identities_of_one_row_are_refused_or_warned_about():
    """Found by a notebook trial: one labelled ticket per intent was accepted without a word; with
    no pair of one identity every validation check scored 1.000, and 600 tickets of 15 unseen
    intents came out in 547 clusters."""
    from kfree import TrainConfig
    from kfree.data.synthetic import sphere_blobs
    from kfree.exceptions import DataError, DataWarning

    X, y = sphere_blobs(40, 6, dim=8, seed=0)
    first = np.unique(y, return_index=True)[1]
    with pytest.raises(DataError, match="none of the 40 identities in y has more than one row"):
        ClusterLearner(TrainConfig(epochs=1)).fit(X[first], y[first])
    two = np.r_[first, np.flatnonzero(y == 0)[1], np.flatnonzero(y == 1)[1]]  # 2 identities with a pair
    with pytest.warns(DataWarning, match="38 of the 40 identities in y have one row"):
        ClusterLearner(TrainConfig(epochs=1)).fit(X[two], y[two])
    half = np.flatnonzero((y < 20) | np.isin(np.arange(len(y)), first))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # 20 of 40 single: not over half, nothing said
        ClusterLearner(TrainConfig(epochs=1)).fit(X[half], y[half])
    val = np.flatnonzero(y >= 30)
    val1 = val[np.unique(y[val], return_index=True)[1]]
    with pytest.warns(DataWarning, match="10 of the 10 identities in y_val have one row"):
        ClusterLearner(TrainConfig(epochs=1)).fit(X[y < 30], y[y < 30], X_val=X[val1], y_val=y[val1])


def test_an_id_column_left_in_a_dataframe_is_warned_about_as_a_table_s_is():
    """Found by a notebook trial: kfree train warned about a ticket_id column among the features,
    ClusterLearner.fit on the same DataFrame did not (5 clusters for 17 intents, by ticket number)."""
    import pandas as pd

    from kfree import TrainConfig
    from kfree.data.synthetic import sphere_blobs
    from kfree.exceptions import DataWarning

    X, y = sphere_blobs(6, 10, dim=4, seed=0)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(ticket_id=np.arange(1000, 1060))
    with pytest.warns(DataWarning, match=r"X: column\(s\) \['ticket_id'\] look like ids.*drop them from X first "
                                         r"\(X.drop\(columns=\['ticket_id'\]\)\)"):
        ClusterLearner(TrainConfig(epochs=1)).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ClusterLearner(TrainConfig(epochs=1)).fit(frame.drop(columns=["ticket_id"]), y)


def test_a_threshold_override_is_the_cut_summary_and_return_rule_report():
    """Found by a notebook trial: with threshold=0.5 (or cluster(threshold=2.0)) the clusters were
    cut there, but summary() and cluster(..., return_rule=True) named the validated cut."""
    from kfree import TrainConfig
    from kfree.data.synthetic import sphere_blobs

    X, y = sphere_blobs(12, 8, dim=6, spread=0.4, seed=0)
    plain = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="complete").fit(X, y)
    learner = ClusterLearner(TrainConfig(epochs=2, seed=0), linkage="complete", threshold=0.05).fit(X, y)
    validated = plain.rule_.threshold.value
    assert learner.rule_.threshold.value == validated and validated != 0.05
    assert learner.summary().startswith(plain.summary())
    assert f"cluster() cuts at threshold=0.05 ({plain.rule_.threshold.distance}), this learner's override of the " \
           f"validated {validated:.4g}" in learner.summary()
    labels, rule = learner.cluster(X, return_rule=True)
    assert rule.threshold.value == 0.05 and rule.linkage == "complete"
    np.testing.assert_array_equal(labels, plain.cluster(X, threshold=0.05))
    labels, rule = plain.cluster(X, threshold=1.5, return_rule=True)
    assert rule.threshold.value == 1.5 and plain.rule_.threshold.value == validated  # the model's rule is untouched
    assert len(set(labels.tolist())) < len(set(plain.cluster(X, threshold=0.05).tolist()))


def test_negative_labels_scikit_learn_s_unlabelled_are_warned_about():
    from kfree import TrainConfig
    from kfree.data.synthetic import sphere_blobs
    from kfree.exceptions import DataWarning

    X, y = sphere_blobs(6, 10, dim=4, seed=0)
    y = np.where(y == 0, -1, y)
    with pytest.warns(DataWarning, match=r"10 rows of y have a negative label \(-1\), which scikit-learn uses for "
                                         "unlabelled rows"):
        ClusterLearner(TrainConfig(epochs=1)).fit(X, y)


def test_what_a_notebook_sees_of_kfree():
    """A notebook trial: dir(kfree) hid the lazily imported names (no tab completion), kfree.report
    exported nothing, and a learner's repr spelled all 19 TrainConfig fields."""
    import kfree
    import kfree.report
    from kfree import ClusterLearner, TrainConfig

    assert {"ClusterLearner", "TrainConfig", "Threshold"} <= set(dir(kfree))
    assert {"cluster_report", "plot_cluster_sizes", "plot_cluster_map", "plot_learner_validation"} <= set(
        dir(kfree.report))
    from kfree.report import cluster_report
    from kfree.report.clusters import cluster_report as same

    assert cluster_report is same
    assert repr(ClusterLearner(TrainConfig(epochs=3, loss_params={"m": 0.2}))) == \
        "ClusterLearner(train=TrainConfig(loss_params={'m': 0.2}, epochs=3))"
    assert repr(TrainConfig()) == "TrainConfig()"
    assert eval(repr(TrainConfig(dims=(64, 32), lr=0.01))) == TrainConfig(dims=(64, 32), lr=0.01)


def test_warnings_point_at_the_callers_line_however_the_call_came_in():
    """A notebook trial: warnings raised in fit were attributed to sklearn/base.py when fit came
    through scikit-learn's fit_predict (one frame more than fit's stacklevel counted)."""
    import warnings

    import numpy as np

    from kfree.cluster import ThresholdAgglomerative, XMeans

    X = np.random.default_rng(0).normal(size=(60, 4))
    X[:20] += 10
    X[20:40] -= 10
    for call in (lambda: XMeans(k_max=2, seed=0).fit_predict(X), lambda: XMeans(k_max=2, seed=0).fit(X),
                 lambda: ThresholdAgglomerative(0.3, n_clusters=2).fit_predict(X)):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            call()
        assert got and all(w.filename == __file__ for w in got), [(w.filename, str(w.message)[:60]) for w in got]
