"""The committed benchmark tables are what their runners make of the committed records.

A runner's report code can drift from the records it was written for (a renamed Dask task left
the scale-out model without its block stage, and the table no longer regenerated): rebuild each
table from its records and compare it with the committed one, byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_unseen_tables_regenerate_from_the_cells(tmp_path, monkeypatch):
    from benchmarks import run_unseen

    results = ROOT / "results" / "unseen"
    # a copy: report() also writes summary.json, which must not change the committed one
    shutil.copytree(results, tmp_path / "unseen")
    monkeypatch.setattr(run_unseen, "RESULTS", tmp_path / "unseen")
    assert run_unseen.report() + "\n" == (results / "table.md").read_text()
    assert run_unseen.variants_report() + "\n" == (results / "variants.md").read_text()
    assert (tmp_path / "unseen" / "summary.json").read_text() == (results / "summary.json").read_text()


def test_scale_out_table_regenerates_from_its_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from benchmarks import run_scale_out

    committed = ROOT / "results" / "benchmarks"
    shutil.copy(committed / "scale_out.json", tmp_path / "scale_out.json")
    monkeypatch.setattr(run_scale_out, "RESULTS", tmp_path)
    run_scale_out.report(run_scale_out.load())
    assert (tmp_path / "scale_out.md").read_text() == (committed / "scale_out.md").read_text()


@pytest.mark.parametrize("family", ["a", "b"])
def test_cluster_tables_regenerate_from_their_json(tmp_path, family):
    from benchmarks import run_cluster

    committed = ROOT / "results" / "benchmarks"
    run_cluster.write_markdown(family, run_cluster.load(committed / f"cluster_family_{family}.json"),
                               tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text() == (committed / f"cluster_family_{family}.md").read_text()


def test_stream_table_regenerates_from_its_json(tmp_path):
    import json

    from benchmarks import run_stream

    committed = ROOT / "results" / "benchmarks"
    run_stream.write_md(json.loads((committed / "stream.json").read_text()), tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text() == (committed / "stream.md").read_text()


def test_ward_size_held_out_size_dense_faces_and_encode_tables_regenerate_from_their_json():
    import json

    from benchmarks import run_dense_faces, run_encode, run_held_out_size, run_ward_size

    committed = ROOT / "results" / "benchmarks"
    rec = json.loads((committed / "held_out_size.json").read_text())
    assert run_held_out_size.report(rec["cells"], rec["meta"]) == (committed / "held_out_size.md").read_text()
    rec = json.loads((committed / "ward_size.json").read_text())
    assert run_ward_size.report(rec["cells"], rec["meta"]) == (committed / "ward_size.md").read_text()
    rec = json.loads((committed / "dense_faces.json").read_text())
    assert run_dense_faces.report(rec) == (committed / "dense_faces.md").read_text()
    rec = json.loads((committed / "encode.json").read_text())
    assert run_encode.report(rec) == (committed / "encode.md").read_text()
