"""Score a predicted-clusters file against a file of true labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.io import LABEL_COLUMNS, load_labels, read_table
from ..exceptions import DataError
from ..metrics import evaluate_clustering


def evaluate_files(pred_csv: str | Path, truth: str | Path, *, label_column: str | None = None) -> dict:
    """Join predictions (``index,cluster``) with true labels by ``index`` or by row order."""
    p = Path(pred_csv)
    if not p.exists():
        raise DataError(f"file not found: {p}")
    pred = read_table(p) if p.suffix.lower() in (".csv", ".parquet", ".pq") else None
    if pred is None or "cluster" not in pred.columns:
        raise DataError(f"{p.name} must be a CSV with a 'cluster' column (as written by `kfree cluster`)")
    t = Path(truth)
    if label_column == "index":
        raise DataError("--label-column index: 'index' is the row number that joins the two files, not a "
                        "label; name the column (or .npz array) that holds the true labels")
    y = None
    if t.suffix.lower() in (".csv", ".parquet", ".pq") and t.exists():
        df = read_table(t)
        col = label_column or next((c for c in LABEL_COLUMNS if c in df.columns), None)
        if col is None or col not in df.columns:
            raise DataError(f"{t.name} has no label column {label_column or 'label'!r}; columns are {list(df.columns)[:12]}")
        if "index" in df.columns and "index" in pred.columns:
            merged = pred[["index", "cluster"]].merge(df[["index", col]], on="index", how="left")
            if merged[col].isna().any():
                raise DataError(f"{int(merged[col].isna().sum())} predicted rows have no label in {t.name} (joined by 'index')")
            return evaluate_clustering(merged[col].to_numpy(), merged["cluster"].to_numpy())
        y = df[col].to_numpy()
    if y is None:
        y = load_labels(t, key=label_column, column=label_column)
    c = pred["cluster"].to_numpy()
    if "index" in pred.columns:
        idx = pred["index"].to_numpy()
        if idx.min() < 0 or idx.max() >= len(y):
            raise DataError(f"{p.name} has index values outside 0..{len(y) - 1} of {t.name}")
        y = np.asarray(y)[idx]
    elif len(y) != len(c):
        raise DataError(f"{p.name} has {len(c)} rows but {t.name} has {len(y)} labels")
    return evaluate_clustering(y, c)
