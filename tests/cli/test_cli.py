"""The CLI end to end on a user's .npy and .csv files, and one-line errors for bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfree.cli.app import app
from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import DataError

runner = CliRunner()
FAST = ["--epochs", "25", "--p", "6", "--k", "5", "--dims", "32,16", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X, y = sphere_blobs(20, 10, dim=12, spread=0.2, seed=0)
    seen = y < 14
    np.save(d / "train.npy", X[seen])
    np.save(d / "train_labels.npy", y[seen])
    np.save(d / "new.npy", X[~seen])
    df = pd.DataFrame(X[seen], columns=[f"f{i}" for i in range(12)]).assign(person=y[seen])
    df.to_csv(d / "train.csv", index=False)
    pd.DataFrame(X[~seen], columns=[f"f{i}" for i in range(12)]).assign(label=y[~seen]).to_csv(d / "new.csv", index=False)
    np.save(d / "new_labels.npy", y[~seen])
    return d


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_train_cluster_evaluate_npy(files, monkeypatch):
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "m.kfree", *FAST)
    assert code == 0, out
    assert "threshold" in out and (files / "m.kfree").exists()
    # every rule scored on validation, the choice said in words, the validation curve beside the model
    assert "clustering rules on the validation identities" in out and "raw" in out
    assert "clustering the learned embedding" in out or "did NOT beat the raw features" in out
    assert (files / "m-validation.png").stat().st_size > 1000
    # the curve marks the step whose model was kept also when the raw features won (it marked
    # nothing then), names the chosen rule, and says on how many identities the raw line was scored
    from kfree.learner import ClusterLearner
    from kfree.report import validation

    learner, seen = ClusterLearner.load(files / "m.kfree"), {}
    learner.selection_["chosen"] = next(c for c in learner.selection_["candidates"] if c["features"] == "raw")
    real = validation.plot_validation_curve
    monkeypatch.setattr(validation, "plot_validation_curve",
                        lambda history, path, **kw: seen.update(kw) or real(history, path, **kw))
    assert validation.plot_learner_validation(learner, files / "raw-curve.png").stat().st_size > 1000
    assert seen["kept_step"] == learner.best_step_ is not None and "chosen: raw features" in seen["title"]
    from kfree.evaluate.selection import ClusterRule, best_rule

    raw = [ClusterRule.from_dict(c) for c in learner.selection_["candidates"] if c["features"] == "raw"]
    assert seen["raw_label"] == "raw features, best cut" and seen["raw_nmi"] == best_rule(raw).val_nmi
    # 3 validation identities make no halves, so no score with the step paid for (tests/test_selection.py)
    assert seen["cross_nmi"] is None and "model_cross_fit" not in learner.selection_
    code, out = run("cluster", files / "m.kfree", files / "new.npy", "--out", files / "pred.csv")
    assert code == 0, out
    pred = pd.read_csv(files / "pred.csv")
    assert list(pred.columns) == ["index", "cluster"] and len(pred) == 60
    assert list(pred["index"]) == list(range(60))
    code, out = run("evaluate", files / "pred.csv", files / "new_labels.npy", "--out", files / "metrics.json")
    assert code == 0, out
    metrics = json.loads((files / "metrics.json").read_text())
    assert metrics["n_true"] == 6 and metrics["nmi"] > 0.9
    assert abs(metrics["n_clusters"] - 6) <= 1


def test_train_cluster_csv_with_label_column(files):
    code, out = run("train", files / "train.csv", "--label-column", "person", "--out", files / "c.kfree", *FAST)
    assert code == 0, out
    code, out = run("cluster", files / "c.kfree", files / "new.csv", "--out", files / "pc.csv", "--threshold", "1e6")
    assert code == 0, out
    pred = pd.read_csv(files / "pc.csv")
    assert list(pred.columns) == ["index", "cluster", "label"]
    assert pred["cluster"].nunique() == 1  # the override is used: beyond any distance in the data
    code, out = run("evaluate", files / "pc.csv", files / "new.csv", "--out", files / "mc.json")
    assert code == 0, out
    metrics = json.loads((files / "mc.json").read_text())
    assert metrics["n_clusters"] == 1 and metrics["wcp"] == pytest.approx(1 / 6) and metrics["nmi"] == 0.0


def test_a_table_is_clustered_by_the_columns_the_model_was_trained_on(files):
    """Found by review: a model ran a table's columns in whatever order they came (2 clusters
    instead of 10 for the same tickets with sorted columns), and an extra id column was clustered
    as a feature (or refused as "features from another extractor")."""
    from kfree.learner import ClusterLearner

    code, out = run("train", files / "train.csv", "--label-column", "person", "--out", files / "cols.kfree", *FAST)
    assert code == 0, out
    learner = ClusterLearner.load(files / "cols.kfree")
    assert list(learner.feature_names_in_) == [f"f{i}" for i in range(12)]
    new = pd.read_csv(files / "new.csv")
    new[["label", *reversed([f"f{i}" for i in range(12)])]].to_csv(files / "rev.csv", index=False)
    code, out = run("cluster", files / "cols.kfree", files / "new.csv", "--out", files / "a.csv")
    assert code == 0, out
    code, out = run("cluster", files / "cols.kfree", files / "rev.csv", "--out", files / "b.csv")
    assert code == 0 and "columns taken in the order the model was trained on" in out, out
    pd.testing.assert_frame_equal(pd.read_csv(files / "a.csv"), pd.read_csv(files / "b.csv"))
    new.assign(track=np.arange(len(new)) // 4).to_csv(files / "tracks.csv", index=False)
    code, out = run("cluster", files / "cols.kfree", files / "tracks.csv", "--out", files / "c.csv")
    assert code == 1 and "1 it was not trained on (track; leave them out with --ignore-columns track, or name a label column with --label-column)" in out, out
    code, out = run("cluster", files / "cols.kfree", files / "tracks.csv", "--out", files / "c.csv",
                    "--ignore-columns", "track")
    assert code == 0, out
    pd.testing.assert_frame_equal(pd.read_csv(files / "a.csv"), pd.read_csv(files / "c.csv"))
    # a model trained on an array knows no names: the count is checked, naming the table's columns
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out",
                    files / "arr.kfree", *FAST)
    assert code == 0, out
    code, out = run("cluster", files / "arr.kfree", files / "tracks.csv", "--out", files / "d.csv")
    assert code == 1 and "tracks.csv has 13 feature columns (f0, f1" in out and "--ignore-columns" in out, out
    # the Python API, given DataFrames, refuses other columns instead of reordering silently
    X = new.drop(columns="label")
    learner.cluster(X)
    with pytest.raises(DataError, match="they are in another order"):
        learner.cluster(X[X.columns[::-1]])


def test_a_model_leaves_out_the_columns_it_was_trained_without(files):
    """Found by a README trial: a model trained with --ignore-columns did not remember them, so each
    batch's `kfree cluster` was refused for the same ids and timestamps, the advice naming them again.
    A model now leaves them out as a state does; naming --ignore-columns replaces what it remembers."""
    from kfree.learner import ClusterLearner

    train = pd.read_csv(files / "train.csv").assign(ticket=lambda t: [f"T{i}" for i in range(len(t))], hour=3.0)
    train.to_csv(files / "train_ids.csv", index=False)
    code, out = run("train", files / "train_ids.csv", "--label-column", "person", "--ignore-columns", "ticket,hour",
                    "--out", files / "ids.kfree", *FAST)
    assert code == 0, out
    assert ClusterLearner.load(files / "ids.kfree").provenance_["ignored_columns"] == ["ticket", "hour"]
    new = pd.read_csv(files / "new.csv")
    new.assign(ticket="X", hour=4.0).to_csv(files / "new_ids.csv", index=False)
    code, out = run("cluster", files / "ids.kfree", files / "new_ids.csv", "--out", files / "i.csv")
    assert code == 0 and "leaving out the columns ticket, hour as ids.kfree was trained" in out, out
    code, out = run("cluster", files / "ids.kfree", files / "new.csv", "--out", files / "j.csv")  # none there: fine
    assert code == 0 and "leaving out" in out, out
    pd.testing.assert_frame_equal(pd.read_csv(files / "i.csv"), pd.read_csv(files / "j.csv"))
    new.assign(ticket="X", hour=4.0, extra=1.0).to_csv(files / "new_extra.csv", index=False)
    code, out = run("cluster", files / "ids.kfree", files / "new_extra.csv", "--out", files / "k.csv")
    assert code == 1 and "1 it was not trained on (extra; leave them out with --ignore-columns ticket,hour,extra," in out
    code, out = run("cluster", files / "ids.kfree", files / "new_ids.csv", "--ignore-columns", "ticket",
                    "--out", files / "k.csv")
    assert code == 1 and "hour" in out, out  # named columns replace the remembered ones


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "missing.npz", "--out", "m.kfree"], "file not found"),
        (["train", "{d}/new.npy", "--out", "{d}/x.kfree"], "no labels"),
        (["train", "{d}/train.csv", "--label-column", "nope", "--out", "{d}/x.kfree"], "no label column 'nope'"),
        (["train", "{d}/one_id.npz", "--out", "{d}/x.kfree"], "at least 2 identities"),
        (["cluster", "{d}/m.kfree", "{d}/wrong_dim.npy", "--out", "{d}/x.csv"], "is expecting 12 features"),
        (["cluster", "{d}/m.kfree", "{d}/one_row.npy", "--method", "multicut", "--out", "{d}/x.csv"],
         "one_row.npy has 1 row of features; at least 2 are needed"),
        (["cluster", "{d}/m.kfree", "{d}/nan.npy", "--out", "{d}/x.csv"], "NaN or infinite"),
        (["cluster", "{d}/train.npy", "{d}/new.npy", "--out", "{d}/x.csv"], "not a kfree model"),
        (["train", "{d}/train.npy", "--labels", "{d}/train_labels.npy", "--out", "{d}/x.kfree", "--dims", "a,b"], "comma-separated integers"),
        (["train", "{d}/train.npy", "--labels", "{d}/train_labels.npy", "--out", "{d}/x.kfree", "--loss", "nope"], "unknown loss 'nope'"),
    ],
)
def test_bad_input_gives_one_line_error_and_no_output(files, args, message):
    d = files
    np.savez(d / "one_id.npz", X=np.random.default_rng(0).standard_normal((10, 12)), y=np.zeros(10))
    np.save(d / "wrong_dim.npy", np.zeros((5, 3)))
    np.save(d / "one_row.npy", np.zeros((1, 12)))
    nan = np.zeros((4, 12))
    nan[2, 2] = np.nan
    np.save(d / "nan.npy", nan)
    if not (d / "m.kfree").exists():
        run("train", d / "train.npy", "--labels", d / "train_labels.npy", "--out", d / "m.kfree", *FAST)
    code, out = run(*[a.format(d=d) for a in args], *(["--no-progress"] if args[0] == "train" else []))
    assert code == 1
    assert message in out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) <= 3
    assert not (d / "x.kfree").exists() and not (d / "x.csv").exists()


def test_help_lists_commands():
    code, out = run("--help")
    assert code == 0
    for cmd in ("demo", "train", "cluster", "evaluate"):
        assert cmd in out


def test_clustering_features_shows_the_exact_hacs_progress(files, monkeypatch):
    """Found by review: kfree cluster FEATURES --threshold passed no progress hook, so minutes of
    exact HAC at scale printed nothing (the Dask backend showed its stages)."""
    from kfree.cluster import ThresholdAgglomerative

    hooks = []
    real = ThresholdAgglomerative.fit

    def fit(self, X, *a, hook=None, **k):
        hooks.append(hook)
        if hook is not None:
            hook("tau components", completed=1, total=1)
        return real(self, X, *a, hook=hook, **k)

    monkeypatch.setattr(ThresholdAgglomerative, "fit", fit)
    code, out = run("cluster", files / "new.npy", "--threshold", "0.5", "--out", files / "p.csv")
    assert code == 0, out
    assert hooks and hooks[0] is not None and "tau components 1/1" in out
    # with a model too, with and without a state (an embeddings trial: a nightly run was silent 3 min)
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out",
                    files / "prog.kfree", "--linkage", "complete", *FAST)
    assert code == 0, out
    for extra in ([], ["--state", files / "prog.kstate"]):
        hooks.clear()
        code, out = run("cluster", files / "prog.kfree", files / "new.npy", "--out", files / "prog.csv", "--force",
                        *extra)
        assert code == 0 and hooks and hooks[-1] is not None and "tau components 1/1" in out, (extra, out)


def test_cluster_methods_switch(files):
    if not (files / "m.kfree").exists():
        run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "m.kfree", *FAST)
    code, out = run("cluster", files / "m.kfree", files / "new.npy", "--out", files / "k.csv", "--n-clusters", "4")
    assert code == 0, out
    assert pd.read_csv(files / "k.csv")["cluster"].nunique() == 4
    code, out = run("cluster", files / "m.kfree", files / "new.npy", "--out", files / "mc.csv", "--method", "multicut")
    assert code == 0, out
    # multicut weighs pairs by the model's p(different | d) fitted on the held-out identities
    assert "(multicut, raw features, logistic pair costs)" in out or "(multicut, model features, logistic" in out, out
    assert pd.read_csv(files / "mc.csv")["cluster"].nunique() == 6
    code, out = run("cluster", files / "m.kfree", files / "new.npy", "--out", files / "x.csv", "--method", "nope")
    assert code == 1 and "unknown cluster 'nope'" in out
    code, out = run("methods")  # each method with what it is told, from its declared capabilities
    assert code == 0 and "triplet-l3" in out
    for line in ["multicut  --threshold, --distance, a model's pair costs", "kmeans    --n-clusters (needed)",
                 "xmeans    finds the number itself", "finch     finds the number itself, or --n-clusters"]:
        assert line in out, out


def test_train_with_noisy_triplets_and_logistic_calibration(files):
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "t.kfree",
                    "--loss", "triplet-l1", "--calibration", "logistic", "--sampler", "triplets",
                    "--wrong-negatives", "random", "--wrong-positives", "0.05", *FAST)
    assert code == 0, out
    assert "logistic" in out
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "x.kfree",
                    "--loss", "triplet-l1", "--sampler", "triplets", "--wrong-negatives", "lots", *FAST)
    assert code == 1 and "'random'" in out
    # percentages, as kfree experiment icpr2020 takes them, and the paper's "use the last epoch" (a research trial)
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy",
                    "--out", files / "noise_pct.kfree",
                    "--loss", "triplet-l1", "--sampler", "triplets", "--wrong-negatives", "5%", "--wrong-positives",
                    "10%", "--keep-last", *FAST)
    assert code == 0 and "kept the last step (--keep-last)" in out, out
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(files / "noise_pct.kfree")
    cfg = learner.train_config
    assert (cfg.wrong_negatives, cfg.wrong_positives, cfg.select_best) == (0.05, 0.1, False)
    assert learner.best_step_ is None  # the last step, not the best validated one
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy",
                    "--out", files / "noise_q.kfree",
                    "--sampler", "triplets", "--loss", "triplet-l1", "--wrong-positives", "random", *FAST)
    assert code == 1 and "--wrong-positives 'random' must be a fraction like 0.05 or a percentage" in out, out


def test_cluster_with_tracks_and_pairs_that_cannot_link(files):
    """A TV episode's frames: rows of one track (--link-column) share a cluster, tracks seen
    together (--cannot-link, pairs of track values) do not; the track column is no feature."""
    code, out = run("train", files / "train.csv", "--label-column", "person", "--out", files / "tracks.kfree", *FAST)
    assert code == 0, out
    new = pd.read_csv(files / "new.csv")
    y = new["label"].to_numpy()
    track = np.arange(len(new)) // 2
    track[1] = track[np.flatnonzero(y != y[0])[0]]  # a track holding two people: they must join
    new.assign(track=track).to_csv(files / "ep.csv", index=False)
    same = np.flatnonzero(y == y[2])
    t_a, t_b = track[same[0]], track[same[-1]]
    assert t_a != t_b  # two tracks of one person, "seen together": they must not join
    pd.DataFrame({"a": [t_a], "b": [t_b]}).to_csv(files / "cl.csv", index=False)
    pd.DataFrame({"a": [0], "b": [99]}).to_csv(files / "cl99.csv", index=False)
    pd.DataFrame({"a": [t_a, 3], "b": [t_b, 3]}).to_csv(files / "self.csv", index=False)
    # (a TV-episode trial: pairs of tracks read as pairs of rows without --link-column, 218 of them kept)
    pd.DataFrame({"track_a": [t_a], "track_b": [t_b]}).to_csv(files / "tracks_cl.csv", index=False)
    pd.DataFrame({"episode": ["e1"], "a": [t_a], "b": [t_b], "n": [3]}).to_csv(files / "wide_cl.csv", index=False)
    # a co-occurrence list that also names tracks the data left out: those pairs alone are left out, said
    pd.DataFrame({"a": [t_a, 9999], "b": [t_b, t_a]}).to_csv(files / "some_cl.csv", index=False)
    # most pairs unknown: another episode's list, whose few known values are not about these rows (a TV trial)
    pd.DataFrame({"a": [t_a, 9999, 9998], "b": [t_b, t_a, 1]}).to_csv(files / "other_cl.csv", index=False)
    code, out = run("cluster", files / "tracks.kfree", files / "ep.csv", "--link-column", "track", "--cannot-link",
                    files / "cl.csv", "--out", files / "ep_c.csv")
    assert code == 0, out
    assert "must-link and 1 cannot-link pairs kept" in out, out
    written = pd.read_csv(files / "ep_c.csv")
    np.testing.assert_array_equal(written["track"], track)  # each row's track beside its cluster (a TV trial)
    labels = written["cluster"].to_numpy()
    for t in np.unique(track):
        assert np.unique(labels[track == t]).size == 1, t
    assert labels[track == t_a][0] != labels[track == t_b][0]
    code, out = run("cluster", files / "tracks.kfree", files / "ep.csv", "--link-column", "track", "--cannot-link",
                    files / "some_cl.csv", "--out", files / "some_c.csv")
    assert code == 0 and "1 cannot-link pairs kept" in out, out
    assert ("some_cl.csv: 1 of its 2 pairs name a 'track' value that ep.csv does not hold and are left out (first: "
            "9999 is no 'track' value of ep.csv (pair 2))") in out
    assert pd.read_csv(files / "some_c.csv")["cluster"].equals(pd.read_csv(files / "ep_c.csv")["cluster"])
    # the same episode as an .npz with a 'track' array (a TV-episode trial's layout): the same clusters
    feats = new.drop(columns=["label"]).to_numpy(dtype=np.float32)
    np.savez(files / "ep.npz", X=feats, track=track)
    code, out = run("cluster", files / "tracks.kfree", files / "ep.npz", "--link-column", "track", "--cannot-link",
                    files / "cl.csv", "--out", files / "ep_npz.csv")
    assert code == 0, out
    np.testing.assert_array_equal(pd.read_csv(files / "ep_npz.csv")["cluster"], pd.read_csv(files / "ep_c.csv")["cluster"])
    np.savez(files / "short.npz", X=feats, track=track[:-1])
    for npz, message in (("short.npz", f"short.npz: --link-column track has {len(track) - 1} values for {len(track)} rows"),
                         ("ep.npz", "ep.npz has no array 'trak' (--link-column); its arrays are ['X', 'track']")):
        code, out = run("cluster", files / "tracks.kfree", files / npz, "--link-column",
                        "trak" if npz == "ep.npz" else "track", "--out", files / "x.csv")
        assert code == 1 and out.startswith("error: ") and message in out and out.count("\n") == 1, out
    code, out = run("cluster", files / "ep.csv", "--threshold", "0.5", "--link-column", "track", "--cannot-link",
                    files / "cl.csv", "--out", files / "ep_raw.csv")  # features as they are, no model
    assert code == 0 and "cannot-link pairs kept" in out, out
    code, out = run("cluster", files / "ep.csv", "--threshold", "1e-9", "--link-column", "track", "--out",
                    files / "ep_alone.csv")  # (a TV trial: times and boxes clustered, every track alone, no word)
    assert code == 0 and "every --link-column track group is a cluster of its own (30): no two groups joined at the " \
                         "threshold 1e-09 sqeuclidean" in " ".join(out.split()), out
    raw = pd.read_csv(files / "ep_raw.csv")["cluster"].to_numpy()
    assert all(np.unique(raw[track == t]).size == 1 for t in np.unique(track))
    assert raw[track == t_a][0] != raw[track == t_b][0]
    for args, message in [
        (["--link-column", "trak"], "ep.csv has no column 'trak'; columns are ['f0', 'f1'"),
        (["--link-column", "track", "--state", files / "s.kstate"], "are for kfree cluster without --state"),
        (["--link-column", "track", "--method", "multicut"], "are for --method hac: --method multicut takes no pairs"),
        (["--cannot-link", files / "other_cl.csv", "--link-column", "track"],
         "other_cl.csv: 2 of its 3 pairs name a 'track' value that ep.csv does not hold (first: 9999 is no 'track' "
         "value of ep.csv (pair 2)): is it the pairs file of this data?"),
        (["--cannot-link", files / "cl99.csv", "--ignore-columns", "track"], "99 is no row number (0..59) of ep.csv"),
        (["--cannot-link", files / "cl99.csv", "--link-column", "track"], "99 is no 'track' value of ep.csv"),
        (["--cannot-link", files / "self.csv", "--link-column", "track"],  # (was an internal must-link message)
         "self.csv: pair 2 (3, 3) names the same 'track' value twice"),
        (["--cannot-link", files / "self.csv", "--ignore-columns", "track"], "names the same row number (0..59) twice"),
        (["--cannot-link", files / "tracks_cl.csv", "--ignore-columns", "track"],
         "tracks_cl.csv pairs 'track' values (track_a), which are read as rows of ep.csv without --link-column: "
         "give --link-column track"),
        (["--cannot-link", files / "wide_cl.csv", "--link-column", "track"],
         "'e1' is no 'track' value of ep.csv (pair 1) (wide_cl.csv has 4 columns: the pairs are read from its "
         "first two, 'episode' and 'a'), and no pair names two of them"),
    ]:
        code, out = run("cluster", files / "tracks.kfree", files / "ep.csv", "--out", files / "x.csv", *args)
        assert code == 1 and message in out and out.count("\n") == 1, out


def test_a_partly_labelled_table_clusters_and_scores_its_labelled_rows(files):
    """Found by review: a table with a label for a third of its rows could not be clustered (every
    row needed a label), nor that third be scored without filtering files by hand."""
    new = pd.read_csv(files / "new.csv")
    new.loc[new.index % 3 != 0, "label"] = np.nan
    new.to_csv(files / "partial.csv", index=False)
    code, out = run("cluster", files / "partial.csv", "--threshold", "0.5", "--out", files / "part_c.csv")
    assert code == 0, out
    written = pd.read_csv(files / "part_c.csv")
    assert written["label"].isna().sum() == 40 and written["label"].notna().sum() == 20
    assert ".0" not in (files / "part_c.csv").read_text()  # whole-number labels stay whole beside blanks
    code, out = run("evaluate", files / "part_c.csv", files / "partial.csv")
    assert code == 1 and "40 of the 60 clustered rows have no true label" in out and "--labelled-only" in out, out
    code, out = run("evaluate", files / "part_c.csv", files / "partial.csv", "--labelled-only", "--out",
                    files / "part.json")
    assert code == 0 and "scored the 20 rows with a true label; 40 rows have none" in out, out
    metrics = json.loads((files / "part.json").read_text())
    assert metrics["n_samples"] == 20 and metrics["unlabelled_rows"] == 40


def test_one_row_is_one_cluster(files):
    """Found by review: today's single ticket could not be clustered ("at least 2 are needed")."""
    np.save(files / "one.npy", np.load(files / "new.npy")[:1])
    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "one.kfree",
                    *FAST)
    assert code == 0, out
    code, out = run("cluster", files / "one.kfree", files / "one.npy", "--out", files / "one.csv")
    assert code == 0 and "1 row → 1 cluster" in out, out
    assert pd.read_csv(files / "one.csv")["cluster"].tolist() == [0]
    code, out = run("cluster", files / "one.npy", "--threshold", "0.5", "--out", files / "one_raw.csv")
    assert code == 0 and "1 row → 1 cluster" in out, out


def test_a_validation_table_is_taken_in_the_training_tables_columns(files):
    """Found by review: a --validation table with its columns in another order was read as it
    came (every cut calibrated on permuted features), and --ignore-columns required the training
    table's id column in the validation file too."""
    from kfree.learner import ClusterLearner

    train = pd.read_csv(files / "train.csv")
    ids = train["person"].to_numpy()
    held = np.isin(ids, np.unique(ids)[-4:])
    train[~held].assign(ticket_id=np.arange((~held).sum()) + 1000).to_csv(files / "tr_ids.csv", index=False)
    cols = [f"f{i}" for i in range(12)]
    train[held][["person", *cols]].to_csv(files / "va.csv", index=False)
    train[held][["person", *cols[::-1]]].to_csv(files / "va_rev.csv", index=False)
    models = {}
    for name in ("va", "va_rev"):
        code, out = run("train", files / "tr_ids.csv", "--label-column", "person", "--ignore-columns", "ticket_id",
                        "--validation", files / f"{name}.csv", "--out", files / f"{name}.kfree", *FAST)
        assert code == 0, out
        models[name] = ClusterLearner.load(files / f"{name}.kfree")
    assert "va_rev.csv: columns taken in the order of tr_ids.csv" in out, out
    assert models["va"].selection_["candidates"] == models["va_rev"].selection_["candidates"]
    train[held][["person", *cols[:-1]]].to_csv(files / "va_short.csv", index=False)
    code, out = run("train", files / "tr_ids.csv", "--label-column", "person", "--ignore-columns", "ticket_id",
                    "--validation", files / "va_short.csv", "--out", files / "short.kfree", *FAST)
    assert code == 1 and "va_short.csv's feature columns are not tr_ids.csv's: 1 missing (f11)" in out, out
    # a validation .npz beside a training table: --label-column is the table's (found by a research trial)
    np.savez(files / "va.npz", X=train[held][cols].to_numpy(), y=ids[held])
    code, out = run("train", files / "tr_ids.csv", "--label-column", "person", "--ignore-columns", "ticket_id",
                    "--validation", files / "va.npz", "--out", files / "va_npz.kfree", *FAST)
    assert code == 0, out
    assert ClusterLearner.load(files / "va_npz.kfree").selection_["candidates"] == models["va"].selection_["candidates"]
    X = train[cols]
    with pytest.raises(DataError, match="X_val's columns are not X's \\(in another order\\)"):
        ClusterLearner().fit(X[~held], ids[~held], X_val=X[held][cols[::-1]], y_val=ids[held])


def test_more_of_what_a_table_may_hold(files):
    """Found by review of this session's diff: a header-less pairs file lost its first pair, a
    blank text label counted as a class, and --ignore-columns was missing or untested on report,
    assign and embed."""
    new = pd.read_csv(files / "new.csv").drop(columns="label")
    ids = [f"r{i}" for i in range(len(new))]
    new.assign(index=ids, ticket_id=np.arange(len(new)) + 5000).to_csv(files / "tix.csv", index=False)
    (files / "nohdr.csv").write_text("r0,r1\nr2,r3\n")
    code, out = run("cluster", files / "tix.csv", "--threshold", "0.5", "--ignore-columns", "ticket_id",
                    "--cannot-link", files / "nohdr.csv", "--out", files / "x.csv")
    assert code == 1 and "its first line (r0, r1) is a pair, not a header" in out, out
    (files / "hdr.csv").write_text("a,b\nr0,r1\n")  # row ids of DATA's 'index' column
    code, out = run("cluster", files / "tix.csv", "--threshold", "100", "--ignore-columns", "ticket_id",
                    "--cannot-link", files / "hdr.csv", "--out", files / "tix_c.csv")
    assert code == 0 and "0 must-link and 1 cannot-link pairs kept" in out, out
    got = pd.read_csv(files / "tix_c.csv")
    assert got["cluster"].nunique() == 2 and got.loc[0, "cluster"] != got.loc[1, "cluster"]  # all but that pair join
    code, out = run("report", files / "tix_c.csv", "--features", files / "tix.csv", "--ignore-columns", "ticket_id",
                    "--out", files / "tix_r")
    assert code == 0, out
    # a model trained on the features: assign and embed take the table with its id column left out
    code, out = run("train", files / "train.csv", "--label-column", "person", "--out", files / "tix.kfree", *FAST)
    assert code == 0, out
    code, out = run("embed", files / "tix.kfree", files / "tix.csv", "--ignore-columns", "ticket_id", "--out",
                    files / "tix.npy")
    assert code == 0 and np.load(files / "tix.npy").shape[0] == len(new), out
    code, out = run("cluster", files / "tix.kfree", files / "tix.csv", "--ignore-columns", "ticket_id", "--out",
                    files / "tix_m.csv", "--state", files / "tix.kstate")
    assert code == 0, out
    new.iloc[:5][[f"f{i}" for i in range(12)][::-1]].assign(ticket_id=1, index=[f"m{i}" for i in range(5)]).to_csv(
        files / "more.csv", index=False)
    code, out = run("assign", files / "tix.kfree", files / "tix.kstate", files / "more.csv", "--ignore-columns",
                    "ticket_id", "--out", files / "more_c.csv")  # its rows, reordered, are known
    assert code == 1 and "5 of the 5 rows of more.csv are already in tix.kstate" in out, out
    code, out = run("assign", files / "tix.kfree", files / "tix.kstate", files / "more.csv", "--ignore-columns",
                    "ticket_id", "--out", files / "more_c.csv", "--again")
    assert code == 0 and "columns taken in the order the model was trained on" in out, out
    truth = pd.DataFrame({"index": ids, "label": [("" if i % 3 else str(i % 7)) for i in range(len(ids))]})
    truth.to_parquet(files / "blank_truth.parquet")
    code, out = run("evaluate", files / "tix_m.csv", files / "blank_truth.parquet")
    assert code == 1 and "40 of the 60 clustered rows have no true label" in out, out


def test_a_vector_column_whose_entry_names_are_taken_is_one_line(files):
    emb = np.random.default_rng(0).normal(size=(4, 3))
    pd.DataFrame({"emb": list(emb), "emb[0]": np.arange(4.0)}).to_parquet(files / "clash.parquet")
    code, out = run("cluster", files / "clash.parquet", "--threshold", "1", "--out", files / "x.csv")
    assert code == 1 and "column 'emb[0]' has one of those names; rename it" in out and out.count("\n") == 1, out


def test_a_table_labelled_in_part_trains_on_its_labelled_rows(files):
    """Found by a user trial: empty-string labels (how a labelling tool or an export writes "no
    label") trained 3,000 unrelated photos as one identity, while null ones refused the whole
    table without saying what to do. Both are now missing, and --labelled-only trains on the rest."""
    from kfree.learner import ClusterLearner

    df = pd.read_csv(files / "train.csv").astype({"person": str})
    part = df.copy()
    part.loc[part.index % 3 == 0, "person"] = ""  # a third unlabelled, as empty text
    part.loc[part.index % 3 == 1, "person"] = "  "
    part.loc[5, "person"] = None
    part.to_parquet(files / "part.parquet")
    n_blank = int(((part.index % 3) < 2).sum()) + 1  # (row 5 is one of the labelled third)
    code, out = run("train", files / "part.parquet", "--label-column", "person", "--out", files / "p.kfree", *FAST)
    assert code == 1 and out.count("\n") == 1 and (
        f"part.parquet: {n_blank:,} of its {len(part):,} labels are missing (empty or blank); every row needs a "
        "label; train on the labelled rows with --labelled-only") in out, out
    code, out = run("train", files / "part.parquet", "--label-column", "person", "--labelled-only", "--out",
                    files / "p.kfree", *FAST)
    kept = len(part) - n_blank
    assert code == 0 and f"training on the {kept:,} labelled rows of part.parquet ({n_blank:,} of its {len(part):,} " \
                         "rows have no label)" in out and f"trained bcl on {kept} rows" in out, out
    # the same model as training on those rows alone
    part[part["person"].str.strip().fillna("") != ""].to_parquet(files / "only.parquet")
    code, out = run("train", files / "only.parquet", "--label-column", "person", "--out", files / "o.kfree", *FAST)
    assert code == 0, out
    a, b = ClusterLearner.load(files / "p.kfree"), ClusterLearner.load(files / "o.kfree")
    X = pd.read_csv(files / "new.csv").drop(columns="label").to_numpy(np.float32)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_messages_name_options_not_python_arguments(tmp_path):
    """A library message shown by a command names the command's option, not the Python argument
    (a README trial read ``method='ward' keeps Ward`` and ``(ignore_columns=...)`` on the command line)."""
    from kfree.cli.console import cli_words

    assert cli_words("Ward's 0.9); method='ward' keeps Ward") == "Ward's 0.9); --method ward keeps Ward"
    assert cli_words('use method="multicut"\n  here') == "use --method multicut here"
    assert cli_words("a.kstate already exists; pass overwrite=True (--force) to replace it") == \
        "a.kstate already exists; pass --force to replace it"
    assert cli_words("n_samples=3 must be >= n_clusters=5") == "n_samples=3 must be >= n_clusters=5"  # left as is
    rng = np.random.default_rng(0)
    pd.DataFrame({"ticket": np.arange(1000, 1040), "f0": rng.normal(size=40), "f1": rng.normal(size=40)}).to_csv(
        tmp_path / "t.csv", index=False)
    code, out = run("cluster", tmp_path / "t.csv", "--threshold", "1.0", "--out", tmp_path / "c.csv")
    assert code == 0 and "leave them out with --ignore-columns ticket, or name" in out, out
    assert "ignore_columns" not in out


def test_evaluate_scores_tracks_as_one_item_each(tmp_path):
    """`kfree evaluate --group-column track`: a long track half in another cluster lowers every
    per-frame score; per track it is one item in its majority cluster, and it is counted as split."""
    frames = pd.DataFrame({"index": [f"f{i}" for i in range(14)], "label": list("a" * 10 + "bbcc"),
                           "track": ["T0"] * 10 + ["T1", "T1", "T2", "T2"]})
    clusters = np.array([0] * 6 + [5] * 4 + [1, 1, 2, 2])
    pd.DataFrame({"index": frames["index"], "cluster": clusters, "row": range(14)}).to_csv(tmp_path / "c.csv",
                                                                                            index=False)
    frames.sample(frac=1, random_state=0).to_csv(tmp_path / "truth.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv", "--group-column", "track",
                    "--out", tmp_path / "m.json")
    assert code == 0 and "scored 3 groups ('track') of 14 rows" in out and "1 of them lies in more" in out, out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["nmi"] == 1.0 and m["n_samples"] == 3 and m["groups_split"] == 1 and m["n_rows"] == 14
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv", "--group-column", "scene")
    assert code != 0 and "name the one to use with --group-column" in out, out


def test_a_method_cutting_in_units_of_its_own_is_named_in_them(files, own_units_method):
    """Found by a contributor trial: `kfree cluster --method leader --threshold 0.5` said
    "threshold 0.5 sqeuclidean" for a method that cut at 0.5 in Euclidean units of its own."""
    code, out = run("cluster", files / "new.npy", "--method", "_test-own-units", "--threshold", "0.5",
                    "--out", files / "own.csv")
    assert code == 0 and "threshold 0.5 euclidean" in out, out


def test_train_takes_the_batches_per_epoch_of_the_readmes_banking77_schedule(files):
    """Found by a scikit-learn user's trial: the README's Banking77 schedule (8 batches per epoch)
    could be set in Python only."""
    from kfree import ClusterLearner

    code, out = run("train", files / "train.npy", "--labels", files / "train_labels.npy", "--out", files / "bpe.kfree",
                    "--epochs", "3", "--batches-per-epoch", "2", "--eval-every-steps", "1", "--patience", "100",
                    "--p", "6", "--k", "5", "--dims", "32,16", "--no-progress")
    assert code == 0, out
    learner = ClusterLearner.load(files / "bpe.kfree")
    assert learner.train_config.batches_per_epoch == 2
    assert max(r["step"] for r in learner.history_ if "step" in r) == 6  # 3 epochs of 2 steps


def test_evaluate_says_how_to_join_files_that_name_their_rows(tmp_path):
    """Found by a photo-library trial: `kfree assign --all-rows` writes a 'row' column, and a truth
    file of part of the library with its own 'row' column was picked by row number, refused as
    "values outside 0..363" without saying --id-column row joins them."""
    pd.DataFrame({"row": [0, 5, 9], "cluster": [0, 1, 1]}).to_csv(tmp_path / "all.csv", index=False)
    pd.DataFrame({"row": [9, 5, 0], "label": ["b", "b", "a"]}).to_csv(tmp_path / "truth.csv", index=False)
    code, out = run("evaluate", tmp_path / "all.csv", tmp_path / "truth.csv")
    assert code == 1 and "join by it: --id-column row" in " ".join(out.split()), out
    code, out = run("evaluate", tmp_path / "all.csv", tmp_path / "truth.csv", "--id-column", "row")
    assert code == 0 and "1.000" in out, out


def test_cluster_finetunes_a_models_head_on_an_episodes_pairs_first(tmp_path):
    """The BCL paper's BCL-FT on a user's own episode (in the reproductions only before: two research
    trials looked for it): --finetune fine-tunes the head on the tracks and co-occurring tracks, keeps
    it only if held-out pairs say it is better, then clusters with the pairs."""
    X, y = sphere_blobs(20, 12, dim=8, spread=0.45, seed=2)
    seen = y < 12
    np.save(tmp_path / "x.npy", X[seen])
    np.save(tmp_path / "y.npy", y[seen])
    code, out = run("train", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "m.kfree",
                    "--no-compare-raw", *FAST)
    assert code == 0, out
    new, yn = X[~seen], y[~seen]
    track = np.argsort(np.argsort(yn, kind="stable"), kind="stable") // 3  # tracks of 3 rows of one person
    pd.DataFrame(new, columns=[f"f{j}" for j in range(8)]).assign(track=track).to_csv(tmp_path / "ep.csv", index=False)
    firsts = {int(yn[track == t][0]): t for t in np.unique(track)}
    people = sorted(firsts)
    pd.DataFrame({"a": [firsts[people[0]], firsts[people[2]]], "b": [firsts[people[1]], firsts[people[3]]]}).to_csv(
        tmp_path / "cl.csv", index=False)
    code, out = run("cluster", tmp_path / "m.kfree", tmp_path / "ep.csv", "--link-column", "track", "--cannot-link",
                    tmp_path / "cl.csv", "--finetune", "--out", tmp_path / "c.csv")
    said = " ".join(out.split())
    assert code == 0 and "fine-tuned on" in said and "held-out pairs on their side of the cut" in said, out
    labels = pd.read_csv(tmp_path / "c.csv")["cluster"].to_numpy()
    for t in np.unique(track):  # the pairs are kept as ever
        assert np.unique(labels[track == t]).size == 1
    code, out = run("cluster", tmp_path / "m.kfree", tmp_path / "ep.csv", "--finetune", "--out", tmp_path / "d.csv")
    assert code == 1 and "--finetune fine-tunes a model's head on the pairs of DATA" in out, out
    code, out = run("cluster", tmp_path / "m.kfree", tmp_path / "ep.csv", "--link-column", "track", "--cannot-link",
                    tmp_path / "cl.csv", "--finetune", "--threshold", "0.5", "--out", tmp_path / "d.csv")
    assert code == 1 and "leave out --threshold" in out, out


def test_xmeans_takes_the_papers_k_max_from_the_command_line(tmp_path):
    """A research trial: the BCL paper's X-means K_max (40/80/150/300) could be set from Python only."""
    X, _ = sphere_blobs(12, 10, dim=6, spread=0.1, seed=0)
    np.save(tmp_path / "x.npy", X)
    code, out = run("cluster", tmp_path / "x.npy", "--method", "xmeans", "--k-max", "4", "--out", tmp_path / "c.csv")
    assert code == 0, out
    assert pd.read_csv(tmp_path / "c.csv")["cluster"].nunique() <= 4
    code, out = run("cluster", tmp_path / "x.npy", "--method", "kmeans", "--n-clusters", "3", "--k-max", "4",
                    "--out", tmp_path / "k.csv")
    assert code == 1 and "--method kmeans takes none" in out, out
    code, out = run("methods")
    assert "xmeans    finds the number itself, --k-max" in out, out
