"""Read features (and optional identity labels) from the file formats users have.

Supported: ``.npz`` (arrays ``X``/``y`` or ``embeddings``/``labels``, or keys given by the
user, and an optional ``index`` array naming the rows), ``.npy`` (features; labels from a
separate file), ``.csv``/``.tsv`` and ``.parquet`` (feature columns + a label column; a CSV
may be separated by semicolons or tabs, with decimal commas, as spreadsheets save it). Every failure is a :class:`~kfree.exceptions.DataError` that says
what was wrong and what to do.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..distances import check_features, is_number
from ..exceptions import (
    DataError,
    DataFileNotFoundError,
    DataTypeError,
    DataWarning,
    first_line,
    user_stacklevel,
)

TABLES = (".csv", ".tsv", ".parquet", ".pq")
FORMATS = (".npz", ".npy", *TABLES)
X_KEYS = ("X", "embeddings", "features", "x")
Y_KEYS = ("y", "labels", "label", "targets")
LABEL_COLUMNS = ("label", "cluster", "y")  # label columns of a table, in order of preference
TEXT_COLUMNS = ("text", "texts", "sentence", "message", "utterance", "body")  # the same, for texts


@dataclass
class LabelledData:
    """Features with optional labels. ``X``: ndarray (n, d); ``y``: ndarray (n,) or None;
    ``index``: ndarray (n,) of the table's own ``index`` column (unique values naming each row,
    which clusters files carry so ``kfree evaluate`` joins them to true labels by it), or None
    for files without one."""

    X: np.ndarray
    y: np.ndarray | None = None
    index: np.ndarray | None = None
    #: the feature columns' names, in ``X``'s order (tables only; None for arrays)
    columns: list[str] | None = None
    #: rows holding NaN or infinite values, kept in ``X`` as they are (``load_features(...,
    #: invalid="keep")`` only; empty otherwise)
    invalid: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Which rows are not ``invalid`` (a boolean mask)."""
        keep = np.ones(self.n_samples, dtype=bool)
        keep[self.invalid] = False
        return keep

    def valid_rows(self) -> tuple[LabelledData, np.ndarray]:
        """These rows without the ``invalid`` ones, and which rows they are (:attr:`valid`)."""
        keep = self.valid
        return LabelledData(X=self.X[keep], y=None if self.y is None else self.y[keep],
                            index=None if self.index is None else self.index[keep], columns=self.columns), keep


def check_path(path: str | Path, formats: tuple[str, ...] = FORMATS, *, wrong_format: str | None = None,
               parquet_folder: bool = False) -> Path:
    """``path`` once it is a file of one of ``formats`` (or, with ``parquet_folder``, a folder of
    ``.parquet`` parts, as Spark writes a table); else a one-line DataError saying what to give:
    the file is missing (:class:`~kfree.exceptions.DataFileNotFoundError`), a folder, or of
    another format (``wrong_format`` is then the message, by default the formats that are read).
    Every reader of users' files starts here, so they fail alike."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"file not found: {p} (check the path)")
    if p.is_dir():
        if parquet_folder and any(p.glob("*.parquet")):
            return p
        import itertools

        photos = ".npz" in formats and any(_is_image(f) for f in itertools.islice(p.rglob("*"), 2000))
        raise DataError(f"{p} is a directory; give a data file ({', '.join(formats)})"
                        + ("" if not parquet_folder else " or a folder of .parquet parts") + _ENCODE_FIRST * photos)
    if p.suffix.lower() not in formats:
        raise DataError(wrong_format or f"cannot read {p.name}: unsupported format {p.suffix or '(none)'}; "
                                        f"use one of {', '.join(formats)}" + _ENCODE_FIRST * _is_image(p))
    return p


#: what a photo given for features needs first (found by a photo-library trial)
_ENCODE_FIRST = "; photos are encoded first: kfree encode faces PHOTOS --out faces.npz, then use faces.npz"


def _is_image(p: Path) -> bool:
    from .images import IMAGE_SUFFIXES

    return p.suffix.lower() in IMAGE_SUFFIXES


def _pick(keys: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, p: Path) -> str | None:
    if wanted is not None:
        if wanted not in keys:
            raise DataError(f"{p.name} has no {what} {wanted!r}; it has {sorted(keys)}")
        return wanted
    for k in candidates:
        if k in keys:
            return k
    return None


def table_column(df, names: tuple[str, ...], p: Path, option: str | None = None) -> str:
    """The first of ``names`` that is a column of ``df`` (the table read from ``p``); none is a
    one-line DataError listing the columns it has, and the ``option`` that names another, so the
    user can name the right one."""
    col = next((c for c in names if c in df.columns), None)
    if col is None:
        raise DataError(f"{p.name} has no {' or '.join(repr(c) for c in names)} column; columns are "
                        f"{list(df.columns)[:12]}" + (f"; name the one to use with {option}" if option else ""))
    return col


#: column names that look like row ids (``ticket_id``, ``ID``, ``message-id``)
ID_LIKE = re.compile(r"(?i)(^|[_\-\s])id$")


def read_table(p: Path, columns: list[str] | None = None, *, ids: str = "index"):
    """A .csv or .parquet file as a DataFrame (only ``columns``, when given: Parquet then reads
    nothing else, and a CSV converts nothing else); unreadable files raise a one-line DataError.

    A CSV is read as written, where pandas' defaults would change it:

    - a one-column file keeps an empty line as a row without a value (pandas drops it, and every
      later row then takes the next row's label, image or text); blank lines at the end are no
      rows, and in a file of several columns a blank line is none either, as pandas reads it;
    - only an empty cell is missing in a column of text: "None", "NA" or "null" are text (an
      intent label, say). In a column of numbers the usual spellings of a missing number ("NA",
      "NaN", …) are missing values, as pandas reads them, so the features' own checks see them;
    - the ``index`` column (or the column ``ids`` names) keeps ids as written ("007" stays text;
      ids written as plain numbers become numbers), so a clusters file written by kfree joins
      back to its table;
    - a spreadsheet's own dialect is read (:func:`csv_dialect`): a CSV that Excel saved in a
      locale whose decimal mark is a comma is separated by semicolons, a ``.tsv`` by tabs, and a
      "Unicode text" export is UTF-16. Read with pandas' defaults such a file is one column of
      text, and the features would be refused with advice that does not fit.
    """
    import pandas as pd

    if p.is_dir():  # a table written in parts (Spark): its parts in name order, as the Dask backend reads them
        parts = []
        for f, _ in parquet_files(p):
            parts.append(read_table(f, columns, ids=ids))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    try:
        if p.suffix.lower() in (".csv", ".tsv", ".txt"):  # (a .txt here: a tab_table)
            try:
                return _read_csv(p, columns, ids)
            except UnicodeDecodeError:  # bytes beyond the sample that are not UTF-8: the whole file says
                if text_encoding(p.read_bytes(), whole=True) != "cp1252":
                    raise
                return _read_csv(p, columns, ids, encoding="cp1252")
        if columns is not None:
            import pyarrow.parquet as pq

            names = pq.read_schema(p).names
            if absent := [c for c in columns if c not in names]:
                raise DataError(f"{p.name} has no column {absent[0]!r}; columns are {names[:12]}"
                                f"{'…' if len(names) > 12 else ''}")
        df = pd.read_parquet(p, columns=columns)
    except DataError:
        raise
    except UnicodeDecodeError as e:  # (Excel's plain "CSV" is in the computer's own code page)
        raise DataError(f"{p.name} is not UTF-8 text (it holds the byte {e.object[e.start:e.start + 1].hex(' ')}, "
                        f"{e.reason}); save it as UTF-8 (in Excel: CSV UTF-8)") from None
    except Exception as e:
        raise DataError(f"cannot read {p.name} as {p.suffix[1:]}: {first_line(e)}") from None
    # a DataFrame saved with a named index (df.set_index("track")) keeps it in the file: a column
    # again, which a label or link option may name; it was no feature, and stays none
    # (``attrs["index_columns"]``); 'index' names the rows, as in a CSV
    named = [n for n in df.index.names if n is not None and n not in df.columns]
    if named:
        df = df.reset_index()
        df.attrs["index_columns"] = [n for n in named if n != "index"]
    return df


@contextlib.contextmanager
def parquet_errors(f: Path):
    """An error in the block is a one-line DataError saying ``f`` cannot be read as Parquet."""
    try:
        yield
    except Exception as e:
        raise DataError(f"cannot read {f.name} as Parquet: {first_line(e)}") from None


def parquet_files(path: Path):
    """``(file, pyarrow ParquetFile)`` for ``path``, or for each ``*.parquet`` of a folder in name
    order, opened one at a time; a folder without any is a DataError."""
    import pyarrow.parquet as pq

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no .parquet files")
    for f in files:
        with parquet_errors(f):
            pf = pq.ParquetFile(f)
        yield f, pf


#: how a missing number is written by R, Excel, pandas and numpy (pandas' own default list)
MISSING_NUMBER = ("NA", "N/A", "n/a", "NaN", "nan", "-nan", "-NaN", "NULL", "null", "None", "#N/A", "<NA>")


#: the separators :func:`csv_dialect` tells apart, in order of preference when a header has as
#: many of two
SEPARATORS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
_DECIMAL_DOT = re.compile(r"[+-]?\d*\.\d+(?:[eE][+-]?\d+)?")


def text_encoding(raw: bytes, *, whole: bool) -> str:
    """The encoding of text that begins with the bytes ``raw`` (all of it when ``whole``): UTF-16
    after its byte-order mark (Excel's and Notepad's "Unicode text"), UTF-8 when the bytes are
    UTF-8, else Windows-1252 (the code page of Excel's plain "CSV" in Western Europe and the
    Americas, a superset of Latin-1: a ticket trial's exports were refused) — but not for bytes
    with a NUL, which no such text holds (a spreadsheet or an archive given as text): those stay
    UTF-8, and reading them says they are not UTF-8 text."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if not whole and e.start >= len(raw) - 3 and e.reason == "unexpected end of data":
            return "utf-8"  # (a character cut by the end of the sample)
        return "utf-8" if b"\x00" in raw else "cp1252"
    return "utf-8"


def _warn_cp1252(p: Path) -> None:
    warnings.warn(DataWarning(f"{p.name} is not UTF-8 text: read as Windows-1252 (what Excel's plain 'CSV' is on "
                              "Windows in Western Europe); if its accented letters look wrong, save it as UTF-8 "
                              "(in Excel: CSV UTF-8)"), stacklevel=user_stacklevel())


def csv_dialect(p: Path, encoding: str | None = None) -> dict[str, str]:
    """How the text table ``p`` is written, as pandas' ``read_csv`` arguments: ``sep``,
    ``decimal`` and ``encoding``.

    The separator is the one of :data:`SEPARATORS` that the header (the first non-blank line)
    holds most often outside quotes, a comma when it holds none (a one-column file); a ``.tsv``
    is separated by tabs. Where the separator is not a comma, the decimal mark is a comma when
    more cells of the first 200 rows are written so (``1,25``) than with a point: a comma cannot
    be both. Excel's first line ``sep=;`` names the separator and is skipped (``skiprows``). A byte-order
    mark says UTF-16 (Excel's "Unicode text"); bytes that are not UTF-8 are Windows-1252
    (:func:`text_encoding`, on the first 64 KiB; ``encoding`` when given)."""
    with open(p, "rb") as f:
        raw = f.read(1 << 16)
    encoding = encoding or text_encoding(raw, whole=len(raw) < 1 << 16)
    text = raw.decode(encoding, errors="replace").removeprefix("\ufeff")
    lines = [line for line in text.splitlines() if line.strip()]
    said = re.fullmatch(r'"?sep=(.)"?[,;\t|]*', lines[0].strip()) if lines else None
    if said:  # Excel's own first line, "sep=;": the separator, and no row (a ticket trial read it as the header)
        sep, lines = said.group(1), lines[1:]
    elif p.suffix.lower() in (".tsv", ".txt"):  # (a .txt read as a table: a tab_table)
        sep = "\t"
    else:
        unquoted = re.sub(r'"[^"]*"', "", lines[0]) if lines else ""
        sep = max(SEPARATORS, key=lambda c: (unquoted.count(c), -SEPARATORS.index(c)))
        sep = sep if unquoted.count(sep) else ","
    decimal = "."
    if sep != ",":  # the mark most cells of the first rows are written with (whole numbers say neither)
        cells = [c.strip() for line in lines[1:200] for c in re.sub(r'"[^"]*"', "", line).split(sep)]
        commas = sum(1 for c in cells if _DECIMAL_COMMA.fullmatch(c))
        if commas > sum(1 for c in cells if _DECIMAL_DOT.fullmatch(c)):
            decimal = ","
    return {"sep": sep, "decimal": decimal, "encoding": encoding, **({"skiprows": 1} if said else {}),
            **({"encoding_errors": "replace"} if encoding == "cp1252" else {})}  # (5 bytes it leaves undefined)


def tab_table(p: Path) -> tuple[list[str] | None, str]:
    """``(header, "")`` for a ``.txt`` that is a tab-separated table (Excel's "Unicode text" and
    "Text (Tab delimited)" exports); ``(None, why)`` for one whose first line holds tabs but that
    is no such table (``why`` says what is missing), ``(None, "")`` for one without tabs there.

    Why: read as one text per line, such a file makes its header a text, splits every quoted cell
    that holds line breaks into several texts and encodes ids, dates and names with the words (a
    ticket trial: 278 texts for 226 tickets, without a word). A table it is when its first line
    is a header (2 or more cells, each a name: not empty, not a number, at most 64 characters)
    and at least 9 in 10 of its next 50 records (quotes read as a CSV reader reads them) have as
    many cells; a header alone is a table without rows (a quiet day's export)."""
    import csv
    import io as _io

    with open(p, "rb") as f:
        raw = f.read(1 << 16)
    text = raw.decode(text_encoding(raw, whole=len(raw) < 1 << 16), errors="replace").removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "\t" not in first:
        return None, ""
    records = []
    try:
        for row in csv.reader(_io.StringIO(text), delimiter="\t"):
            if row and any(c.strip() for c in row):
                records.append(row)
    except csv.Error as e:
        return None, f"its tab-separated lines cannot be read as a table ({e})"
    if len(raw) == 1 << 16 and len(records) > 2:  # the sample's last record may be cut short
        records.pop()
    header, rows = [c.strip() for c in records[0]], records[1:51]
    shown = " | ".join(c[:30] for c in header[:4]) + (" | …" if len(header) > 4 else "")
    if len(header) < 2 or not all(c and len(c) <= 64 and not is_number(c) for c in header):
        return None, f"its first line ({shown}) is no header naming columns"
    same = sum(1 for r in rows if len(r) == len(header))
    if same < 0.9 * len(rows):
        return None, (f"only {same} of its first {len(rows)} rows have the {len(header)} cells of its header "
                      f"({shown})")
    return header, ""


def table_header(p: Path) -> list[str]:
    """The column names of the .csv/.tsv/.parquet table ``p``, without reading its rows (none for
    a file that cannot be read as one: reading it says why)."""
    try:
        if p.suffix.lower() in (".csv", ".tsv"):
            import pandas as pd

            return [str(c) for c in pd.read_csv(p, nrows=0, **csv_dialect(p)).columns]
        import pyarrow.parquet as pq

        return list(pq.read_schema(p).names)
    except Exception:
        return []


def _read_csv(p: Path, columns: list[str] | None = None, ids: str = "index", encoding: str | None = None):
    import pandas as pd

    dialect = csv_dialect(p, encoding)
    if dialect["encoding"] == "cp1252":
        _warn_cp1252(p)
    skip = dialect.pop("skiprows", 0)  # (Excel's "sep=;" line)
    head = pd.read_csv(p, nrows=0, skiprows=skip or None, **dialect)  # the header, as pandas finds it
    if columns is not None and (absent := [c for c in columns if c not in head.columns]):
        names = [str(c) for c in head.columns]
        raise DataError(f"{p.name} has no column {absent[0]!r}; columns are {names[:12]}"
                        f"{'…' if len(names) > 12 else ''}")
    one_column = head.shape[1] == 1
    leading = 0
    if one_column:  # blank lines before the header are no rows either
        with open(p, encoding=dialect["encoding"], errors="replace") as f:
            for k, line in enumerate(f):
                if k < skip:
                    continue
                if line.strip():
                    break
                leading += 1
    df = pd.read_csv(p, skip_blank_lines=not one_column, skiprows=(skip + leading) or None, keep_default_na=False,
                     na_values=[""], dtype={ids: str}, usecols=columns, **dialect)
    if one_column:
        filled = np.flatnonzero(df.notna().any(axis=1).to_numpy())
        df = df.iloc[: filled[-1] + 1 if filled.size else 0]  # blank lines at the end: none
    for c in df.columns:
        if c != ids and df[c].dtype.kind not in "biufc":
            df[c] = _numbers_if_numbers(df[c])
    if ids in df.columns:
        df[ids] = _ids_as_written(df[ids])
    return df


def _numbers_if_numbers(col):
    """A text column whose cells are numbers or a spelling of a missing number ("NA", "NaN", …)
    as numbers with NaN, as pandas' defaults read it; any other text keeps the column as text."""
    import pandas as pd

    spelled = col.isin(MISSING_NUMBER)  # (an empty cell is NaN already)
    if not spelled.any() or spelled.sum() == col.notna().sum():  # nothing to convert
        return col
    if pd.to_numeric(col[col.notna() & ~spelled].iloc[:1000], errors="coerce").isna().any():
        return col  # text, seen in a sample: "None", "NA" are labels here
    num = pd.to_numeric(col.mask(spelled), errors="coerce")
    # numbers only if every cell that is neither empty nor a missing-number spelling is one
    return col if (num.isna() & col.notna() & ~spelled).any() else num


def _ids_as_written(ids):
    """A CSV's ``index`` column read as text, as numbers when each value is exactly how that number
    is written (``"12"``, ``"-3"``, ``"1.5"``), else as the text itself (``"007"``, ``"a1"``)."""
    if ids.isna().any():
        return ids  # missing ids: refused by the readers that join on them
    for kind in ("int64", "float64"):
        try:
            num = ids.astype(kind)
        except (ValueError, TypeError, OverflowError):
            continue
        if (num.astype(str) == ids).all():
            return num
    return ids


def read_lines(p: Path) -> list[str]:
    """The lines of a UTF-8 text file, one entry per row: split at line ends (``\\n``, ``\\r\\n``)
    only — ``str.splitlines`` also splits inside a line at Unicode separators (U+2028, form feed),
    which would shift every later row — and without the empty entry after a final line end. A
    file that starts with a UTF-16 byte-order mark (Notepad's "Unicode") is read as UTF-16, one
    that is not UTF-8 as Windows-1252, with a warning (:func:`text_encoding`)."""
    raw = p.read_bytes()
    encoding = text_encoding(raw, whole=True)  # UTF-16 (Notepad's "Unicode"), UTF-8 or Windows-1252
    if encoding == "cp1252":
        _warn_cp1252(p)
    try:
        text = raw.decode(encoding, errors="replace" if encoding == "cp1252" else "strict")
    except UnicodeDecodeError as e:
        raise DataError(f"{p.name} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    text = text.removeprefix("\ufeff")  # the byte-order mark Notepad and Excel write: no part of a first line
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_labels(path: str | Path, *, key: str | None = None, column: str | None = None,
                option: str = "--y-key") -> np.ndarray:
    """Labels from a file: ``.npy`` (1-d), ``.npz`` (key), ``.csv``/``.parquet`` (column,
    defaulting to ``label``, ``cluster``, ``y`` or a single column), or ``.txt`` (one per line)."""
    p = Path(path)
    if p.suffix.lower() == ".txt" and p.exists():
        # one label per line, as written: a label may hold spaces ("Alice Smith"); trailing blank
        # lines are ignored, a blank line inside is a row without a label
        lines = read_lines(p)
        while lines and not lines[-1].strip():
            lines.pop()
        empty = [i + 1 for i, line in enumerate(lines) if not line.strip()]
        if empty:
            raise DataError(f"{p.name}: line {empty[0]} is empty ({len(empty)} empty lines); give one label "
                            "per line, for every row")
        # objects, not a fixed-width text array: that holds every row at the longest label's width (a
        # security review: a 0.1 MB file of 50,000 labels, one of 2,500 characters, took 1.6 GB)
        return np.array([line.strip() for line in lines], dtype=object)
    p = check_path(p)
    suf = p.suffix.lower()
    if suf == ".npy":
        y = _np_load(p, labels=True)
    elif suf == ".npz":
        with _np_load(p) as z:
            k = _pick(list(z.keys()), key, Y_KEYS + ("cluster",), "array", p)
            if k is None:
                raise DataError(f"{p.name} has no labels array; name it with {option} (arrays: {sorted(z.keys())})")
            y = _npz_array(z, k, p, labels=True)
    else:
        df = read_table(p)
        cols = [str(c) for c in df.columns]
        c = _pick(cols, column, LABEL_COLUMNS, "column", p)
        if c is None:
            if len(cols) != 1:
                raise DataError(f"{p.name}: say which column holds the labels (columns: {cols})")
            c = cols[0]
        y = df[c].to_numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"labels in {p.name} must be 1-d, got shape {y.shape}")
    return y


_OBJECT_HINT = ("it holds Python objects (dtype=object), which kfree does not unpickle; "
                "save a numeric array instead, e.g. np.asarray(X, dtype=np.float32)")
_OBJECT_LABELS_HINT = ("it holds Python objects (dtype=object), which kfree does not unpickle; "
                       "save the labels as text or numbers instead, e.g. np.save(path, labels.astype(str))")


def _read_error(what: str, e: Exception, *, labels: bool = False) -> DataError:
    """One line for any failure of numpy's readers: an object array gets the pickle hint (for
    labels: save them as text), anything else the first line of its message (or its type)."""
    if isinstance(e, ValueError) and "allow_pickle" in str(e):
        return DataTypeError(f"cannot read {what}: {_OBJECT_LABELS_HINT if labels else _OBJECT_HINT}")
    return DataError(f"cannot read {what}: {first_line(e)}")


def _np_load(p: Path, *, labels: bool = False):
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise _read_error(p.name, e, labels=labels) from None


def _npz_array(z, key: str, p: Path, *, labels: bool = False) -> np.ndarray:
    """One array of an open .npz; an object array or a damaged member is a one-line DataError."""
    try:
        return np.asarray(z[key])
    except Exception as e:
        raise _read_error(f"array {key!r} of {p.name}", e, labels=labels) from None


def read_npz(p: Path, keys: tuple[str, ...]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The array names of the .npz ``p`` and those of ``keys`` it holds, read (the others are not:
    a file of a million embeddings is opened for its paths); a damaged file or an array of Python
    objects is a one-line DataError."""
    with _np_load(p) as z:
        names = list(z.files)
        return names, {k: _npz_array(z, k, p) for k in keys if k in names}


def _check_labels(y: np.ndarray, n_rows: int, p: Path, *, partial: bool = False) -> np.ndarray:
    """Labels as a 1-d array of one row each, none missing (``partial``: missing ones kept as
    None, for labels that are only carried along); mixed-type objects become text. An empty or
    blank text label is missing, as an empty cell is: it is how labelling tools and exports often
    write "no label", and as a label it made every unlabelled row one identity."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise DataError(f"{p.name}: {n_rows} feature rows but labels have shape {y.shape}")
    if y.dtype.kind in "OU":
        blank = np.array([isinstance(v, str) and not v.strip() for v in y.tolist()], dtype=bool)
        if blank.any():
            y = y.astype(object)
            y[blank] = None
        y = strip_labels(y, p)
    if partial:
        import pandas as pd

        missing = pd.isna(y)
        if missing.any():
            kept = _check_labels(y[~missing], int((~missing).sum()), p)
            if kept.dtype.kind == "f" and (kept == np.round(kept)).all():
                kept = kept.astype(np.int64)  # (a column of whole numbers with blanks is read as floats)
            out = np.empty(n_rows, dtype=object)
            out[~missing] = kept
            return out  # (the missing ones: None)
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise DataError(f"{p.name}: labels contain NaN or infinite values; every row needs a label")
    if y.dtype.kind == "O":
        import pandas as pd

        if pd.isna(y).any():
            raise DataError(f"{p.name}: {int(pd.isna(y).sum()):,} of its {y.size:,} labels are missing (empty or "
                            "blank); every row needs a label" + ("; train on the labelled rows with --labelled-only"
                                                                 if (~pd.isna(y)).sum() >= 2 else ""))
        y = y.astype(str)  # e.g. numbers and strings mixed in one column: compare them as text
    if y.dtype.kind not in "biufUSO":
        raise DataTypeError(f"{p.name}: labels of dtype {y.dtype} cannot be identities; use integers or text")
    return y


def strip_labels(y: np.ndarray, p: Path) -> np.ndarray:
    """Text labels without spaces around them, with a warning when any had some: 'card_arrival '
    and 'card_arrival' are one intent, and as two they split it into two identities to train on
    and to score by (found by a ticket trial: 54 identities for 50 intents, without a word)."""
    values = y.tolist()
    padded = [i for i, v in enumerate(values) if isinstance(v, str) and v != v.strip()]
    if not padded:
        return y
    out = np.array([v.strip() if isinstance(v, str) else v for v in values], dtype=object)
    warnings.warn(DataWarning(f"{p.name}: {len(padded):,} labels have spaces around them (first: row {padded[0]}, "
                              f"{values[padded[0]]!r}); they are read without them"), stacklevel=user_stacklevel())
    return out if y.dtype.kind == "O" else out.astype(str)


def check_index(col, p: Path, name: str = "index") -> np.ndarray:
    """A table's ``index`` column (or the column ``name`` that names its rows) as an array of
    unique values, none missing: clusters files carry these values, and ``kfree evaluate`` joins
    them to true labels by them, so a repeated or missing one would join rows wrongly. Mixed-type
    objects become text, as labels do."""
    import pandas as pd

    why = (f"{name!r} names each row (clusters are joined to true labels by it): give every row its own "
           "value" + (", or rename the column" if name == "index" else ""))
    missing = pd.isna(col.to_numpy())
    if missing.any():
        raise DataError(f"{p.name}: column {name!r} is empty in {int(missing.sum())} rows (first: row "
                        f"{int(np.argmax(missing))}); {why}")
    values = col.to_numpy()
    if values.dtype.kind == "O":
        values = values.astype(str)
    if values.dtype.kind not in "biuUS" and not (values.dtype.kind == "f" and np.isfinite(values).all()):
        raise DataTypeError(f"{p.name}: column {name!r} of dtype {values.dtype} cannot name rows; use integers "
                            "or text")
    refuse_repeats(pd.Series(values), p.name, name, why)
    return values


def refuse_repeats(col, name: str, column: str, why: str) -> None:
    """A one-line DataError when the column ``column`` (a pandas Series) of the file ``name``
    repeats a value, naming how many values repeat and the first one met in the file; ``why``
    says why each value must be unique there. Every column that names rows is checked by it."""
    repeated = col.duplicated(keep=False)
    if repeated.any():
        first = col[repeated].tolist()[0]
        raise DataError(f"{name}: column {column!r} repeats {int(col[repeated].nunique())} value(s) (first: "
                        f"{first!r}, {int((col == first).sum())} times); {why}")


def _check_X(X: np.ndarray, p: Path, min_samples: int, *, index: np.ndarray | None = None,
             keep_invalid: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 (n, d) with n >= min_samples, all finite (also after the float32 cast),
    and the rows that are not (refused, naming the first by row and id, unless ``keep_invalid``:
    those rows are then left as they are and the others checked)."""
    name = f"features in {p.name}"
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2:
        hint = (" (one row of features? X.reshape(1, -1); one feature per row? X.reshape(-1, 1); then save "
                "again)" if X.ndim == 1 else "")
        raise DataError(f"{name} must be a 2-d array of shape (rows, features), got shape {X.shape}{hint}")
    if X.dtype.kind in "OUSVMmc":
        what = {"O": "Python objects", "U": "text", "S": "bytes", "V": "records", "M": "dates",
                "m": "time spans", "c": "complex numbers"}[X.dtype.kind]
        raise DataTypeError(f"{name} hold {what} (dtype {X.dtype}); features must be real numbers")
    if X.shape[0] < min_samples:
        rows = f"{X.shape[0]} row" + ("" if X.shape[0] == 1 else "s")
        raise DataError(f"{p.name} has {rows} of features; at least {min_samples} are needed")
    with np.errstate(over="ignore", invalid="ignore"):  # (beyond float32: inf, an invalid row)
        X32 = X.astype(np.float32, copy=False) if X.dtype.kind == "f" else X
    invalid = np.flatnonzero(~np.isfinite(X32).all(axis=1)) if X.dtype.kind == "f" and X.size else np.empty(0, int)
    if invalid.size and not keep_invalid:
        raise DataError(invalid_rows_message(p, X, invalid, index) + "; drop, impute or rescale them first")
    good = np.ones(X.shape[0], dtype=bool)
    good[invalid] = False
    check_features(X32[good] if invalid.size else X32, name=name, min_samples=0 if invalid.size else min_samples)
    # C order whatever the file: a table's columns came F-ordered, and the same data read from an .npz
    # trained a model that differed in the 7th digit (found by a research trial)
    return np.ascontiguousarray(X32, dtype=np.float32), invalid


def row_name(r: int, index: np.ndarray | None) -> str:
    """'row r, from 0' and, when the rows have ids, ', id …': how messages name one row."""
    return f"row {r}, from 0" + (f", id {np.asarray(index)[r].item()!r}" if index is not None else "")


def invalid_rows_message(p: Path, X: np.ndarray, invalid: np.ndarray, index: np.ndarray | None) -> str:
    """'features in F hold NaN or infinite values in N rows (first: row r, from 0, id …)': a
    failed embedding in a large batch is named by the id a user can look up, not only its row."""
    with np.errstate(over="ignore", invalid="ignore"):
        beyond = bool(np.isfinite(np.asarray(X[invalid], dtype=np.float64)).all())
    rows = f"{invalid.size:,} row{'' if invalid.size == 1 else 's'}"
    where = "first: " + row_name(int(invalid[0]), index)
    if beyond:  # finite, but not as float32, which kfree computes in
        return f"features in {p.name} hold values beyond float32's range (|x| > 3.4e38) in {rows} ({where})"
    return f"features in {p.name} hold NaN or infinite values in {rows} ({where})"


def load_features(
    path: str | Path,
    *,
    x_key: str | None = None,
    y_key: str | None = None,
    label_column: str | None = None,
    labels_path: str | Path | None = None,
    require_labels: bool = False,
    min_samples: int = 1,
    ignore_columns: tuple[str, ...] | list[str] = (),
    ignore_missing: bool = False,
    partial_labels: bool = False,
    id_column: str | None = None,
    invalid: str = "error",
) -> LabelledData:
    """Load features and (optionally) labels from ``path``.

    Parameters
    ----------
    path : .npz, .npy, .csv or .parquet file, or a folder of .parquet parts (read in name order).
    x_key, y_key : array names inside an ``.npz`` (default: ``X``/``embeddings`` and ``y``/``labels``).
    label_column : label column of a table (default ``label``); all other numeric columns are
        features. An ``index`` column, if present, is not a feature: it names the rows
        (``LabelledData.index``), so its values must be unique and none missing.
    labels_path : a separate labels file (needed for ``.npy`` features).
    require_labels : raise if no labels are found.
    min_samples : fewest rows accepted (the message names the file).
    ignore_columns : columns of a table that are not features (ids, tracks, timestamps, text);
        each must exist. A numeric column that looks like an id or a count among non-integer
        features (whole numbers only, and all distinct or 10× larger than every other feature)
        is kept as a feature but warned about (:class:`~kfree.exceptions.DataWarning`).
    ignore_missing : ``ignore_columns`` may name columns the file does not have (and arrays have
        none), e.g. a validation file of features and labels beside a training table with ids.
    partial_labels : labels only carried along (``kfree cluster`` writes them beside the
        clusters) may be missing for some rows: those are None, not an error.
    id_column : the table column (or .npz array) of row ids (``LabelledData.index``) when it is
        not named ``index`` (a ``sku_id``, a ``ticket_id``); it is not a feature.
    invalid : ``"error"`` refuses rows with NaN or infinite features (or beyond float32), naming
        the first by row and id; ``"keep"`` keeps them as they are (a missing vector of a vector
        column as NaN) and lists them in ``LabelledData.invalid``, for a caller that leaves them
        out (``kfree assign --skip-invalid``: one failed embedding need not stop a nightly batch).
    """
    if invalid not in ("error", "keep"):
        raise ValueError(f"invalid={invalid!r} must be 'error' or 'keep'")
    p = check_path(path, parquet_folder=True)
    suf = ".parquet" if p.is_dir() else p.suffix.lower()  # (a folder of Parquet parts is one table)
    for key, option in ((x_key, "--x-key"), (y_key, "--y-key")):
        if key is not None and suf != ".npz":
            raise DataError(f"{p.name}: {option} {key!r} names an array inside an .npz, and a {suf} file has "
                            "none (a table's features are its numeric columns, its labels --label-column)")
    if ignore_missing and suf not in TABLES:
        ignore_columns = ()
    if id_column is not None and suf not in (*TABLES, ".npz"):
        raise DataError(f"{p.name}: --id-column names a column of a .csv/.parquet table (or an array of an .npz), "
                        f"and a {suf} file has none")
    if ignore_columns and suf not in TABLES:
        raise DataError(f"{p.name}: --ignore-columns names columns of a .csv/.parquet table, and a {suf} file "
                        "has none")
    labels_table = labels_path is not None and Path(labels_path).suffix.lower() in TABLES
    if label_column is not None and suf not in TABLES and not labels_table:
        raise DataError(f"{p.name}: --label-column {label_column!r} names a column of a .csv/.parquet table, and "
                        f"no table is read here (an .npz's labels: --y-key; a .npy's: --labels FILE)")
    y = index = columns = None
    if suf == ".npy":
        X = _np_load(p)
    elif suf == ".npz":
        X, y, index, keys = _npz_features(p, x_key, y_key, id_column)
    else:
        X, y, index, columns = _table_features(p, label_column, id_column, ignore_columns, ignore_missing,
                                               min_samples, invalid)
    if labels_path is not None:
        y = load_labels(labels_path, key=y_key, column=label_column)
    X, bad = _check_X(X, p, min_samples, index=index, keep_invalid=invalid == "keep")
    if columns is not None:  # (after the checks: a file refused is not also warned about)
        warn_id_like(X, columns, p.name, "leave them out with --ignore-columns {shown} (ignore_columns=...), or name a "
                     "row id column 'index'")
    if y is not None:
        y = _check_labels(y, X.shape[0], p, partial=partial_labels and not require_labels)
    elif require_labels:
        arrays = f" (its arrays: {sorted(keys)[:8]}: name the labels' with --y-key)" if suf == ".npz" else ""
        raise DataError(
            f"{p.name} has no labels{arrays}: use an .npz with a 'y'/'labels' array, a table with a "
            f"'label' column (--label-column), or --labels FILE"
        )
    return LabelledData(X=X, y=y, index=index, columns=columns, invalid=bad)


def _npz_features(p: Path, x_key: str | None, y_key: str | None, id_column: str | None):
    """:func:`load_features` of an .npz: ``(X, y, index, keys)``, its features, labels (or None),
    row ids (or None) and the names of its arrays."""
    y = index = None
    with _np_load(p) as z:
        keys = list(z.keys())
        if {"data", "indices", "indptr", "shape", "format"} <= set(keys):  # scipy.sparse.save_npz
            raise DataError(f"{p.name} is a sparse matrix (scipy.sparse.save_npz); kfree clusters dense rows: "
                            "save X.toarray() with numpy.save, or reduce it first (TruncatedSVD)")
        kx = _pick(keys, x_key, X_KEYS, "array", p)
        if kx is None:
            if len(keys) == 1:
                kx = keys[0]
            else:
                raise DataError(f"{p.name}: say which array holds the features with --x-key (arrays: {sorted(keys)})")
        X = _npz_array(z, kx, p)
        ky = _pick(keys, y_key, Y_KEYS, "array", p)
        if ky is not None and ky != kx:
            y = _npz_array(z, ky, p, labels=True)
        if id_column is not None and id_column not in keys:
            raise DataError(f"{p.name} has no array {id_column!r} (--id-column); arrays: {sorted(keys)}")
        idk = id_column or "index"
        if idk in keys and kx != idk:  # row ids (a ticket's, say), as a table's 'index' column
            import pandas as pd

            ids = _npz_array(z, idk, p, labels=True)
            if ids.ndim != 1 or ids.shape[0] != X.shape[0]:
                raise DataError(f"{p.name}: array {idk!r} (row ids) has shape {ids.shape} for {X.shape[0]} rows; "
                                "give one id per row, or rename the array")
            index = check_index(pd.Series(ids), p, idk)
    return X, y, index, keys


def _table_features(p: Path, label_column: str | None, id_column: str | None, ignore_columns, ignore_missing: bool,
                    min_samples: int, invalid: str):
    """:func:`load_features` of a .csv/.tsv/.txt/.parquet table: ``(X, y, index, columns)``, its
    numeric feature columns (a column of vectors expanded), labels (or None), row ids (or None)
    and the feature columns' names. Text, other non-numeric and unnamed columns are refused."""
    y = index = None
    df = read_table(p)
    cols = [str(c) for c in df.columns]
    if len(set(cols)) != len(cols):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        raise DataError(f"{p.name}: column names {dup[:5]} appear more than once; give every column its own name")
    df.columns = cols
    if len(df) == 0 and min_samples > 0:
        raise DataError(f"{p.name} has a header but no rows; it needs at least {min_samples} row(s) of features")
    lc = label_column if label_column is not None else "label"
    if label_column is not None and lc not in cols:
        raise DataError(f"{p.name} has no label column {lc!r}; columns are {cols[:12]}{'…' if len(cols) > 12 else ''}")
    if lc in cols:
        y = df[lc].to_numpy()
    if id_column is not None and id_column not in cols:
        raise DataError(f"{p.name} has no id column {id_column!r} (--id-column); columns are "
                        f"{cols[:12]}{'…' if len(cols) > 12 else ''}")
    idc = id_column or "index"
    if idc in cols and lc != idc:
        index = check_index(df[idc], p, idc)
    absent = [c for c in ignore_columns if c not in cols]
    if absent and not ignore_missing:
        raise DataError(f"{p.name} has no column {absent[0]!r} to ignore; columns are "
                        f"{cols[:12]}{'…' if len(cols) > 12 else ''}"
                        + ("; separate the names with commas (--ignore-columns a,b)"
                           if any(s in absent[0] for s in ";|") else ""))
    feat = [c for c in cols if c not in (lc, idc, *ignore_columns, *df.attrs.get("index_columns", ()))]
    if len(df) == 0:  # a header alone (a quiet day's batch) has no values to type its columns by
        df = df.astype({c: "float64" for c in feat if df[c].dtype == object})
    unnamed = [c for c in feat if str(c).startswith("Unnamed: ")]
    if unnamed:  # pandas' name for a header-less column: df.to_csv() writes the index so
        raise DataError(
            f"{p.name}: column {unnamed[0]!r} has no name in the header (a DataFrame index written by "
            "df.to_csv()?) and would be clustered as a feature; write the file with index=False, or "
            "name the column 'index' if it names the rows")
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    vector_columns = [c for c in feat if df[c].dtype == object
                      and _vectors(df[c], p, index, missing_ok=invalid == "keep")]
    for c in vector_columns:  # one vector per cell (a missing one: NaN, with invalid="keep")
        import pandas as pd

        cells = df[c].to_numpy()
        k = next(len(v) for v in cells if isinstance(v, (list, tuple, np.ndarray)))
        wide = np.stack([np.asarray(v, dtype=float) if isinstance(v, (list, tuple, np.ndarray))
                         else np.full(k, np.nan) for v in cells])
        names = [f"{c}[{j}]" for j in range(wide.shape[1])]
        if clash := [n for n in names if n in df.columns]:
            raise DataError(f"{p.name}: column {c!r} holds vectors, whose entries are named {c}[0]…, and "
                            f"column {clash[0]!r} has one of those names; rename it")
        at = feat.index(c)
        df = df.drop(columns=c).join(pd.DataFrame(wide, columns=names, index=df.index))
        feat[at:at + 1] = names
    if vector_columns and (others := [c for c in feat if not any(c.startswith(f"{v}[") for v in vector_columns)]):
        # an embedding's features are its vectors: a price or a timestamp beside them would be
        # one more dimension at its own scale, and decide every distance (found by a user trial:
        # a price column beside 512-d photo embeddings made 29,471 photos one cluster)
        ids = [c for c in others if ID_LIKE.search(c)] if idc not in cols else []
        warnings.warn(f"{p.name}: the features are the vectors of {', '.join(map(repr, vector_columns))}; its "
                      f"other columns {others[:6]}{'…' if len(others) > 6 else ''} are left out (--ignore-columns "
                      f"{','.join(others[:6])} says so and silences this)"
                      + (f"; --id-column {ids[0]} names the rows by {ids[0]!r} in the outputs" if ids else ""),
                      DataWarning, stacklevel=user_stacklevel())
        feat = [c for c in feat if c not in others]
    non_num = [c for c in feat if not is_numeric_dtype(df[c]) or is_bool_dtype(df[c])]
    if texts := [c for c in non_num if _holds_text(df[c])]:
        # leaving it out (the advice below) would cluster whatever numbers are left (a priority,
        # a score): found by a user trial, a model trained on two incidental columns
        raise DataError(f"{p.name}: column {texts[0]!r} holds text, which kfree clusters by its embedding: "
                        f"kfree encode texts {p.name} --column {texts[0]} --out texts.npz, then use texts.npz "
                        f"(or leave the column out with --ignore-columns {','.join(non_num[:5])})")
    if non_num:
        raise DataError(
            f"{p.name}: non-numeric columns {non_num[:5]} cannot be features; "
            f"name the label column with --label-column, or leave them out with --ignore-columns "
            f"{','.join(non_num[:5])}"
        )
    if not feat:
        raise DataError(f"{p.name} has no feature columns (columns: {cols[:12]}); "
                        f"features are every numeric column but the label, 'index' and --ignore-columns")
    X = df[feat].to_numpy()
    columns = feat
    return X, y, index, columns


def _vectors(col, p: Path, index: np.ndarray | None = None, *, missing_ok: bool = False) -> bool:
    """Whether a column holds one vector of numbers per cell, all of one length: the layout
    Parquet files of embeddings often have (one ``embedding`` column); its entries are features.
    A column whose first filled cell is a vector but another cell is missing, of another length
    or not numbers is a DataError naming that row: a failed embedding in a large batch is common,
    and calling the whole column non-numeric sent users to leave their embeddings out. With
    ``missing_ok`` a missing cell (None, NaN) is accepted: its row becomes an invalid row."""
    cells = col.to_numpy()
    filled = [v for v in cells[:100] if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not filled or not isinstance(filled[0], (list, tuple, np.ndarray)) or len(filled[0]) == 0:
        return False
    lengths = [len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1 for v in cells]
    vectors = [k for k in lengths if k >= 0]
    n = max(set(vectors), key=vectors.count)  # the length most vectors have

    missing = [v is None or (isinstance(v, float) and np.isnan(v)) for v in cells] if missing_ok else None
    if (bad := [r for r, k in enumerate(lengths) if k != n and not (missing and missing[r])]):
        r = bad[0]
        what = "no vector" if lengths[r] == -1 else f"{lengths[r]} values"
        raise DataError(f"{p.name}: column {col.name!r} holds vectors of {n} values, but {len(bad):,} of its rows "
                        f"{'does' if len(bad) == 1 else 'do'} not (first: {row_name(r, index)}, {what}); drop those rows or "
                        "give them their vectors")
    for r, v in enumerate(cells):
        if missing and missing[r]:
            continue
        if np.asarray(v).dtype.kind not in "biuf":
            raise DataError(f"{p.name}: column {col.name!r} holds vectors, but the one of {row_name(r, index)} is not numbers; "
                            "give every row a vector of numbers")
    return True


def _holds_text(col) -> bool:
    """Whether a column of strings is prose (tickets, messages) rather than ids, categories
    ("Customer Service North") or file paths: mostly distinct cells of three words or more."""
    cells = col.dropna().iloc[:1000]
    if cells.empty or not all(isinstance(c, str) for c in cells):  # (lists of numbers: vectors)
        return False
    words = cells.str.split().str.len()
    return bool(cells.nunique() >= 0.5 * cells.size and (words >= 3).mean() >= 0.5)


def warn_id_like(X: np.ndarray, names: list[str], source: str, advice: str) -> None:
    """Warn about feature columns that look like ids, counts or measurements beside embeddings.

    Two kinds are named, all of them in one warning:

    - whole numbers among non-integer features, all distinct (an id, in 20 rows or more) or over
      10× larger than every non-integer feature (a track number, a frame, a priority next to
      embedding dimensions);
    - columns on another scale: with 8 columns or more, a minority of columns whose largest value
      is over 100× the median column's (a time in seconds, a box's x, y, w, h beside a face
      descriptor). A TV-episode trial's frames table (time up to 1,300 s, boxes in pixels beside
      128 descriptor dimensions) had only its frame number named: the time column, itself not
      whole, hid the boxes from the first test, and every track became a cluster of its own.

    Such a column is clustered as a feature and can decide every distance (a ticket id put
    tickets of 15 intents in 5 clusters by id); a table of embeddings has none. ``advice`` says
    how to leave them out (``{shown}``: their names, comma-separated; ``{names}``: as a list)."""
    if X.shape[1] < 2 or X.dtype.kind not in "fc" or X.shape[0] < 2:
        return
    with np.errstate(invalid="ignore"):
        whole = np.all(np.isfinite(X) & (X == np.round(X)), axis=0)
    suspects = set()
    if whole.any() and not whole.all():
        top = float(np.nanmax(np.abs(X[:, ~whole]))) if np.isfinite(X[:, ~whole]).any() else np.inf
        suspects.update(j for j in np.flatnonzero(whole)
                        if (X.shape[0] >= 20 and np.unique(X[:, j]).size == X.shape[0]) or np.abs(X[:, j]).max() > 10 * top)
    if X.shape[1] >= 8:
        rows = X if X.shape[0] <= 20_000 else X[np.random.default_rng(0).choice(X.shape[0], 20_000, replace=False)]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (an all-NaN column: no size)
            size = np.nanmax(np.where(np.isfinite(rows), np.abs(rows), np.nan), axis=0).astype(np.float64)
        median = float(np.nanmedian(size)) if np.isfinite(size).any() else 0.0
        if median > 0:
            far = np.flatnonzero(np.nan_to_num(size, nan=0.0) > 100 * median)
            if 0 < far.size < X.shape[1] / 2:
                suspects.update(far.tolist())
    if suspects:
        shown = [names[j] for j in sorted(suspects)]
        how = advice.format(shown=",".join(shown[:8]), names=shown[:8])
        warnings.warn(f"{source}: column(s) {shown[:8]}{' …' if len(shown) > 8 else ''} look like ids, tracks, counts, "
                      "times or positions beside the other features (whole numbers among non-integer features, or "
                      "values over 100× those of the median column) and are clustered as features; if they are not, "
                      f"{how}",
                      DataWarning, stacklevel=user_stacklevel())
