"""Which columns of a user's table are features, and in which order a model takes them."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from ..exceptions import DataError, DataWarning, user_stacklevel
from .console import console

IGNORE_HELP = ("Columns of a .csv/.parquet that are not features (ids, tracks, timestamps, text), "
               "comma-separated: every other numeric column but the label and 'index' is one.")


def ignored(value: str | None) -> tuple[str, ...]:
    """``--ignore-columns a,b`` as a tuple of names."""
    return tuple(c.strip() for c in (value or "").split(",") if c.strip())


def model_rows(learner, data, path: Path, left_out: tuple[str, ...] = ()):
    """``data``'s features in the column order the model was trained on. A model trained on a
    table knows its columns: a table with the same columns in another order is reordered (the
    features would otherwise be silently permuted), one with other columns is refused, naming
    them. Arrays and models trained on arrays are taken as they are."""
    names = getattr(learner, "feature_names_in_", None)
    expected = getattr(learner, "n_features_in_", None)
    if names is None and data.columns is not None and expected is not None and len(data.columns) != expected:
        # (a model trained on an array knows no names: say which columns were taken)
        shown = ", ".join(data.columns[:6]) + ("…" if len(data.columns) > 6 else "")
        raise DataError(f"{path.name} has {len(data.columns)} feature columns ({shown}) but the model was trained "
                        f"on {expected} features; leave out the columns that are not features with "
                        "--ignore-columns (ids, tracks, timestamps)")
    if names is None:
        return data.X
    return align_columns(data, [str(c) for c in names], path, "the model's", "it was not trained on",
                         "the model was trained on", left_out)


def align_columns(data, names: list[str], path: Path, whose: str, absent: str, order: str,
                  left_out: tuple[str, ...] = ()):
    """``data``'s features in the order of the columns ``names``: reordered (and said) when they
    are the same columns in another order, refused (naming them; ``absent`` says where the extra
    ones are missing) when they are others; taken as they are when ``data`` has no column names.
    ``left_out``: columns already left out, which the advised ``--ignore-columns`` keeps."""
    if data.columns is None or list(names) == list(data.columns):
        return data.X
    extra = [c for c in data.columns if c not in names]
    missing = [c for c in names if c not in data.columns]
    if extra or missing:
        raise DataError(f"{path.name}'s feature columns are not {whose}: "
                        + "; ".join(part for part in (
                            f"{len(extra)} {absent} ({', '.join(extra[:5])}; leave them out with "
                            f"--ignore-columns {','.join([*left_out, *extra[:5]])}, or name a label column with "
                            "--label-column)"
                            if extra else "",
                            f"{len(missing)} missing ({', '.join(missing[:5])})" if missing else "") if part))
    from rich.markup import escape

    console.print(f"{escape(path.name)}: columns taken in the order {order}")
    return data.X[:, [data.columns.index(c) for c in names]]


ID_HELP = ("The column of a .csv/.parquet (or array of an .npz) naming its rows (a sku_id, a ticket_id): the "
           "clusters file's 'index' holds its values, and it is not a feature (default: a column named 'index').")

LINK_HELP = ("A column of DATA (a .csv/.parquet; an array of an .npz) whose rows with one value must share a cluster, e.g. "
             "the face track of each frame; it is not a feature, and the clusters file gets it as a column. A value "
             "names one group in the whole file: track numbers that start again in each episode must be made unique "
             "(e.g. s01e02_18).")
CANNOT_HELP = ("A .csv/.parquet of pairs (its first two columns, under a header line) that must not share a "
               "cluster: values of --link-column (e.g. tracks seen together), else row ids (DATA's 'index' "
               "column) or row numbers.")


def link_pairs(data_path: Path, link_column: str | None):
    """``kfree cluster --link-column``: ``(must_link, first_row, values)``, the rows of one value
    chained together (one pair per row after the first, which joins the whole group), a row of
    each value, and the column itself (one value per row; the clusters file carries it);
    ``(None, None, None)`` without the option.
    Read before the features, so that a column that is not there is named (with the columns
    there are) before any other check."""
    import numpy as np
    import pandas as pd

    from ..data.io import TABLES, read_npz, read_table

    if link_column is None:
        return None, None, None
    if data_path.suffix.lower() == ".npz":  # (a TV-episode trial's frames kept their tracks in an array)
        names, arrays = read_npz(data_path, (link_column,))
        if link_column not in arrays:
            raise DataError(f"{data_path.name} has no array {link_column!r} (--link-column); its arrays are {names[:12]}")
        values = arrays[link_column]
        if values.ndim != 1:
            raise DataError(f"{data_path.name}: array {link_column!r} has shape {values.shape}; give one value per row")
        column = pd.Series(values)
    elif data_path.suffix.lower() in TABLES:
        column = read_table(data_path, [link_column])[link_column]  # (that column alone: the features are read next)
    else:
        raise DataError(f"--link-column names a column of a .csv/.parquet table or an array of an .npz; "
                        f"{data_path.name} has none")
    if column.isna().any():
        raise DataError(f"{data_path.name}: {int(column.isna().sum())} rows have no {link_column!r} "
                        "value; give every row one (its own, for a row linked to none)")
    groups = column.to_numpy()
    order = np.argsort(groups, kind="stable")
    same = groups[order][1:] == groups[order][:-1]
    first_row = {v: int(r) for r, v in zip(order[::-1], groups[order][::-1])}  # (the first row of each value)
    return np.stack([order[:-1][same], order[1:][same]], axis=1), first_row, groups


def cannot_pairs(cannot_link: Path | None, data_path: Path, data, link_column: str | None, first_row,
                 id_column: str | None = None):
    """``kfree cluster --cannot-link``: one pair of rows per pair in the file (its first two
    columns): values of ``link_column`` (a row of each: the groups are joined by their
    must-links), else DATA's row ids ('index' or ``id_column``) or row numbers; None without the
    option."""
    import numpy as np

    from ..data.io import TABLES, check_path, read_table, table_header

    if cannot_link is None:
        return None
    p = check_path(cannot_link, TABLES, wrong_format=f"{cannot_link.name}: give the cannot-link pairs as a "
                                                     ".csv/.parquet with two columns")
    pairs = read_table(p)
    if pairs.shape[1] < 2 or pairs.iloc[:, :2].isna().to_numpy().any():
        raise DataError(f"{p.name}: give two columns, one pair of {link_column or 'rows'} per row, none missing")
    if link_column is None and data_path.suffix.lower() in TABLES:
        # pairs of tracks (track_a, track_b) read as pairs of rows: a TV-episode trial's cannot-links
        # named frames 218 times by their tracks' numbers, without a word
        named = {c.lower(): c for c in table_header(data_path)}
        for head in map(str, pairs.columns[:2]):
            stem = re.sub(r"(?:[_\- ]?(?:a|b|1|2|i|j|x|y|left|right|first|second))$", "", head.lower())
            if stem != head.lower() and stem in named and named[stem] != (id_column or "index"):
                raise DataError(f"{p.name} pairs {named[stem]!r} values ({head}), which are read as rows of "
                                f"{data_path.name} without --link-column: give --link-column {named[stem]} (its "
                                f"rows of one {named[stem]} are then kept together, and each pair apart)")
    if first_row is not None:
        lookup, what = first_row, f"{link_column!r} value"
    elif data.index is not None:
        lookup, what = {v: i for i, v in enumerate(data.index.tolist())}, f"row id ({id_column or 'index'!r})"
    else:
        lookup, what = {i: i for i in range(data.n_samples)}, f"row number (0..{data.n_samples - 1})"

    def known(name: str) -> bool:  # a header cell that is itself a value: a file without a header
        return name in lookup or (name.lstrip("-").isdigit() and int(name) in lookup)

    if all(known(str(c)) for c in pairs.columns[:2]):
        raise DataError(f"{p.name}: its first line ({', '.join(map(str, pairs.columns[:2]))}) is a pair, not a "
                        "header; add a header line (e.g. a,b) so that no pair is taken as one")
    both = list(zip(pairs.iloc[:, 0].tolist(), pairs.iloc[:, 1].tolist()))
    unknown = [k for k, (x, y) in enumerate(both) if x not in lookup or y not in lookup]
    if unknown:
        k = unknown[0]
        x, y = both[k]
        first = f"{x if x not in lookup else y!r} is no {what} of {data_path.name} (pair {k + 1})"
        read = (f" ({p.name} has {pairs.shape[1]} columns: the pairs are read from its first two, "
                f"{pairs.columns[0]!r} and {pairs.columns[1]!r})" if pairs.shape[1] > 2 else "")
        if len(unknown) == len(both):  # none of them: another file, column or episode
            raise DataError(f"{p.name}: {first}{read}, and no pair names two of them; give the pairs of its rows")
        if 2 * len(unknown) > len(both):
            # most of them: the pairs of another episode, whose track numbers the data shares in part (a TV
            # trial: 296 of 303 pairs unknown, the 7 others kept apart tracks they were never about)
            raise DataError(f"{p.name}: {len(unknown):,} of its {len(both):,} pairs name a {what} that "
                            f"{data_path.name} does not hold (first: {first}){read}: is it the pairs file of this "
                            "data? The pairs it does name may not be about these rows either; give the pairs of its "
                            "rows (a list of another episode or batch, filtered to the values DATA holds)")
        # some: a co-occurrence list also names tracks the data left out (a TV-episode trial: 41 dropped
        # tracks refused the whole list)
        warnings.warn(f"{p.name}: {len(unknown):,} of its {len(both):,} pairs name a {what} that {data_path.name} "
                      f"does not hold and are left out (first: {first})", DataWarning, stacklevel=user_stacklevel())
    rows = []
    for k, (x, y) in enumerate(both):
        if x not in lookup or y not in lookup:
            continue
        if lookup[x] == lookup[y]:  # (said in the file's terms, not as an internal must-link contradiction)
            raise DataError(f"{p.name}: pair {k + 1} ({x!r}, {y!r}) names the same {what} twice, and nothing can be "
                            "kept apart from itself; remove that pair")
        rows.append((lookup[x], lookup[y]))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


SKIP_INVALID_HELP = ("Leave out the rows whose features hold NaN or infinite values (a failed embedding, a missing "
                     "vector): their cluster in --out is empty")


def invalid_rows(data, path: Path, skip: bool, doing: str) -> None:
    """Refuse ``data``'s rows with NaN or infinite features (read with ``invalid="keep"``),
    naming the first by row and id and pointing to --skip-invalid; with ``skip``, say they are
    left out. ``doing``: what --skip-invalid does with the others ("cluster", "add")."""
    from rich.markup import escape

    from ..data.io import invalid_rows_message

    if not data.invalid.size:
        return
    said = invalid_rows_message(path, data.X, data.invalid, data.index)
    if not skip:
        raise DataError(f"{said}; drop or impute them, or pass --skip-invalid to {doing} the others (the cluster of "
                        "those rows in --out is then empty)")
    console.print(f"left out (--skip-invalid): {escape(said)}; their cluster in --out is empty", soft_wrap=True,
                  highlight=False)
