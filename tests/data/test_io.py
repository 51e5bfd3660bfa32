"""Reading users' files: every supported format, and a clear error for each bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

from kfree.data.io import load_features, load_labels, parquet_files, read_table
from kfree.exceptions import DataError, DataFileNotFoundError, DataWarning


@pytest.fixture
def xy(rng):
    return rng.standard_normal((12, 5)).astype(np.float32), np.repeat(np.arange(4), 3)


def test_npz_with_X_y_and_embeddings_labels(tmp_path, xy):
    X, y = xy
    np.savez(tmp_path / "a.npz", X=X, y=y)
    np.savez(tmp_path / "b.npz", embeddings=X, labels=y)
    np.savez(tmp_path / "c.npz", feats=X, ids=y)
    for name, kw in [("a.npz", {}), ("b.npz", {}), ("c.npz", {"x_key": "feats", "y_key": "ids"})]:
        d = load_features(tmp_path / name, **kw)
        np.testing.assert_array_equal(d.X, X)
        np.testing.assert_array_equal(d.y, y)


def test_npy_with_separate_labels(tmp_path, xy):
    X, y = xy
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    d = load_features(tmp_path / "x.npy", labels_path=tmp_path / "y.npy")
    np.testing.assert_array_equal(d.y, y)
    assert load_features(tmp_path / "x.npy").y is None


def test_csv_and_parquet_with_label_column(tmp_path, xy):
    X, y = xy
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    df["person"] = [f"p{v}" for v in y]
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        d = load_features(tmp_path / name, label_column="person")
        np.testing.assert_allclose(d.X, X, rtol=1e-6)
        assert list(d.y[:3]) == ["p0", "p0", "p0"]
    df.rename(columns={"person": "label"}).to_csv(tmp_path / "d.csv", index=False)
    assert load_features(tmp_path / "d.csv").y is not None
    # array names belong to .npz files: elsewhere they would be ignored without a word
    with pytest.raises(DataError, match=r"t.csv: --x-key 'feats' names an array inside an .npz"):
        load_features(tmp_path / "t.csv", x_key="feats", label_column="person")
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=r"x.npy: --y-key 'y' names an array inside an .npz, and a .npy"):
        load_features(tmp_path / "x.npy", y_key="y")


def test_errors_say_what_is_wrong(tmp_path, xy):
    X, y = xy
    with pytest.raises(DataFileNotFoundError, match="file not found"):
        load_features(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported format"):
        load_features(tmp_path / "x.txt")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read bad.npz"):
        load_features(tmp_path / "bad.npz")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", Xn)
    with pytest.raises(DataError, match="NaN or infinite values in 1 row \\(first: row 3, from 0\\)"):
        load_features(tmp_path / "nan.npy")
    pd.DataFrame(X).assign(label=y).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="no label column 'who'"):
        load_features(tmp_path / "t.csv", label_column="who")
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match="no labels"):
        load_features(tmp_path / "x.npy", require_labels=True)
    np.save(tmp_path / "y_short.npy", y[:5])
    with pytest.raises(DataError, match="12 feature rows but labels have shape"):
        load_features(tmp_path / "x.npy", labels_path=tmp_path / "y_short.npy")
    pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="non-numeric columns"):
        load_features(tmp_path / "s.csv")
    # --label-column names a table's column: on an .npz or a .npy with .npy labels it was ignored
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    np.save(tmp_path / "y.npy", y)
    for kw in (dict(path=tmp_path / "xy.npz"), dict(path=tmp_path / "x.npy", labels_path=tmp_path / "y.npy")):
        with pytest.raises(DataError, match="--label-column 'who' names a column of a .csv/.parquet table"):
            load_features(**kw, label_column="who")
    pd.DataFrame({"who": y}).to_csv(tmp_path / "who.csv", index=False)
    assert (load_features(tmp_path / "x.npy", labels_path=tmp_path / "who.csv", label_column="who").y == y).all()


def test_a_header_less_column_is_not_taken_as_a_feature(tmp_path):
    df = pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0], "label": [0, 1, 1]})
    df.to_csv(tmp_path / "with_index.csv")  # pandas writes its index as a column without a name
    with pytest.raises(DataError, match="'Unnamed: 0' has no name in the header.*index=False"):
        load_features(tmp_path / "with_index.csv")
    df.to_csv(tmp_path / "ok.csv", index=False)
    assert load_features(tmp_path / "ok.csv").X.shape == (3, 2)


def test_load_labels_from_tables_and_text(tmp_path):
    pd.DataFrame({"index": [0, 1], "cluster": [3, 4]}).to_csv(tmp_path / "c.csv", index=False)
    assert list(load_labels(tmp_path / "c.csv")) == [3, 4]
    (tmp_path / "l.txt").write_text("a\nb\nb\n")
    assert list(load_labels(tmp_path / "l.txt")) == ["a", "b", "b"]
    # one label per line, spaces included (they were split into two labels)
    (tmp_path / "names.txt").write_text("Alice Smith\nBob\nAlice Smith\n\n")
    assert list(load_labels(tmp_path / "names.txt")) == ["Alice Smith", "Bob", "Alice Smith"]
    (tmp_path / "gap.txt").write_text("a\n\nb\n")
    with pytest.raises(DataError, match="line 2 is empty"):
        load_labels(tmp_path / "gap.txt")


def test_a_tables_index_column_names_its_rows(tmp_path, xy):
    X, y = xy
    ids = np.array([7, 3, 11, 0, 5, 9, 1, 2, 4, 6, 8, 10]) + 100
    df = pd.DataFrame(X, columns=list("abcde")).assign(label=y)
    df.insert(0, "index", ids)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.set_index("index").to_parquet(tmp_path / "t.parquet")  # the index saved as pandas' own
    for name in ("t.csv", "t.parquet"):
        data = load_features(tmp_path / name)
        np.testing.assert_array_equal(data.index, ids)  # kept, and still not a feature
        np.testing.assert_allclose(data.X, X, rtol=1e-6)
        np.testing.assert_array_equal(data.y, y)
    assert load_features(tmp_path / "t.csv", label_column="index").index is None  # it is the label there
    pd.DataFrame(X).to_csv(tmp_path / "plain.csv", index=False)
    np.save(tmp_path / "x.npy", X)
    assert load_features(tmp_path / "plain.csv").index is None and load_features(tmp_path / "x.npy").index is None
    df.assign(index=["r1", "r2", "r1", *[f"s{i}" for i in range(9)]]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match=r"dup.csv: column 'index' repeats 1 value\(s\) \(first: 'r1', 2 times\)"):
        load_features(tmp_path / "dup.csv")
    df.assign(index=[1.0, None, *range(2, 12)]).to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(DataError, match=r"column 'index' is empty in 1 rows \(first: row 1\)"):
        load_features(tmp_path / "gap.csv")


def test_a_split_asking_for_more_identities_than_there_are_is_refused():
    from kfree.data.splits import split_identities
    from kfree.exceptions import DataError

    y = np.repeat(np.arange(10), 3)
    with pytest.raises(DataError, match="asked for 11\\+0\\+0 identities but the data has only 10"):
        split_identities(y, 11, 0)  # gave 10 train, silently
    with pytest.raises(DataError, match="only 3"):
        split_identities(np.arange(3), 0.5, 0.5)  # 2 + 2 of 3
    sp = split_identities(y, 6, 2)
    assert (len(sp.train_ids), len(sp.val_ids), len(sp.test_ids)) == (6, 2, 2)


def test_csv_cells_are_read_as_written(tmp_path):
    """Found by review: pandas dropped an empty line of a one-column CSV (every later row took the
    next row's label: NMI 0.906 for a perfect clustering), read labels such as "None" or "NA" as
    missing, and read ids "000".."029" back as numbers, so a clusters file did not join its table."""
    from kfree.evaluate.compare import evaluate_files, read_predictions, truth_for

    (tmp_path / "truth.csv").write_text("label\na\nb\n\nNone\nNA\n\n")  # a blank row, then blank lines at the end
    pd.DataFrame({"index": [0, 1, 3, 4], "cluster": [0, 1, 2, 3]}).to_csv(tmp_path / "p.csv", index=False)
    y = truth_for(read_predictions(tmp_path / "p.csv"), tmp_path / "truth.csv")
    assert y.tolist() == ["a", "b", "None", "NA"]
    assert evaluate_files(tmp_path / "p.csv", tmp_path / "truth.csv")["nmi"] == 1.0
    pd.DataFrame({"index": [0, 1, 2, 3, 4], "cluster": [0, 1, 2, 3, 4]}).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(DataError, match="1 of the 5 clustered rows have no true label .*first: row 2"):
        evaluate_files(tmp_path / "q.csv", tmp_path / "truth.csv")  # the row without a label is not skipped
    m = evaluate_files(tmp_path / "q.csv", tmp_path / "truth.csv", labelled_only=True)  # unless asked, in place
    assert m["unlabelled_rows"] == 1 and m["n_samples"] == 4 and m["nmi"] == 1.0
    pd.DataFrame({"index": [0, 1, 2, 3], "cluster": [0, 1, 2, 3]}).to_csv(tmp_path / "q4.csv", index=False)
    with pytest.raises(DataError, match="q4.csv clusters 4 rows .* but truth.csv has 5"):  # nor are rows shifted
        evaluate_files(tmp_path / "q4.csv", tmp_path / "truth.csv")
    ids = [f"{i:03d}" for i in range(6)]
    table = pd.DataFrame({"index": ids, "a": np.arange(6.0), "label": list("xxyyzz")})
    table.to_parquet(tmp_path / "t.parquet")
    data = load_features(tmp_path / "t.parquet")
    from kfree.evaluate.compare import index_columns, write_predictions

    write_predictions(tmp_path / "c.csv", np.arange(6) // 2, **index_columns(data.index, 6))
    back = read_predictions(tmp_path / "c.csv")
    assert back["index"].tolist() == ids
    assert truth_for(back, tmp_path / "t.parquet").tolist() == list("xxyyzz")
    pd.DataFrame({"index": [5, -3, 12], "cluster": [0, 1, 1]}).to_csv(tmp_path / "n.csv", index=False)
    assert read_predictions(tmp_path / "n.csv")["index"].dtype.kind == "i"  # plain numbers stay numbers
    # files of several columns read as pandas reads them (found by review of the change above):
    # blank or blank-looking lines are no rows, and "NA" in a column of numbers is a missing number
    for name, text in (("mid.csv", "a,b,label\n1,2,x\n\n3,4,y\n"), ("lead.csv", "\na,b,label\n1,2,x\n3,4,y\n"),
                       ("ws.csv", "a,b,label\n1,2,x\n   \n3,4,y\n  \n")):
        (tmp_path / name).write_text(text)
        data = load_features(tmp_path / name)
        assert data.X.tolist() == [[1, 2], [3, 4]] and data.y.tolist() == ["x", "y"], name
    (tmp_path / "na.csv").write_text("a,b,label\n1,NA,None\n3,4,NA\n")
    assert read_table(tmp_path / "na.csv")["label"].tolist() == ["None", "NA"]
    with pytest.raises(DataError, match="NaN or infinite values in 1 row \\(first: row 0, from 0\\)"):
        load_features(tmp_path / "na.csv")


def test_times_and_boxes_beside_descriptors_are_named_with_the_frame_number(tmp_path):
    """Found by a TV-episode trial: a frames table (frame, time in seconds, a box in pixels, 128
    descriptor dimensions) named only 'frame'; the non-integer time hid the boxes, and every
    track became a cluster of its own."""
    from kfree.exceptions import DataWarning

    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame(rng.normal(0, 0.09, (n, 128)), columns=[f"d{i}" for i in range(128)])
    df.insert(0, "frame", np.arange(n) * 500)  # (frames of a 20-minute episode at 25 per second)
    df.insert(1, "time", np.arange(n) * 20.0 + 3.1)
    for i, c in enumerate("xywh"):
        df.insert(2 + i, c, rng.integers(40, 700, n))
    df.to_csv(tmp_path / "frames.csv", index=False)
    with pytest.warns(DataWarning, match=r"\['frame', 'time', 'x', 'y', 'w', 'h'\] look like ids.*--ignore-columns "
                                         r"frame,time,x,y,w,h"):
        load_features(tmp_path / "frames.csv")
    with warnings.catch_warnings():  # left out: no word; descriptors of other scales per dimension: none either
        warnings.simplefilter("error", DataWarning)
        load_features(tmp_path / "frames.csv", ignore_columns=("frame", "time", "x", "y", "w", "h"))
        wide = pd.DataFrame(rng.normal(0, 1, (n, 16)) * np.geomspace(0.1, 5, 16), columns=[f"e{i}" for i in range(16)])
        wide.to_csv(tmp_path / "wide.csv", index=False)
        load_features(tmp_path / "wide.csv")


def test_columns_that_are_not_features_are_ignored_or_warned_about(tmp_path):
    """Found by review: a ticket id or a track number in a table was clustered as a feature
    without a word (tickets grouped by id; one cluster per track)."""
    from kfree.exceptions import DataWarning

    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.1, (30, 4))
    df = pd.DataFrame(emb, columns=[f"e{i}" for i in range(4)])
    df.insert(0, "ticket_id", np.arange(1000, 1030))
    df["track"] = np.repeat(np.arange(10), 3)
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(DataWarning, match=r"\['ticket_id', 'track'\] look like ids.* --ignore-columns ticket_id,track"):
        assert load_features(tmp_path / "t.csv").X.shape == (30, 6)
    data = load_features(tmp_path / "t.csv", ignore_columns=("ticket_id", "track"))
    assert data.columns == ["e0", "e1", "e2", "e3"]
    np.testing.assert_allclose(data.X, emb, rtol=1e-6)
    with pytest.raises(DataError, match="t.csv has no column 'trak' to ignore"):
        load_features(tmp_path / "t.csv", ignore_columns=("trak",))
    np.save(tmp_path / "x.npy", emb)
    with pytest.raises(DataError, match="--ignore-columns names columns of a .csv/.parquet table"):
        load_features(tmp_path / "x.npy", ignore_columns=("e0",))
    with warnings.catch_warnings():  # embeddings alone, or whole numbers alone (pixels): no word
        warnings.simplefilter("error", DataWarning)
        load_features(tmp_path / "t.csv", ignore_columns=("ticket_id", "track"))
        pd.DataFrame(rng.integers(0, 255, (30, 4))).to_csv(tmp_path / "pixels.csv", index=False)
        load_features(tmp_path / "pixels.csv")


def test_labels_saved_as_python_objects_get_a_hint_for_labels(tmp_path):
    """Found by review: text labels pickled in an .npy were told to save np.asarray(X, dtype=np.float32)."""
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    np.save(tmp_path / "labels.npy", np.array(["a", "b", 3], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"save the labels as text or numbers instead, e.g. .*labels.astype\(str\)"):
        load_features(tmp_path / "x.npy", labels_path=tmp_path / "labels.npy")
    np.savez(tmp_path / "xy.npz", X=np.zeros((3, 2)), y=np.array(["a", None, "c"], dtype=object))
    with pytest.raises(DataError, match=r"labels.astype\(str\)"):
        load_features(tmp_path / "xy.npz")
    np.save(tmp_path / "feats.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"np.asarray\(X, dtype=np.float32\)"):  # features keep theirs
        load_features(tmp_path / "feats.npy")


def test_a_column_of_vectors_is_its_features(tmp_path):
    """Found by review: a Parquet file with one list-valued 'embedding' column (the usual layout of
    sentence embeddings) was refused as a non-numeric column."""
    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    df = pd.DataFrame({"index": [f"t{i}" for i in range(6)], "text": ["a ticket"] * 6, "embedding": list(emb),
                       "label": [0, 0, 1, 1, 2, 2]})
    df.to_parquet(tmp_path / "e.parquet")
    data = load_features(tmp_path / "e.parquet", ignore_columns=("text",))
    np.testing.assert_allclose(data.X, emb)
    assert data.columns == [f"embedding[{j}]" for j in range(4)] and data.y.tolist() == [0, 0, 1, 1, 2, 2]
    # found by a user trial: one failed embedding (none, or of another length) in a batch was
    # called a non-numeric column, and leaving it out as advised clustered the price column alone
    ragged = df.assign(embedding=[emb[i, : 4 - (i == 3)] for i in range(6)])
    ragged.to_parquet(tmp_path / "ragged.parquet")
    with pytest.raises(DataError, match=r"column 'embedding' holds vectors of 4 values, but 1 of its rows does not "
                                        r"\(first: row 3, from 0, id 't3', 3 values\); drop those rows"):
        load_features(tmp_path / "ragged.parquet", ignore_columns=("text",))
    holes = df.astype({"embedding": object})
    holes.at[2, "embedding"], holes.at[4, "embedding"] = None, None
    holes.to_parquet(tmp_path / "holes.parquet")
    with pytest.raises(DataError, match=r"but 2 of its rows do not \(first: row 2, from 0, id 't2', no vector\)"):
        load_features(tmp_path / "holes.parquet", ignore_columns=("text",))
    words = df.assign(embedding=[["a", "b", "c", "d"]] * 6)
    words.to_parquet(tmp_path / "words.parquet")
    with pytest.raises(DataError, match=r"holds vectors, but the one of row 0, from 0, id 't0' is not numbers"):
        load_features(tmp_path / "words.parquet", ignore_columns=("text",))


def test_the_columns_beside_a_vector_column_are_left_out_and_said(tmp_path):
    """Found by a user trial: a price column beside 512-d photo embeddings was clustered as a
    513th feature at its own scale (29,471 photos in one cluster), and the error about the id and
    text columns advised an --ignore-columns list that kept the price in."""
    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    df = pd.DataFrame({"sku_id": [f"S{i}" for i in range(6)], "embedding": list(emb), "price": [9.5, 300.0] * 3,
                       "uploaded_at": pd.date_range("2026-01-01", periods=6), "product": ["a", "a", "b", "b", "", ""]})
    df.to_parquet(tmp_path / "photos.parquet")
    with pytest.warns(DataWarning, match=r"the features are the vectors of 'embedding'; its other columns \['sku_id', "
                                         r"'price', 'uploaded_at'\] are left out \(--ignore-columns "
                                         r"sku_id,price,uploaded_at says so"):
        data = load_features(tmp_path / "photos.parquet", label_column="product", partial_labels=True)
    np.testing.assert_allclose(data.X, emb)
    assert data.columns == [f"embedding[{j}]" for j in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named: nothing to say
        load_features(tmp_path / "photos.parquet", label_column="product", partial_labels=True,
                      ignore_columns=("sku_id", "price", "uploaded_at"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_reads_the_columns_asked_for(tmp_path, suffix):
    """``kfree cluster --link-column`` reads its column alone (the features are read next): the
    same values as a whole read, and a column that is not there is named with those that are."""
    df = pd.DataFrame({"index": ["007", "8", "9"], "track": [3, 3, 5], "f0": [0.1, 0.2, 0.3], "who": ["a", "NA", "c"]})
    p = tmp_path / f"t{suffix}"
    df.to_csv(p, index=False) if suffix == ".csv" else df.to_parquet(p, index=False)
    got = read_table(p, ["track", "who"])
    assert got.columns.tolist() == ["track", "who"]
    pd.testing.assert_frame_equal(got, read_table(p)[["track", "who"]])
    with pytest.raises(DataError, match=r"t\.\w+ has no column 'trak'; columns are \['index', 'track', 'f0', 'who'\]"):
        read_table(p, ["trak"])


def test_a_parquet_saved_with_a_named_index_keeps_it_as_a_column_that_is_no_feature(tmp_path):
    """Found by review: ``df.set_index("track").to_parquet(...)`` keeps 'track' as the stored
    index; ``kfree cluster --link-column track`` then failed with a KeyError traceback. It is a
    column again (a label or link option may name it), and no feature, as before."""
    df = pd.DataFrame({"f0": [0.1, 0.2, 0.3, 0.4], "f1": [1.0, 0.5, 0.2, 0.1], "track": [7, 7, 9, 9]})
    df.set_index("track").to_parquet(tmp_path / "ti.parquet")
    assert read_table(tmp_path / "ti.parquet").columns.tolist() == ["track", "f0", "f1"]
    assert read_table(tmp_path / "ti.parquet", ["track"])["track"].tolist() == [7, 7, 9, 9]
    d = load_features(tmp_path / "ti.parquet")
    assert d.columns == ["f0", "f1"] and d.index is None
    assert load_features(tmp_path / "ti.parquet", label_column="track").y.tolist() == [7, 7, 9, 9]


def test_a_spreadsheet_s_own_csv_dialect_is_read(tmp_path):
    """Excel in a locale whose decimal mark is a comma saves "CSV" with semicolons and decimal
    commas; a .tsv and Excel's "Unicode text" (UTF-16) are separated by tabs. Read with pandas'
    defaults each was one text column, refused with advice to ignore a column named 'f1;f2;label'."""
    X = np.array([[1.5, -2.0], [3.25, 1e-3], [-0.5, 4.0]])
    y = ["a", "b", "a b"]
    rows = [[f"{v:g}" for v in x] + [lab] for x, lab in zip(X, y, strict=True)]
    files = {
        "excel_de.csv": ("f1;f2;label", ";", True, "utf-8-sig"),
        "dots.csv": ("f1;f2;label", ";", False, "utf-8"),
        "tabs.tsv": ("f1\tf2\tlabel", "\t", False, "utf-8"),
        "unicode_text.csv": ("f1\tf2\tlabel", "\t", True, "utf-16"),
        "pipes.csv": ("f1|f2|label", "|", True, "utf-8"),
    }
    for name, (header, sep, comma, encoding) in files.items():
        body = [sep.join([c.replace(".", ",") if comma else c for c in r[:2]] + [r[2]]) for r in rows]
        (tmp_path / name).write_text("\n".join([header, *body]) + "\n", encoding=encoding)
        data = load_features(tmp_path / name)
        np.testing.assert_allclose(data.X, X, err_msg=name)
        assert data.y.tolist() == y, name
    # a comma in a header cell or a quoted text does not make the comma file something else
    (tmp_path / "quoted.csv").write_text('f1,f2,label\n1.5,2,"x; y; z"\n3,4,"b;c"\n')
    assert read_table(tmp_path / "quoted.csv")["label"].tolist() == ["x; y; z", "b;c"]
    (tmp_path / "one.csv").write_text("text\nhello; world\nsemi;colons;here\n")
    assert read_table(tmp_path / "one.csv")["text"].tolist() == ["hello; world", "semi;colons;here"]
    # Excel's plain "CSV" is in the computer's code page (Windows-1252): read as such, and said (a ticket
    # trial's exports were refused); the non-UTF-8 bytes may come after the first 64 KiB; a file with
    # NUL bytes is no text in any code page (an .xlsx renamed .csv): refused, saying what to save instead
    import warnings

    from kfree.exceptions import DataWarning

    (tmp_path / "latin1.csv").write_bytes("text;label\nGebühr zurück “bitte”;fees\n".encode("cp1252"))
    (tmp_path / "late.csv").write_bytes(("text,label\n" + "plain words,a\n" * 8000 + "café,b\n").encode("cp1252"))
    for name, last in (("latin1.csv", "Gebühr zurück “bitte”"), ("late.csv", "café")):
        with pytest.warns(DataWarning, match=f"{name} is not UTF-8 text: read as Windows-1252"):
            assert read_table(tmp_path / name)["text"].tolist()[-1] == last
    (tmp_path / "utf8.csv").write_text("text,label\ncafé,b\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_table(tmp_path / "utf8.csv")["text"].tolist() == ["café"]
    (tmp_path / "zip.csv").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\xe9\xfc binary")
    with pytest.raises(DataError, match=r"zip.csv is not UTF-8 text .*save it as UTF-8"):
        read_table(tmp_path / "zip.csv")
    # Excel's first line "sep=;" names the separator and is no row
    (tmp_path / "sep.csv").write_text("sep=;\ntext;label\nhello, world;a\nbye;b\n")
    got = read_table(tmp_path / "sep.csv")
    assert list(got.columns) == ["text", "label"] and got["text"].tolist() == ["hello, world", "bye"]
    # the decimal mark is that of most cells, not of the first row (found by review: whole numbers
    # first, or a label written "1,5" in a file of decimal points)
    (tmp_path / "whole_first.csv").write_text("a;b;c\n1;2;3\n1,5;2,25;3,75\n")
    assert read_table(tmp_path / "whole_first.csv")["b"].tolist() == [2.0, 2.25]
    (tmp_path / "dot_label.csv").write_text("x;y;label\n0.5;1.25;1,5\n0.75;2.5;1,10\n")
    got = read_table(tmp_path / "dot_label.csv")
    assert got["y"].tolist() == [1.25, 2.5] and got["label"].tolist() == ["1,5", "1,10"]
    # a semicolon file whose texts hold decimal-looking commas keeps them as text
    (tmp_path / "texts.csv").write_text("index;text\n7;costs 3,50 EUR\n8;two,three\n")
    assert read_table(tmp_path / "texts.csv")["text"].tolist() == ["costs 3,50 EUR", "two,three"]


def test_a_column_of_text_is_sent_to_the_text_encoder(tmp_path):
    """Found by a user trial: a ticket table's error advised --ignore-columns ticket_id,body, and
    following it trained a model on the two incidental numeric columns left (a priority, a score)."""
    rng = np.random.default_rng(0)
    pd.DataFrame({"ticket_id": [f"T{i}" for i in range(30)],
                  "body": [f"my card number {i} has still not arrived, what can I do?" for i in range(30)],
                  "intent": ["card"] * 15 + ["refund"] * 15, "priority": rng.integers(1, 4, 30),
                  "score": rng.random(30)}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t.csv: column 'body' holds text, which kfree clusters by its embedding: "
                                        r"kfree encode texts t.csv --column body --out texts.npz"):
        load_features(tmp_path / "t.csv", label_column="intent")
    # ids and categories are no prose: the advice to leave them out stands
    pd.DataFrame({"ticket_id": [f"T{i}" for i in range(30)], "country": ["United Kingdom", "France"] * 15,
                  "f": rng.random(30)}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match=r"non-numeric columns \['ticket_id', 'country'\].*--ignore-columns"):
        load_features(tmp_path / "c.csv")
    # nor a few department names, or file paths (found by review)
    pd.DataFrame({"department": ["Customer Service North", "Customer Service South", "Billing and Accounts"] * 10,
                  "file": [f"/home/user/photos/2024/holiday/IMG_{i:05d}.jpg" for i in range(30)],
                  "f": rng.random(30)}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"non-numeric columns \['department', 'file'\]"):
        load_features(tmp_path / "d.csv")


def test_a_read_error_without_a_message_is_named_by_its_type(tmp_path, monkeypatch):
    # (the first line of an empty message used to be an IndexError instead of this DataError)
    p = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(p)

    def fail(*args, **kwargs):
        raise OSError()

    monkeypatch.setattr(pd, "read_parquet", fail)
    with pytest.raises(DataError, match=r"^cannot read t\.parquet as parquet: OSError$"):
        read_table(p)


def test_parquet_files_opens_a_file_or_a_folders_files_and_names_the_one_it_cannot(tmp_path):
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"a": [2.0]}).to_parquet(tmp_path / "a.parquet")
    assert [(f.name, pf.metadata.num_rows) for f, pf in parquet_files(tmp_path)] == [("a.parquet", 1), ("b.parquet", 1)]
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"^cannot read c\.parquet as Parquet: "):
        list(parquet_files(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no \.parquet files$"):
        list(parquet_files(tmp_path / "empty"))


def test_a_folder_of_parquet_parts_is_one_table(tmp_path):
    """Found by a user trial: a table written by Spark (a folder of part files) was refused as "a
    directory" by every command but `kfree cluster --backend dask`, which reads such folders."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(25, 3)).astype(np.float32)
    ids = rng.permutation(10_000)[:25].astype(np.int64) + 7
    folder = tmp_path / "table"
    folder.mkdir()
    for k, (a, b) in enumerate([(0, 10), (10, 11), (11, 25)]):  # parts in name order: part-00000, -00001, …
        pd.DataFrame({"index": ids[a:b], "f0": X[a:b, 0], "f1": X[a:b, 1], "f2": X[a:b, 2]}).to_parquet(
            folder / f"part-{k:05d}-x.parquet")
    (folder / "_SUCCESS").write_text("")  # Spark's marker, no part
    data = load_features(folder)
    np.testing.assert_array_equal(data.X, X)
    assert data.index.tolist() == ids.tolist() and data.columns == ["f0", "f1", "f2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty is a directory; give a data file .* or a folder of .parquet parts"):
        load_features(empty)


def test_rows_with_nan_or_out_of_range_values_are_named_or_kept_when_asked(tmp_path):
    X = np.arange(24, dtype=np.float64).reshape(8, 3)
    X[2, 1] = 1e39  # finite, but not as float32
    np.save(tmp_path / "big.npy", X)
    with pytest.raises(DataError, match=r"big.npy hold values beyond float32's range \(\|x\| > 3.4e38\) in 1 row "
                                         r"\(first: row 2, from 0\); drop, impute or rescale"):
        load_features(tmp_path / "big.npy")
    X[5, 0] = np.nan
    pd.DataFrame(X, columns=list("abc")).assign(index=[f"r{i}" for i in range(8)]).to_csv(tmp_path / "t.csv",
                                                                                          index=False)
    with pytest.raises(DataError, match=r"in 2 rows \(first: row 2, from 0, id 'r2'\)"):
        load_features(tmp_path / "t.csv")
    data = load_features(tmp_path / "t.csv", invalid="keep")
    assert data.invalid.tolist() == [2, 5] and data.X.shape == (8, 3) and data.X.dtype == np.float32
    assert np.isfinite(np.delete(data.X, [2, 5], axis=0)).all()
    assert load_features(tmp_path / "t.csv", ignore_columns=("a", "b"), invalid="keep").invalid.size == 0
    # a missing vector in a vector column: an invalid row of NaN, not a refusal of the column
    vecs = [np.ones(4), None, np.zeros(4), [np.nan] * 4]
    pd.DataFrame({"embedding": vecs, "index": ["a", "b", "c", "d"]}).to_parquet(tmp_path / "v.parquet")
    with pytest.raises(DataError, match=r"holds vectors of 4 values, but 1 of its rows does not \(first: row 1, "
                                         r"from 0, id 'b', no vector\)"):
        load_features(tmp_path / "v.parquet")
    data = load_features(tmp_path / "v.parquet", invalid="keep")
    assert data.invalid.tolist() == [1, 3] and np.isnan(data.X[[1, 3]]).all() and data.X[0].tolist() == [1] * 4
    pd.DataFrame({"embedding": [np.ones(4), np.ones(3)]}).to_parquet(tmp_path / "ragged.parquet")
    with pytest.raises(DataError, match="holds vectors of"):  # another length is no missing vector
        load_features(tmp_path / "ragged.parquet", invalid="keep")
    with pytest.raises(ValueError, match="invalid='skip' must be"):
        load_features(tmp_path / "t.csv", invalid="skip")


def test_an_npz_without_labels_names_its_arrays_and_y_key(tmp_path):
    np.savez(tmp_path / "t.npz", feats=np.ones((4, 2)), person=np.arange(4))
    with pytest.raises(DataError, match=r"t.npz has no labels \(its arrays: \['feats', 'person'\]: name the labels' "
                                        r"with --y-key\)"):
        load_features(tmp_path / "t.npz", x_key="feats", require_labels=True)
    assert load_features(tmp_path / "t.npz", x_key="feats", y_key="person", require_labels=True).y.tolist() == [0, 1, 2, 3]


def test_features_are_c_ordered_whatever_the_file(tmp_path):
    """Found by a research trial: the same rows read from a table came F-ordered, from an .npz
    C-ordered, and the two trained models differed in the 7th digit; a seeded run must not
    depend on the file format."""
    X = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", X=X, y=y)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)]).assign(label=y)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    for name in ("d.npz", "d.csv", "d.parquet"):
        d = load_features(tmp_path / name)
        assert d.X.flags["C_CONTIGUOUS"] and d.X.dtype == np.float32, name
        np.testing.assert_array_equal(d.X, X)


def test_text_labels_are_read_without_spaces_around_them(tmp_path):
    """Found by a ticket trial: 'card_arrival ' and 'card_arrival' trained as two identities (54
    identities for 50 intents, without a word); `kfree evaluate` scored them as two classes."""
    X = np.random.default_rng(0).normal(size=(8, 3))
    labels = ["card_arrival", "card_arrival ", " card_swallowed", "card_swallowed", "a b", "a b", "x", "x"]
    pd.DataFrame(X, columns=["f0", "f1", "f2"]).assign(label=labels).to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(DataWarning, match=r"t.csv: 2 labels have spaces around them \(first: row 1, 'card_arrival '\)"):
        d = load_features(tmp_path / "t.csv")
    assert sorted(set(d.y.tolist())) == ["a b", "card_arrival", "card_swallowed", "x"]  # inner spaces stay
    from kfree.evaluate.compare import evaluate_files

    pd.DataFrame({"index": range(8), "cluster": [0, 0, 1, 1, 2, 2, 3, 3]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"index": range(8), "label": labels}).to_csv(tmp_path / "truth.csv", index=False)
    with pytest.warns(DataWarning, match="spaces around them"):
        assert evaluate_files(tmp_path / "c.csv", tmp_path / "truth.csv")["nmi"] == pytest.approx(1.0)


def test_text_labels_from_a_txt_are_held_as_objects(tmp_path):
    """A security review: labels of a .txt were a fixed-width text array, every row as wide as the
    longest line (a 0.1 MB file of 50,000 labels, one of 2,500 characters: 1.6 GB)."""
    from kfree.data.io import load_labels

    (tmp_path / "y.txt").write_text("a\nb\n" + "z" * 2500 + "\n")
    y = load_labels(tmp_path / "y.txt")
    assert y.dtype == object and y.tolist() == ["a", "b", "z" * 2500]


def test_a_scipy_sparse_npz_is_named_as_such(tmp_path):
    """Found by a scikit-learn user's trial: scipy.sparse.save_npz's file asked for --x-key, then
    refused its 'data' array as 1-d."""
    import scipy.sparse

    scipy.sparse.save_npz(tmp_path / "s.npz", scipy.sparse.random(20, 6, density=0.3, format="csr", random_state=0))
    with pytest.raises(DataError, match=r"s.npz is a sparse matrix \(scipy.sparse.save_npz\); kfree clusters dense "
                                        r"rows: save X.toarray\(\)"):
        load_features(tmp_path / "s.npz")
