"""Problems a user-flow review of the CLI found: each test fails without its fix.

Outputs are checked before any work (also the validation curve ``train`` writes beside the model),
a table's own ``index`` names the clustered rows, nothing is written that would be wrong (float16
overflow, NaN in JSON), options that would be ignored are refused, errors say what was wrong with
what the user typed, progress says where training stopped, and help shows bracketed text."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from _cli import FAST_TRAIN as FAST
from _cli import app, blobs_and_model, one_line_error, run, runner

from kfree.metrics import evaluate_clustering


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("flows")
    X, y = blobs_and_model(d)
    # a table whose own 'index' names the rows in another order than the file's (e.g. after
    # df.sample(frac=1).reset_index()), and the truth keyed by that index, in yet another order
    ids = np.random.default_rng(0).permutation(len(y)) + 1000
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    table.insert(0, "index", ids)
    table.to_csv(d / "t.csv", index=False)
    table.to_parquet(d / "t.parquet", index=False)
    pd.DataFrame({"index": ids, "label": y}).sample(frac=1, random_state=1).to_csv(d / "truth.csv", index=False)
    return d


def snapshot(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


# ------------------------------------------- 1. the validation curve is an output: checked first
def test_train_checks_the_validation_curve_before_training(d, monkeypatch):
    import kfree.learner

    fit = kfree.learner.ClusterLearner.fit
    monkeypatch.setattr(kfree.learner.ClusterLearner, "fit", lambda *a, **k: pytest.fail("trained anyway"))
    (d / "v-validation.png").mkdir()
    before = snapshot(d)
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "v.kfree", *FAST)
    one_line_error(code, out, "the validation curve")
    assert "v-validation.png is a directory; choose another --out name" in out
    (d / "v-validation.png").rmdir()
    (d / "v-validation.png").write_bytes(b"an earlier run's curve")
    before = snapshot(d)
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "v.kfree", *FAST)
    one_line_error(code, out, "v-validation.png already exists; pass --force to replace it")
    assert snapshot(d) == before and not (d / "v.kfree").exists()  # nothing written, nothing replaced
    monkeypatch.setattr(kfree.learner.ClusterLearner, "fit", fit)
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", d / "v.kfree", *FAST, "--force")
    assert code == 0 and "validation curve:" in out, out
    assert (d / "v-validation.png").read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------- 2. a table's own 'index' names the clustered rows
def _truth_nmi(d, clusters_csv):
    """The NMI of clusters_csv against the truth, joined by the right rows (not by 'index')."""
    pred = pd.read_csv(clusters_csv)
    table = pd.read_csv(d / "t.csv")
    truth = pd.read_csv(d / "truth.csv").set_index("index")["label"]
    return evaluate_clustering(truth.loc[table["index"].to_numpy()[pred["row"]]].to_numpy(),
                               pred["cluster"].to_numpy())["nmi"]


@pytest.mark.parametrize("model", [False, True])
def test_cluster_then_evaluate_joins_a_tables_own_index(d, model, tmp_path):
    args = [d / "m.kfree", d / "t.csv"] if model else [d / "t.csv", "--threshold", "1"]
    code, out = run("cluster", *args, "--out", tmp_path / "c.csv")
    assert code == 0, out
    pred = pd.read_csv(tmp_path / "c.csv")
    assert list(pred.columns) == ["index", "cluster", "row"]
    np.testing.assert_array_equal(pred["index"], pd.read_csv(d / "t.csv")["index"])  # the table's values
    code, out = run("evaluate", tmp_path / "c.csv", d / "truth.csv", "--out", tmp_path / "m.json")
    assert code == 0, out
    nmi = json.loads((tmp_path / "m.json").read_text())["nmi"]
    assert nmi > 0.9 and nmi == pytest.approx(_truth_nmi(d, tmp_path / "c.csv"))
    # labels one per row, in the file's order: taken by 'row', not by the index values
    np.save(tmp_path / "y_rows.npy", np.load(d / "y.npy"))
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "y_rows.npy", "--out", tmp_path / "m2.json")
    assert code == 0, out
    assert json.loads((tmp_path / "m2.json").read_text())["nmi"] == pytest.approx(nmi)


def test_ids_that_are_the_row_numbers_still_join_a_truth_in_another_order(d, tmp_path):
    """Found by a TV-episode trial: frames numbered 0..n-1 (in an 'index' column, or named by
    --id-column) were written as a file without ids (no 'row' column), so kfree evaluate took a
    shuffled truth of those ids by row order: NMI 0.065 for clusters that score 0.912, exit 0.
    Ids are now always written with the row numbers beside them, and the join is by id."""
    X, y = np.load(d / "x.npy"), np.load(d / "y.npy")
    frames = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frames.insert(0, "frame_id", np.arange(len(X)))
    frames.to_csv(tmp_path / "frames.csv", index=False)
    frames.rename(columns={"frame_id": "index"}).to_csv(tmp_path / "indexed.csv", index=False)
    truth = pd.DataFrame({"frame_id": np.arange(len(y)), "label": y}).sample(frac=1, random_state=2)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    truth.rename(columns={"frame_id": "index"}).to_csv(tmp_path / "truth_index.csv", index=False)
    code, out = run("cluster", tmp_path / "frames.csv", "--threshold", "1", "--id-column", "frame_id",
                    "--out", tmp_path / "c.csv")
    assert code == 0, out
    clusters = pd.read_csv(tmp_path / "c.csv")
    assert list(clusters.columns) == ["index", "cluster", "row"] and (clusters["index"] == clusters["row"]).all()
    expected = evaluate_clustering(y, clusters["cluster"].to_numpy())["nmi"]
    assert expected > 0.9
    code, out = run("cluster", tmp_path / "indexed.csv", "--threshold", "1", "--out", tmp_path / "c2.csv")
    assert code == 0 and pd.read_csv(tmp_path / "c2.csv").equals(clusters), out
    for pred, truth_file, extra in (("c.csv", "truth.csv", ["--id-column", "frame_id"]),
                                    ("c2.csv", "truth_index.csv", [])):
        code, out = run("evaluate", tmp_path / pred, tmp_path / truth_file, *extra, "--out", tmp_path / "m.json",
                        "--force")
        assert code == 0 and "warning" not in out, out
        assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(expected)


def test_assign_writes_the_new_tables_own_index(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", "1", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    t = pd.read_csv(d / "t.csv").iloc[:7]
    t.to_csv(tmp_path / "new.csv", index=False)  # (rows the state holds: added again on purpose)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "new.csv", "--out", tmp_path / "a.csv", "--again")
    assert code == 0, out
    pred = pd.read_csv(tmp_path / "a.csv")
    assert list(pred["index"]) == list(t["index"]) and list(pred["row"]) == list(range(7))


def test_repeated_or_missing_index_values_are_refused(d, tmp_path):
    t = pd.read_csv(d / "t.csv")
    t.loc[5, "index"] = t.loc[3, "index"]
    t.to_csv(tmp_path / "dup.csv", index=False)
    one_line_error(*run("cluster", tmp_path / "dup.csv", "--threshold", "1", "--out", tmp_path / "c.csv"),
                   f"dup.csv: column 'index' repeats 1 value(s) (first: {t.loc[3, 'index']}, 2 times)")
    one_line_error(*run("cluster", d / "m.kfree", tmp_path / "dup.csv", "--out", tmp_path / "c.csv"),
                   "give every row its own value, or rename the column")
    t = pd.read_csv(d / "t.csv").astype({"index": float})
    t.loc[2, "index"] = np.nan
    t.to_csv(tmp_path / "gap.csv", index=False)
    one_line_error(*run("cluster", tmp_path / "gap.csv", "--threshold", "1", "--out", tmp_path / "c.csv"),
                   "column 'index' is empty in 1 rows (first: row 2)")
    truth = pd.read_csv(d / "truth.csv")
    pd.concat([truth, truth.iloc[:1]]).to_csv(tmp_path / "truth_dup.csv", index=False)
    code, out = run("cluster", d / "t.csv", "--threshold", "1", "--out", tmp_path / "ok.csv")
    assert code == 0, out
    one_line_error(*run("evaluate", tmp_path / "ok.csv", tmp_path / "truth_dup.csv"),
                   "truth_dup.csv: column 'index' repeats 1 value(s)")
    assert not (tmp_path / "c.csv").exists()


# ------------------------------------------------------------- 3. float16 that would be inf
def test_embed_float16_refuses_rows_beyond_its_range(d, tmp_path):
    np.save(tmp_path / "big.npy", np.load(d / "x.npy") * 1e6)
    code, out = run("train", tmp_path / "big.npy", "--labels", d / "y.npy", "--out", tmp_path / "big.kfree", *FAST)
    assert code == 0, out
    code, out = run("embed", tmp_path / "big.kfree", tmp_path / "big.npy", "--out", tmp_path / "e.npy", "--float16")
    one_line_error(code, out, "which do not fit float16 (largest 65504")
    assert "leave out --float16" in out and not (tmp_path / "e.npy").exists()
    code, out = run("embed", tmp_path / "big.kfree", tmp_path / "big.npy", "--out", tmp_path / "e.npy")
    assert code == 0 and np.isfinite(np.load(tmp_path / "e.npy")).all(), out
    code, out = run("embed", d / "m.kfree", d / "x.npy", "--out", tmp_path / "e16.npy", "--float16")
    assert code == 0 and np.load(tmp_path / "e16.npy").dtype == np.float16, out


# ------------------------------------------------ 4. Ward's threshold is in Euclidean units
def test_ward_without_a_model_says_and_uses_its_units(d, tmp_path):
    from kfree.cluster.ward import WardThreshold

    X = np.load(d / "x.npy")
    one_line_error(*run("cluster", d / "x.npy", "--method", "ward", "--threshold", "2.5", "--distance", "cosine",
                        "--out", tmp_path / "w.csv"), "--method ward measures Euclidean distances")
    one_line_error(*run("cluster", d / "x.npy", "--method", "kmeans", "--n-clusters", "3", "--distance", "cosine",
                        "--out", tmp_path / "w.csv"), "--distance cosine would be ignored")
    assert not (tmp_path / "w.csv").exists()
    code, out = run("cluster", d / "x.npy", "--method", "ward", "--threshold", "2.5", "--out", tmp_path / "w.csv")
    assert code == 0 and "threshold 2.5 (Ward merge height, euclidean units)" in out, out
    assert "sqeuclidean" not in out
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "w.csv")["cluster"], WardThreshold(2.5).fit(X).labels_)
    code, out = run("cluster", d / "x.npy", "--method", "ward", "--threshold", "2.5", "--distance", "sqeuclidean",
                    "--out", tmp_path / "w2.csv")
    assert code == 0 and "threshold 2.5 sqeuclidean = Ward merge height 1.58114 (euclidean units)" in out, out
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "w2.csv")["cluster"],
                                  WardThreshold(np.sqrt(2.5)).fit(X).labels_)


# ---------------------------------------------------- 5. errors about what the user typed
def test_data_or_a_state_in_the_models_place(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", "1", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("cluster", d / "x.npy", d / "x.npy", "--out", tmp_path / "z.csv")
    one_line_error(code, out, "x.npy is not a kfree model: with two files, the first must be a model saved by "
                              "`kfree train`")
    assert f"to cluster x.npy without a model, give it alone: kfree cluster {d / 'x.npy'} --threshold T" in out
    code, out = run("cluster", tmp_path / "s.kstate", d / "x.npy", "--out", tmp_path / "z.csv")
    one_line_error(code, out, "s.kstate is a cluster state, not a model")
    assert "use kfree assign [MODEL]" in out
    (tmp_path / "junk.kfree").write_bytes(b"not a model")
    code, out = run("cluster", tmp_path / "junk.kfree", d / "x.npy", "--out", tmp_path / "z.csv")
    one_line_error(code, out, "junk.kfree is not a kfree model file: it is not a readable checkpoint")
    assert "delete it" not in out  # never advice to delete the user's file
    assert "delete it" not in run("cluster", d / "x.npy", d / "x.npy", "--out", tmp_path / "z.csv")[1]
    assert not (tmp_path / "z.csv").exists()


def test_assign_says_which_file_is_missing(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", "1", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    usage = "(usage: kfree assign [MODEL] STATE NEW_FILE --out FILE.csv)"
    code, out = run("assign", d / "m.kfree", tmp_path / "s.kstate", "--out", tmp_path / "o.csv")
    one_line_error(code, out, f"the file of new rows (NEW_FILE) is missing: kfree assign {d / 'm.kfree'} "
                              f"{tmp_path / 's.kstate'} NEW_FILE --out {tmp_path / 'o.csv'} {usage}")
    code, out = run("assign", tmp_path / "s.kstate", "--out", tmp_path / "o.csv")
    one_line_error(code, out, f"the file of new rows (NEW_FILE) is missing: kfree assign {tmp_path / 's.kstate'} "
                              f"NEW_FILE --out {tmp_path / 'o.csv'} {usage}")
    code, out = run("assign", d / "m.kfree", d / "x.npy", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "the cluster state is missing: kfree assign")
    code, out = run("assign", tmp_path / "s.kstate", d / "x.npy", d / "x.npy", "--out", tmp_path / "o.csv")
    one_line_error(code, out, "s.kstate is a cluster state, but with three files the first must be the model")
    assert not (tmp_path / "o.csv").exists()


def test_an_output_given_twice_is_named_as_the_other_output(d, tmp_path):
    code, out = run("cluster", d / "x.npy", "--threshold", "1", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "c.csv")
    one_line_error(code, out, f"--state {tmp_path / 'c.csv'} is also the --out file; give each output its own name")
    assert "input file" not in out and not (tmp_path / "c.csv").exists()


# --------------------------------------------------------- 6. progress after an early stop
def test_progress_shows_where_training_stopped_early():
    from rich.console import Console
    from rich.progress import Progress

    from kfree.cli.console import PlainHook, RichHook, progress_columns

    buf = io.StringIO()
    hook = PlainHook(stream=buf, every_s=0)
    hook("train", completed=2, total=50, loss=0.5, stopped_early=False, steps=20)
    hook("train", completed=3, total=50, loss=0.4, stopped_early=True, steps=30)
    lines = buf.getvalue().splitlines()
    assert lines[-1].endswith("train 3/50  loss=0.4  stopped early at step 30"), lines
    assert "50/50" not in buf.getvalue() and "stopped" not in lines[0]

    out = io.StringIO()
    progress = Progress(*progress_columns(), console=Console(file=out, width=200, color_system=None))
    with progress:
        rich_hook = RichHook(progress)
        rich_hook("train", completed=2, total=50, loss=0.5)
        rich_hook("train", completed=3, total=50, loss=0.4, stopped_early=True, steps=30)
    task = progress.tasks[0]
    assert task.finished and task.fields["count"] == "3/50"
    assert "3/50" in out.getvalue() and "stopped early at step 30" in out.getvalue()


def test_train_progress_after_an_early_stop(d, tmp_path):
    code, out = run("train", d / "x.npy", "--labels", d / "y.npy", "--out", tmp_path / "p.kfree", "--epochs", "200",
                    "--p", "6", "--k", "5", "--dims", "16,8", "--patience", "2", "--eval-every-steps", "1")
    assert code == 0 and "(stopped early)" in out, out
    last = [line for line in out.splitlines() if " train " in line][-1]
    assert "200/200" not in last and "stopped early at step" in last, out


# ---------------------------------------------------------- 7. bracketed text in help survives
def _help_texts():
    import typer.main

    def walk(command, path):
        yield path, "(command)", command.help or ""
        for param in command.params:
            yield path, param.name, getattr(param, "help", None) or ""
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    return list(walk(typer.main.get_command(app), "kfree"))


def test_help_shows_every_bracket_it_is_given():
    """Help is rich markup: an unescaped ``[word]`` (``kfree[dask]``) would vanish from it."""
    from rich.text import Text

    texts = _help_texts()
    assert sum("[" in h for _, _, h in texts) >= 3
    for path, name, text in texts:
        text = text.replace("\b", "")  # click's no-rewrap marker, which rich drops too
        assert Text.from_markup(text).plain == text.replace("\\[", "["), (path, name, text)
    for command, shown in [("cluster", "pip install 'kfree[dask]'"), ("report", "t-SNE with kfree[report]")]:
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
        assert shown in result.output, result.output


# ------------------------------------------------------------- 8. valid JSON: null, never NaN
def test_metrics_json_writes_null_for_nan(d, tmp_path, monkeypatch):
    import kfree.evaluate.compare

    metrics = {"n_samples": 3, "nmi": np.float64("nan"), "ari": np.float32("inf"), "acc": 0.5, "wcp": np.float32(0.25)}
    monkeypatch.setattr(kfree.evaluate.compare, "evaluate_files", lambda *a, **k: dict(metrics))
    pd.DataFrame({"index": range(3), "cluster": [0, 0, 1]}).to_csv(tmp_path / "p.csv", index=False)
    code, out = run("evaluate", tmp_path / "p.csv", tmp_path / "p.csv", "--out", tmp_path / "m.json")
    assert code == 0, out
    text = (tmp_path / "m.json").read_text()

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    assert json.loads(text, parse_constant=refuse) == {"n_samples": 3, "nmi": None, "ari": None, "acc": 0.5,
                                                       "wcp": 0.25}
    # everything else as before: the same text json.dumps gives for the finite values
    assert text == json.dumps({**metrics, "nmi": None, "ari": None, "wcp": 0.25}, indent=2, sort_keys=True) + "\n"


def test_a_batch_numbered_from_zero_against_a_longer_truth_is_warned_about(tmp_path):
    """Found by a photo-library user: the clusters of a kfree assign batch (ids 0..999, its own
    row numbers) scored against the library's truth file (ids 0..19,999) took the first 1,000
    truth rows, silently: NMI 0.536 with exit code 0."""
    pd.DataFrame({"index": range(100), "label": np.arange(100) % 7}).to_csv(tmp_path / "truth.csv", index=False)
    pd.DataFrame({"index": range(10), "cluster": np.arange(10) % 3}).to_csv(tmp_path / "batch.csv", index=False)
    code, out = run("evaluate", tmp_path / "batch.csv", tmp_path / "truth.csv")
    assert code == 0 and "warning: batch.csv's ids run 0..9" in out and "has 100 rows" in out, out
    pd.DataFrame({"index": range(50, 60), "cluster": np.arange(10) % 3}).to_csv(tmp_path / "ids.csv", index=False)
    code, out = run("evaluate", tmp_path / "ids.csv", tmp_path / "truth.csv")  # the truth's own ids: no word
    assert code == 0 and "warning" not in out, out


def test_labelled_only_scores_a_truth_file_that_lists_some_of_the_rows(tmp_path):
    """Found by a README walkthrough: --labelled-only worked for empty label cells but not for a
    truth file that lists only the labelled rows (joined by 'index'), the usual labelled sample."""
    pd.DataFrame({"index": range(100), "cluster": np.arange(100) % 4}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"index": range(60), "label": np.arange(60) % 4}).to_csv(tmp_path / "t.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "t.csv")
    one_line_error(code, out, "40 rows of c.csv have no label in t.csv (joined by 'index'; first: 60); score the rows "
                              "it has with --labelled-only")
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "t.csv", "--labelled-only", "--out", tmp_path / "m.json")
    assert code == 0 and "scored the 60 rows with a true label; 40 rows have none" in out, out
    assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(1.0)


def test_a_truth_list_keyed_by_photo_is_joined_by_photo(tmp_path):
    """Found by a photo-library trial: the clusters of `kfree encode faces` rows name each face's
    'photo', and the user's truth list of photo,person in another order was taken by row order
    (NMI 0.392 for clusters that score 0.999), also with --id-column photo, and in kfree report."""
    photos = [f"photos/{i:03d} ü.jpg" for i in range(60)]
    person = np.repeat([f"p{j}" for j in range(6)], 10)
    clusters = pd.DataFrame({"index": range(60), "cluster": np.repeat(np.arange(6), 10), "photo": photos})
    clusters.to_csv(tmp_path / "c.csv", index=False)
    truth = pd.DataFrame({"photo": photos, "person": person}).sample(frac=1, random_state=0)
    truth.to_csv(tmp_path / "t.csv", index=False)
    for extra in ([], ["--id-column", "photo"]):
        code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "t.csv", "--label-column", "person", *extra,
                        "--out", tmp_path / "m.json", "--force")
        assert code == 0 and "warning" not in out, out
        assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(1.0)
    code, out = run("report", tmp_path / "c.csv", "--truth", tmp_path / "t.csv", "--label-column", "person",
                    "--out", tmp_path / "r")
    assert code == 0 and "<td>1.000</td>" in (tmp_path / "r" / "index.html").read_text(), out
    # photos spelled otherwise (absolute paths against relative ones): refused, not joined by row order
    truth.assign(photo=["/home/me/" + p for p in truth["photo"]]).to_csv(tmp_path / "abs.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "abs.csv", "--label-column", "person")
    one_line_error(code, out, "60 rows of c.csv have no label in abs.csv (joined by 'photo'; first: 'photos/000 ü.jpg')"
                              "; score the rows it has with --labelled-only; the two files must spell each photo")
    # faces of one group photo share its name: in the same order, fine; in another, refused
    group = clusters.assign(photo=[p if i % 10 else "group.jpg" for i, p in enumerate(photos)])
    group.to_csv(tmp_path / "g.csv", index=False)
    pd.DataFrame({"photo": group["photo"], "person": person}).to_csv(tmp_path / "gt.csv", index=False)
    code, out = run("evaluate", tmp_path / "g.csv", tmp_path / "gt.csv", "--label-column", "person")
    assert code == 0 and "NMI" in out.upper(), out
    pd.DataFrame({"photo": group["photo"], "person": person}).iloc[::-1].to_csv(tmp_path / "gr.csv", index=False)
    code, out = run("evaluate", tmp_path / "g.csv", tmp_path / "gr.csv", "--label-column", "person")
    one_line_error(code, out, "some rows share a value (first: 'group.jpg': the faces of one photo?)")


def test_face_descriptors_cut_without_a_distance_are_warned_about(tmp_path):
    """Found by a photo-library trial: `kfree cluster faces.npz --threshold 0.6` (dlib's euclidean
    cut, --distance left out) cut at 0.6 sqeuclidean: 18 clusters for 32 people, no word."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "faces.npz", embeddings=rng.normal(size=(30, 8)).astype(np.float32),
             paths=np.array([f"p{i}.jpg" for i in range(30)]), boxes=np.zeros((30, 4), dtype=np.int64))
    code, out = run("cluster", tmp_path / "faces.npz", "--threshold", "0.6", "--out", tmp_path / "c.csv")
    assert code == 0 and "faces.npz holds face descriptors (kfree encode faces)" in out, out
    assert "read in sqeuclidean units here (the default; euclidean 0.775)" in out
    for dist in ("sqeuclidean", "euclidean"):  # a distance chosen: nothing to say
        code, out = run("cluster", tmp_path / "faces.npz", "--threshold", "0.6", "--distance", dist,
                        "--out", tmp_path / "c.csv", "--force")
        assert code == 0 and "face descriptors" not in out, out
    np.save(tmp_path / "x.npy", rng.normal(size=(30, 8)))  # other features: nothing either
    code, out = run("cluster", tmp_path / "x.npy", "--threshold", "0.6", "--out", tmp_path / "d.csv")
    assert code == 0 and "face descriptors" not in out, out


def test_hdbscan_says_how_many_of_its_clusters_are_noise_rows(tmp_path):
    """Found by a research trial: `--method hdbscan` printed "1080 rows → 502 clusters", 469 of
    them single noise rows, without a word of it."""
    pytest.importorskip("hdbscan")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.05, (40, 2)), rng.normal(5, 0.05, (40, 2)), rng.uniform(-20, 20, (6, 2))])
    np.save(tmp_path / "x.npy", X)
    code, out = run("cluster", tmp_path / "x.npy", "--method", "hdbscan", "--out", tmp_path / "c.csv")
    labels = pd.read_csv(tmp_path / "c.csv")["cluster"].to_numpy()
    n_noise = int((np.bincount(labels) == 1).sum())
    assert code == 0 and n_noise >= 3, out
    assert f"86 rows → {np.unique(labels).size} clusters" in out
    assert f"; {n_noise} of the clusters are noise rows, one each" in out, out


def test_photos_given_for_features_point_to_kfree_encode_faces(tmp_path):
    """Found by a photo-library trial: `kfree cluster photos/` and `kfree cluster IMG_0020.png`
    listed data formats without saying that photos are encoded first; `kfree evaluate` of an
    .npz without labels advised --y-key, an option it does not have."""
    from PIL import Image

    (tmp_path / "photos" / "2019").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "photos" / "2019" / "IMG_0020.png")
    for given in (tmp_path / "photos", tmp_path / "photos" / "2019" / "IMG_0020.png"):
        code, out = run("cluster", given, "--threshold", "0.6", "--out", tmp_path / "c.csv")
        one_line_error(code, out, "photos are encoded first: kfree encode faces PHOTOS --out faces.npz")
    (tmp_path / "empty").mkdir()
    code, out = run("cluster", tmp_path / "empty", "--threshold", "0.6", "--out", tmp_path / "c.csv")
    assert code == 1 and "encoded first" not in out, out
    pd.DataFrame({"index": range(4), "cluster": [0, 0, 1, 1]}).to_csv(tmp_path / "p.csv", index=False)
    np.savez(tmp_path / "faces.npz", embeddings=np.zeros((4, 2)), paths=np.array(list("abcd")))
    code, out = run("evaluate", tmp_path / "p.csv", tmp_path / "faces.npz")
    one_line_error(code, out, "faces.npz has no labels array; name it with --label-column")


def test_a_truth_table_keyed_by_an_id_column_of_another_name_is_joined_by_it(tmp_path):
    """Found by a ticket trial: clusters named by ticket ids ('index', from --id-column ticket_id)
    and a shuffled truth table with those ids under 'ticket_id' were joined by row order, with a
    warning, exit 0: NMI 0.554 for clusters that score 0.80."""
    ids = [f"TCK-{i:06d}" for i in range(40)]
    pd.DataFrame({"index": ids, "cluster": np.arange(40) // 10, "row": range(40)}).to_csv(tmp_path / "c.csv",
                                                                                          index=False)
    truth = pd.DataFrame({"ticket_id": ids, "day": 3, "category": [f"i{k}" for k in np.arange(40) // 10]})
    truth.sample(frac=1, random_state=0).to_csv(tmp_path / "t.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "t.csv", "--label-column", "category",
                    "--out", tmp_path / "m.json")
    assert code == 0 and "warning" not in out, out
    assert json.loads((tmp_path / "m.json").read_text())["nmi"] == pytest.approx(1.0)
    # numbers as ids, the truth's read as text elsewhere: joined as text
    pd.DataFrame({"index": np.arange(40) + 7000, "cluster": np.arange(40) // 10, "row": range(40)}).to_csv(
        tmp_path / "n.csv", index=False)
    truth.assign(ticket_id=[f"{i + 7000}" for i in range(40)]).iloc[::-1].to_csv(tmp_path / "tn.csv", index=False)
    code, out = run("evaluate", tmp_path / "n.csv", tmp_path / "tn.csv", "--label-column", "category",
                    "--out", tmp_path / "n.json")
    assert code == 0 and json.loads((tmp_path / "n.json").read_text())["nmi"] == pytest.approx(1.0), out


def test_a_truth_table_without_a_label_column_is_named_by_its_own_columns(tmp_path):
    """Found by a ticket trial: with --id-column ticket_id, the refusal of a truth table without a
    label column listed 'index' (the ids' name inside kfree) among its columns, not ticket_id."""
    pd.DataFrame({"index": ["a", "b"], "cluster": [0, 1], "row": [0, 1]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"ticket_id": ["a", "b"], "category": ["x", "y"]}).to_csv(tmp_path / "t.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "t.csv", "--id-column", "ticket_id")
    one_line_error(code, out, "t.csv has no 'label'")
    assert "ticket_id" in out and "'index'" not in out.split("columns are")[-1], out


def test_a_cut_that_leaves_every_row_alone_or_joins_them_all_is_warned_about(d, tmp_path):
    """A TV-episode trial: frame ids and track numbers clustered beside 128-d descriptors put
    1,967 frames in 1,967 clusters with exit 0; a threshold in the wrong units does the same."""
    X = np.load(d / "x.npy")
    frames = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frames.insert(0, "frame", np.arange(len(X)) * 7)
    frames.to_csv(tmp_path / "frames.csv", index=False)
    for args, said in (([tmp_path / "frames.csv", "--threshold", "1"], "every row is a cluster of its own: no two rows "
                        "lie within the threshold 1 sqeuclidean; check its units"),
                       ([d / "x.npy", "--threshold", "1e6"], "all rows are one cluster at the threshold 1e+06")):
        code, out = run("cluster", *args, "--out", tmp_path / "c.csv", "--force")
        assert code == 0 and said in out, out
    code, out = run("cluster", tmp_path / "frames.csv", "--threshold", "1", "--ignore-columns", "frame",
                    "--out", tmp_path / "c.csv", "--force")
    assert code == 0 and "warning" not in out, out


def test_a_stopped_kfree_train_continues_from_its_checkpoint(d, tmp_path, monkeypatch):
    """An operations trial: every kill of kfree train lost the whole training, though the trainer
    could resume. A checkpoint beside --out, named by the data and settings, is continued by a
    rerun of the same training and removed once the model is saved."""
    import torch

    from kfree import ClusterLearner
    from kfree.train import trainer

    args = ["train", d / "x.npy", "--labels", d / "y.npy", *FAST]
    real, saves = trainer.save_checkpoint, []

    def stop_after_two_epochs(path, *a, **k):
        real(path, *a, **k)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", stop_after_two_epochs)
    code, out = run(*args, "--out", tmp_path / "m.kfree")
    assert code == 130 and not (tmp_path / "m.kfree").exists(), out
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".m.kfree.") and left[0].endswith(".checkpoint"), left
    assert f"the run's checkpoint is kept ({tmp_path / left[0]}): the same command continues it" in " ".join(
        out.split()), out  # (said: a docs trial saw no sign that the run could be continued)
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    code, out = run(*args, "--out", tmp_path / "m.kfree")
    assert code == 0 and f"continuing a stopped run of this training from its checkpoint ({left[0]})" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-validation.png", "m.kfree"]  # the checkpoint is gone
    code, out = run(*args, "--out", tmp_path / "straight.kfree")  # uninterrupted: the same model
    assert code == 0 and "continuing" not in out, out
    a, b = (ClusterLearner.load(tmp_path / f).model_.state_dict() for f in ("m.kfree", "straight.kfree"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_retrained_model_is_never_left_beside_another_run_s_validation_curve(d, tmp_path, monkeypatch):
    """An operations trial: a kill between writing the model and its curve left the new model
    beside the last run's curve; a run that validates nothing kept it for good."""
    from kfree.report import validation

    args = ["train", d / "x.npy", "--labels", d / "y.npy", *FAST, "--out", tmp_path / "m.kfree"]
    code, out = run(*args)
    assert code == 0 and (tmp_path / "m-validation.png").is_file(), out
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def stopped(*a, **k):
        raise KeyboardInterrupt  # a stop as the curve is drawn: the new model must not be in place either

    monkeypatch.setattr(validation, "plot_learner_validation", stopped)
    code, out = run(*args, "--force", "--seed", "3")
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith(".checkpoint")}
    assert code == 130 and kept == before, out  # (and the stopped run's checkpoint, for its rerun)
    monkeypatch.undo()
    code, out = run(*args, "--force", "--val-identities", "0")  # nothing validated: no curve describes the model
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".checkpoint")) == [
        "m.kfree"], out


def test_a_file_labelled_in_part_is_embedded_shown_and_clustered_on_dask(d, tmp_path):
    """A ticket trial: `kfree encode texts --label-column` writes empty labels for unlabelled rows,
    and `kfree embed`, `kfree report --features` and the Dask back-end, none of which uses labels,
    refused the file it had just written ("labels are missing … --labelled-only", an option none
    of them has)."""
    X, y = np.load(d / "x.npy"), np.load(d / "y.npy").astype(str)
    y[:5] = ""  # as encode texts writes a row without a label
    np.savez(tmp_path / "part.npz", embeddings=X, labels=y)
    code, out = run("embed", d / "m.kfree", tmp_path / "part.npz", "--out", tmp_path / "e.npy")
    assert code == 0 and np.load(tmp_path / "e.npy").shape[0] == X.shape[0], out
    code, out = run("cluster", tmp_path / "part.npz", "--threshold", "1", "--out", tmp_path / "c.csv")
    assert code == 0, out
    code, out = run("report", tmp_path / "c.csv", "--features", tmp_path / "part.npz", "--out", tmp_path / "r")
    assert code == 0 and (tmp_path / "r" / "index.html").exists(), out
    pytest.importorskip("dask.dataframe")
    code, out = run("cluster", tmp_path / "part.npz", "--threshold", "1", "--backend", "dask",
                    "--out", tmp_path / "dask.csv")
    assert code == 0, out
    assert (pd.read_csv(tmp_path / "dask.csv")["cluster"].to_numpy()
            == pd.read_csv(tmp_path / "c.csv")["cluster"].to_numpy()).all()
