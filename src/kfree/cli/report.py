"""``kfree report``: look at a clustering — sizes, images or texts per cluster, metrics — in a page."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import ConfigError, DataError
from .columns import ignored
from .console import cli_errors, console, record


def _items(path: Path, pred, columns: tuple[str, ...], what: str, pred_name: str, *,
           arrays: tuple[str, ...] = (), extra: str | None = None, option: str | None = None,
           id_column: str | None = None) -> tuple[list[str], object]:
    """The entry of each predicted row, from a ``.txt`` (a line per row), a table (the first of
    ``columns`` it has) or, where ``arrays`` are named, an ``.npz`` of ``kfree encode faces`` (the
    first of ``arrays`` it has), and the ``extra`` array of the ``.npz`` for the same rows (the
    faces' ``boxes``), or None. ``option`` names the table column otherwise (in the message when
    none of ``columns`` is there). A file with its own ``index`` (column or array; in a table the
    column ``id_column``, when given) is joined by it
    when the clusters have one, as ``--truth`` is (picking by row number showed a shuffled file's
    wrong texts); otherwise entries are picked by row (:func:`~kfree.evaluate.compare.rows_of`)."""
    import numpy as np
    import pandas as pd

    from ..data.io import (
        TABLES,
        check_index,
        check_path,
        read_lines,
        read_npz,
        read_table,
        tab_table,
        table_column,
    )
    from ..evaluate.compare import item_rows

    check_path(path, (".txt", ".npz", *TABLES), wrong_format=(
        f"{path.name}: give the {what} as a .txt (one per line) or a .csv/.parquet with a {columns[0]!r} column"
        + (", or the .npz of kfree encode faces" if arrays else "")))
    if path.suffix.lower() == ".npz" and not arrays:
        raise DataError(f"{path.name}: the .npz of kfree encode texts does not copy the texts (a million tickets "
                        f"would weigh gigabytes); give the .txt or table they came from")
    index = found = None
    lines = path.suffix.lower() == ".txt" and tab_table(path)[0] is None  # (Excel's tab-separated .txt: a table)
    if id_column is not None and (lines or path.suffix.lower() == ".npz"):
        raise DataError(f"--id-column names a column of a .csv/.parquet table; {path.name} has none (a .txt is "
                        "taken by row, an .npz by its own 'index')")
    if lines:
        entries = read_lines(path)
    elif path.suffix.lower() == ".npz":
        names, held = read_npz(path, (*arrays, "index", *([extra] if extra else [])))
        key = next((c for c in arrays if c in held), None)
        if key is None:
            raise DataError(f"{path.name} has no {' or '.join(repr(c) for c in arrays)} array (it has "
                            f"{sorted(names)}); the .npz of kfree encode faces has it")
        entries = [str(v) for v in held[key].tolist()]
        index = pd.Series(held["index"]) if "index" in held else None
        found = held.get(extra) if extra else None
    else:
        df = read_table(path, ids=id_column or "index")
        # (an empty cell is an empty entry: it was shown as "nan", as a text that says "nan" is)
        entries = ["" if pd.isna(v) else str(v) for v in df[table_column(df, columns, path, option)].tolist()]
        if extra == "boxes":
            found = table_boxes(df, path)
        if id_column is not None:
            index = pd.Series(check_index(df[table_column(df, (id_column,), path, "--id-column")], path, id_column))
        else:
            index = df["index"] if "index" in df.columns else None
    at = np.asarray(item_rows(pred, index, len(entries), pred_name=pred_name, items_name=path.name, what=what))
    return [entries[i] for i in at], (None if found is None else found[at])


#: a table's box columns, as left, top, right, bottom; or as x, y, width, height
BOX_COLUMNS = (("left", "top", "right", "bottom"), ("x", "y", "w", "h"), ("x", "y", "width", "height"))


def table_boxes(df, path: Path):
    """The face boxes of an images table, as (n, 4) left, top, right, bottom in the photos' pixels,
    from its columns left/top/right/bottom or x/y/w/h (x/y/width/height), or None when it has
    neither set; a row with all four empty has NaN (it is shown whole). A TV trial's frames table
    (path, x, y, w, h) showed whole frames with tiny faces: only the .npz of kfree encode faces
    was cropped."""
    import numpy as np
    import pandas as pd

    names = {str(c).lower(): c for c in df.columns}
    for cols in BOX_COLUMNS:
        if all(c in names for c in cols):
            values = df[[names[c] for c in cols]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, copy=True)
            finite = np.isfinite(values)
            # a row with no box at all (a library's row added without one) is shown whole
            bad = np.flatnonzero(~finite.all(axis=1) & finite.any(axis=1))
            if bad.size:
                raise DataError(f"{path.name}: row {int(bad[0])} has no number in a box column "
                                f"({', '.join(cols)}); give every row its whole box or none, or leave the box "
                                "columns out")
            if cols[0] == "x":
                values[:, 2:] += values[:, :2]
            return values
    return None


def report(
    clusters: Annotated[Path, typer.Argument(show_default=False,
                                             help="Predicted clusters: a CSV with a 'cluster' column (kfree cluster/assign).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for index.html and its figures (required).")] = None,
    truth: Annotated[Path | None, typer.Option(help="True labels (any labels file; joined as by `kfree evaluate`). "
                                                    "Default: the clusters file's own 'label' column, if any.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column/array in --truth.")] = None,
    images: Annotated[Path | None, typer.Option(help="Image file of each row: a .txt (one path per line), a "
                                                     ".csv/.parquet with a 'path' column (and columns left, top, "
                                                     "right, bottom or x, y, w, h: each row shown cropped to its box), "
                                                     "or the .npz of `kfree encode faces` (each face shown cropped); "
                                                     "relative paths "
                                                     "are read from that file's folder (or --image-root).")] = None,
    image_root: Annotated[Path | None, typer.Option(help="The folder the photos now lie in, when they or the "
                                                         "--images file were moved: its paths, relative or "
                                                         "absolute, are found there from any of their folders "
                                                         "on.")] = None,
    texts: Annotated[Path | None, typer.Option(help="Text of each row: a .txt (one per line; one whose first line "
                                                    "names tab-separated columns is a table) or a .csv/.tsv/.parquet "
                                                    "with a text column (--text-column; default: text, texts, "
                                                    "sentence, message, utterance or body).")] = None,
    text_column: Annotated[str | None, typer.Option(help="The --texts table's text column.")] = None,
    id_column: Annotated[str | None, typer.Option(help="The column of ids naming the rows of the --texts, --images, "
                                                       "--truth or --features table that has it (ticket ids, as "
                                                       "given to kfree encode texts or kfree cluster --id-column; "
                                                       "default: 'index').")] = None,
    features: Annotated[Path | None, typer.Option(help="Features of each row (any features file, e.g. from `kfree "
                                                       "embed`) for a 2-d map: t-SNE with kfree\\[report], else PCA; "
                                                       "with true labels, also the distances within and between "
                                                       "them.")] = None,
    threshold: Annotated[float | None, typer.Option(help="A cut to draw on the distances within and between the "
                                                         "true labels (needs --features and true labels), with the "
                                                         "share of pairs it gets wrong; in --distance units.")] = None,
    distance: Annotated[str | None, typer.Option(help="The units of --threshold and of the distances drawn: "
                                                      "sqeuclidean (kfree cluster's default), euclidean or cosine "
                                                      "(default: euclidean, or sqeuclidean with --threshold).")] = None,
    max_clusters: Annotated[int, typer.Option(min=1, help="Show the images or texts of this many clusters, the "
                                                         "largest first.")] = 40,
    ignore_columns: Annotated[str | None, typer.Option(help="Columns of a --features table that are not "
                                                        "features (ids, text), comma-separated.")] = None,
    per_cluster: Annotated[int | None, typer.Option(min=1, help="Random members shown per cluster (default: 6 "
                                                              "images, 5 texts).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that already holds files.")] = False,
) -> None:
    """Write a page to look at a clustering: cluster sizes, a row of images (or texts) per cluster, metrics.

    \b
    kfree cluster model.kfree photos.npy --out clusters.csv
    kfree report clusters.csv --images photos.txt --out report/    # open report/index.html
    kfree report tickets.csv --texts tickets.txt --truth intents.csv --features emb.npy --out report/
    """
    with cli_errors():
        import numpy as np
        from rich.markup import escape

        from ..data.images import locate_images, written_in
        from ..data.io import TABLES, TEXT_COLUMNS, table_header
        from ..evaluate.compare import read_predictions, truth_for
        from ..metrics.clustering import as_numbers, singletons_for_noise
        from ..report.clusters import cluster_report
        from ..report.figures import pd_isna, plural
        from ..utils.io import check_output

        if out is None:
            raise ConfigError("say where to write the report: --out FOLDER")
        if (threshold is not None or distance is not None) and features is None:
            raise ConfigError("--threshold and --distance are drawn on the distances within and between the true "
                              "labels: give --features (and true labels: --truth, or a 'label' column)")
        from ..threshold import Threshold

        cut = None if threshold is None else Threshold(threshold, distance or "sqeuclidean", "--threshold")
        check_output(out, inputs=(clusters, truth, images, texts, features), force=force, directory=True)
        pred = read_predictions(clusters)
        labels = pred["cluster"].to_numpy()
        def ids_in(p: Path) -> str | None:  # --id-column, for a table that has that column
            return id_column if id_column and p.suffix.lower() in TABLES and id_column in table_header(p) else None

        said: list[str] = []  # how the rows were matched, on the page too (a ticket trial saw it in the terminal only)

        def noted(read):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = read()
            for w in caught:
                if not issubclass(w.category, DeprecationWarning):
                    said.append(str(w.message))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            return got

        y = None
        if truth is not None:
            y = noted(lambda: truth_for(pred, truth, label_column=label_column, pred_name=clusters.name,
                                        id_column=ids_in(truth)))
        elif "label" in pred.columns:
            y = pred["label"].to_numpy()
        if (threshold is not None or distance is not None) and (y is None or np.unique(
                np.asarray(y)[~np.asarray(pd_isna(y), dtype=bool)].astype(str)).size < 2):
            raise ConfigError("--threshold and --distance are drawn on the distances within and between the true "
                              "labels: give them (--truth, or a 'label' column in the clusters file), of 2 or more "
                              "labels")
        paths = lines = boxes = None
        if images is None and texts is None and "photo" in pred.columns:  # (found by a photo-library trial)
            boxed = table_boxes(pred.iloc[:0], clusters) is not None
            console.print(f"{escape(clusters.name)} names each row's photo: --images {escape(clusters.name)} shows "
                          + ("each face in the montage (cropped to its box)" if boxed else
                             "the whole photos, --images FACES.npz (what kfree encode faces wrote) the faces"),
                          soft_wrap=True, highlight=False)
        if images is not None and images.exists() and images.resolve() == clusters.resolve():
            # the clusters file names its own rows' photos (kfree assign --all-rows): row for row, also in a
            # part of it cut out (an operations trial's subset was joined by its 'row' numbers, and refused)
            import pandas as pd

            from ..data.io import table_column

            col = table_column(pred, ("path", "photo", "image", "file"), images, None)
            listed = ["" if pd.isna(v) else str(v) for v in pred[col].tolist()]
            boxes = table_boxes(pred, images)
        elif images is not None:
            listed, boxes = noted(lambda: _items(images, pred, ("path", "photo", "image", "file"), "image paths",
                                                 clusters.name, arrays=("paths",), extra="boxes", id_column=id_column))
        if images is not None:
            named = [i for i, p in enumerate(listed) if p]
            if not named:
                raise DataError(f"{images.name}: no row names an image (the column is empty)")
            # rows added to a library without a photo (an .npy batch) are empty tiles, not a reason to
            # show nothing (a photo-library trial: 40 such rows refused 374 photos, "first: " naming none)
            paths = [""] * len(listed)
            for i, p in zip(named, locate_images([listed[i] for i in named], images, image_root=image_root,
                                                 written_in=written_in(images)), strict=True):
                paths[i] = p
            if len(named) < len(listed):
                said.append(f"{plural(len(listed) - len(named), 'row')} name no image (added without one): shown as "
                            "empty tiles")
                console.print(said[-1], soft_wrap=True, highlight=False)
        if texts is not None:
            lines, _ = noted(lambda: _items(texts, pred, (text_column,) if text_column else TEXT_COLUMNS, "texts",
                                            clusters.name, option="--text-column", id_column=id_column))
        X = None
        if features is not None:
            from ..data.io import load_features
            from ..evaluate.compare import item_rows

            feats = load_features(features, min_samples=1, ignore_columns=ignored(ignore_columns),
                                  id_column=ids_in(features), partial_labels=True)  # (labels unused)
            X = feats.X[noted(lambda: item_rows(pred, feats.index, feats.n_samples, pred_name=clusters.name,
                                                items_name=features.name, what="features"))]
            import importlib.util

            if X.shape[0] > 2000 and importlib.util.find_spec("openTSNE") is not None:  # (PCA is quick)
                console.print(f"drawing a 2-d map of {min(X.shape[0], 10_000):,} rows (t-SNE at this size takes "
                              "a minute or more)")
        # each text after its row's id (the clusters file's 'index': ticket ids, or row numbers)
        text_ids = pred["index"].to_numpy() if lines is not None and "index" in pred.columns else None
        page = cluster_report(out, labels, truth=y, images=paths, boxes=boxes, texts=lines, ids=text_ids, features=X,
                              title=f"kfree — {clusters.name}", source=str(clusters), max_clusters=max_clusters,
                              per_cluster=per_cluster, overwrite=True, notes=said, threshold=cut, distance=distance)  # (--out checked above, --force included)
        numbers = as_numbers(labels)  # (noise rows counted as the page counts them: each a cluster)
        n_clusters = np.unique(labels).size if numbers is None else np.unique(singletons_for_noise(numbers)).size
        record(out=page, rows=labels.size, clusters=n_clusters)
        console.print(f"{plural(labels.size, 'row')} in {plural(n_clusters, 'cluster')}; report written to "
                      f"[bold]{escape(str(page))}[/bold]"
                      + (f" (it shows the {max_clusters} largest clusters; --max-clusters shows more)"
                         if (images is not None or texts is not None) and n_clusters > max_clusters else ""))
