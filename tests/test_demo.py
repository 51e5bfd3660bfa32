"""The demo writes a complete run directory from the shipped data (short run)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kfree.cli.app import app
from kfree.data.builtin import load_builtin
from kfree.demo import demo_config, run_demo
from kfree.exceptions import ConfigError


def test_shipped_data_sets_load():
    faces = load_builtin("att_faces")
    assert faces.X.shape == (400, 128) and faces.images.shape == (400, 112, 92)
    assert len(np.unique(faces.y)) == 40
    text = load_builtin("banking77", with_images=False)
    assert text.X.shape == (13083, 384) and len(text.label_names) == 77
    assert (text.split == "test").sum() == 3080
    with pytest.raises(ConfigError, match="unknown data set"):
        load_builtin("mnist")


def test_demo_run_directory(tmp_path):
    cfg = demo_config("att_faces", epochs=4, seed=1)
    res = run_demo(cfg, out_dir=tmp_path / "run")
    for name in ("config.json", "metrics.json", "model.kfree", "assignments.csv", "montage.png", "index.html"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["method"] for r in metrics["rows"]] == [r["method"] for r in res.rows]
    assert metrics["rows"][0]["n_true"] == 10
    # the model's own 4b is b at the kept step; the row says which (step 0: b never learned)
    from kfree.learner import ClusterLearner

    kept = ClusterLearner.load(tmp_path / "run" / "model.kfree").best_step_
    assert f"(step {kept}" in res.rows[1]["method"]
    assert metrics["tau"] == pytest.approx(4 * metrics["b"])
    html = (tmp_path / "run" / "index.html").read_text()
    assert "montage.png" in html and "AT&amp;T Laboratories Cambridge" in html


def test_demo_split_keeps_test_people_unseen():
    from kfree.data.splits import split_identities

    y = load_builtin("att_faces", with_images=False).y
    sp = split_identities(y, 24, 6, 10, seed=0)
    assert not set(sp.train_ids) & set(sp.test_ids) and not set(sp.val_ids) & set(sp.test_ids)
    assert len(sp.test_idx) == 100


def test_cli_demo_prints_table_and_path(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--epochs", "3", "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "NMI" in result.output and "raw, val.-matched HAC" in result.output
    assert str(tmp_path / "r") in result.output
    result = CliRunner().invoke(app, ["demo", "--dataset", "mnist"])
    assert result.exit_code == 1 and "unknown demo data set" in result.output


def test_bad_demo_settings_are_one_line_before_anything_runs(tmp_path, monkeypatch):
    """Found by review: --seed -1 was a raw numpy traceback after the header; two demos started
    in the same second wrote into one default folder."""
    from kfree.demo import _default_run_dir

    for args, message in ((["--seed", "-1"], "seed=-1 must be an int >= 0"),
                          (["--epochs", "0"], "epochs=0 must be an int >= 1")):
        r = CliRunner().invoke(app, ["demo", *args, "--out", str(tmp_path / "o")])
        assert r.exit_code == 1 and message in r.output and "kfree demo" not in r.output, r.output
    monkeypatch.chdir(tmp_path)
    first, second = _default_run_dir("att_faces"), _default_run_dir("att_faces")
    assert first != second and first.is_dir() and second.is_dir()
