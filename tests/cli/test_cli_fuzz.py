"""Fuzzing ``kfree cluster DATA --threshold T --out OUT`` in-process (typer's CliRunner): any input
file and options give a result file or one error line with exit code 1 — never a traceback, a
partial output, a left-over temporary file, or a changed input."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

from kfree.cli.app import app

runner = CliRunner()
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00:")
NAMES = st.text(NAME_CHARS, min_size=1, max_size=10).filter(lambda s: s.strip(".") != "" and s == s.strip()
                                                           and not s.startswith("-"))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-3, 3), st.just(1e39))
DATA = st.one_of(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6), elements=FLOATS),
    hnp.arrays(np.float64, st.tuples(st.integers(0, 7), st.integers(0, 3)), elements=st.floats(-2, 2)),
    hnp.arrays(st.sampled_from([np.int64, np.bool_, np.complex64, np.dtype("<U2")]),
               st.tuples(st.integers(0, 5), st.integers(1, 3))),
)
FORMATS = st.sampled_from([".npy", ".npz", ".csv", ".parquet"])
THRESHOLDS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 4))


def _save(X: np.ndarray, path: Path) -> bool:
    try:
        if path.suffix == ".npy":
            np.save(path, X)
        elif path.suffix == ".npz":
            np.savez(path, X=X)
        else:
            X2 = X.reshape(X.shape[0], -1) if X.ndim >= 1 else X.reshape(1, 1)
            df = pd.DataFrame(X2, columns=[f"f{i}" for i in range(X2.shape[1])])
            df.to_csv(path, index=False) if path.suffix == ".csv" else df.to_parquet(path)
    except Exception:
        return False
    return True


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(X=DATA, name=NAMES, fmt=FORMATS, threshold=THRESHOLDS,
       method=st.sampled_from(["hac", "multicut"]), distance=st.sampled_from([None, "euclidean", "cosine"]),
       out_kind=st.sampled_from(["new", "new", "new_folder", "exists", "input", "under_a_file", "directory"]),
       force=st.booleans())
def test_cluster_any_file_gives_output_or_one_line(X, name, fmt, threshold, method, distance, out_kind, force):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = d / f"{name}{fmt}"
        if not _save(X, data):
            return
        out = {"new": d / "out.csv", "new_folder": d / "sub" / "out.csv", "exists": d / "old.csv",
               "input": data, "under_a_file": data / "out.csv", "directory": d}[out_kind]
        (d / "old.csv").write_text("keep me\n")
        snapshot = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
        args = ["cluster", str(data), "--threshold", repr(threshold), "--method", method, "--out", str(out)]
        args += (["--distance", distance] if distance else []) + (["--force"] if force else [])
        result = runner.invoke(app, args)
        text = result.output
        assert result.exit_code in (0, 1), (result.exit_code, text, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in text
        files_now = {p.name: p.read_bytes() for p in d.rglob("*") if p.is_file()}
        assert not [n for n in files_now if n.endswith(".tmp")], files_now.keys()  # no temporaries left
        assert files_now[data.name] == snapshot[data.name]  # the input is never touched
        if result.exit_code == 1:
            assert text.startswith("error: ") and text.count("\n") == 1, text
            assert files_now.get("old.csv") == b"keep me\n"
            assert "out.csv" not in files_now  # nothing written
        else:
            assert out_kind in ("new", "new_folder") or (out_kind == "exists" and force)
            pred = pd.read_csv(out)
            assert list(pred.columns) == ["index", "cluster"] and len(pred) >= (1 if method == "hac" else 2)
