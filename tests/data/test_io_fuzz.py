"""Fuzzing the file readers the CLI uses: whatever a user's file holds, the answer is clean data
or one line and exit code 1, never a traceback.

Generated inputs: .npy/.npz/.csv/.parquet files with random dtypes (floats of every width, ints,
bools, complex, text, dates, Python objects), shapes (0-d to 3-d, empty sides), NaN/inf and
values beyond float32, odd column names (unicode, duplicates, 'label', 'index'), random bytes
under a known extension, and unicode file names. Each is read in-process through
``load_features`` inside the CLI's error handler (:func:`kfree.cli.console.cli_errors`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kfree.cli.console import cli_errors, err_console
from kfree.data.io import load_features, load_labels

DTYPES = ["<f2", "<f4", "<f8", "<i1", "<i8", "<u1", "|b1", "<c8", "<U3", "<M8[D]"]
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00:")
FILE_NAMES = st.text(NAME_CHARS, min_size=1, max_size=12).filter(lambda s: s.strip(".") != "" and s == s.strip())


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES + ["object"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    if dtype == "object":
        return np.array(draw(st.lists(st.one_of(st.integers(), st.text(max_size=2)), max_size=4)) or [None],
                        dtype=object)
    if dtype[1] == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=8 * int(dtype[2]))
        if dtype == "<f8":
            elements = st.one_of(elements, st.sampled_from([1e39, -3e300, 1e-320]))  # beyond float32
        return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))
    return draw(hnp.arrays(np.dtype(dtype), shape))


COLUMN = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6),
    st.lists(st.integers(-(2**70), 2**70), min_size=0, max_size=6),
    st.lists(st.one_of(st.text(max_size=3), st.none()), min_size=0, max_size=6),
    st.lists(st.booleans(), min_size=0, max_size=6),
)
COLUMN_NAMES = st.one_of(st.sampled_from(["label", "index", "y", "cluster", "f0", "f1", "", "é"]),
                         st.text(NAME_CHARS, max_size=4))


@st.composite
def tables(draw):
    n = draw(st.integers(0, 6))
    names = draw(st.lists(COLUMN_NAMES, min_size=0, max_size=5))
    cols = {}
    for name in names:
        values = draw(COLUMN)
        values = (values * (n // max(len(values), 1) + 1))[:n] if values else [None] * n
        cols.setdefault(name, values)
    return pd.DataFrame(cols)


def _write(case, path: Path) -> bool:
    """Write the generated input; False when the format itself cannot hold it (nothing to test)."""
    kind, payload = case
    try:
        if kind == "bytes":
            path.write_bytes(payload)
        elif path.suffix == ".npy":
            np.save(path, payload, allow_pickle=True)  # object arrays too: the reader must refuse them
        elif path.suffix == ".npz":
            np.savez(path, **payload)
        elif path.suffix == ".csv":
            payload.to_csv(path, index=False)
        else:
            payload.to_parquet(path)
    except Exception:
        return False
    return True


CASES = st.one_of(
    st.tuples(st.just("array"), arrays()).map(lambda c: (c[0], c[1], ".npy")),
    st.tuples(st.just("arrays"), st.dictionaries(st.sampled_from(["X", "y", "embeddings", "labels", "feats"]),
                                                 arrays(), min_size=0, max_size=3)).map(lambda c: (c[0], c[1], ".npz")),
    st.tuples(st.just("table"), tables(), st.sampled_from([".csv", ".parquet"])),
    st.tuples(st.just("bytes"), st.binary(max_size=64), st.sampled_from([".npy", ".npz", ".csv", ".parquet"])),
)


def _check_read(call) -> None:
    """``call()`` inside the CLI's handler: data that is usable, or exit 1 with one line."""
    with err_console.capture() as cap:
        try:
            with cli_errors():
                data = call()
        except typer.Exit as e:
            assert e.exit_code == 1
            data = None
    printed = cap.get()
    if data is None:
        assert printed.startswith("error: ") and printed.count("\n") == 1, printed
        assert "Traceback" not in printed and len(printed) < 600, printed
    else:
        X = getattr(data, "X", None)
        if X is not None:
            assert X.dtype == np.float32 and X.ndim == 2 and X.shape[0] >= 1 and np.isfinite(X).all()
            assert data.y is None or data.y.shape == (X.shape[0],)
            assert data.index is None or (data.index.shape == (X.shape[0],)  # a table's own row names
                                          and np.unique(data.index).size == X.shape[0])
        else:  # labels
            assert data.ndim == 1


# tmp_path is one folder for every example, emptied after each (cheaper than a temporary folder
# made and removed per example, which on a busy disk cost as much as many a read)
@settings(max_examples=800, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(case=CASES, name=FILE_NAMES, kw=st.fixed_dictionaries({}, optional={
    "label_column": st.sampled_from(["label", "index", "nope", "é"]), "x_key": st.sampled_from(["X", "feats"]),
    "require_labels": st.booleans()}), as_labels=st.booleans())
def test_any_file_reads_cleanly_or_fails_with_one_line(tmp_path, case, name, kw, as_labels):
    kind, payload, suffix = case
    path = tmp_path / f"{name}{suffix}"
    try:
        if not _write((kind, payload), path):
            return
        before = sorted(p.name for p in tmp_path.iterdir())
        if as_labels:
            _check_read(lambda: load_labels(path, key=kw.get("x_key"), column=kw.get("label_column")))
        else:
            _check_read(lambda: load_features(path, **kw))
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # reading writes nothing
    finally:  # every example starts in an empty folder, as in a new one
        for p in tmp_path.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()

