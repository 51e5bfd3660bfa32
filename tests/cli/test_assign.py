"""``kfree cluster --state`` and ``kfree assign``: results match the Python API, bad input is one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _cli import app, one_line_error, run, runner

from kfree.cluster import ThresholdAgglomerative
from kfree.cluster.incremental import ClusterState, assign
from kfree.cluster.labels import first_seen_labels
from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import ClusterSizeWarning

FAST = ["--epochs", "3", "--p", "6", "--k", "5", "--dims", "16,8", "--no-progress", "--linkage", "complete"]
TAU = "0.5"


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("assign")
    X, y = sphere_blobs(14, 10, dim=8, spread=0.2, seed=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    np.save(d / "x.npy", X[:100])
    np.save(d / "y.npy", y[:100])
    np.save(d / "new.npy", X[100:])
    np.save(d / "new2.npy", X[120:] + 0.01)
    np.save(d / "narrow.npy", X[100:, :3])
    (d / "garbage.npy").write_bytes(b"this is not an array")
    result = runner.invoke(app, ["train", str(d / "x.npy"), "--labels", str(d / "y.npy"), "--out", str(d / "m.kfree"),
                                 *FAST])
    assert result.exit_code == 0, result.output
    return d


@pytest.fixture(scope="module")
def ward_model(d):
    """A model trained with the default --linkage auto whose chosen rule is a Ward cut (seed 11:
    on these blobs the other seeds choose complete linkage)."""
    result = runner.invoke(app, ["train", str(d / "x.npy"), "--labels", str(d / "y.npy"), "--out", str(d / "w.kfree"),
                                 *FAST[:-2], "--seed", "11"])  # --linkage auto
    assert result.exit_code == 0, result.output
    return d / "w.kfree"


def clusters(path):
    return pd.read_csv(path)["cluster"].to_numpy()


def test_model_free_cluster_state_then_assign_matches_api(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    assert "cluster state saved to" in out
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    ref = ClusterState.fit(X, float(TAU))
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), ref.labels)
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0, out
    assert f"{len(new)} new rows" in out and "state updated" in out
    np.testing.assert_array_equal(clusters(tmp_path / "a.csv"), assign(ref, new))
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_samples == len(X) + len(new) and state.meta["assigns"] == 1
    np.testing.assert_array_equal(state.labels, ref.labels)
    # --recluster-affected into another file: equals clustering everything again
    code, out = run("assign", tmp_path / "s.kstate", d / "new2.npy", "--out", tmp_path / "b.csv",
                    "--recluster-affected", "--state-out", tmp_path / "s2.kstate", "--all-rows")
    assert code == 0, out
    assert "re-clustered" in out
    assert list(pd.read_csv(tmp_path / "b.csv").columns) == ["row", "cluster"]  # rows of the state
    allX = np.vstack([X, new, np.load(d / "new2.npy")])
    full = ThresholdAgglomerative(float(TAU)).fit(allX).labels_
    np.testing.assert_array_equal(first_seen_labels(clusters(tmp_path / "b.csv")), full)
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == len(X) + len(new)  # --state-out left it


def test_greedy_assigns_say_how_many_rows_may_regroup_and_a_recluster_settles_them(tmp_path):
    # overlapping blobs: greedy placement leaves rows a recompute would group otherwise
    rng = np.random.default_rng(3)
    C = rng.standard_normal((6, 4))
    X = C[rng.integers(0, 6, 260)] + rng.standard_normal((260, 4)) * 0.45
    np.save(tmp_path / "x.npy", X[:100])
    for i in range(4):
        np.save(tmp_path / f"b{i}.npy", X[100 + 40 * i : 140 + 40 * i])
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", "1.5", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    for i in range(3):
        code, out = run("assign", tmp_path / "s.kstate", tmp_path / f"b{i}.npy", "--out", tmp_path / f"a{i}.csv")
        assert code == 0, out
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_unsettled > 0
    last = state.meta["last_assign"]["n_placed_unsettled"]
    assert (f"{state.n_unsettled:,} of the state's rows ({state.n_unsettled / state.n_samples:.0%}) lie in "
            "τ-components where clustering all its rows again may group them otherwise") in " ".join(out.split())
    assert f"({last:,} of this batch's rows were placed there greedily)" in " ".join(out.split())
    assert "the next assign with --recluster-affected re-clusters them exactly" in " ".join(out.split())
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "b3.npy", "--out", tmp_path / "a3.csv",
                    "--recluster-affected", "--all-rows")
    assert code == 0, out
    assert f"earlier assigns left unsettled ({state.n_unsettled:,} rows)" in " ".join(out.split())
    assert "lie in" not in out
    full = ThresholdAgglomerative(1.5).fit(X).labels_
    np.testing.assert_array_equal(first_seen_labels(clusters(tmp_path / "a3.csv")), full)
    assert ClusterState.load(tmp_path / "s.kstate").n_unsettled == 0


def test_model_state_then_assign(d, tmp_path):
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "c.csv", "--state", tmp_path / "m.kstate")
    assert code == 0, out
    code, plain = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "plain.csv")
    assert code == 0, plain
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), clusters(tmp_path / "plain.csv"))
    state = ClusterState.load(tmp_path / "m.kstate")
    assert state.meta["model"]["name"] == "m.kfree" and state.X.dtype == np.float32
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(d / "m.kfree")
    expected = assign(state, learner.transform(np.load(d / "new.npy")))
    code, out = run("assign", d / "m.kfree", tmp_path / "m.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0, out
    np.testing.assert_array_equal(clusters(tmp_path / "a.csv"), expected)
    # a --threshold override is the state's cut too
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--threshold", "0.3", "--out", tmp_path / "t.csv",
                    "--state", tmp_path / "t.kstate")
    assert code == 0, out
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--threshold", "0.3", "--out", tmp_path / "t2.csv")
    assert code == 0, out
    assert ClusterState.load(tmp_path / "t.kstate").threshold == 0.3
    np.testing.assert_array_equal(clusters(tmp_path / "t.csv"), clusters(tmp_path / "t2.csv"))
    # the state says which model made it
    code, out = run("assign", tmp_path / "m.kstate", d / "new.npy", "--out", tmp_path / "x.csv")
    one_line_error(code, out, "was made with the model m.kfree")


def test_errors_are_one_line_and_leave_the_state(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    before = (tmp_path / "s.kstate").read_bytes()
    cases = [
        (["assign", tmp_path / "missing.kstate", d / "new.npy", "--out", tmp_path / "o.csv"], "cluster state not found"),
        (["assign", tmp_path / "s.kstate", d / "garbage.npy", "--out", tmp_path / "o.csv"], "garbage.npy"),
        (["assign", tmp_path / "s.kstate", d / "nothere.npy", "--out", tmp_path / "o.csv"], "nothere.npy"),
        (["assign", tmp_path / "s.kstate", d / "narrow.npy", "--out", tmp_path / "o.csv"],
         "X_new has 3 features but the cluster state has 8"),
        (["assign", d / "x.npy", d / "new.npy", "--out", tmp_path / "o.csv"], "not a readable kfree cluster state"),
        (["assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "c.csv"], "already exists"),
        (["assign", tmp_path / "s.kstate", d / "new.npy"], "--out"),
        (["assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "o.csv", "--state-out", tmp_path / "s.kstate"],
         "input file"),
        (["assign", d / "m.kfree", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "o.csv"],
         "made without a model"),
        (["cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c2.csv", "--state", tmp_path / "s.kstate"],
         "already exists"),
        (["cluster", d / "x.npy", "--threshold", TAU, "--method", "multicut", "--out", tmp_path / "c3.csv",
          "--state", tmp_path / "t.kstate"], "--state keeps a clustering cut at a threshold"),
    ]
    for args, message in cases:
        code, out = run(*args)
        one_line_error(code, out, message)
    assert (tmp_path / "s.kstate").read_bytes() == before
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "c2.csv").exists()
    assert not (tmp_path / "t.kstate").exists()


def test_a_state_takes_one_assign_at_a_time_and_each_batch_once(d, tmp_path, monkeypatch):
    """Found by review: two assigns at once each read the state and the later write dropped the
    other's rows; a retried command added its rows twice; --out was written before a STATE that
    could not be replaced failed, leaving cluster ids the state never recorded."""
    import errno
    import tempfile

    from kfree.cli.assign import locked_state

    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    before = (tmp_path / "s.kstate").read_bytes()
    with locked_state(tmp_path / "s.kstate"):  # another assign is updating it
        code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
        assert code == 75, out  # EX_TEMPFAIL: a scheduler retries it, and bad input stays 1
        one_line_error(1, out, "another kfree command is updating s.kstate (kfree assign, or kfree cluster --state")
        assert "exit status 75: try again later" in out
    assert (tmp_path / "s.kstate").read_bytes() == before and not (tmp_path / "a.csv").exists()
    # nor is it replaced by kfree cluster --state --force meanwhile (an operations trial: the assign's rows were
    # lost and its cluster ids given out again)
    with locked_state(tmp_path / "s.kstate"):
        code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c2.csv", "--state",
                        tmp_path / "s.kstate", "--force")
        assert code == 75, out
        one_line_error(1, out, "another kfree command is updating s.kstate")
    assert (tmp_path / "s.kstate").read_bytes() == before and not (tmp_path / "c2.csv").exists()
    # a folder that cannot take the replaced STATE is found before any work
    real_mkstemp = tempfile.mkstemp

    def no_writes_beside_the_state(*a, dir=None, **k):
        if dir is not None and str(dir) == str(tmp_path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", no_writes_beside_the_state)
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", d / "never.csv")
    one_line_error(code, out, "cannot write STATE")
    assert not (d / "never.csv").exists() and (tmp_path / "s.kstate").read_bytes() == before
    monkeypatch.undo()
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0, out
    n = ClusterState.load(tmp_path / "s.kstate").n_samples
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "b.csv")
    one_line_error(code, out, "the rows of new.npy were already added to s.kstate (as new.npy, assign 1)")
    assert "if its --out was lost, --skip-held writes it again and adds nothing" in out  # (found by a user trial)
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == n and not (tmp_path / "b.csv").exists()
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "b.csv", "--again")
    assert code == 0, out
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_samples == n + len(np.load(d / "new.npy"))
    assert [(b["file"], b["assign"]) for b in state.meta["batches"]] == [("new.npy", 1), ("new.npy", 2)]


def test_a_file_system_without_locks_still_assigns(d, tmp_path, monkeypatch):
    """Only a lock held elsewhere is "busy"; where the file system cannot lock (ENOLCK), assign
    goes on and says so (found by review: every assign failed there)."""
    import errno
    import fcntl

    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out

    def no_locks(*a, **k):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0 and "cannot lock s.kstate on this file system" in out, out
    assert ClusterState.load(tmp_path / "s.kstate").meta["assigns"] == 1


def test_model_mismatch_is_refused_and_a_model_trained_again_alike_is_taken(d, tmp_path):
    train = ["train", d / "x.npy", "--labels", d / "y.npy", *FAST, "--no-compare-raw"]
    for name, seed in (("a.kfree", "0"), ("again.kfree", "0"), ("other.kfree", "1")):
        code, out = run(*train, "--seed", seed, "--out", tmp_path / name)
        assert code == 0, out
    assert (tmp_path / "a.kfree").read_bytes() != (tmp_path / "again.kfree").read_bytes()  # (its wall time)
    code, out = run("cluster", tmp_path / "a.kfree", d / "x.npy", "--out", tmp_path / "c.csv", "--state", tmp_path / "m.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "other.kfree", tmp_path / "m.kstate", d / "new.npy", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "is not the model m.kstate was made with")
    assert "or make a new state with it: kfree cluster" in out, out
    # trained again with the same data, settings and seed: another file that embeds alike (an operations trial's
    # states were stranded by a deterministic retrain)
    code, out = run("assign", tmp_path / "again.kfree", tmp_path / "m.kstate", d / "new.npy", "--out",
                    tmp_path / "r.csv", "--state-out", tmp_path / "r.kstate")
    assert code == 0 and "but embeds rows as it does" in " ".join(out.split()), out
    code, out = run("assign", tmp_path / "a.kfree", tmp_path / "m.kstate", d / "new.npy", "--out", tmp_path / "s.csv")
    assert code == 0 and "embeds rows as it does" not in out, out
    assert clusters(tmp_path / "r.csv").tolist() == clusters(tmp_path / "s.csv").tolist()
    # a damaged model file is said to be damaged, not another model (an operations trial hunted for one)
    (tmp_path / "cut.kfree").write_bytes((d / "m.kfree").read_bytes()[:(d / "m.kfree").stat().st_size // 2])
    code, out = run("assign", tmp_path / "cut.kfree", tmp_path / "m.kstate", d / "new.npy", "--out", tmp_path / "o.csv")
    assert code == 1 and "cut.kfree" in out and "is not the model" not in out, out
    code, out = run("assign", tmp_path / "a.kfree", tmp_path / "m.kstate", d / "narrow.npy", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "features")


def test_state_of_a_ward_model_keeps_its_validated_complete_cut(d, ward_model, tmp_path):
    """A model whose chosen rule is a Ward cut (the usual choice under --linkage auto) still makes a
    state: with its best validated complete-linkage cut of the same features, said in the output."""
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(ward_model)
    assert learner.rule_.linkage == "ward", learner.rule_  # the case under test
    rule = learner.state_rule()
    assert rule.linkage == "complete" and rule.features == learner.rule_.features
    candidates = [c for c in learner.selection_["candidates"]
                  if c["features"] == rule.features and c["linkage"] == "complete"]
    assert rule.val_nmi == max(c["val_nmi"] for c in candidates)
    code, out = run("cluster", ward_model, d / "x.npy", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "w.kstate")
    assert code == 0, out
    assert "chosen rule is a Ward cut" in out and "complete linkage" in out and "cluster state saved" in out
    Z = learner.transform(np.load(d / "x.npy"))
    ref = ThresholdAgglomerative(rule.threshold.value, linkage="complete", distance=rule.threshold.distance).fit(Z)
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), ref.labels_)
    state = ClusterState.load(tmp_path / "w.kstate")
    assert state.threshold == rule.threshold.value and state.meta["model"]["chosen_rule_linkage"] == "ward"
    expected = assign(state, learner.transform(np.load(d / "new.npy")))
    code, out = run("assign", ward_model, tmp_path / "w.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0, out
    np.testing.assert_array_equal(clusters(tmp_path / "a.csv"), expected)
    # a --threshold would be a Ward height here: refused before anything is written
    code, out = run("cluster", ward_model, d / "x.npy", "--threshold", "0.5", "--out", tmp_path / "t.csv",
                    "--state", tmp_path / "t.kstate")
    one_line_error(code, out, "would be a Ward merge height")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.kstate").exists()


def test_a_ward_model_on_many_rows_cuts_its_complete_linkage_rule(d, ward_model, tmp_path, monkeypatch):
    """Above WARD_MAX_ROWS rows (lowered here) a chosen Ward cut (O(n²) time) gives way to the
    best validated complete-linkage cut, with a warning in Python and one line in the CLI;
    method="ward" keeps Ward."""
    import warnings

    import kfree.learner as learner_module
    from kfree.exceptions import ScaleWarning
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(ward_model)
    assert learner.rule_.linkage == "ward", learner.rule_
    X = np.load(d / "new.npy")  # 40 rows
    # (about 3 rows per identity against 7.7 at calibration: the cut that gives way to small
    # clusters, tested in test_learner, is kept out of this test of the row limit)
    monkeypatch.setattr(learner_module, "WARD_MIN_SIZE_RATIO", 0.0)
    monkeypatch.setattr(learner_module, "WARD_WARN_LOW_RATIO", 0.0)  # (and its warning)
    monkeypatch.setattr(ClusterLearner, "_ward_at_batch_size", lambda self, Z: None)  # (and the size curve's reading)
    Z = learner.transform(X)
    ward = learner.rule_.cluster(Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(learner.cluster(X), ward)  # at or below the limit: Ward, silently
    monkeypatch.setattr(learner_module, "WARD_MAX_ROWS", len(X) - 1)
    rule = learner.state_rule()
    assert learner.rule_for_rows(len(X)) == rule and learner.rule_for_rows(len(X) - 1) is learner.rule_
    with pytest.warns(ScaleWarning, match="above 39, where the chosen Ward cut"):
        got = learner.cluster(X)
    np.testing.assert_array_equal(got, rule.cluster(Z))
    np.testing.assert_array_equal(learner.cluster(X, method="ward"), ward)
    code, out = run("cluster", ward_model, d / "new.npy", "--out", tmp_path / "c.csv")
    assert code == 0, out
    assert "complete linkage" in out and "above 39 rows Ward's O(n²) agglomeration is too slow" in out, out
    assert "Warning" not in out and out.count("too slow") == 1  # said once, as a line, not as a Python warning
    assert out.index("too slow") < out.index("rows →")  # before the work (a memory refusal would hide it)
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), got)


def test_state_needs_a_complete_linkage_rule(d):
    from kfree.config import TrainConfig
    from kfree.exceptions import ConfigError
    from kfree.learner import ClusterLearner

    X, y = np.load(d / "x.npy"), np.load(d / "y.npy")
    learner = ClusterLearner(TrainConfig(epochs=2, p=6, k=5, dims=(8,), seed=0), linkage="average").fit(X, y)
    assert learner.rule_.linkage == "average"
    with pytest.raises(ConfigError, match="no validated complete-linkage cut"):
        learner.state_rule()


def test_embed_writes_the_rows_and_the_cut_that_clusters_them(d, ward_model, tmp_path):
    """kfree embed writes learner.transform's rows and prints a cut; clustering the rows at that
    cut gives the clusters of the model's complete-linkage rule (what --state keeps)."""
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(ward_model)
    code, out = run("embed", ward_model, d / "x.npy", "--out", tmp_path / "z.npy")
    assert code == 0, out
    Z = np.load(tmp_path / "z.npy")
    np.testing.assert_array_equal(Z, learner.transform(np.load(d / "x.npy")))
    assert "best validated complete-linkage cut" in out  # a Ward model
    # a number threshold for another method is in the chosen (Ward) rule's units, and named so (a review)
    code, said = run("cluster", ward_model, d / "x.npy", "--method", "multicut", "--threshold", "1.25",
                     "--out", tmp_path / "mc.csv")
    assert code == 0 and "threshold 1.25 euclidean" in said, said
    command = next(line.split() for line in out.splitlines() if line.strip().startswith("kfree cluster"))
    threshold, distance = command[command.index("--threshold") + 1], command[command.index("--distance") + 1]
    code, out = run("cluster", tmp_path / "z.npy", "--threshold", threshold, "--distance", distance,
                    "--out", tmp_path / "c.csv")
    assert code == 0, out
    code, out = run("cluster", ward_model, d / "x.npy", "--out", tmp_path / "s.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), clusters(tmp_path / "s.csv"))
    code, out = run("embed", ward_model, d / "x.npy", "--out", tmp_path / "h.npy", "--float16")
    assert code == 0 and np.load(tmp_path / "h.npy").dtype == np.float16, out
    one_line_error(*run("embed", ward_model, d / "x.npy", "--out", tmp_path / "z.npy"), "already exists")
    one_line_error(*run("embed", ward_model, d / "x.npy", "--out", tmp_path / "z.csv"), "writes a .npy file")
    one_line_error(*run("embed", ward_model, d / "narrow.npy", "--out", tmp_path / "n.npy"), "3 features")
    assert not (tmp_path / "n.npy").exists()


def test_all_rows_of_tables_with_their_own_index_evaluate_by_row(tmp_path):
    """--all-rows never writes row numbers as an 'index' (joining them to unrelated 'index'
    values scored NMI 0.06 for a perfect clustering): a state made from tables with their own
    ids writes those ids beside each row, and `kfree evaluate` joins the truth by them."""
    from kfree.data.synthetic import sphere_blobs

    X, y = sphere_blobs(8, 25, dim=16, spread=0.15, seed=1)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(16)])
    df["label"], df["index"] = y, np.random.default_rng(5).permutation(200)  # the tables' own ids
    df[:150].to_csv(tmp_path / "base.csv", index=False)
    df[150:].to_csv(tmp_path / "new.csv", index=False)
    df[["index", "label"]].to_csv(tmp_path / "truth.csv", index=False)
    code, out = run("cluster", tmp_path / "base.csv", "--threshold", "0.6", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "new.csv", "--out", tmp_path / "a.csv", "--all-rows")
    assert code == 0, out
    written = pd.read_csv(tmp_path / "a.csv")
    assert list(written.columns) == ["index", "cluster", "row"] and written["row"].tolist() == list(range(200))
    assert written["index"].tolist() == df["index"].tolist()
    pd.read_csv(tmp_path / "truth.csv").sample(frac=1, random_state=0).to_csv(tmp_path / "shuffled.csv", index=False)
    for truth in ("truth.csv", "shuffled.csv"):  # joined by the ids, in whatever order the truth lists them
        code, out = run("evaluate", tmp_path / "a.csv", tmp_path / truth)
        assert code == 0 and "1.000" in out, out


def test_an_interrupted_assign_writes_both_outputs_or_neither(d, tmp_path, monkeypatch):
    """Found by review: the state was saved, then an interrupt before --out left a state that held
    the batch (its rerun refused) and no clusters file for it."""
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    before = (tmp_path / "s.kstate").read_bytes()

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ClusterState, "save", interrupted)
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 130 and "interrupted" in out, out
    assert (tmp_path / "s.kstate").read_bytes() == before and not (tmp_path / "a.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "s.kstate"]  # no pending file left
    monkeypatch.undo()
    # a kill outright (SIGKILL, an OOM kill) leaves the writes' temporaries: the next assign of the
    # state removes them, saying so (found by a user trial: one state-sized file per kill, forever)
    left = [".s.kstate.k9x2_abc.tmp", ".a.csv.pending.csv", "..a.csv.pending.csv.q1w2e3.tmp"]
    for name in left:
        (tmp_path / name).write_bytes(b"x" * 1000)
    (tmp_path / ".other.kstate.zz.tmp").write_bytes(b"another state's")  # not this state's: kept
    code, out = run("assign", tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0 and (tmp_path / "a.csv").exists(), out
    assert "removed 3 files (0.0 MiB) an earlier kfree assign left when it was killed" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.kstate.zz.tmp", "a.csv", "c.csv", "s.kstate"]


def test_sigterm_ends_a_command_as_ctrl_c_does():
    """kill (SIGTERM) ended the process at once: the temporary file of an output being written
    stayed behind (found by review); the CLI turns it into an interrupt, so cleanup runs."""
    import os
    import signal

    from kfree.cli.console import Terminated, _terminate_as_interrupt, cli_errors

    old = signal.getsignal(signal.SIGTERM)
    try:
        _terminate_as_interrupt()
        with pytest.raises(KeyboardInterrupt):  # (a handler runs as soon as os.kill returns)
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, old)
    # it exits 143, as a process SIGTERM ended does (a user trial's cron could not tell it from ^C's 130)
    import typer

    for raised, code in ((Terminated, 143), (KeyboardInterrupt, 130)):
        with pytest.raises(typer.Exit) as ended, cli_errors():
            raise raised
        assert ended.value.exit_code == code


def test_cluster_names_the_ward_cut_read_at_the_batch_size(d, ward_model, tmp_path):
    """new.npy has about 3 rows per identity, the Ward cut was calibrated on held-out identities of
    7.7: kfree cluster reads it at the batch's size on the model's size curve, warns once, and names
    the height it cut at (the clusters are the API's)."""
    from kfree.learner import ClusterLearner

    learner = ClusterLearner.load(ward_model)
    code, out = run("cluster", ward_model, d / "new.npy", "--out", tmp_path / "c.csv")
    assert code == 0, out
    assert out.count("warning:") == 1 and "(no --validation), of 7.7 rows each; these 40 rows look like " \
        "identities of 2.9 rows" in out, out
    with pytest.warns(ClusterSizeWarning):
        labels, rule = learner.cluster(np.load(d / "new.npy"), return_rule=True)
    assert f"ward linkage, threshold {rule.threshold.value:g} (Ward merge height)" in out, out
    assert rule.threshold.value < learner.rule_.threshold.value
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), labels)


def test_cluster_names_the_complete_cut_used_for_small_clusters(d, ward_model, tmp_path, monkeypatch):
    """new.npy has about 3 rows per identity, the Ward cut was calibrated on 7.7: without a size
    curve (a model validated on rows the user gave) kfree cluster warns once and says it cut
    complete linkage (the clusters are the best complete-linkage cut's)."""
    from kfree.learner import ClusterLearner

    monkeypatch.setattr(ClusterLearner, "_ward_at_batch_size", lambda self, Z: None)
    learner = ClusterLearner.load(ward_model)
    code, out = run("cluster", ward_model, d / "new.npy", "--out", tmp_path / "c.csv")
    assert code == 0, out
    assert "calibrated on identities of 7.7 rows each" in out and "complete linkage, threshold" in out, out
    assert "ward linkage" not in out, out
    rule = learner.state_rule()
    np.testing.assert_array_equal(clusters(tmp_path / "c.csv"), rule.cluster(learner.transform(np.load(d / "new.npy"))))


@pytest.mark.parametrize("with_model", [False, True])
def test_rows_already_in_the_state_are_refused_however_the_batch_is_cut(d, tmp_path, with_model):
    """Found by a photo-library user: only a byte-identical batch was refused; the same rows
    reversed, half of them, or with 100 new rows after them were added a second time. Each row is
    now recognised by the hash of its values as given (before the model, whose output can differ
    in the last bits with the batch it is computed in), in any dtype."""
    model = [d / "m.kfree"] if with_model else []
    cut = [] if with_model else ["--threshold", TAU]
    code, out = run("cluster", *model, d / "x.npy", *cut, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    variants = {"reversed": X[::-1], "half": X[:50], "plus": np.concatenate([new[:5], X[:3]]),
                "as64": X[10:20].astype(np.float64)}
    for name, rows in variants.items():
        np.save(tmp_path / f"{name}.npy", rows)
        code, out = run("assign", *model, tmp_path / "s.kstate", tmp_path / f"{name}.npy", "--out", tmp_path / "a.csv")
        held = {"reversed": 100, "half": 50, "plus": 3, "as64": 10}[name]
        one_line_error(code, out, f"{held:,} of the {len(rows):,} rows of {name}.npy are already in s.kstate")
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == 100 and not (tmp_path / "a.csv").exists()
    code, out = run("assign", *model, tmp_path / "s.kstate", d / "new.npy", "--out", tmp_path / "a.csv")
    assert code == 0, out  # new rows go in, and are known from then on
    code, out = run("assign", *model, tmp_path / "s.kstate", tmp_path / "plus.npy", "--out", tmp_path / "b.csv")
    one_line_error(code, out, "8 of the 8 rows of plus.npy are already in s.kstate (rows 0, 1, 2, 3, 4…)")
    code, out = run("assign", *model, tmp_path / "s.kstate", tmp_path / "plus.npy", "--out", tmp_path / "b.csv",
                    "--again")
    assert code == 0, out
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_samples == 100 + len(new) + 8 and state.row_hashes.shape == (state.n_samples,)


def test_a_state_made_from_a_table_takes_a_batch_by_its_column_names(d, tmp_path):
    """Found by a photo-library user: a state made from a table with named columns took a batch
    whose columns came in another order as it was (0 of 500 rows joined a cluster)."""
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    cols = [f"f{j}" for j in range(X.shape[1])]
    pd.DataFrame(X, columns=cols).to_parquet(tmp_path / "x.parquet")
    pd.DataFrame(new, columns=cols)[cols[::-1]].to_csv(tmp_path / "new_rev.csv", index=False)
    pd.DataFrame(new[:, :-1], columns=cols[:-1]).assign(extra=1.5).to_csv(tmp_path / "other.csv", index=False)
    code, out = run("cluster", tmp_path / "x.parquet", "--threshold", TAU, "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "other.csv", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "other.csv's feature columns are not s.kstate's: 1 it was not made with (extra;")
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "new_rev.csv", "--out", tmp_path / "a.csv")
    assert code == 0 and "columns taken in the order s.kstate was made with" in out, out
    ref = ClusterState.fit(X, float(TAU))
    np.testing.assert_array_equal(clusters(tmp_path / "a.csv"), assign(ref, new))


@pytest.mark.parametrize("with_model", [False, True])
def test_the_columns_left_out_when_the_state_was_made_are_left_out_of_each_batch(d, tmp_path, with_model):
    """Found by review: a daily batch holds the same id and timestamp columns as the table the state
    was made from, and each day's `kfree assign` failed on them unless --ignore-columns was typed
    again. The state now keeps the columns left out; an extra column is still refused, and the
    advised option keeps the remembered ones."""
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    cols = [f"f{j}" for j in range(X.shape[1])]

    def table(A, start):
        return pd.DataFrame(A, columns=cols).assign(ticket=[f"T{start + i}" for i in range(len(A))], hour=3.0)

    if with_model:  # a model trained on the plain table: its state keeps the columns the cluster left out
        pd.DataFrame(X, columns=cols).assign(label=np.load(d / "y.npy")).to_csv(tmp_path / "train.csv", index=False)
        code, out = run("train", tmp_path / "train.csv", "--out", tmp_path / "m.kfree", *FAST)
        assert code == 0, out
    first = [tmp_path / "m.kfree"] if with_model else []
    table(X, 0).to_csv(tmp_path / "day0.csv", index=False)
    table(new, 100).to_csv(tmp_path / "day1.csv", index=False)
    table(new, 100).assign(extra=1.0).to_csv(tmp_path / "day2.csv", index=False)
    code, out = run("cluster", *first, tmp_path / "day0.csv", *([] if with_model else ["--threshold", TAU]),
                    "--ignore-columns", "ticket,hour", "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("assign", *first, tmp_path / "s.kstate", tmp_path / "day2.csv", "--out", tmp_path / "a2.csv")
    one_line_error(code, out, "1 it was not made with (extra; leave them out with --ignore-columns ticket,hour,extra,"
                   if not with_model else "--ignore-columns ticket,hour,extra")
    code, out = run("assign", *first, tmp_path / "s.kstate", tmp_path / "day1.csv", "--out", tmp_path / "a1.csv")
    assert code == 0 and "leaving out the columns ticket, hour as s.kstate was made" in out, out
    if not with_model:
        ref = ClusterState.fit(X, float(TAU))
        np.testing.assert_array_equal(clusters(tmp_path / "a1.csv"), assign(ref, new))
    assert len(clusters(tmp_path / "a1.csv")) == len(new)
    # naming columns replaces what the state remembers: a column left out no more is a feature again
    code, out = run("assign", *first, tmp_path / "s.kstate", tmp_path / "day1.csv", "--ignore-columns", "ticket",
                    "--out", tmp_path / "a3.csv")
    assert code == 1 and "hour" in out, out


def test_a_state_made_from_rows_with_ids_names_every_row_by_them(d, tmp_path):
    """Found by a helpdesk user: `kfree assign --all-rows` named the state's rows 0..n-1 only,
    so after --recluster-affected the earlier tickets that moved could not be told by id. A state
    made from a table with its own 'index' now keeps the ids; row numbers alone are no ids."""
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    cols = [f"f{j}" for j in range(X.shape[1])]
    ids = [f"T-{i:04d}" for i in range(len(X) + len(new))]
    pd.DataFrame(X, columns=cols).assign(index=ids[:len(X)]).to_csv(tmp_path / "day0.csv", index=False)
    pd.DataFrame(new, columns=cols).assign(index=ids[len(X):]).to_csv(tmp_path / "day1.csv", index=False)
    pd.DataFrame(new[:3], columns=cols).to_csv(tmp_path / "no_ids.csv", index=False)
    pd.DataFrame(new[:3] + 0.5, columns=cols).assign(index=["T-0001", "N1", "N2"]).to_csv(
        tmp_path / "reused.csv", index=False)
    code, out = run("cluster", tmp_path / "day0.csv", "--threshold", TAU, "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "no_ids.csv", "--out", tmp_path / "x.csv")
    one_line_error(code, out, "s.kstate names its rows by their ids: give no_ids.csv's rows theirs")
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "reused.csv", "--out", tmp_path / "x.csv")
    one_line_error(code, out, "1 of the ids is already in the state ('T-0001')")
    assert not (tmp_path / "x.csv").exists()
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day1.csv", "--recluster-affected", "--all-rows",
                    "--out", tmp_path / "all.csv")
    assert code == 0, out
    every = pd.read_csv(tmp_path / "all.csv")
    assert list(every.columns) == ["index", "cluster", "row"] and every["index"].tolist() == ids
    ref = ClusterState.fit(X, float(TAU))
    assign(ref, new, recluster_affected=True)
    np.testing.assert_array_equal(every["cluster"], ref.labels)
    # rows the state holds already need no ids: under --skip-held none is added
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "no_ids.csv", "--skip-held", "--out", tmp_path / "h.csv")
    assert code == 0 and clusters(tmp_path / "h.csv").tolist() == every["cluster"].tolist()[len(X):len(X) + 3], out
    # a ticket trial: the same tickets encoded again in another batch differ by ~1e-7 (one was refused
    # under --skip-held as "already in the state"); the same id with features equal to rounding is held,
    # the same id with other features is still refused, and a new id is added
    again = new[:4].astype(np.float64).copy()
    again[1] *= 1 + 3e-7
    again[2] += 0.5
    pd.DataFrame(np.vstack([again, new[:1] + 0.25]), columns=cols).assign(
        index=[*ids[len(X):len(X) + 4], "NEW-1"]).to_csv(tmp_path / "again.csv", index=False)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "again.csv", "--skip-held", "--out", tmp_path / "g.csv")
    one_line_error(code, out, f"1 of the ids is already in the state ('{ids[len(X) + 2]}')")
    pd.read_csv(tmp_path / "again.csv").drop(index=2).to_csv(tmp_path / "again.csv", index=False)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "again.csv", "--skip-held", "--all-rows",
                    "--out", tmp_path / "g.csv")
    assert code == 0 and "(1 of them by id: the same id, and features equal to that row's to rounding" in out, out
    g = pd.read_csv(tmp_path / "g.csv")
    assert len(g) == len(X) + len(new) + 1 and g["index"].tolist()[-1] == "NEW-1", out  # only NEW-1 added
    assert g.set_index("index").loc[ids[len(X) + 1], "cluster"] == every["cluster"][len(X) + 1]
    # a new id with a held row's very features is another item (two tickets, one text): added, not skipped
    # (an operations trial's --skip-held left such tickets out of the state for good)
    pd.DataFrame(new[:1], columns=cols).assign(index=["TWIN-1"]).to_csv(tmp_path / "twin.csv", index=False)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "twin.csv", "--skip-held", "--all-rows",
                    "--out", tmp_path / "t.csv")
    t = pd.read_csv(tmp_path / "t.csv").set_index("index")
    assert code == 0 and len(t) == len(g) + 1 and t.loc["TWIN-1", "cluster"] == t.loc[ids[len(X)], "cluster"], out
    # a table whose 'index' is only its row numbers keeps no ids: each day's file may repeat them
    pd.DataFrame(X, columns=cols).assign(index=range(len(X))).to_csv(tmp_path / "rows.csv", index=False)
    pd.DataFrame(new, columns=cols).assign(index=range(len(new))).to_csv(tmp_path / "rows1.csv", index=False)
    code, out = run("cluster", tmp_path / "rows.csv", "--threshold", TAU, "--out", tmp_path / "c2.csv",
                    "--state", tmp_path / "s2.kstate")
    assert code == 0 and ClusterState.load(tmp_path / "s2.kstate").ids is None, out
    code, out = run("assign", tmp_path / "s2.kstate", tmp_path / "rows1.csv", "--all-rows", "--out", tmp_path / "a2.csv")
    assert code == 0 and list(pd.read_csv(tmp_path / "a2.csv").columns) == ["row", "cluster"], out


def test_a_few_rows_equal_to_held_ones_are_added_with_a_warning(d, tmp_path):
    """Found by a support-ticket user: two tickets with the same text have equal embeddings, and a
    daily batch of 140 was refused for one of them. Under a tenth of the batch, such rows are
    distinct items with equal features: added, and said."""
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    np.save(tmp_path / "day.npy", np.concatenate([new, X[:1]]))  # 40 new rows and 1 equal to a held one
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.npy", "--out", tmp_path / "a.csv")
    assert code == 0 and "warning: 1 of the 41 rows of day.npy (rows 40) equal rows s.kstate already holds" in out, out
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == 141
    # a small batch with one such row: added too (an operations trial's batch of 5 was refused for one
    # duplicate photo); two of five, or a whole batch again, are refused as added before
    np.save(tmp_path / "five.npy", np.concatenate([new[:4] + 0.01, X[1:2]]))
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "five.npy", "--out", tmp_path / "f.csv")
    assert code == 0 and "1 of the 5 rows of five.npy (rows 4) equal rows" in out, out
    np.save(tmp_path / "two.npy", np.concatenate([new[:3] + 0.02, X[2:4]]))
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "two.npy", "--out", tmp_path / "t.csv")
    one_line_error(code, out, "2 of the 5 rows of two.npy are already in s.kstate (rows 3, 4), added before")
    np.save(tmp_path / "one.npy", X[5:6])
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "one.npy", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "1 of the 1 rows of one.npy are already in s.kstate (rows 0), added before")


def test_a_batch_without_rows_assigns_nothing_and_exits_0(d, tmp_path):
    """Found by a user trial: a scheduled job's batch of a quiet day (a header alone, or 0 rows)
    failed with exit 1 and stopped the pipeline. It now writes an --out without rows and leaves the
    state as it was (no empty batch recorded: the next quiet day's is not refused as a repeat)."""
    X = np.load(d / "x.npy")
    cols = [f"f{j}" for j in range(X.shape[1])]
    pd.DataFrame(X, columns=cols).to_parquet(tmp_path / "x.parquet")
    code, out = run("cluster", tmp_path / "x.parquet", "--threshold", TAU, "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    before = (tmp_path / "s.kstate").read_bytes()
    (tmp_path / "quiet.csv").write_text("index," + ",".join(cols) + "\n")
    np.save(tmp_path / "quiet.npy", np.zeros((0, X.shape[1]), np.float32))
    for quiet in ("quiet.csv", "quiet.csv", "quiet.npy"):  # (twice: not refused as the same batch again)
        code, out = run("assign", tmp_path / "s.kstate", tmp_path / quiet, "--out", tmp_path / "a.csv", "--force")
        assert code == 0 and f"{quiet} has no rows: nothing to assign; s.kstate is unchanged" in out, out
        assert pd.read_csv(tmp_path / "a.csv").shape[0] == 0
        assert (tmp_path / "s.kstate").read_bytes() == before
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "quiet.csv", "--out", tmp_path / "all.csv", "--all-rows")
    assert code == 0 and clusters(tmp_path / "all.csv").tolist() == ClusterState.load(tmp_path / "s.kstate").labels.tolist()
    # its columns are still checked, and a model's state takes an empty batch too
    (tmp_path / "other.csv").write_text("index,g0\n")
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "other.csv", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "other.csv's feature columns are not s.kstate's")
    # a quiet night's Parquet file of a vector column: no cells to expand it by, and it fits (found
    # by a user trial: refused, with the advice to leave out the column that holds the features)
    pd.DataFrame({"index": np.arange(len(X)) + 50, "embedding": list(X)}).to_parquet(tmp_path / "v.parquet")
    code, out = run("cluster", tmp_path / "v.parquet", "--threshold", TAU, "--out", tmp_path / "v.csv",
                    "--state", tmp_path / "v.kstate")
    assert code == 0, out
    pd.DataFrame({"index": np.zeros(0, np.int64), "embedding": []}).to_parquet(tmp_path / "night.parquet")
    code, out = run("assign", tmp_path / "v.kstate", tmp_path / "night.parquet", "--out", tmp_path / "n.csv")
    assert code == 0 and "night.parquet has no rows: nothing to assign" in out, out
    # a quiet night of a table with ids: the header of the other nights' (found by a ticket trial)
    assert pd.read_csv(tmp_path / "n.csv").columns.tolist() == ["index", "cluster", "row"]
    pd.DataFrame({"index": np.zeros(0, np.int64), "emb": []}).to_parquet(tmp_path / "renamed.parquet")
    code, out = run("assign", tmp_path / "v.kstate", tmp_path / "renamed.parquet", "--out", tmp_path / "r.csv")
    one_line_error(code, out, "renamed.parquet's feature columns are not v.kstate's")
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "m.csv", "--state", tmp_path / "m.kstate")
    assert code == 0, out
    np.save(tmp_path / "none.npy", np.zeros((0, X.shape[1]), np.float32))
    code, out = run("assign", d / "m.kfree", tmp_path / "m.kstate", tmp_path / "none.npy", "--out", tmp_path / "m0.csv")
    assert code == 0 and "nothing to assign" in out, out


def test_skip_held_adds_only_the_rows_the_state_does_not_hold(d, tmp_path):
    """Found by a user trial: a daily batch of 4 tickets, 2 of them a "Thanks!" and a blank ticket
    seen on earlier days, was refused whole, and --again also turned off the guard against
    retries. --skip-held adds the others and gives the held ones their twin's cluster: a retried
    batch then writes the same clusters and adds nothing."""
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    X, new = np.load(d / "x.npy"), np.load(d / "new.npy")
    state0 = ClusterState.load(tmp_path / "s.kstate")
    np.save(tmp_path / "day.npy", np.concatenate([new[:5], X[[7, 3]]]))  # 5 new rows, 2 equal to held ones
    pd.DataFrame(np.concatenate([new[:5], X[[7, 3]]]), columns=[f"f{j}" for j in range(X.shape[1])]).assign(
        index=[f"Y{i}" for i in range(7)]).to_csv(tmp_path / "day.csv", index=False)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.csv", "--out", tmp_path / "a.csv")
    one_line_error(code, out, "2 of the 7 rows of day.csv are already in s.kstate (ids Y5, Y6), added before")
    assert "--skip-held" in out
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.npy", "--out", tmp_path / "a.csv", "--skip-held")
    assert code == 0 and "2 rows the state already held were not added again (--skip-held)" in out, out
    assert "5 new rows" in out
    got = clusters(tmp_path / "a.csv")
    ref = ClusterState.fit(X, float(TAU))
    np.testing.assert_array_equal(got[:5], assign(ref, new[:5]))  # as if the 5 had come alone
    np.testing.assert_array_equal(got[5:], state0.labels[[7, 3]])  # the twins' clusters
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_samples == len(X) + 5
    # the same batch retried: nothing added, the same clusters written, and the state file left as it
    # was (found by a user trial: it was rewritten whole, and said "updated")
    before = (tmp_path / "s.kstate").stat()
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.npy", "--out", tmp_path / "b.csv", "--skip-held")
    assert code == 0 and "7 rows the state already held were not added again" in out and "no new row;" in out, out
    assert "state unchanged" in out and (tmp_path / "s.kstate").stat().st_ino == before.st_ino, out
    np.testing.assert_array_equal(clusters(tmp_path / "b.csv"), got)
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == len(X) + 5
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.npy", "--out", tmp_path / "e.csv", "--skip-held",
                    "--again")
    one_line_error(code, out, "--skip-held adds only the rows the state does not hold, --again adds them all")
    # found by review: with a model, a retried batch (every row held) failed on embedding no rows
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "m.csv", "--state", tmp_path / "m.kstate")
    assert code == 0, out
    code, out = run("assign", d / "m.kfree", tmp_path / "m.kstate", d / "x.npy", "--out", tmp_path / "m1.csv",
                    "--skip-held")
    assert code == 0 and "no new row" in out, out
    np.testing.assert_array_equal(clusters(tmp_path / "m1.csv"), clusters(tmp_path / "m.csv"))
    # and a state that tells only whole batches (its rows repeat: integer features) still refuses a
    # retried one under --skip-held, saying it cannot leave out single rows
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 3, (200, 3)).astype(np.float32)
    np.save(tmp_path / "ints.npy", ints)
    np.save(tmp_path / "ints_day.npy", ints[:20] + 5)
    code, out = run("cluster", tmp_path / "ints.npy", "--threshold", "1", "--out", tmp_path / "i.csv",
                    "--state", tmp_path / "i.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "i.kstate", tmp_path / "ints_day.npy", "--out", tmp_path / "i1.csv")
    assert code == 0 and "i.kstate cannot tell single rows it holds" in out, out  # said on every assign
    code, out = run("assign", tmp_path / "i.kstate", tmp_path / "ints_day.npy", "--out", tmp_path / "i2.csv",
                    "--skip-held")
    assert code == 1 and "were already added to i.kstate" in out and "cannot tell single rows" in out, out
    assert ClusterState.load(tmp_path / "i.kstate").n_samples == 220


def test_an_id_column_of_any_name_names_the_rows_from_cluster_to_assign_and_evaluate(d, tmp_path):
    """Found by a user trial: a Parquet of photo embeddings named its rows by 'sku_id', and no
    command but encode/report could be told so: clusters files carried row numbers, the state kept
    no ids, and evaluate joined a shuffled truth table by row order (NMI 0.319 for a true 0.950)."""
    X, y, new = np.load(d / "x.npy"), np.load(d / "y.npy"), np.load(d / "new.npy")
    skus = [f"SKU-{i:05d}" for i in range(len(X) + len(new))]
    pd.DataFrame({"sku_id": skus[:len(X)], "embedding": list(X), "price": 9.5}).to_parquet(tmp_path / "day0.parquet")
    pd.DataFrame({"sku_id": skus[len(X):], "embedding": list(new), "price": 3.0}).to_parquet(tmp_path / "day1.parquet")
    code, out = run("cluster", tmp_path / "day0.parquet", "--threshold", TAU, "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0 and "--id-column sku_id names the rows by 'sku_id'" in out, out  # (said when left out)
    code, out = run("cluster", tmp_path / "day0.parquet", "--threshold", TAU, "--id-column", "sku_id", "--out",
                    tmp_path / "c.csv", "--state", tmp_path / "s.kstate", "--force")
    assert code == 0 and "--id-column" not in out, out
    c = pd.read_csv(tmp_path / "c.csv")
    assert c["index"].tolist() == skus[:len(X)]
    np.testing.assert_array_equal(c["cluster"], ThresholdAgglomerative(float(TAU)).fit(X).labels_)
    # the next day's batch: the state remembers the id column, and names every row by it
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day1.parquet", "--all-rows", "--out",
                    tmp_path / "all.csv")
    assert code == 0, out
    every = pd.read_csv(tmp_path / "all.csv")
    assert every["index"].tolist() == skus
    # evaluate joins a truth table in any order by its own id column
    truth = pd.DataFrame({"sku_id": skus[:len(X)], "product": y}).sample(frac=1, random_state=1)
    truth.to_parquet(tmp_path / "truth.parquet")
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.parquet", "--label-column", "product",
                    "--id-column", "sku_id", "--out", tmp_path / "m.json")
    assert code == 0, out
    import json

    from kfree.metrics import evaluate_clustering

    want = evaluate_clustering(y, c["cluster"].to_numpy())
    assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(want["nmi"])
    # without --id-column: the clusters' ids are found in the truth's sku_id column and joined by it
    # (it used to take the truth by row order, with a warning: a ticket trial's scores were wrong)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.parquet", "--label-column", "product",
                    "--out", tmp_path / "m2.json")
    assert code == 0 and "warning" not in out, out
    assert json.loads((tmp_path / "m2.json").read_text())["nmi"] == pytest.approx(want["nmi"])
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.parquet", "--id-column", "sku")
    one_line_error(code, out, "truth.parquet has no 'sku' column")
    code, out = run("cluster", tmp_path / "day0.parquet", "--threshold", TAU, "--id-column", "sku", "--out",
                    tmp_path / "x.csv")
    one_line_error(code, out, "day0.parquet has no id column 'sku' (--id-column)")
    # train takes it too: the id column is no feature (and, with the price named, nothing is said)
    pd.read_parquet(tmp_path / "day0.parquet").assign(product=y).to_parquet(tmp_path / "labelled.parquet")
    code, out = run("train", tmp_path / "labelled.parquet", "--label-column", "product", "--id-column", "sku_id",
                    "--ignore-columns", "price", "--out", tmp_path / "m.kfree", *FAST)
    assert code == 0 and "warning" not in out, out
    from kfree.learner import ClusterLearner

    assert list(ClusterLearner.load(tmp_path / "m.kfree").feature_names_in_) == [f"embedding[{j}]"
                                                                                 for j in range(X.shape[1])]


def test_rows_with_nan_features_are_named_by_id_and_skip_invalid_leaves_them_out(d, tmp_path):
    """Found by an ops trial: one failed embedding (a NaN row, a missing Parquet vector) refused
    a whole nightly batch, named by row number only. The refusal names its id and --skip-invalid;
    with it the other rows are added as they would be alone, the invalid ones get an empty cluster
    in --out, and evaluate/report read that file without them."""
    X, y, new = np.load(d / "x.npy"), np.load(d / "y.npy"), np.load(d / "new.npy")
    skus = [f"SKU-{i:03d}" for i in range(len(X) + len(new))]
    pd.DataFrame({"sku_id": skus[:len(X)], "embedding": list(X)}).to_parquet(tmp_path / "day0.parquet")
    vectors = list(new.astype(np.float64))
    vectors[3] = None  # the embedding failed
    vectors[7] = vectors[7].copy()
    vectors[7][2] = np.nan
    pd.DataFrame({"sku_id": skus[len(X):], "embedding": vectors}).to_parquet(tmp_path / "day1.parquet")
    code, out = run("cluster", tmp_path / "day0.parquet", "--threshold", TAU, "--id-column", "sku_id", "--out",
                    tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    before = (tmp_path / "s.kstate").read_bytes()
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day1.parquet", "--out", tmp_path / "a.csv")
    one_line_error(code, out, "features in day1.parquet hold NaN or infinite values in 2 rows (first: row 3, from 0, "
                              "id 'SKU-103'); drop or impute them, or pass --skip-invalid")
    assert (tmp_path / "s.kstate").read_bytes() == before and not (tmp_path / "a.csv").exists()
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day1.parquet", "--skip-invalid", "--out",
                    tmp_path / "a.csv")
    assert code == 0 and "left out (--skip-invalid)" in out and "their cluster in --out is empty" in out, out
    got = pd.read_csv(tmp_path / "a.csv")
    assert got["index"].tolist() == skus[len(X):]
    assert got["cluster"].isna().to_numpy().nonzero()[0].tolist() == [3, 7]
    ok = np.setdiff1d(np.arange(len(new)), [3, 7])
    ref = ClusterState.fit(X, float(TAU))
    want = assign(ref, new[ok])
    np.testing.assert_array_equal(got["cluster"].to_numpy()[ok], want)
    state = ClusterState.load(tmp_path / "s.kstate")
    assert state.n_samples == len(X) + ok.size and state.ids.tolist() == skus[:len(X)] + [skus[len(X) + i] for i in ok]
    # a retry adds nothing and writes the same clusters
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day1.parquet", "--skip-invalid", "--skip-held",
                    "--out", tmp_path / "b.csv")
    assert code == 0 and "state unchanged" in out, out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b.csv"), got)
    # the clusters file is read without the rows it gives no cluster, with a warning
    truth = pd.DataFrame({"index": skus, "label": np.r_[y, np.arange(len(new))]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    code, out = run("evaluate", tmp_path / "a.csv", tmp_path / "truth.csv", "--out", tmp_path / "m.json")
    assert code == 0 and "2 rows have no cluster (first: row 3, from 0" in out, out
    import json

    from kfree.metrics import evaluate_clustering

    assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(
        evaluate_clustering(np.arange(len(new))[ok], want)["nmi"])
    code, out = run("report", tmp_path / "a.csv", "--out", tmp_path / "r")
    assert code == 0 and "2 rows have no cluster" in out, out
    # a .npy batch: the row alone names it
    np.save(tmp_path / "x.npy", X)
    bad = new.copy()
    bad[5, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", TAU, "--out", tmp_path / "c2.csv", "--state",
                    tmp_path / "s2.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "s2.kstate", tmp_path / "bad.npy", "--out", tmp_path / "x.csv")
    one_line_error(code, out, "in 1 row (first: row 5, from 0); drop or impute them")
    code, out = run("cluster", tmp_path / "bad.npy", "--threshold", TAU, "--out", tmp_path / "x.csv")
    one_line_error(code, out, "features in bad.npy hold NaN or infinite values in 1 row (first: row 5, from 0); drop "
                              "or impute them, or pass --skip-invalid to cluster the others")
    # kfree cluster --skip-invalid: the others clustered as they would be alone, a state of them
    code, out = run("cluster", tmp_path / "bad.npy", "--threshold", TAU, "--skip-invalid", "--out", tmp_path / "cb.csv",
                    "--state", tmp_path / "sb.kstate")
    assert code == 0 and "left out (--skip-invalid)" in out, out
    assert "kfree assign --all-rows writes those numbers, not DATA's rows" in out  # (found by a README trial)
    got = pd.read_csv(tmp_path / "cb.csv")
    assert got["index"].tolist() == list(range(len(new))) and got["cluster"].isna().sum() == 1
    rest = np.delete(np.arange(len(new)), 5)
    np.testing.assert_array_equal(got["cluster"].to_numpy()[rest], ThresholdAgglomerative(float(TAU)).fit(
        new[rest]).labels_)
    assert ClusterState.load(tmp_path / "sb.kstate").n_samples == len(new) - 1
    code, out = run("cluster", tmp_path / "bad.npy", "--threshold", TAU, "--skip-invalid", "--backend", "dask", "--out",
                    tmp_path / "x.csv")
    one_line_error(code, out, "--skip-invalid are for the local backend")
    # with a model: the other rows are embedded and added, the invalid one is not
    code, out = run("cluster", d / "m.kfree", tmp_path / "x.npy", "--out", tmp_path / "c3.csv", "--state",
                    tmp_path / "s3.kstate")
    assert code == 0, out
    code, out = run("assign", d / "m.kfree", tmp_path / "s3.kstate", tmp_path / "bad.npy", "--skip-invalid", "--out",
                    tmp_path / "m.csv")
    assert code == 0, out
    got = pd.read_csv(tmp_path / "m.csv")
    assert got["cluster"].isna().to_numpy().nonzero()[0].tolist() == [5]
    assert ClusterState.load(tmp_path / "s3.kstate").n_samples == len(X) + len(new) - 1


def test_a_state_of_faces_names_every_rows_photo(tmp_path):
    """Found by a photo-library trial: after `kfree assign`, `--all-rows` named the library's rows
    by number only, so the whole updated library could not be shown (`kfree report --images`);
    each batch's own clusters could. A state made from kfree encode faces' rows keeps their photos."""
    import os

    X, _ = sphere_blobs(6, 5, dim=8, spread=0.1, seed=0)
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()

    def boxes(n, first):
        return (np.arange(n)[:, None] + first) * 10 + np.array([0, 1, 5, 6])

    def faces(path, rows, names, first=0):
        np.savez(path, embeddings=rows.astype(np.float32), paths=np.array(names),
                 boxes=boxes(len(rows), first).astype(np.int64), root=np.array(str(path.parent)))

    faces(tmp_path / "w1" / "faces.npz", X[:20], [f"IMG_{i}.jpg" for i in range(20)])
    faces(tmp_path / "w2" / "faces.npz", X[20:], [f"new {i}.jpg" for i in range(10)], first=20)
    code, out = run("cluster", tmp_path / "w1" / "faces.npz", "--threshold", "0.5", "--distance", "euclidean",
                    "--out", tmp_path / "c1.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    assert ClusterState.load(tmp_path / "s.kstate").photos.shape == (20,)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "w2" / "faces.npz", "--all-rows",
                    "--out", tmp_path / "all.csv")
    assert code == 0, out
    every = pd.read_csv(tmp_path / "all.csv")
    want = [os.path.abspath(tmp_path / "w1" / f"IMG_{i}.jpg") for i in range(20)] + [
        os.path.abspath(tmp_path / "w2" / f"new {i}.jpg") for i in range(10)]
    assert every["photo"].tolist() == want and every["row"].tolist() == list(range(30))
    # and where each face is in it: a report of the whole library shows the faces, not the photos (a group
    # photo showed both people in both clusters: a photo-library trial)
    np.testing.assert_array_equal(every[["left", "top", "right", "bottom"]].to_numpy(), boxes(30, 0))
    first = pd.read_csv(tmp_path / "c1.csv")
    np.testing.assert_array_equal(first[["left", "top", "right", "bottom"]].to_numpy(), boxes(20, 0))
    faces(tmp_path / "w2" / "quiet.npz", X[:0], [])  # a week without faces: the same header as one with
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "w2" / "quiet.npz", "--out", tmp_path / "q.csv")
    assert code == 0 and pd.read_csv(tmp_path / "q.csv").columns.tolist() == ["index", "cluster", "photo", "left",
                                                                             "top", "right", "bottom"], out
    # rows added without photos (an .npy batch) have none; a state without photos writes no column
    np.save(tmp_path / "more.npy", X[:2] + 0.01)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "more.npy", "--all-rows",
                    "--out", tmp_path / "all2.csv")
    assert code == 0, out
    every = pd.read_csv(tmp_path / "all2.csv")
    assert every["photo"].isna().tolist() == [False] * 30 + [True] * 2
    assert every["left"].isna().tolist() == [False] * 30 + [True] * 2
    np.save(tmp_path / "x.npy", X[:20])
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", "0.5", "--out", tmp_path / "c2.csv",
                    "--state", tmp_path / "p.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "p.kstate", tmp_path / "more.npy", "--all-rows", "--out", tmp_path / "a.csv")
    assert code == 0 and "photo" not in pd.read_csv(tmp_path / "a.csv").columns, out


def test_a_state_made_or_grown_with_a_model_warns_of_clusters_far_larger_than_validation(d, tmp_path):
    """Found by a ticket trial: `kfree cluster MODEL --state` (and each `kfree assign`) clustered
    without the ClusterSizeWarning `kfree cluster MODEL` gives: clusters of 161 rows for intents
    validated at 17, merged, without a word."""
    import warnings

    from kfree.learner import ClusterLearner

    X, y = np.load(d / "x.npy"), np.load(d / "y.npy")
    rng = np.random.default_rng(1)
    big = np.repeat(X[y < 3], 30, axis=0) + rng.normal(0, 1e-4, ((y < 3).sum() * 30, X.shape[1]))
    np.save(tmp_path / "big.npy", big)
    learner = ClusterLearner.load(d / "m.kfree")
    with pytest.warns(Warning, match="these clusters are larger than the identities"):  # what cluster says
        learner.cluster(big)
    code, out = run("cluster", d / "m.kfree", tmp_path / "big.npy", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0 and "warning: these clusters are larger than the identities the cut was calibrated on" in out, out
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "c2.csv", "--state",
                    tmp_path / "s2.kstate")
    assert code == 0 and "larger than the identities" not in out, out
    np.save(tmp_path / "more.npy", big[:200] + 1e-3)
    code, out = run("assign", d / "m.kfree", tmp_path / "s2.kstate", tmp_path / "more.npy", "--out", tmp_path / "a.csv")
    assert code == 0 and "larger than the identities" in out, out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learner.check_cluster_sizes(learner.cluster(X))  # the validation-like rows: no word


def test_cluster_puts_its_state_and_clusters_file_in_place_together(d, tmp_path, monkeypatch):
    """An operations trial: kfree cluster --out C --state S saved S first, so a stop while C was
    written left a new state beside no clusters file (or an old one, with --force)."""
    from kfree.evaluate import compare

    real = compare.write_predictions

    def stopped(path, *a, **k):
        real(path, *a, **k)
        raise KeyboardInterrupt  # Ctrl-C just after the clusters file was written aside

    monkeypatch.setattr(compare, "write_predictions", stopped)
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state",
                    tmp_path / "s.kstate")
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither file, and nothing written aside
    monkeypatch.setattr(compare, "write_predictions", real)
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c.csv", "--state",
                    tmp_path / "s.kstate")
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "s.kstate"], out


def test_assign_keeps_a_private_state_private_and_updates_the_state_a_link_names(tmp_path):
    """A security review: a state made private (chmod 600) came back readable by all after the
    next assign, and a state reached through a symlink had the link replaced by a new file while
    the shared state it named stayed behind."""
    import os

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(60, 4)).astype(np.float32))
    np.save(tmp_path / "day.npy", rng.normal(size=(10, 4)).astype(np.float32))
    np.save(tmp_path / "day2.npy", rng.normal(size=(10, 4)).astype(np.float32))
    shared = tmp_path / "shared"
    shared.mkdir()
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", "2", "--out", tmp_path / "c.csv",
                    "--state", shared / "s.kstate")
    assert code == 0, out
    os.chmod(shared / "s.kstate", 0o600)
    (tmp_path / "s.kstate").symlink_to(shared / "s.kstate")
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day.npy", "--out", tmp_path / "d.csv")
    assert code == 0 and "that state is updated" in out, out
    assert (tmp_path / "s.kstate").is_symlink() and (shared / "s.kstate").stat().st_mode & 0o777 == 0o600
    assert ClusterState.load(shared / "s.kstate").n_samples == 70
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "day2.npy", "--out", tmp_path / "d2.csv")
    assert code == 0 and ClusterState.load(shared / "s.kstate").n_samples == 80, out


def test_rows_of_another_length_are_said_once_by_assign_with_a_model(d, tmp_path):
    """A review: `kfree assign MODEL STATE` on rows ×3 said it twice, the model's check of the rows
    and the state's of their embedding."""
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    np.save(tmp_path / "big.npy", np.load(d / "new.npy") * 3)
    code, out = run("assign", d / "m.kfree", tmp_path / "s.kstate", tmp_path / "big.npy", "--out", tmp_path / "a.csv")
    assert code == 0 and out.count("median length") == 1 and "outside the training rows'" in out, out
    code, out = run("cluster", d / "x.npy", "--threshold", TAU, "--out", tmp_path / "c2.csv",
                    "--state", tmp_path / "plain.kstate")
    assert code == 0, out
    code, out = run("assign", tmp_path / "plain.kstate", tmp_path / "big.npy", "--out", tmp_path / "b.csv")
    assert code == 0 and out.count("median length") == 1 and "outside the state's rows'" in out, out


def test_a_model_that_chose_the_raw_features_says_so_and_its_learned_embedding_can_be_had(tmp_path):
    """Found by a research trial: three losses' models had each chosen the raw features, so their
    k-means and multicut clusters were one file, and nothing said why; nor could the learned
    embedding be had from the command line."""
    from kfree.learner import ClusterLearner

    X, y = sphere_blobs(10, 10, dim=6, spread=0.15, seed=1)  # separable as they are: the raw features win
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    code, out = run("train", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "m.kfree", *FAST)
    assert code == 0, out
    learner = ClusterLearner.load(tmp_path / "m.kfree")
    assert learner.uses_raw_  # the case under test
    code, out = run("cluster", tmp_path / "m.kfree", tmp_path / "x.npy", "--method", "kmeans", "--n-clusters", "10",
                    "--out", tmp_path / "k.csv")
    assert code == 0 and "(kmeans, raw features, K=10)" in out, out
    code, out = run("embed", tmp_path / "m.kfree", tmp_path / "x.npy", "--out", tmp_path / "raw.npy")
    assert code == 0 and "--learned writes the learned embedding" in out, out
    code, out = run("embed", tmp_path / "m.kfree", tmp_path / "x.npy", "--out", tmp_path / "e.npy", "--learned")
    assert code == 0 and "learned embedding (the model clusters its raw features" in " ".join(out.split()), out
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), learner.embed(X))
    own = learner.learned_threshold_
    assert f"--threshold {own.value!r} --distance {own.distance}" in out
