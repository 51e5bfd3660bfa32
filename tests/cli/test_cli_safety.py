"""Issue 14 regressions at the CLI: every bad input is one line and exit code 1, nothing is written,
no input is ever replaced; plus model-free clustering, --version, optional packages, progress."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from _cli import FAST_TRAIN as FAST
from _cli import blobs_and_model, one_line_error, run

from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import ConfigError


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    _, y = blobs_and_model(d)
    pd.DataFrame({"index": range(len(y)), "label": y}).to_csv(d / "truth.csv", index=False)
    pd.DataFrame({"index": range(len(y)), "cluster": y}).to_csv(d / "pred.csv", index=False)
    pd.DataFrame({"index": [0, 1, 1], "cluster": [0, 0, 1]}).to_csv(d / "pred_repeats.csv", index=False)
    np.savez(d / "obj.npz", X=np.array([[1, "a"], [2, "b"]], dtype=object))
    pd.DataFrame(columns=["f0", "f1", "label"]).to_csv(d / "header_only.csv", index=False)
    np.save(d / "flat.npy", np.arange(500.0))
    np.save(d / "one_row.npy", np.zeros((1, 8)))
    (d / "a_file").write_text("not a folder")
    return d






def snapshot(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- --out: where and whether to write
@pytest.mark.parametrize("cmd", [
    ["cluster", "{d}/m.kfree", "{d}/x.npy"],
    ["train", "{d}/x.npy", "--labels", "{d}/y.npy", *FAST],
    ["evaluate", "{d}/pred.csv", "{d}/truth.csv"],
])
@pytest.mark.parametrize("out,message", [
    ("{d}", "is a directory; give a file name inside it"),
    ("{d}/a_file/out.x", "a_file is a file, not a folder"),
    ("{d}/x.npy", "is an input file of this command"),
    ("{d}/pred.csv", "already exists; pass --force to replace it"),
])
def test_out_that_cannot_or_must_not_be_written_is_refused_before_any_work(d, cmd, out, message, monkeypatch):
    import kfree.learner

    if cmd[0] == "evaluate" and out.endswith("x.npy"):
        out, message = "{d}/truth.csv", "is an input file"
    if cmd[0] == "evaluate" and out.endswith("pred.csv"):
        out = "{d}/m.kfree"
    monkeypatch.setattr(kfree.learner.ClusterLearner, "fit", lambda *a, **k: pytest.fail("trained anyway"))
    before = snapshot(d)
    code, text = run(*[a.format(d=d) for a in cmd], "--out", out.format(d=d))
    one_line_error(code, text, message)
    assert snapshot(d) == before  # nothing written, no input touched


def test_input_is_never_overwritten_even_with_force(d):
    before = (d / "x.npy").read_bytes()
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "x.npy", "--force")
    one_line_error(code, out, "writing there would destroy it")
    code, out = run("cluster", d / "x.npy", "--threshold", "1", "--out", d / "x.npy", "--force")
    one_line_error(code, out, "is an input file")
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "y.npy", "--force", *FAST)
    one_line_error(code, out, "is an input file")
    assert (d / "x.npy").read_bytes() == before and np.load(d / "y.npy").shape == (120,)


def test_existing_output_is_replaced_only_with_force(d):
    (d / "prev.csv").write_text("previous\n")
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "prev.csv")
    one_line_error(code, out, "prev.csv already exists; pass --force")
    assert (d / "prev.csv").read_text() == "previous\n"
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "prev.csv", "--force")
    assert code == 0, out
    assert len(pd.read_csv(d / "prev.csv")) == 120


def test_unwritable_place_is_refused_with_one_line(d, monkeypatch):
    import kfree.utils.io as kio

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(kio.tempfile, "mkstemp", denied)  # what a read-only folder does (tests may run as root)
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "ro" / "c.csv")
    one_line_error(code, out, "is not writable (Permission denied); choose another place")
    assert not (d / "ro").exists()


def test_missing_folders_of_out_are_created(d):
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "new" / "deeper" / "c.csv")
    assert code == 0, out
    assert (d / "new" / "deeper" / "c.csv").is_file()


def test_demo_out_checked_before_running(d, monkeypatch):
    from kfree import demo

    def fake_run(*a, **k):
        raise ConfigError("run_demo reached")

    monkeypatch.setattr(demo, "run_demo", fake_run)
    one_line_error(*run("demo", "--out", d / "a_file", "--no-progress"), "is a file; give a folder")
    one_line_error(*run("demo", "--out", d, "--no-progress"), "already holds files; choose a new folder, or pass --force")
    for args in (["--out", d, "--force"], ["--out", d / "empty_run"]):  # allowed: the demo starts
        code, out = run("demo", *args, "--no-progress")
        assert code == 1 and out.splitlines()[-1] == "error: run_demo reached", out


# ------------------------------------------------------------------------------ bad input files
@pytest.mark.parametrize("args,message", [
    (["cluster", "{d}/m.kfree", "{d}/obj.npz"], "cannot read array 'X' of obj.npz: it holds Python objects (dtype=object)"),
    (["cluster", "{d}/obj.npz", "--threshold", "1"], "it holds Python objects"),
    (["cluster", "{d}/m.kfree", "{d}/header_only.csv"], "header_only.csv has a header but no rows"),
    (["cluster", "{d}/m.kfree", "{d}/flat.npy"], "features in flat.npy must be a 2-d array of shape (rows, features), got shape (500,)"),
    (["cluster", "{d}/m.kfree", "{d}/one_row.npy", "--method", "multicut"],
     "one_row.npy has 1 row of features; at least 2 are needed"),
    (["cluster", "{d}/one_row.npy", "--threshold", "1", "--method", "multicut"], "one_row.npy has 1 row of features"),
    (["evaluate", "{d}/pred.csv", "{d}/truth.csv", "--label-column", "index"], "'index' is the row number that joins"),
    (["evaluate", "{d}/pred.csv", "{d}/pred.csv", "--label-column", "index"], "'index' is the row number"),
    (["evaluate", "{d}/pred_repeats.csv", "{d}/truth.csv"], "column 'index' repeats 1 value(s) (first: 1, 2 times)"),
    (["cluster", "{d}/m.kfree"], "m.kfree is a model; say what to cluster with it"),
    (["cluster", "{d}/x.npy"], "needs --threshold"),
    (["cluster", "{d}/x.npy", "--threshold", "1", "--distance", "manhattan"], "distance='manhattan' is not one of"),
    (["cluster", "{d}/m.kfree", "{d}/x.npy", "--distance", "cosine"], "--distance is for clustering without a model"),
    (["cluster", "{d}/x.npy", "--method", "kmeans"], "needs the number of clusters: pass --n-clusters"),
    (["cluster", "{d}/x.npy", "--method", "xmeans", "--threshold", "1"], "--threshold does not apply to method 'xmeans'"),
    (["cluster", "{d}/x.npy", "--threshold", "1", "--n-clusters", "5"],
     "--threshold does not apply to method 'hac' with --n-clusters: both say where the clusters end, give one of them"),
])
def test_bad_input_is_one_line_and_writes_nothing(d, args, message):
    before = snapshot(d)
    code, out = run(*[a.format(d=d) for a in args], "--out", d / "bad_out.csv")
    one_line_error(code, out, message)
    assert "[" not in message or "500." not in out  # the 1-d error does not dump the values
    assert snapshot(d) == before


# --------------------------------------------------------------------------- optional packages
@pytest.mark.parametrize("method,module", [("hdbscan", "hdbscan"), ("finch", "finch")])
def test_missing_optional_package_names_the_extra(d, method, module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails, find_spec finds nothing
    code, out = run("cluster", d / "x.npy", "--method", method, "--out", d / "opt.csv")
    one_line_error(code, out, f"needs the optional package '{module}', which is not installed: pip install 'kfree[baselines]'")
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--method", method, "--out", d / "opt.csv")
    one_line_error(code, out, "pip install 'kfree[baselines]'")
    code, out = run("methods")
    line = next(x for x in out.splitlines() if x.split()[:1] == [method])
    assert code == 0 and line.endswith("(not installed)") and "pip install 'kfree[baselines]'" in out, out
    assert not (d / "opt.csv").exists()


def test_an_unexpected_missing_module_is_still_one_line():
    import typer

    from kfree.cli.console import cli_errors, err_console

    with err_console.capture() as cap, pytest.raises(typer.Exit), cli_errors():
        raise ModuleNotFoundError("No module named 'finch'", name="finch")
    assert cap.get() == "error: the package 'finch' is not installed: pip install 'kfree[baselines]'\n"
    with err_console.capture() as cap, pytest.raises(typer.Exit):
        with cli_errors():  # e.g. PyPI's unrelated 'finch' package instead of finch-clust
            raise ImportError("cannot import name 'FINCH' from 'finch'", name="finch")
    assert cap.get() == ("error: cannot import finch: cannot import name 'FINCH' from 'finch'; reinstall it: "
                         "pip install --force-reinstall 'kfree[baselines]'\n")


# -------------------------------------------------------------------- users' expectations at the CLI
def test_version():
    from kfree import __version__

    code, out = run("--version")
    assert code == 0 and out.strip() == f"kfree {__version__}"


def test_cluster_features_without_a_model(d):
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--out", d / "raw.csv")
    assert code == 0, out
    assert "threshold 1 sqeuclidean" in out
    pred = pd.read_csv(d / "raw.csv")
    assert list(pred.columns) == ["index", "cluster"] and 8 <= pred["cluster"].nunique() <= 14  # 12 blobs
    code, out = run("cluster", d / "x.npy", "--threshold", "0.5", "--distance", "cosine", "--method", "multicut",
                    "--out", d / "raw_mc.csv")
    assert code == 0 and "multicut, threshold 0.5 cosine" in out, out
    code, out = run("--threads", "1", "cluster", d / "x.npy", "--method", "kmeans", "--n-clusters", "12",
                    "--out", d / "raw_km.csv")
    assert code == 0 and "(kmeans, K=12)" in out and "threshold" not in out, out


def test_summary_shows_a_threshold_only_for_methods_that_use_one(d):
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--out", d / "s_hac.csv")
    assert code == 0 and "(hac, " in out and " linkage, threshold " in out, out
    assert "sqeuclidean" in out or "(Ward merge height)" in out, out
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--method", "xmeans", "--out", d / "s_xm.csv")
    assert code == 0 and "(xmeans, raw features)" in out or "(xmeans, model features)" in out, out
    assert "threshold" not in out, out


def test_progress_is_plain_lines_when_not_on_a_terminal(d):
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "p.kfree",
                    *[a for a in FAST if a != "--no-progress"])
    assert code == 0, out
    lines = [line for line in out.splitlines() if " train " in line]
    assert lines and lines[-1].split("]")[1].split()[:2] == ["train", "3/3"], out
    assert "━" not in out  # no progress-bar drawing in logs
    assert "loss=" in out and "nan" not in out  # the loss before the first step is not shown


def test_quiet_prints_nothing_but_errors(d):
    """``-q``: no results, tables or progress (the outputs are the files); errors still say what
    went wrong, and the next command without ``-q`` prints again."""
    code, out = run("-q", "train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "q.kfree",
                    *[a for a in FAST if a != "--no-progress"])
    assert (code, out) == (0, "") and (d / "q.kfree").is_file()
    code, out = run("-q", "cluster", d / "q.kfree", d / "x.npy", "--out", d / "q.csv")
    assert (code, out) == (0, "") and (d / "q.csv").is_file()
    code, out = run("-q", "cluster", d / "q.kfree", d / "nope.npy", "--out", d / "r.csv")
    one_line_error(code, out, "nope.npy")
    code, out = run("cluster", d / "q.kfree", d / "x.npy", "--out", d / "s.csv")
    assert code == 0 and str(d / "s.csv") in out


def test_progress_lines_leave_out_values_not_measured_yet():
    import io

    from kfree.cli.console import PlainHook

    buf = io.StringIO()
    hook = PlainHook(stream=buf)
    hook("train", completed=0, total=2, loss=float("nan"), val_nmi=0.5, other=1.0)
    hook("train", completed=2, total=2, loss=0.25, val_nmi=0.75, val_rule="complete/recalibrated")
    first, last = buf.getvalue().splitlines()
    # the rule the scores are of (a contributor trial read a recalibrated cut's NMI as the own threshold's)
    assert first.endswith("train 0/2  val_nmi=0.5")
    assert last.endswith("train 2/2  loss=0.25  val_nmi=0.75  val_rule=complete/recalibrated")


def test_evaluate_json_written_once(d):
    code, out = run("evaluate", d / "pred.csv", d / "truth.csv", "--out", d / "metrics.json")
    assert code == 0, out
    assert json.loads((d / "metrics.json").read_text())["nmi"] == pytest.approx(1.0)
    one_line_error(*run("evaluate", d / "pred.csv", d / "truth.csv", "--out", d / "metrics.json"), "already exists")


def test_train_on_one_row_names_the_file(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((1, 4)))
    np.save(tmp_path / "l.npy", np.array([1]))
    one_line_error(*run("train", tmp_path / "one.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "m.kfree"),
                   "one.npy has 1 row of features; at least 2 are needed")
    assert not (tmp_path / "m.kfree").exists()


def test_train_says_which_step_it_kept_in_words(tmp_path):

    X, y = sphere_blobs(3, 8, dim=6, seed=0)  # 3 identities: too few to hold any out
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    code, out = run("train", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "m.kfree", *FAST)
    assert code == 0, out
    assert "(0 held out for validation)" in out and "kept the last step (nothing held out" in out, out
    assert "None" not in out


def test_a_clusters_file_is_named_for_what_is_written(d):
    """Found by review: --out o.npy (or .txt) wrote CSV text under that name, which np.load and
    kfree evaluate then refused; only --backend dask writes a .npy (the labels alone)."""
    for cmd in (["cluster", f"{d}/x.npy", "--threshold", "1.0"], ["cluster", f"{d}/m.kfree", f"{d}/x.npy"]):
        for name in ("o.npy", "o.txt"):
            code, out = run(*cmd, "--out", f"{d}/{name}")
            one_line_error(code, out, f"--out {name}: this command writes .csv or .parquet files")
            assert not (d / name).exists()


def test_a_warning_is_one_line_without_source(d, tmp_path):
    """Found by review: a Python warning printed the file, line number and source line of kfree's
    code that raised it; FINCH's pynndescent notice came with every FINCH run."""
    code, out = run("train", f"{d}/x.npy", "--labels", f"{d}/y.npy", *FAST, "--val-identities", "29",
                    "--out", f"{tmp_path}/m.kfree")
    assert code == 0, out
    assert "warning: val_identities=29: holding out" in out and ".py:" not in out, out
    pytest.importorskip("finch")
    code, out = run("cluster", f"{d}/x.npy", "--method", "finch", "--out", f"{tmp_path}/f.csv")
    assert code == 0 and "pynndescent" not in out, out


def test_linkage_of_a_raw_hac(d, tmp_path):
    """The README's hac row offers average and single linkage; the CLI could not choose them."""
    from kfree.cluster import ThresholdAgglomerative

    X = np.load(d / "x.npy")
    for linkage in ("average", "single"):
        code, out = run("cluster", f"{d}/x.npy", "--threshold", "1.0", "--linkage", linkage,
                        "--out", f"{tmp_path}/{linkage}.csv")
        assert code == 0 and f"{linkage} linkage" in out, out
        got = pd.read_csv(tmp_path / f"{linkage}.csv")["cluster"].to_numpy()
        np.testing.assert_array_equal(got, ThresholdAgglomerative(1.0, linkage=linkage).fit(X).labels_)
    for args, message in ((["--threshold", "1.0", "--linkage", "ward"], "use --method ward --threshold HEIGHT"),
                          (["--linkage", "single", "--method", "kmeans", "--n-clusters", "3"], "has no linkage"),
                          (["--threshold", "1.0", "--linkage", "single", "--state", f"{tmp_path}/s.kstate"],
                           "complete-linkage clustering")):
        code, out = run("cluster", f"{d}/x.npy", *args, "--out", f"{tmp_path}/o.csv")
        one_line_error(code, out, message)
    code, out = run("cluster", f"{d}/m.kfree", f"{d}/x.npy", "--linkage", "single", "--out", f"{tmp_path}/o.csv")
    one_line_error(code, out, "--linkage is for clustering without a model")
    assert not (tmp_path / "o.csv").exists()


def test_train_takes_validation_rows_drawn_like_the_data(d, tmp_path):
    """A user's validation identities drawn like the data they will cluster (a Ward cut depends on
    how many rows a cluster has): --validation FILE, as the API's X_val/y_val (review helper)."""
    from kfree import ClusterLearner

    X, y = np.load(d / "x.npy"), np.load(d / "y.npy")
    held = y >= np.unique(y)[-3]
    np.savez(tmp_path / "train.npz", X=X[~held], y=y[~held])
    np.savez(tmp_path / "val.npz", X=X[held], y=y[held])
    code, out = run("train", f"{tmp_path}/train.npz", "--validation", f"{tmp_path}/val.npz", *FAST,
                    "--out", f"{tmp_path}/m.kfree")
    assert code == 0 and f"({len(np.unique(y[held]))} for validation, from val.npz)" in out, out
    api = ClusterLearner.load(tmp_path / "m.kfree")
    assert api.provenance_["n_val_identities"] == len(np.unique(y[held]))
    code, out = run("train", f"{tmp_path}/train.npz", "--validation", f"{tmp_path}/nothere.npz", *FAST,
                    "--out", f"{tmp_path}/m2.kfree")
    one_line_error(code, out, "nothere.npz")


def test_a_new_clusterer_is_held_to_what_it_declares(d, monkeypatch):
    """Found by a newcomer adding a clusterer: one whose threshold joins single pairs took a
    model's diameter cut as its eps (the learner knew only 'knn-cc' by name), and one with no
    'distance' capability cut in its own units while the CLI said it cut in --distance units."""
    from sklearn.base import BaseEstimator, ClusterMixin

    from kfree import ClusterLearner, registry
    from kfree.cluster.labels import first_seen_labels

    class Chain(ClusterMixin, BaseEstimator):
        capabilities = frozenset({"threshold"})
        joins_single_pairs = True

        def __init__(self, threshold=1.0):
            self.threshold = threshold

        def fit(self, X, y=None):
            from scipy.cluster.hierarchy import fcluster, linkage

            self.labels_ = first_seen_labels(fcluster(linkage(X, "single"), self.threshold, "distance"))
            self.n_clusters_ = int(self.labels_.max()) + 1
            return self

    monkeypatch.setitem(registry._REGISTRY, "cluster", dict(registry._entries("cluster")))
    registry.register("cluster", "_test-chain")(Chain)
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--method", "_test-chain", "--out", d / "ch.csv")
    one_line_error(code, out, "method '_test-chain' cuts at a threshold that is no cluster's diameter")
    # the units of the threshold to give are named (a contributor trial)
    assert f"in the model's {ClusterLearner.load(d / 'm.kfree').rule_.threshold.distance} units" in out, out
    listed = [line for line in run("methods")[1].splitlines() if line.startswith("  ")]
    assert len({line.index("--threshold") for line in listed if "_test-chain" in line or "multicut" in line}) == 1
    code, out = run("cluster", d / "x.npy", "--method", "_test-chain", "--threshold", "1", "--distance", "euclidean",
                    "--out", d / "ch.csv")
    one_line_error(code, out, "--method _test-chain cuts at a threshold in units of its own and takes no --distance")
    code, out = run("cluster", d / "x.npy", "--method", "_test-chain", "--threshold", "1", "--out", d / "ch.csv")
    assert code == 0 and (d / "ch.csv").exists(), out


def test_link_column_stored_as_a_parquet_index(tmp_path):
    X, y = sphere_blobs(4, 6, dim=4, spread=0.2, seed=0)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)]).assign(track=np.arange(len(y)) // 2)
    df.set_index("track").to_parquet(tmp_path / "ti.parquet")
    code, out = run("cluster", tmp_path / "ti.parquet", "--threshold", "0.5", "--link-column", "track",
                    "--out", tmp_path / "o.csv")
    assert code == 0 and "must-link" in out, out
    got = pd.read_csv(tmp_path / "o.csv")["cluster"].to_numpy()
    assert all(np.unique(got[df["track"].to_numpy() == t]).size == 1 for t in np.unique(df["track"]))


def test_messages_a_readme_walkthrough_found_pointing_the_wrong_way(d, tmp_path):
    """--linkage ward named no way to a Ward cut; a --validation file of other features named
    neither the file nor the option."""
    code, out = run("cluster", d / "x.npy", "--linkage", "ward", "--threshold", "1", "--out", tmp_path / "c.csv")
    one_line_error(code, out, "use --method ward --threshold HEIGHT (or --n-clusters K)")
    X, y = sphere_blobs(4, 6, dim=5, spread=0.2, seed=1)
    np.savez(tmp_path / "v.npz", X=X, y=y + 100)
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--validation", tmp_path / "v.npz", "--out",
                    tmp_path / "m.kfree", *FAST)
    one_line_error(code, out, "--validation v.npz has 5 features but x.npy has 8")


def test_a_plugin_that_fails_to_import_is_one_line_in_kfree_methods(monkeypatch):
    """A review: `KFREE_PLUGINS=nosuchmod kfree methods` printed a traceback (kfree cluster said one line)."""
    from kfree import registry

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setenv("KFREE_PLUGINS", "no_such_kfree_plugin")
    code, out = run("methods")
    one_line_error(code, out, "the kfree plugin KFREE_PLUGINS module 'no_such_kfree_plugin' cannot be imported")
    monkeypatch.setattr(registry, "_plugins_loaded", True)


def test_a_state_name_too_long_for_the_file_system_is_one_line(tmp_path):
    """An operations trial: a --state name of 257 characters was a traceback (OSError from the
    check for a state to lock)."""
    np.save(tmp_path / "x.npy", sphere_blobs(3, 4, dim=3, seed=0)[0])
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", "0.5", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / ("s" * 300 + ".kstate"))
    one_line_error(code, out, "File name too long")
