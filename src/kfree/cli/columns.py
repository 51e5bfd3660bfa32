"""Which columns of a user's table are features, and in which order a model takes them."""

from __future__ import annotations

from pathlib import Path

from .console import console

IGNORE_HELP = ("Columns of a .csv/.parquet that are not features (ids, tracks, timestamps, text), "
               "comma-separated: every other numeric column but the label and 'index' is one.")


def ignored(value: str | None) -> tuple[str, ...]:
    """``--ignore-columns a,b`` as a tuple of names."""
    return tuple(c.strip() for c in (value or "").split(",") if c.strip())


def model_rows(learner, data, path: Path):
    """``data``'s features in the column order the model was trained on. A model trained on a
    table knows its columns: a table with the same columns in another order is reordered (the
    features would otherwise be silently permuted), one with other columns is refused, naming
    them. Arrays and models trained on arrays are taken as they are."""
    from ..exceptions import DataError

    names = getattr(learner, "feature_names_in_", None)
    if names is None or data.columns is None or list(names) == list(data.columns):
        return data.X
    names = [str(c) for c in names]
    extra = [c for c in data.columns if c not in names]
    missing = [c for c in names if c not in data.columns]
    if extra or missing:
        raise DataError(f"{path.name}'s feature columns are not the model's: "
                        + "; ".join(part for part in (
                            f"{len(extra)} it was not trained on ({', '.join(extra[:5])}; leave them out with "
                            f"--ignore-columns {','.join(extra[:5])})" if extra else "",
                            f"{len(missing)} missing ({', '.join(missing[:5])})" if missing else "") if part))
    from rich.markup import escape

    console.print(f"{escape(path.name)}: columns taken in the order the model was trained on")
    return data.X[:, [data.columns.index(c) for c in names]]
