"""``kfree --json``: one JSON object on standard output with the command's numbers, also when it
fails; every other line goes to standard error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _cli import app, runner

from kfree.cluster.incremental import ClusterState


@pytest.fixture
def kfree_json(monkeypatch, capsys):
    """``kfree --json ARGS…`` through the command's entry point (which writes the object once the
    exit status is known): (exit status, the object, standard error)."""
    import gc
    import sys

    from kfree.cli.app import main

    def call(*args):
        monkeypatch.setattr(sys, "argv", ["kfree", "--json", *[str(a) for a in args]])
        monkeypatch.setattr(sys, "stdout", sys.stdout)  # (main guards it; put back afterwards)
        try:
            with pytest.raises(SystemExit) as ended:
                main()
        finally:
            gc.unfreeze()  # (main freezes the collector as the process ends)
        out, err = capsys.readouterr()
        lines = out.splitlines()
        assert len(lines) == 1, out  # the object alone: the summary lines went to stderr
        return ended.value.code, json.loads(lines[0]), err

    return call


def test_cluster_assign_and_evaluate_give_their_numbers_and_failures_their_status(tmp_path, kfree_json):
    rng = np.random.default_rng(0)
    C = rng.standard_normal((5, 4)) * 3
    y = rng.integers(0, 5, 120)
    X = C[y] + rng.standard_normal((120, 4)) * 0.2
    np.save(tmp_path / "x.npy", X[:80])
    np.save(tmp_path / "new.npy", X[80:])
    pd.DataFrame({"index": range(80), "label": y[:80]}).to_csv(tmp_path / "truth.csv", index=False)

    code, doc, err = kfree_json("cluster", tmp_path / "x.npy", "--threshold", "2", "--out", tmp_path / "c.csv",
                                "--state", tmp_path / "s.kstate")
    assert code == 0 and doc["exit_status"] == 0 and doc["command"] == "cluster"
    labels = pd.read_csv(tmp_path / "c.csv")["cluster"]
    assert (doc["rows"], doc["clusters"], doc["method"]) == (80, labels.nunique(), "hac")
    assert doc["rule"] == "threshold 2 sqeuclidean" and doc["out"] == str(tmp_path / "c.csv")
    assert doc["state"] == str(tmp_path / "s.kstate") and doc["warnings"] == []
    assert "80 rows →" in err  # the people's line, on stderr

    code, doc, _ = kfree_json("assign", tmp_path / "s.kstate", tmp_path / "new.npy", "--out", tmp_path / "a.csv")
    state = ClusterState.load(tmp_path / "s.kstate")
    assert code == 0 and doc["new_rows"] == 40 and doc["state_rows"] == state.n_samples == 120
    assert doc["state_clusters"] == state.n_clusters and doc["unsettled_rows"] == state.n_unsettled
    assert doc["joined_existing"] + doc["new_clusters"] <= 40 and doc["skipped_held"] == 0

    np.save(tmp_path / "quiet.npy", np.zeros((0, 4)))  # a day without rows: the same fields, as 0
    code, doc, _ = kfree_json("assign", tmp_path / "s.kstate", tmp_path / "quiet.npy", "--out", tmp_path / "q.csv")
    assert code == 0 and (doc["new_rows"], doc["new_clusters"], doc["joined_existing"], doc["skipped_held"]) == (0,) * 4
    np.save(tmp_path / "y.npy", y[:80])
    code, doc, _ = kfree_json("train", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "m.kfree",
                              "--epochs", "2", "--p", "4", "--k", "5", "--dims", "8", "--no-progress")
    assert code == 0 and doc["identities"] == 5 and doc["out"] == str(tmp_path / "m.kfree")
    assert {(c["features"], c["linkage"]) for c in doc["candidates"]} >= {(doc["features"], doc["linkage"])}
    code, doc, _ = kfree_json("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv")
    assert code == 0 and doc["nmi"] > 0.9 and doc["n_samples"] == 80

    # a refusal: its status and the message, and nothing else recorded
    code, doc, err = kfree_json("assign", tmp_path / "s.kstate", tmp_path / "new.npy", "--out", tmp_path / "a.csv")
    assert code == doc["exit_status"] == 1 and "already exists" in doc["error"] and "error:" in err
    assert set(doc) == {"command", "exit_status", "error", "warnings"}


def test_warnings_are_listed_and_the_next_command_prints_to_standard_output_again(tmp_path, kfree_json):
    np.save(tmp_path / "x.npy", np.arange(60, dtype=np.float64).reshape(30, 2) * 10)
    code, doc, err = kfree_json("cluster", tmp_path / "x.npy", "--threshold", "1e-3", "--out", tmp_path / "c.csv")
    assert code == 0 and doc["clusters"] == 30
    assert any("every row is a cluster of its own" in w for w in doc["warnings"]) and "warning:" in err
    result = runner.invoke(app, ["cluster", str(tmp_path / "x.npy"), "--threshold", "1e-3", "--out",
                                 str(tmp_path / "c2.csv")])
    assert result.exit_code == 0 and "30 rows → 30 clusters" in result.stdout and "{" not in result.stdout


def test_a_command_line_that_does_not_parse_or_a_defect_still_give_one_object_with_their_status(
        tmp_path, kfree_json, monkeypatch, capsys):
    """A review: the object was written by a close hook before the exit status was known, so a
    usage error (2) and a defect's traceback (1) read exit_status 0, and --help added an object
    after the help."""
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    code, doc, err = kfree_json("cluster", tmp_path / "x.npy", "--bogus")
    assert code == doc["exit_status"] == 2 and doc["command"] == "cluster" and "No such option" in err
    assert doc["error"] == "the command line could not be parsed (see standard error)"
    code, doc, _ = kfree_json("--bogus")
    assert code == doc["exit_status"] == 2 and doc["command"] is None

    from kfree.evaluate import compare

    def broken(*a, **k):
        raise RuntimeError("a defect")

    monkeypatch.setattr(compare, "evaluate_files", broken)
    pd.DataFrame({"cluster": [0, 1]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(RuntimeError):  # (the traceback is the defect's report)
        kfree_json("evaluate", tmp_path / "c.csv", tmp_path / "c.csv")
    doc = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert doc["exit_status"] == 1 and doc["error"] == "RuntimeError: a defect"
    # --help runs no command: the help alone
    import sys

    from kfree.cli.app import main

    monkeypatch.setattr(sys, "argv", ["kfree", "--json", "cluster", "--help"])
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    with pytest.raises(SystemExit) as ended:
        main()
    import gc

    gc.unfreeze()
    assert ended.value.code == 0 and "exit_status" not in capsys.readouterr().out
    code, doc, _ = kfree_json("methods")
    assert code == 0 and "bcl" in doc["losses"] and doc["methods"]["hac"]["installed"]
    # an object that could not be written fails the command, whose result it is (a review: > /dev/full, exit 0)
    import errno

    class Full:
        encoding = "utf-8"

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "argv", ["kfree", "--json", "methods"])
    monkeypatch.setattr(sys, "stdout", Full())
    with pytest.raises(SystemExit) as ended:
        main()
    gc.unfreeze()
    assert ended.value.code == 1 and "could not write the result to standard output" in capsys.readouterr().err
