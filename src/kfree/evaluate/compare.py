"""Predicted-clusters files: write them (every command and the demo write the same
``index,cluster[,label]`` CSV) and score them against a file of true labels."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import (
    LABEL_COLUMNS,
    TABLES,
    check_path,
    load_labels,
    read_npz,
    read_table,
    refuse_repeats,
    strip_labels,
    table_column,
)
from ..exceptions import DataError, DataWarning, user_stacklevel
from ..metrics import evaluate_clustering
from ..utils.io import atomic_path


def write_predictions(path: str | Path, labels: Any, index: Any = None, y: Any = None, *,
                      index_column: str = "index", **extra_columns: Any) -> Path:
    """Write ``index,cluster[,label][,extra…]`` to ``path`` atomically (a CSV, or Parquet for a
    ``.parquet`` path); returns the path.

    ``index`` is the row of the clustered file each label belongs to (default 0..n-1), so
    :func:`read_predictions` and ``kfree report`` can join a subset of rows back to their file;
    ``index_column="row"`` names it ``row`` instead (row numbers only, never joined to a truth
    table's own ``index`` values). ``y`` (true labels) adds a ``label`` column, which ``kfree
    evaluate`` and ``kfree report`` read when no truth file is given. ``extra_columns`` follow in
    the order given; a None one is left out.
    """
    import pandas as pd

    n = len(labels)
    columns = {index_column: range(n) if index is None else index, "cluster": labels}
    if y is not None:
        columns["label"] = y
    columns.update((k, v) for k, v in extra_columns.items() if v is not None)
    df = pd.DataFrame(columns)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False) if Path(path).suffix.lower() == ".parquet" else df.to_csv(tmp, index=False)
    return Path(path)


def fill_rows(labels: Any, keep: np.ndarray) -> Any:
    """The clusters of the rows ``keep`` marks, as a column for every row: a pandas nullable
    integer array, empty (``<NA>``) for the rows left out (``--skip-invalid``); plain ``labels``
    when none was."""
    if keep.all():
        return labels
    import pandas as pd

    out = pd.array(np.zeros(keep.shape[0], dtype=np.int64), dtype="Int64")
    out[keep] = np.asarray(labels)
    out[~keep] = pd.NA
    return out


def index_columns(index: Any, n: int) -> dict[str, Any]:
    """The columns that name ``n`` clustered rows, as keyword arguments of :func:`write_predictions`.

    ``index`` is the clustered table's own ids (its ``index`` column or ``--id-column``:
    :attr:`kfree.data.io.LabelledData.index`) or None. Without ids the default ``index`` (row
    numbers) says everything: ``{}``. With them ``index`` holds the ids, so ``kfree evaluate``
    joins the clusters to a truth file's ids by them, and a ``row`` column keeps the row numbers,
    for files that have one entry per row in order (labels, images, texts, features). Ids that
    happen to be 0..n-1 are written so too: without ``row`` they read as a file without ids, and
    a truth file of those ids in another order was taken by row order (a TV-episode trial's frames
    numbered 0..n-1: NMI 0.065 for clusters that score 0.912)."""
    if index is None:
        return {}
    return {"index": np.asarray(index), "row": np.arange(n)}


def read_predictions(pred_csv: str | Path):
    """A predicted-clusters file (``index,cluster[,label]``, as ``kfree cluster`` writes it) as a
    DataFrame; anything else raises a one-line DataError. Rows without a cluster (those ``kfree
    assign --skip-invalid`` left out) are dropped with a warning when an ``index`` or ``row``
    column names the rows (a join by row order would shift every later row)."""
    wrong = f"{Path(pred_csv).name} must be a CSV with a 'cluster' column (as written by `kfree cluster`)"
    pred = read_table(check_path(pred_csv, TABLES, wrong_format=wrong))
    if "cluster" not in pred.columns:
        raise DataError(wrong)
    import pandas as pd

    name = Path(pred_csv).name
    missing = np.flatnonzero(pred["cluster"].isna().to_numpy())
    if missing.size and not {"index", "row"} & set(pred.columns):
        raise DataError(f"{name}: {missing.size} rows have no cluster (first: row {missing[0]}); every row needs one "
                        "(or an 'index' column naming the rows that have one)")
    if missing.size:  # rows `kfree assign --skip-invalid` left out (NaN features): named by their index
        one = missing.size == 1
        warnings.warn(f"{name}: {missing.size:,} row{'' if one else 's'} {'has' if one else 'have'} no cluster (first: row "
                      f"{missing[0]}, from 0; rows left out by kfree assign --skip-invalid?): they are left out here",
                      DataWarning, stacklevel=user_stacklevel())
        pred = pred.drop(index=pred.index[missing]).reset_index(drop=True)
        whole = pred["cluster"].dtype.kind == "f" and (pred["cluster"] == pred["cluster"].round()).all()
        if whole:  # (a CSV column with empty cells is read as floats)
            pred["cluster"] = pred["cluster"].astype(np.int64)
    if pd.api.types.infer_dtype(pred["cluster"], skipna=False) in ("mixed", "mixed-integer"):
        raise DataError(f"{name}: its cluster ids mix types (numbers and text); give every id as the same type")
    for col in ("index", "row"):  # each names one row: a repeat would count that row twice
        if col in pred.columns:
            refuse_repeats(pred[col], name, col, "each predicted row must name its own row")
    return pred


def rows_of(pred, n_items: int, *, pred_name: str, items_name: str) -> np.ndarray:
    """Which row of a per-item file (``n_items`` rows) each predicted row is: its ``row`` column
    when it has one (written when the clustered table had its own ``index`` values), else its
    ``index`` column (``kfree assign`` writes rows of its input), else the row order."""
    col = next((c for c in ("row", "index") if c in pred.columns), None)
    if col is not None:
        idx = pred[col].to_numpy()
        if not (idx.dtype.kind in "iu" or (idx.dtype.kind == "f" and np.isfinite(idx).all()
                                           and (idx == np.round(idx)).all())):
            raise DataError(f"{pred_name}: its {col!r} values are not row numbers, so they cannot pick rows "
                            f"of {items_name}; give a file with an 'index' column to join by, or the clusters "
                            "file as kfree wrote it")
        if idx.size and (idx.min() < 0 or idx.max() >= n_items):
            raise DataError(f"{pred_name} has {col} values outside 0..{n_items - 1} of {items_name}: they pick its "
                            f"rows by number; where {items_name} names its rows in a column of its own (a '{col}' "
                            f"column too, say), join by it: --id-column {col}")
        if idx.size != n_items and np.array_equal(np.sort(idx), np.arange(idx.size)):
            # every row 0..n-1 of a clustering of n rows: a file of another length holds other rows
            # (a text with a line break in it, a header counted as a row), and picking by number
            # would shift every later row without a word
            raise DataError(f"{pred_name} clusters {idx.size} rows (its {col} runs 0..{idx.size - 1}) but "
                            f"{items_name} has {n_items}: they are not the same rows; give a file with one "
                            "entry per clustered row (or an 'index' column in both to join by)")
        return idx.astype(np.int64)
    if len(pred) != n_items:
        raise DataError(f"{pred_name} has {len(pred)} rows but {items_name} has {n_items}")
    return np.arange(n_items)


def join_by_index(pred, table, column: str, *, pred_name: str, table_name: str, what: str,
                  absent_ok: bool = False, key: str = "index") -> np.ndarray:
    """``table[column]`` of each predicted row, joined by the ``index`` column both hold (a
    per-item file that names its rows: true labels, texts, image paths), or by another column
    ``key`` both hold (:func:`shared_key`). Repeated ids, ids of another type and predicted rows
    the table lacks are one-line DataErrors; with ``absent_ok`` a row the table lacks gets a
    missing value (a labelled sample of the clustered rows)."""
    why = "rows cannot be joined by it: give every row its own " + ("index" if key == "index" else "value")
    refuse_repeats(table[key], table_name, key, why)
    if key != "index":  # (the clusters' 'index' is checked when they are read)
        refuse_repeats(pred[key], pred_name, key, why)
    try:
        merged = pred[[key]].merge(table[[key, column]], on=key, how="left", indicator=True)
    except (TypeError, ValueError):  # e.g. text in one file, numbers in the other
        raise DataError(f"cannot join {pred_name} to {table_name} by {key!r}: its values are "
                        f"{pred[key].dtype} in one and {table[key].dtype} in the other") from None
    missing = (merged["_merge"] == "left_only").to_numpy()
    if missing.any() and not absent_ok:
        raise DataError(f"{int(missing.sum())} rows of {pred_name} have no {what} in {table_name} (joined by "
                        f"{key!r}; first: {pred[key].to_numpy()[missing][:1].tolist()[0]!r})"
                        + ("; score the rows it has with --labelled-only" if what == "label" else ""))
    ids = pred[key].to_numpy()
    if key == "index" and len(table) > len(pred) and ids.dtype.kind in "iu" and np.array_equal(
            np.sort(ids), np.arange(ids.size)):
        # ids 0..n-1 of n rows against a longer file: the numbering of a batch's own rows (kfree assign
        # writes it for a batch without an 'index' column), which picks the file's first n rows
        warnings.warn(DataWarning(
            f"{pred_name}'s ids run 0..{ids.size - 1}, the row numbers of a clustering of {ids.size} rows, and "
            f"{table_name} has {len(table):,} rows: the {what} of its rows with ids 0..{ids.size - 1} were "
            "taken; if the clustered rows were a batch numbered from 0 (kfree assign without an 'index' "
            "column), they are other rows: give the batch an 'index' column of these ids"), stacklevel=user_stacklevel())
    return merged[column].to_numpy()


def item_rows(pred, index, n_items: int, *, pred_name: str, items_name: str, what: str) -> np.ndarray:
    """Which row of a per-item file each predicted row is: joined by ``index`` when the file has
    its own ids (``index``, one per row) and the clusters have an ``index`` column
    (:func:`join_by_index`: repeats, other types and missing ids refused), else by
    :func:`rows_of`."""
    if index is not None and "index" in pred.columns and not _numbered_not_named(pred, index, pred_name, items_name,
                                                                                 what):
        import pandas as pd

        table = pd.DataFrame({"index": np.asarray(index), "row": np.arange(n_items)})
        return join_by_index(pred, table, "row", pred_name=pred_name, table_name=items_name,
                             what=what).astype(np.int64)
    _warn_row_order(pred, pred_name, items_name, what)
    return rows_of(pred, n_items, pred_name=pred_name, items_name=items_name)


def is_row_numbering(ids: np.ndarray) -> bool:
    """Ids that are only the row numbers 0..n-1 (a clustered file without ids)."""
    return ids.dtype.kind in "iu" and np.array_equal(ids, np.arange(ids.size))


def _numbered_not_named(pred, index, pred_name: str, items_name: str, what: str) -> bool:
    """True (with a warning) when the clusters' ``index`` is only their row numbers 0..n-1 and
    the per-item file names its rows by ids in another order: the clusters then came from a file
    without ids (a ``.npy``, the rows ``kfree embed`` wrote), and joining row numbers to ids
    would pair rows at random (ticket ids 0..n-1 shuffled showed every text under the wrong
    cluster, silently). kfree writes a ``row`` column beside ids that differ from row numbers,
    so a clusters file with one is never taken for numbered."""
    if "row" in pred.columns:
        return False
    ids = pred["index"].to_numpy()
    if not is_row_numbering(ids):
        return False
    items = np.asarray(index)
    if items.dtype.kind in "iu" and np.array_equal(items[:ids.size], np.arange(min(ids.size, items.size))):
        return False  # the same numbering: joining and taking by row agree
    if items.dtype.kind in "iu" and items.size == ids.size and np.array_equal(np.sort(items), ids):
        # the file's ids are the same numbers in another order: they may be these row numbers (join) or
        # ids of rows listed in the clustered file's order (take by row), and the two give other scores
        # (a metrics audit: a perfect clustering scored NMI 0.106 by row, with only a warning)
        raise DataError(f"{pred_name} numbers its rows 0..{ids.size - 1} (no 'row' column: a clustering of rows "
                        f"without ids), and {items_name} names its rows by 'index' values 0..{ids.size - 1} in "
                        f"another order, so which {what} belong to which row is unclear: if they are the same "
                        "row numbers, join by them with --id-column index; if they are ids of rows listed in the "
                        f"clustered file's order, rename {items_name}'s 'index' column")
    warnings.warn(f"{pred_name} numbers its rows 0..{ids.size - 1} without a 'row' column (as a clustered file "
                  "without ids gives), while "
                  f"{items_name} names its rows by 'index' ids in another order: its {what} are taken by row "
                  f"number, in the order of the clustered file. If {pred_name}'s 'index' holds ids, add a 'row' "
                  "column of row numbers, as kfree writes it", stacklevel=user_stacklevel())
    return True


def _warn_row_order(pred, pred_name: str, items_name: str, what: str) -> None:
    """The clusters carry a table's own ids ('index' beside 'row'), the per-item file none to join
    them by: its entries are taken by row number, which is right only if it lists them in the
    clustered file's order (a texts file of shuffled tickets put other tickets' texts in every
    cluster, silently). ``kfree assign --all-rows`` writes 'row' alone: nothing to say."""
    if "row" in pred.columns and "index" in pred.columns:
        warnings.warn(f"{pred_name} names its rows by their own ids ('index'), but {items_name} has no 'index' "
                      f"column: its {what} are taken by row number, in the order of the clustered file; if "
                      f"{items_name} lists them in another order, name its id column 'index'"
                      + (" (or give it to kfree report --id-column)" if what in ("texts", "image paths") else
                         " (or give it to kfree evaluate --id-column)" if what == "labels" else ""), stacklevel=user_stacklevel())


#: columns of a clusters file that are no names of its rows
_NOT_NAMES = ("cluster", "label", "index", "row")


def shared_key(pred, table, id_column: str | None = None, label_column: str | None = None) -> str | None:
    """A column other than ``index`` that names the rows in both the clusters and a per-item
    table, to join them by: ``id_column`` when both have it, else the one column of another name
    they share but ``label_column`` (the ``photo`` of ``kfree encode faces``' rows and of a user's
    list of who is in each photo). ``None`` without one. A photo-library trial's truth list of ``photo,person`` in
    another order was taken by row order, silently: NMI 0.392 for clusters that score 0.999."""
    if id_column is not None:
        return id_column if id_column in pred.columns and id_column in table.columns else None
    shared = [c for c in pred.columns if c not in (*_NOT_NAMES, label_column) and c in table.columns]
    return shared[0] if len(shared) == 1 else None


def _ids_column(ids, table, skip: tuple[str, ...] = ()) -> str | None:
    """The one column of ``table`` (not ``index``, a label column or ``skip``) holding every id of
    ``ids`` (the clusters' ``index``) as text, each once; None without exactly one."""
    import pandas as pd

    wanted = pd.Series(ids).astype(str)
    found = []
    for c in table.columns:
        if c in (*LABEL_COLUMNS, "index", *skip) or table[c].duplicated().any():
            continue
        if wanted.isin(table[c].astype(str)).all():
            found.append(c)
    return found[0] if len(found) == 1 else None


def truth_for(pred, truth: str | Path, *, label_column: str | None = None, pred_name: str = "the predictions",
              absent_ok: bool = False, id_column: str | None = None, option: str = "--label-column") -> np.ndarray:
    """The true label of each predicted row: joined by ``index`` when both files have it, else by
    row order (or by ``pred``'s ``index`` into the labels). ``absent_ok``: a row the truth file
    does not list (joined by ``index``) has no label, instead of being an error. ``id_column``:
    the truth table's column of row ids when it is not named ``index`` (a ``sku_id``). ``option``:
    how the user named ``label_column``, for the messages."""
    t = Path(truth)
    if id_column is not None and not (t.suffix.lower() in TABLES and t.exists()):
        raise DataError(f"--id-column names a column of a .csv/.parquet truth table, and {t.name} is none")
    if label_column == "index":
        raise DataError(f"{option} index: 'index' is the row number that joins the two files, not a "
                        "label; name the column (or .npz array) that holds the true labels")
    if t.suffix.lower() in TABLES and t.exists():  # read here, not by load_labels: it may join by 'index'
        df = read_table(t, ids=id_column or "index")
        ids = None if id_column is None else df[table_column(df, (id_column,), t, option="--id-column")]
        # (the label column found before the ids take the name 'index': a refusal lists the file's own columns)
        col = table_column(df, (label_column,) if label_column else LABEL_COLUMNS, t, option=option)
        key = shared_key(pred, df, id_column, label_column)
        index_join = "index" in df.columns and "index" in pred.columns and id_column is None and (
            "row" in pred.columns or not is_row_numbering(pred["index"].to_numpy()))
        if key is None and not index_join and id_column is None and "index" in pred.columns and not is_row_numbering(
                pred["index"].to_numpy()) and (found := _ids_column(
                    pred["index"], df, (label_column,) if label_column else ())) is not None:
            # the clusters' ids are the values of one of the truth's columns (a ticket_id): join by it, as
            # text (a ticket trial's shuffled truth was taken by row order: NMI 0.554 for clusters of 0.80)
            import pandas as pd

            df = pd.DataFrame({"index": df[found].astype(str).to_numpy(), col: df[col].to_numpy()})
            return join_by_index(pred.assign(index=pred["index"].astype(str)), df, col, pred_name=pred_name,
                                 table_name=f"{t.name} (by {found!r})", what="label", absent_ok=absent_ok)
        if key is not None and not index_join:  # both name their rows by that column: join by it
            mine, theirs = pred[key].to_numpy(), df[key].to_numpy()
            if pred[key].duplicated().any():  # (the faces of a group photo share its name)
                if mine.shape == theirs.shape and (mine == theirs).all():
                    return df[col].to_numpy()  # the same rows in the same order: nothing to join
                raise DataError(f"{pred_name} and {t.name} both name their rows by {key!r}, but some rows share a "
                                f"value (first: {pred[key][pred[key].duplicated()].iloc[0]!r}: the faces of one "
                                f"photo?), so they cannot be joined by it, and {t.name} lists them in another "
                                f"order; give {t.name} an 'index' column of {pred_name}'s index values")
            try:
                return join_by_index(pred, df, col, pred_name=pred_name, table_name=t.name, what="label",
                                     absent_ok=absent_ok, key=key)
            except DataError as e:
                if mine.dtype.kind == "O" and "have no label" in str(e):
                    raise DataError(f"{e}; the two files must spell each {key} the same way (both paths relative "
                                    "to the same folder, or both absolute)") from None
                raise
        if ids is not None:
            df = df.drop(columns=[c for c in ("index", id_column) if c in df.columns]).assign(index=ids.to_numpy())
        y = df[col].to_numpy()
    else:
        y = load_labels(t, key=label_column, column=label_column, option=option)
        df, col = None, "label"
        if t.suffix.lower() == ".npz":  # (one from kfree encode names its rows by an 'index' array)
            import pandas as pd

            ids = read_npz(t, ("index",))[1].get("index")
            if ids is not None and ids.shape == np.shape(y):
                df = pd.DataFrame({"index": ids, col: y})
    if df is not None and "index" in df.columns and "index" in pred.columns and not _numbered_not_named(
            pred, df["index"].to_numpy(), pred_name, t.name, "labels"):
        return join_by_index(pred, df, col, pred_name=pred_name, table_name=t.name, what="label",
                             absent_ok=absent_ok)
    _warn_row_order(pred, pred_name, t.name, "labels")
    return np.asarray(y)[rows_of(pred, len(y), pred_name=pred_name, items_name=t.name)]


def evaluate_files(pred_csv: str | Path, truth: str | Path, *, label_column: str | None = None,
                   labelled_only: bool = False, id_column: str | None = None, group_column: str | None = None) -> dict:
    """Join predictions (``index,cluster``) with true labels by ``index`` or by row order.

    Rows without a true label (an empty cell, or, joined by ``index``, a row the truth file does
    not list) are an error, unless ``labelled_only``: then the rows that have one are scored (a
    labelled sample of a larger clustering), and ``unlabelled_rows`` says how many were left out.

    ``group_column``: a column of the clusters file or of ``truth`` (joined as the labels are)
    naming groups of rows scored as one item each (face tracks; :func:`~kfree.metrics.clustering.evaluate_by_group`)."""
    import pandas as pd

    from ..metrics.clustering import evaluate_by_group

    pred = read_predictions(pred_csv)
    y = truth_for(pred, truth, label_column=label_column, pred_name=Path(pred_csv).name, absent_ok=labelled_only,
                  id_column=id_column)
    groups = None
    if group_column is not None:
        groups = (pred[group_column].to_numpy() if group_column in pred.columns else
                  truth_for(pred, truth, label_column=group_column, pred_name=Path(pred_csv).name,
                            absent_ok=labelled_only, id_column=id_column, option="--group-column"))
        if bool(pd.isna(groups).any()):
            raise DataError(f"{int(pd.isna(groups).sum()):,} rows have no {group_column!r}: give every row its group "
                            "(a track of one frame is a group of one row)")

    if y.dtype.kind in "OU":  # ('card_arrival ' is 'card_arrival')
        y = strip_labels(y, Path(truth))
    clusters = pred["cluster"].to_numpy()

    def score(keep=slice(None)):
        return (evaluate_clustering(y[keep], clusters[keep]) if groups is None else
                evaluate_by_group(y[keep], clusters[keep], groups[keep]))
    missing = np.asarray(pd.isna(y), dtype=bool)
    if y.dtype.kind in "OU":  # an empty (or blank) text cell is no label either, as in a CSV
        missing |= np.array([isinstance(v, str) and not v.strip() for v in y.tolist()], dtype=bool)
    if not missing.any():
        return score()
    first = int(np.flatnonzero(missing)[0])
    if not labelled_only:
        raise DataError(f"{int(missing.sum())} of the {missing.size} clustered rows have no true label in "
                        f"{Path(truth).name} (first: row {first} of {Path(pred_csv).name}); score the labelled "
                        "ones with --labelled-only, or give every row a label")
    if missing.all():
        raise DataError(f"no clustered row has a true label in {Path(truth).name}")
    return {**score(~missing), "unlabelled_rows": int(missing.sum())}
