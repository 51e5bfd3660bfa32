"""Score a predicted-clusters file against a file of true labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.io import LABEL_COLUMNS, load_labels, read_table
from ..exceptions import DataError
from ..metrics import evaluate_clustering


def read_predictions(pred_csv: str | Path):
    """A predicted-clusters file (``index,cluster[,label]``, as ``kfree cluster`` writes it) as a
    DataFrame; anything else raises a one-line DataError."""
    p = Path(pred_csv)
    if not p.exists():
        raise DataError(f"file not found: {p}")
    pred = read_table(p) if p.suffix.lower() in (".csv", ".parquet", ".pq") else None
    if pred is None or "cluster" not in pred.columns:
        raise DataError(f"{p.name} must be a CSV with a 'cluster' column (as written by `kfree cluster`)")
    return pred


def rows_of(pred, n_items: int, *, pred_name: str, items_name: str) -> np.ndarray:
    """Which row of a per-item file (``n_items`` rows) each predicted row is: its ``index``
    column when it has one (``kfree assign`` writes rows of its input), else the row order."""
    if "index" in pred.columns:
        idx = pred["index"].to_numpy()
        if idx.size and (idx.min() < 0 or idx.max() >= n_items):
            raise DataError(f"{pred_name} has index values outside 0..{n_items - 1} of {items_name}")
        return idx.astype(np.int64)
    if len(pred) != n_items:
        raise DataError(f"{pred_name} has {len(pred)} rows but {items_name} has {n_items}")
    return np.arange(n_items)


def truth_for(pred, truth: str | Path, *, label_column: str | None = None, pred_name: str = "the predictions") -> np.ndarray:
    """The true label of each predicted row: joined by ``index`` when both files have it, else by
    row order (or by ``pred``'s ``index`` into the labels)."""
    t = Path(truth)
    if label_column == "index":
        raise DataError("--label-column index: 'index' is the row number that joins the two files, not a "
                        "label; name the column (or .npz array) that holds the true labels")
    if t.suffix.lower() in (".csv", ".parquet", ".pq") and t.exists():
        df = read_table(t)
        col = label_column or next((c for c in LABEL_COLUMNS if c in df.columns), None)
        if col is None or col not in df.columns:
            raise DataError(f"{t.name} has no label column {label_column or 'label'!r}; columns are {list(df.columns)[:12]}")
        if "index" in df.columns and "index" in pred.columns:
            merged = pred[["index"]].merge(df[["index", col]], on="index", how="left")
            if merged[col].isna().any():
                raise DataError(f"{int(merged[col].isna().sum())} predicted rows have no label in {t.name} (joined by 'index')")
            return merged[col].to_numpy()
        y = df[col].to_numpy()
    else:
        y = load_labels(t, key=label_column, column=label_column)
    return np.asarray(y)[rows_of(pred, len(y), pred_name=pred_name, items_name=t.name)]


def evaluate_files(pred_csv: str | Path, truth: str | Path, *, label_column: str | None = None) -> dict:
    """Join predictions (``index,cluster``) with true labels by ``index`` or by row order."""
    pred = read_predictions(pred_csv)
    y = truth_for(pred, truth, label_column=label_column, pred_name=Path(pred_csv).name)
    return evaluate_clustering(y, pred["cluster"].to_numpy())
