"""``kfree report`` and :func:`kfree.report.clusters.cluster_report`: a page to look at a clustering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _cli import one_line_error, run
from PIL import Image

from kfree.exceptions import ConfigError, DataError
from kfree.report.clusters import cluster_report


@pytest.fixture
def photos(tmp_path):
    """9 tiny images in 3 clusters (grey levels), listed with relative paths."""
    (tmp_path / "img").mkdir()
    labels = np.repeat([0, 1, 2], 3)
    names = []
    for i, c in enumerate(labels):
        Image.fromarray(np.full((8, 6), 40 + 80 * c, dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        names.append(f"img/{i}.png")
    (tmp_path / "photos.txt").write_text("\n".join(names) + "\n")
    pd.DataFrame({"index": range(9), "cluster": labels}).to_csv(tmp_path / "c.csv", index=False)
    return tmp_path, labels


def test_report_with_images_and_truth(photos):
    d, labels = photos
    np.save(d / "truth.npy", np.array([5, 5, 6, 7, 7, 7, 8, 8, 8]))
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--truth", d / "truth.npy", "--out", d / "r")
    assert code == 0, out
    assert "9 rows in 3 clusters" in out
    page = (d / "r" / "index.html").read_text()
    assert "9 items in <b>3 clusters</b>" in page and "<h2>Results</h2>" in page and "montage.png" in page
    from kfree.metrics import nmi

    assert f"<td>{nmi(np.load(d / 'truth.npy'), labels):.3f}</td>" in page  # the metrics table
    for f in ("montage.png", "sizes.png"):
        assert (d / "r" / f).stat().st_size > 1000
    # without --truth and without a label column: no metrics, still the pictures
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--out", d / "r2")
    assert code == 0, out
    assert "<h2>Results</h2>" not in (d / "r2" / "index.html").read_text()


def test_noise_rows_are_counted_as_the_metrics_count_them(photos):
    """HDBSCAN's -1 (noise) rows: each its own cluster on the page's header and in the command's
    line, as in its metrics table and in ``kfree evaluate`` (the header once said "4 clusters")."""
    d, _ = photos
    labels = np.array([0, 0, 0, 1, 1, 1, -1, -1, -1])
    pd.DataFrame({"index": range(9), "cluster": labels}).to_csv(d / "noisy.csv", index=False)
    np.save(d / "truth.npy", np.repeat([5, 6, 7], 3))
    code, out = run("report", d / "noisy.csv", "--truth", d / "truth.npy", "--out", d / "r")
    assert code == 0, out
    assert "9 rows in 5 clusters" in out and "negative cluster label" in out
    page = (d / "r" / "index.html").read_text()
    assert "9 items in <b>5 clusters</b>" in page and "3 are singletons" in page
    assert "<td>5</td>" in page  # the metrics table's cluster count agrees
    with pytest.warns(Warning, match="negative cluster label"):
        cluster_report(d / "r2", labels)
    assert "9 items in <b>5 clusters</b>" in (d / "r2" / "index.html").read_text()
    # each is named by its label and a number, not by an id the clusters file lacks (a pictures
    # trial: "cluster 2", "cluster 3", "cluster 4" under the montage for a file of 0, 1 and -1)
    code, out = run("report", d / "noisy.csv", "--images", d / "photos.txt", "--truth", d / "truth.npy",
                    "--out", d / "r3")
    assert code == 0, out
    page = (d / "r3" / "index.html").read_text()
    assert "3 rows labelled as noise (negative labels) are each shown as a cluster of their own" in page
    assert "-1 #3" in page and not any(f"cluster {k} " in page for k in (2, 3, 4))


def test_a_clusters_file_naming_photos_points_to_images(photos):
    """Found by a photo-library trial: `kfree report clusters.csv` of faces (a 'photo' column)
    wrote a page without pictures and without a hint that --images would show them."""
    d, labels = photos
    pd.DataFrame({"index": range(9), "cluster": labels, "photo": [f"img/{i}.png" for i in range(9)]}).to_csv(
        d / "faces_c.csv", index=False)
    code, out = run("report", d / "faces_c.csv", "--out", d / "r")
    assert code == 0 and ("faces_c.csv names each row's photo: --images faces_c.csv shows the whole photos, "
                          "--images FACES.npz") in " ".join(out.split()), out
    code, out = run("report", d / "faces_c.csv", "--images", d / "faces_c.csv", "--out", d / "r2")
    assert code == 0 and "names each row's photo" not in out and (d / "r2" / "montage.png").exists(), out
    # a file kfree wrote from faces has their boxes too (kfree cluster/assign of kfree encode faces' .npz)
    pd.read_csv(d / "faces_c.csv").assign(left=0, top=0, right=4, bottom=4).to_csv(d / "boxed.csv", index=False)
    code, out = run("report", d / "boxed.csv", "--out", d / "r3")
    assert code == 0 and ("boxed.csv names each row's photo: --images boxed.csv shows each face in the montage "
                          "(cropped to its box)") in " ".join(out.split()), out


def test_a_report_rewritten_with_force_keeps_no_picture_of_the_last_one(photos):
    """Found by a photo-library trial: `kfree report … --force` into the last report's folder, this
    time without images, left its montage.png beside the new page. Other files there stay."""
    d, labels = photos
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--out", d / "r")
    assert code == 0 and (d / "r" / "montage.png").exists(), out
    (d / "r" / "notes.txt").write_text("mine")
    code, out = run("report", d / "c.csv", "--out", d / "r", "--force")
    assert code == 0, out
    assert not (d / "r" / "montage.png").exists() and "montage.png" not in (d / "r" / "index.html").read_text()
    assert (d / "r" / "sizes.png").exists() and (d / "r" / "notes.txt").read_text() == "mine"


def test_a_report_written_among_photos_deletes_and_replaces_none_of_them(photos):
    """Found by a pictures trial: `kfree report … --out photos --force` deleted the user's own
    map.png there (a name the report owns but did not draw) and replaced montage.png, one of the
    photos it showed. Only files an earlier report wrote are removed; a photo shown is never
    written over."""
    d, labels = photos
    own = d / "img" / "map.png"
    Image.fromarray(np.full((8, 6), 7, dtype=np.uint8)).save(own)
    before = own.read_bytes()
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--out", d / "img", "--force")
    assert code == 0 and (d / "img" / "montage.png").exists(), out
    assert own.read_bytes() == before  # not drawn this time, and not kfree's: kept
    (d / "img" / "montage.png").unlink()
    Image.fromarray(np.full((8, 6), 9, dtype=np.uint8)).save(d / "img" / "montage.png")
    (d / "photos.txt").write_text("img/montage.png\n" + "\n".join(f"img/{i}.png" for i in range(1, 9)) + "\n")
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--out", d / "img", "--force")
    one_line_error(code, out, "is one of the images shown, and the report writes a file of that name")


def test_a_majority_label_of_a_few_labelled_rows_says_how_few():
    """Found by a ticket trial: a new intent's cluster of 38 tickets, one of them labelled, read
    "majority label reverted_card_payment? (100%)", naming it as a known intent."""
    from kfree.report.html import text_clusters_html

    labels = np.repeat([0, 1], [38, 4])
    truth = np.array([None] * 37 + ["refund"] + ["fee", "fee", "fee", "card"], dtype=object)
    page = text_clusters_html(np.array([f"t{i}" for i in range(42)]), labels, None, truth, per_cluster=2)
    assert "majority label <b>refund</b> (1 of its 1 labelled row)" in page
    assert "majority label <b>fee</b> (75%)" in page  # every row labelled: the share, as before


def test_only_the_images_shown_are_read(photos):
    d, labels = photos
    paths = [str(d / "img" / f"{i}.png") for i in range(9)]
    paths[8] = str(d / "img" / "missing.png")  # in the third cluster, which is not shown
    cluster_report(d / "r", labels, images=paths, max_clusters=2)
    assert (d / "r" / "montage.png").exists()
    # a photo damaged or deleted since is shown crossed out, and said on the page and in a warning
    # (found by a photo-library user: one deleted photo had made the whole report fail)
    from kfree.exceptions import DataWarning
    from kfree.report.clusters import THUMBNAIL, image_loader, unreadable_tile

    paths[0] = str(d / "img" / "broken.png")
    (d / "img" / "broken.png").write_bytes(b"not an image")
    paths[3] = str(d / "img" / "deleted.png")
    with pytest.warns(DataWarning, match=r"3 of the 9 images shown could not be read and are crossed out \(first: "):
        cluster_report(d / "r3", labels, images=paths)
    page = (d / "r3" / "index.html").read_text()
    assert "3 of the 9 images shown could not be read" in page and "broken.png" in page
    failed = []
    tile = image_loader(paths, failed=failed)(3)
    np.testing.assert_array_equal(tile, unreadable_tile())
    assert tile.shape == (THUMBNAIL, THUMBNAIL, 3) and failed == [f"not found: {paths[3]}"]
    # none of the images shown read: refused, with no partial report and no temporary left
    with pytest.raises(DataError, match="cannot read the image of row 0, .*broken.png.* \\(and the other 8 images"):
        cluster_report(d / "r4", labels, images=[paths[0]] * 9)
    assert not (d / "r4").exists() and not list(d.glob(".r4*"))
    with pytest.raises(DataError, match="not found: .*deleted.png"):
        image_loader(paths)(3)  # (without a list of failures: raised)


def test_texts_follow_the_index_of_assigned_rows(tmp_path):
    """kfree assign writes index = row of its input: the texts are taken by that index."""
    pd.DataFrame({"index": [2, 0], "cluster": [7, 7]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"text": ["first ticket", "second ticket", "third ticket"]}).to_csv(tmp_path / "t.csv", index=False)
    code, out = run("report", tmp_path / "a.csv", "--texts", tmp_path / "t.csv", "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "cluster 7 — 2 items" in page and "first ticket" in page and "third ticket" in page
    assert "second ticket" not in page


def test_bad_input_is_one_line_and_writes_nothing(photos):
    d, _ = photos
    (d / "short.txt").write_text("img/0.png\n")
    (d / "full").mkdir()
    (d / "full" / "x").write_text("x")
    cases = [
        (["report", d / "c.csv", "--images", d / "short.txt", "--out", d / "o"], "index values outside 0..0 of short.txt"),
        (["report", d / "c.csv", "--out", d / "full"], "already holds files"),
        (["report", d / "c.csv"], "--out"),
        (["report", d / "photos.txt", "--out", d / "o"], "must be a CSV with a 'cluster' column"),
        (["report", d / "c.csv", "--texts", d / "c.csv", "--out", d / "o"], "has no 'text' or 'texts'"),
    ]
    (d / "blank.csv").write_text("cluster,label\na,x\nb,y\n,z\na,x\n")
    (d / "bomb.png").write_bytes(b"")
    Image.new("1", (20_000, 20_000)).save(d / "bomb.png")  # a few KB, 400M pixels
    (d / "bomb.txt").write_text("bomb.png\n" * 9)
    cases += [  # found by review: a raw traceback, or a page counting the empty id as a cluster
        (["report", d / "blank.csv", "--out", d / "o"], "blank.csv: 1 rows have no cluster (first: row 2)"),
        (["report", d / "c.csv", "--images", d / "bomb.txt", "--out", d / "o"], "cannot read the image of row 0"),
    ]
    # a texts file with one line more than the clustering (a ticket with a line break) would
    # shift every later text by one row; a truth file with an extra row likewise
    (d / "extra.txt").write_text("\n".join(f"t{i}" for i in range(10)) + "\n")
    (d / "truth.csv").write_text("label\n" + "\n".join(str(i // 3) for i in range(10)) + "\n")
    cases += [
        (["report", d / "c.csv", "--texts", d / "extra.txt", "--out", d / "o"],
         "c.csv clusters 9 rows (its index runs 0..8) but extra.txt has 10: they are not the same rows"),
        (["report", d / "c.csv", "--truth", d / "truth.csv", "--out", d / "o"], "but truth.csv has 10"),
    ]
    for args, message in cases:
        one_line_error(*run(*args), message)
    assert not (d / "o").exists()
    one_line_error(*run("evaluate", d / "c.csv", d / "truth.csv"), "but truth.csv has 10")


@pytest.mark.parametrize("tsne", [True, False])
def test_a_map_of_the_features(photos, monkeypatch, tsne):
    d, labels = photos
    X = np.random.default_rng(0).normal(size=(9, 5)) + labels[:, None] * 4.0
    np.save(d / "x.npy", X)
    if not tsne:
        import sys

        monkeypatch.setitem(sys.modules, "openTSNE", None)  # not installed: PCA
    code, out = run("report", d / "c.csv", "--features", d / "x.npy", "--out", d / "r")
    assert code == 0, out
    page = (d / "r" / "index.html").read_text()
    assert "map.png" in page and ("t-SNE (openTSNE)" if tsne else "PCA (pip install") in page
    assert (d / "r" / "map.png").stat().st_size > 1000
    np.save(d / "bad.npy", X[:4])
    one_line_error(*run("report", d / "c.csv", "--features", d / "bad.npy", "--out", d / "r2"),
                   "index values outside 0..3 of bad.npy")


def test_user_text_in_cluster_ids_and_text_files(photos):
    """Cluster ids are the user's text: escaped on the page, no formula in the montage; text files
    are split at line ends only (U+2028 inside a line shifted every later row) and must be UTF-8."""
    d, labels = photos
    ids = np.array(["<b>x</b>", "$x^$", "a&b"])[labels]
    pd.DataFrame({"index": range(9), "cluster": ids}).to_csv(d / "odd.csv", index=False)
    code, out = run("report", d / "odd.csv", "--images", d / "photos.txt", "--out", d / "r")
    assert code == 0, out
    (d / "t.txt").write_text("one\u2028still one\n" + "".join(f"text {i}\n" for i in range(1, 9)), encoding="utf-8")
    code, out = run("report", d / "odd.csv", "--texts", d / "t.txt", "--out", d / "r2")
    assert code == 0, out
    page = (d / "r2" / "index.html").read_text()
    assert "cluster &lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page and "a&amp;b" in page
    assert "still one" in page and "text 8" in page
    (d / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1") * 9)  # Windows-1252: read, and said
    code, out = run("report", d / "c.csv", "--texts", d / "latin.txt", "--out", d / "r3")
    assert code == 0 and "latin.txt is not UTF-8 text: read as Windows-1252" in out, out
    assert "café" in (d / "r3" / "index.html").read_text()
    (d / "nul.txt").write_bytes(b"caf\xe9\x00\n" * 9)  # no text in any code page
    one_line_error(*run("report", d / "c.csv", "--texts", d / "nul.txt", "--out", d / "r4"), "is not UTF-8 text")


def test_a_map_of_one_feature_or_of_few_rows(photos):
    d, labels = photos
    np.save(d / "x1.npy", labels[:, None].astype(float))
    code, out = run("report", d / "c.csv", "--features", d / "x1.npy", "--out", d / "r")
    assert code == 0, out
    assert "the one feature" in (d / "r" / "index.html").read_text()
    pd.DataFrame({"index": [0, 1], "cluster": [0, 1]}).to_csv(d / "two.csv", index=False)
    np.save(d / "x2.npy", np.eye(2))
    code, out = run("report", d / "two.csv", "--features", d / "x2.npy", "--out", d / "r2")
    assert code == 0, out


def test_features_with_nan_are_one_line_error(tmp_path):
    """Found by review: NaN features failed inside scikit-learn's NearestNeighbors."""
    with pytest.raises(DataError, match="features contains NaN or infinite values"):
        cluster_report(tmp_path / "r", np.arange(20) % 3, features=np.full((20, 3), np.nan))
    assert not (tmp_path / "r").exists()


def test_a_texts_table_with_its_own_ids_is_joined_by_them(tmp_path):
    """Found by review: --texts picked rows by number and ignored the texts file's 'index', so a
    shuffled texts file put the wrong tickets under each cluster (--truth joined by 'index')."""
    from kfree.cli.report import _items
    from kfree.evaluate.compare import truth_for

    pred = pd.DataFrame({"index": ["t2", "t0", "t1"], "cluster": [0, 0, 1], "row": [0, 1, 2]})
    pd.DataFrame({"index": ["t0", "t1", "t2"], "text": ["zero", "one", "two"]}).to_csv(tmp_path / "t.csv", index=False)
    assert _items(tmp_path / "t.csv", pred, ("text",), "texts", "c.csv") == (["two", "zero", "one"], None)
    pd.DataFrame({"index": ["t0", "t9"], "text": ["zero", "nine"]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="2 rows of c.csv have no texts in short.csv .*first: 't2'"):
        _items(tmp_path / "short.csv", pred, ("text",), "texts", "c.csv")
    pd.DataFrame({"index": [1, 2], "text": ["one", "two"]}).to_csv(tmp_path / "n.csv", index=False)
    numbered = pred.assign(index=[1026, 1, 2])  # the first missing id as written, not np.int64(1026)
    with pytest.raises(DataError, match=r"first: 1026\)"):
        _items(tmp_path / "n.csv", numbered, ("text",), "texts", "c.csv")
    # labels with no ids to join by are taken by row, and that is said (a shuffled truth file scored 0.05)
    pd.DataFrame({"label": list("abc")}).to_csv(tmp_path / "truth.csv", index=False)
    with pytest.warns(UserWarning, match="truth.csv has no 'index' column: its labels are taken by row number"):
        assert truth_for(pred, tmp_path / "truth.csv").tolist() == list("abc")
    # and texts too (found by a support-ticket user: shuffled texts with a 'ticket_id' column put
    # other tickets' texts in every cluster, silently)
    pd.DataFrame({"ticket_id": ["t1", "t2", "t0"], "text": ["one", "two", "zero"]}).to_csv(tmp_path / "s.csv",
                                                                                            index=False)
    with pytest.warns(UserWarning, match="s.csv has no 'index' column: its texts are taken by row number"):
        assert _items(tmp_path / "s.csv", pred, ("text",), "texts", "c.csv") == (["one", "two", "zero"], None)


def test_images_of_any_depth_show_as_a_viewer_shows_them(tmp_path):
    """Found by review: 16-bit and float images came out blank (Pillow clips them), transparent
    pixels showed what lay under them, and images smaller than a thumbnail stayed a dot."""
    from kfree.report.clusters import THUMBNAIL, image_loader

    ramp = np.linspace(0.0, 1.0, 64 * 48).reshape(64, 48)
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(ramp.astype(np.float32), mode="F").save(tmp_path / "float.tiff")
    rgba = np.zeros((64, 48, 4), dtype=np.uint8)
    rgba[:, 24:] = (200, 0, 0, 255)  # left half transparent black, right half opaque red
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(np.full((3, 4), 90, dtype=np.uint8)).save(tmp_path / "tiny.png")
    load = image_loader([tmp_path / n for n in ("deep.png", "float.tiff", "alpha.png", "tiny.png")])
    for i in (0, 1):  # the full grey ramp, from black to white, as in the file
        img = load(i).astype(int)
        assert img.shape == (THUMBNAIL, THUMBNAIL, 3) and img[img < 250].min() < 10 and img.max() > 245
        assert np.ptp(img[:, THUMBNAIL // 2, 0]) > 200
    alpha = load(2)
    assert (alpha[:, THUMBNAIL // 2 - 30] == 255).all() and (alpha[:, THUMBNAIL // 2 + 20] == (200, 0, 0)).all()
    tiny = load(3)
    assert ((tiny == 90).all(axis=2)).sum() > 0.5 * THUMBNAIL * THUMBNAIL  # enlarged to the thumbnail


def test_pages_say_what_they_show_and_keep_long_items_in_bounds(tmp_path):
    """Found by review: the pages showed the 40 largest of 74 clusters without saying so, one
    20,000-character text filled the page, the map coloured a cluster in the grey of the
    uncoloured rest, and '1 clusters'."""
    from kfree.report.clusters import MAP_COLOURS
    from kfree.report.html import TEXT_CHARS

    greys = [c for c in MAP_COLOURS if len({c[1:3], c[3:5], c[5:7]}) == 1]
    assert not greys and len(set(MAP_COLOURS)) == len(MAP_COLOURS)
    labels = np.repeat(np.arange(50), 2)
    texts = ["x" * 20_000] + [f"t{i}" for i in range(99)]
    pd.DataFrame({"cluster": labels}).to_csv(tmp_path / "c.csv", index=False)
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.txt", "--out", tmp_path / "r",
                    "--max-clusters", "7")
    assert code == 0, out
    assert "(it shows the 7 largest clusters; --max-clusters shows more)" in " ".join(out.split())
    page = (tmp_path / "r" / "index.html").read_text()
    assert "of the 7 largest of the 50 clusters" in page
    assert page.count("<div class='cl'>") == 7
    assert "x" * TEXT_CHARS + "… <span class='muted'>(19,500 more characters)" in page and "x" * (TEXT_CHARS + 1) not in page
    page = cluster_report(tmp_path / "one", np.zeros(3, dtype=int), texts=["a", "b", "c"]).read_text()
    assert "3 items in <b>1 cluster</b>" in page and "random texts of the one cluster." in page


def test_a_features_table_with_its_own_ids_is_joined_by_them(tmp_path, monkeypatch):
    """Found by review: --features picked rows by number and ignored the features table's own
    'index', so a shuffled table drew every point at another row's place on the map."""
    import kfree.report.clusters as rc

    seen = {}
    real = rc.cluster_report
    monkeypatch.setattr(rc, "cluster_report", lambda *a, **k: seen.setdefault("X", k["features"]) is None or real(*a, **k))
    pred = pd.DataFrame({"index": ["a", "b", "c", "d"], "cluster": [0, 0, 1, 1], "row": [0, 1, 2, 3]})
    pred.to_csv(tmp_path / "c.csv", index=False)
    feats = pd.DataFrame({"index": ["c", "a", "d", "b"], "f0": [2.0, 0.0, 3.0, 1.0], "f1": [20.0, 0.0, 30.0, 10.0]})
    feats.to_csv(tmp_path / "f.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--features", tmp_path / "f.csv", "--out", tmp_path / "r")
    assert code == 0, out
    np.testing.assert_array_equal(seen["X"][:, 0], [0.0, 1.0, 2.0, 3.0])  # rows a, b, c, d
    feats.iloc[:3].to_csv(tmp_path / "short.csv", index=False)
    one_line_error(*run("report", tmp_path / "c.csv", "--features", tmp_path / "short.csv", "--out", tmp_path / "r2"),
                   "1 rows of c.csv have no features in short.csv")


def test_how_many_members_each_cluster_shows(tmp_path):
    """Found by review: a team labelling intents saw 5 random texts per cluster, with no way to see more."""
    pd.DataFrame({"index": range(20), "cluster": [0] * 20}).to_csv(tmp_path / "c.csv", index=False)
    (tmp_path / "t.txt").write_text("".join(f"ticket number {i}\n" for i in range(20)))
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.txt", "--per-cluster", "12",
                    "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.count("ticket number") == 12 and "Up to 12 random texts" in page
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.txt", "--out", tmp_path / "r5")
    assert (tmp_path / "r5" / "index.html").read_text().count("ticket number") == 5
    with pytest.raises(ConfigError, match="per_cluster"):
        cluster_report(tmp_path / "r0", np.zeros(3), texts=["a", "b", "c"], per_cluster=0)


def test_a_partly_labelled_clustering_is_reported_on_its_labelled_rows(photos):
    """kfree cluster writes blank labels for rows without one: the page scores the labelled rows,
    says so, and frames a face without a label in grey (it failed: "labels_true contain NaN")."""
    d, labels = photos
    truth = [0, None, 0, 1, 1, None, 2, 2, 2]
    pd.DataFrame({"index": range(9), "cluster": labels, "label": truth}).to_csv(d / "p.csv", index=False)
    (d / "t.txt").write_text("".join(f"text {i}\n" for i in range(9)))
    for extra in (["--images", d / "photos.txt"], ["--texts", d / "t.txt"]):
        code, out = run("report", d / "p.csv", *extra, "--out", d / f"r{len(extra[0])}")
        assert code == 0, out
        page = (d / f"r{len(extra[0])}" / "index.html").read_text()
        assert "these clusters, on the 7 rows with a true label" in page
        assert "rows whose labels a model was trained on score it in-sample" in page  # (found by a user trial)
    assert "majority label" in (d / "r7" / "index.html").read_text()  # (--texts: 7 characters)


def test_photos_are_located_past_deleted_ones_and_by_name(tmp_path):
    """Found by review: a library whose first 20 listed photos were deleted was taken for a moved
    list (refused, advising --image-root), and a path through '..' from a folder since removed
    was not found (the kernel resolves '..' only through folders that exist)."""
    from kfree.data.images import locate_images

    lib = tmp_path / "lib"
    lib.mkdir()
    listed = [f"lib/a{i:02d}.png" for i in range(25)]
    for name in listed[20:]:
        (tmp_path / name).write_bytes(b"png")
    got = locate_images(listed, tmp_path / "faces.npz")
    assert got == [str(tmp_path / name) for name in listed]
    got = locate_images(["../lib/a24.png"], tmp_path / "x" / "y" / "faces.npz", written_in=tmp_path / "gone")
    assert got == [str(lib / "a24.png")]
    with pytest.raises(DataError, match=r"faces.npz: its images are not found from .* or .*gone"):
        locate_images(["../lib/a00.png"], tmp_path / "x" / "y" / "faces.npz", written_in=tmp_path / "gone")


def test_the_api_does_not_write_into_a_folder_that_holds_files(tmp_path):
    """The CLI refused a non-empty --out without --force, but ``cluster_report`` wrote into any
    folder: a typo'd out_dir (the photos' own folder) was written over without a word."""
    from kfree.exceptions import OutputError

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "index.html").write_text("the user's own page")
    with pytest.raises(OutputError, match="photos already holds files; pass overwrite=True"):
        cluster_report(photos, np.zeros(3, dtype=int), texts=["a", "b", "c"])
    assert (photos / "index.html").read_text() == "the user's own page" and len(list(tmp_path.iterdir())) == 1
    page = cluster_report(photos, np.zeros(3, dtype=int), texts=["a", "b", "c"], overwrite=True)
    assert "kfree clusters" in page.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cluster_report(empty, np.zeros(3, dtype=int), texts=["a", "b", "c"]).exists()  # an empty folder is new


def test_the_id_column_joins_the_truth_and_features_tables_too(tmp_path):
    """Found by a user trial: clusters named by 'sku_id' (kfree cluster --id-column) were joined to
    a truth or features table of the same 'sku_id's by row order, with a warning."""
    rng = np.random.default_rng(0)
    skus = [f"SKU-{i:03d}" for i in range(30)]
    product = np.repeat(["a", "b", "c"], 10)
    emb = rng.normal(size=(30, 4)) + np.repeat(np.eye(4)[:3] * 8, 10, axis=0)
    pd.DataFrame({"sku_id": skus, "embedding": list(emb), "product": product}).to_parquet(tmp_path / "photos.parquet")
    order = rng.permutation(30)  # the clusters file lists the rows in another order
    pd.DataFrame({"index": np.array(skus)[order], "cluster": pd.factorize(product[order])[0]}).to_csv(
        tmp_path / "c.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--truth", tmp_path / "photos.parquet", "--label-column", "product",
                    "--features", tmp_path / "photos.parquet", "--id-column", "sku_id", "--out", tmp_path / "r")
    assert code == 0 and "row number" not in out, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<td>1.000</td>" in page  # NMI of the clusters against the products, joined by the ids


def test_a_page_with_true_labels_says_which_clusters_merge_and_which_labels_split(tmp_path):
    """A TV-episode trial: a report without images or texts showed sizes, scores and a map, and
    nothing of which characters a cluster mixed or which character was split."""
    import re

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    truth = np.array(["a", "a", "b", "b", "b", "c", "c", "c", None, "a"], dtype=object)
    page = cluster_report(tmp_path / "r", labels, truth=truth).read_text()
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(<td>.*?)</tr>", page)]
    by_cluster, by_label = cells[1:5], cells[5:]  # (the first row: the metrics)
    assert by_cluster == [["2", "3", "c", "100%", "1"], ["0", "3", "a", "67%", "2"], ["1", "2", "b", "100%", "1"],
                          ["5", "1", "a", "100%", "1"]]
    assert by_label == [["c", "3", "2", "100%", "1"], ["a", "3", "0", "67%", "2"], ["b", "3", "1", "67%", "2"]]
    assert "Clusters and true labels" not in cluster_report(tmp_path / "r2", labels).read_text()


def test_long_cluster_ids_keep_their_start_and_end_in_pictures():
    """Found by a pictures trial: ids 2024-06-01_beach_party_001, _002 and _003 all read
    "2024-06-01_beac…" under the montage and on the map."""
    from kfree.report.figures import short_id

    ids = [f"2024-06-01_beach_party_00{k}" for k in (1, 2, 3)]
    shown = [short_id(c, 16) for c in ids]
    assert len(set(shown)) == 3 and all(len(s) == 16 and s.startswith("2024-0") for s in shown)
    assert short_id("cluster_7", 16) == "cluster_7"  # short ids whole


def test_image_arrays_of_the_usual_shapes_and_types_are_drawn_as_they_look(tmp_path):
    """Found by a pictures trial: (n, H, W, 1) grey images were drawn in false colour, 16-bit ones
    all white, masks all black, and a list of arrays was taken for file paths (a TypeError)."""
    from kfree.report.montage import _as_uint8

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_array_equal(_as_uint8(grey[..., None]), grey)
    np.testing.assert_array_equal(_as_uint8(grey.astype(np.uint16) * 257), grey)  # 16-bit: its full range
    np.testing.assert_array_equal(_as_uint8(grey > 100), np.where(grey > 100, 255, 0))
    np.testing.assert_array_equal(_as_uint8(grey.astype(np.int64)), grey)  # whole numbers 0–255: as they are
    labels = np.repeat([0, 1], 3)
    images = [np.full((8 + i, 6, 1), 30 * i, dtype=np.uint8) for i in range(6)]  # sizes differ: no stack
    cluster_report(tmp_path / "r", labels, images=images)
    assert (tmp_path / "r" / "montage.png").stat().st_size > 1000


def test_the_clusters_that_mix_labels_are_listed_even_when_small():
    """Found by a pictures trial: with 100 pure clusters of 10 rows and 20 of 4 that each merge two
    people, the table listed the 40 largest, all pure, and nothing said 20 others mixed labels."""
    import re

    from kfree.report.html import truth_tables_html

    labels = np.concatenate([np.repeat(np.arange(100), 10), np.repeat(np.arange(100, 120), 4)])
    truth = np.concatenate([np.repeat(np.arange(100), 10), np.repeat(np.arange(200, 240), 2)])
    page = truth_tables_html(labels, truth, max_clusters=40)
    assert "The 40 largest of 120. Of the other 80, 20 mix labels:" in page
    assert all(f"<tr><td>{c}</td><td>4</td>" in page for c in range(100, 120))
    assert "none of the other 100 is split" in page
    assert len(re.findall(r"<tr><td>\d+</td><td>10</td>", page)) == 40 + 40  # the largest, in both tables


def test_a_small_face_in_a_large_photo_is_shown_sharp(tmp_path):
    """Found by a pictures trial: a 92-px face in a 6000×4000 JPEG was decoded at a quarter of the
    photo's size, so its thumbnail was rebuilt from 23 px and blurred. The decode now fits the box."""
    from kfree.report.clusters import THUMBNAIL, image_loader

    photo = np.full((4000, 6000, 3), 128, dtype=np.uint8)
    checks = (np.indices((112, 92)).sum(0) // 4 % 2 * 255).astype(np.uint8)  # 4-px checks in the face's box
    photo[2000:2112, 3000:3092] = checks[..., None]
    Image.fromarray(photo).save(tmp_path / "p.jpg", quality=95)
    tile = image_loader([tmp_path / "p.jpg"], np.array([[3000, 2000, 3092, 2112]]))(0)
    assert tile.shape == (THUMBNAIL, THUMBNAIL, 3)
    centre = tile[30:66, 30:66].astype(float)
    assert centre.std() > 60  # the checks, not a grey mush (a quarter-size decode gave 16)


def test_ids_in_scripts_the_figures_font_lacks_are_drawn_as_code_points():
    """Found by a pictures trial: Chinese, Japanese and Korean ids were all drawn as empty boxes, so
    no montage row or map label could be told from another."""
    from kfree.report.figures import _glyphs, short_id

    if _glyphs()(ord("张")):
        pytest.skip("this machine's DejaVu Sans draws CJK")
    shown = [short_id(c, 16) for c in ("张伟", "王芳", "佐藤", "김민준")]
    assert len(set(shown)) == 4 and shown[0] == "U+5F20U+4F1F"
    assert short_id("café", 16) == "café"  # what the font draws stays as it is


def test_review_fixes_of_the_pictures(tmp_path, photos):
    """A review of the day's picture changes: a long caption ran under the first thumbnail, a photo
    named map.png was refused with no map to draw, and "1 mix labels"."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    from kfree.report.html import truth_tables_html
    from kfree.report.montage import CAPTION, GAP, _fitted_id, _font

    draw = ImageDraw.Draw(PILImage.new("RGB", (10, 10)))
    for c in ("2024-06-01_beach_party_001", "김민수김민수", 7):
        assert draw.textlength(_fitted_id(draw, c, _font(12)), font=_font(12)) <= CAPTION - 2 * GAP
    d, labels = photos
    Image.fromarray(np.full((8, 6), 7, dtype=np.uint8)).save(d / "img" / "map.png")
    (d / "photos.txt").write_text("img/map.png\n" + "\n".join(f"img/{i}.png" for i in range(1, 9)) + "\n")
    code, out = run("report", d / "c.csv", "--images", d / "photos.txt", "--out", d / "img", "--force")
    assert code == 0 and (d / "img" / "map.png").exists(), out  # no --features: no map written over it
    y = np.concatenate([np.repeat(np.arange(50), 4), [100, 101]])
    pred = np.concatenate([np.repeat(np.arange(50), 4), [60, 60]])
    assert "Of the other 11, 1 mixes labels" in truth_tables_html(pred, y, max_clusters=40)


def test_drawing_leaves_the_callers_matplotlib_backend_and_refuses_names_of_other_formats(tmp_path, monkeypatch):
    """A notebook trial: every kfree figure switched the notebook's backend to Agg for the rest of
    its session (its own plots stopped showing), and a 'sizes.svg' was written with PNG bytes."""
    import subprocess
    import sys

    code = ("import matplotlib, numpy as np; matplotlib.use('svg'); "
            "from kfree.report.clusters import plot_cluster_sizes, plot_cluster_map; "
            f"plot_cluster_sizes(np.array([0, 0, 1]), {str(tmp_path / 's.png')!r}); "
            f"plot_cluster_map(np.random.default_rng(0).normal(size=(30, 3)), np.arange(30) % 3, "
            f"{str(tmp_path / 'm.png')!r}); "
            "import matplotlib.pyplot as plt; print(matplotlib.get_backend(), plt.get_fignums())")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "[]"], done.stdout
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from kfree.exceptions import OutputError
    from kfree.report.clusters import plot_cluster_sizes

    for name in ("sizes.svg", "sizes"):
        with pytest.raises(OutputError, match=f"{name}: kfree draws PNG images; give a file name ending in .png"):
            plot_cluster_sizes(np.array([0, 0, 1]), tmp_path / name)
        assert not (tmp_path / name).exists()
    from kfree.report import plot_cluster_map

    def no_map(*a, **k):  # refused before the map is computed (t-SNE takes minutes: a review)
        raise AssertionError("the map was computed")

    monkeypatch.setattr("kfree.distances.check_features", no_map)
    with pytest.raises(OutputError, match="map.svg: kfree draws PNG images"):
        plot_cluster_map(np.zeros((5, 2)), np.arange(5), tmp_path / "map.svg")


def test_what_the_terminal_warns_of_the_matching_is_said_on_the_page_too(tmp_path):
    """A ticket trial: texts taken by row number (the clusters named their rows by ids, the texts
    file had none) were warned about in the terminal, while the page, which is what is shared,
    said nothing."""
    pd.DataFrame({"index": [f"T-{i}" for i in range(6)], "cluster": [0, 0, 1, 1, 2, 2],
                  "row": range(6)}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"text": [f"ticket {i}" for i in range(6)]}).to_csv(tmp_path / "t.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.csv", "--out", tmp_path / "r")
    assert code == 0 and "taken by row number" in out, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Note: c.csv names its rows by their own ids" in page and "taken by row number" in page
    pd.DataFrame({"index": [f"T-{i}" for i in range(6)], "text": [f"ticket {i}" for i in range(6)]}).to_csv(
        tmp_path / "t2.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t2.csv", "--out", tmp_path / "r2")
    assert code == 0 and "Note:" not in (tmp_path / "r2" / "index.html").read_text(), out  # joined by id: nothing


def test_a_table_of_paths_and_boxes_shows_each_row_cropped_and_a_box_outside_its_image_is_named(tmp_path):
    """Found by a TV-episode trial: a frames table (path, x, y, w, h) showed whole frames with tiny
    faces (only the .npz of kfree encode faces was cropped), and a box outside its frame was said
    as Pillow's "Coordinate 'right' is less than 'left'"."""
    from kfree.cli.report import table_boxes
    from kfree.report.clusters import image_loader

    frame = np.zeros((200, 300), dtype=np.uint8)
    frame[50:90, 100:140] = 255  # a white face in a black frame
    Image.fromarray(frame).save(tmp_path / "f.png")
    xywh = pd.DataFrame({"path": ["f.png"] * 2, "x": [100, 1000], "y": [50, 1000], "w": [40, 30], "h": [40, 30]})
    np.testing.assert_array_equal(table_boxes(xywh, tmp_path / "t.csv"), [[100, 50, 140, 90], [1000, 1000, 1030, 1030]])
    ltrb = pd.DataFrame({"path": ["f.png"], "Left": [1], "Top": [2], "Right": [3], "Bottom": ["4"]})
    np.testing.assert_array_equal(table_boxes(ltrb, tmp_path / "t.csv"), [[1, 2, 3, 4]])
    assert table_boxes(pd.DataFrame({"path": ["f.png"], "x": [1]}), tmp_path / "t.csv") is None
    with pytest.raises(DataError, match=r"t.csv: row 0 has no number in a box column \(x, y, w, h\)"):
        table_boxes(xywh.assign(w=["wide", 3]), tmp_path / "t.csv")
    tile = image_loader([tmp_path / "f.png"], table_boxes(xywh, tmp_path / "t.csv")[:1])(0)
    assert tile.mean() > 100  # the face fills the tile (the whole frame is 3 % white)
    failed: list[str] = []
    image_loader([tmp_path / "f.png"] * 2, table_boxes(xywh, tmp_path / "t.csv"), failed=failed)(1)
    assert failed == [f"row 1's box (1000, 1000, 1030, 1030: left, top, right, bottom) lies outside its image "
                      f"{tmp_path / 'f.png'} (300×200 px); check the boxes' columns and units"]
    # through the command line: cropped from the table, the outside box said on one line
    xywh.to_csv(tmp_path / "frames.csv", index=False)
    pd.DataFrame({"index": [0, 1], "cluster": [0, 0]}).to_csv(tmp_path / "c.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--images", tmp_path / "frames.csv", "--out", tmp_path / "r")
    assert code == 0 and "row 1's box (1000, 1000, 1030, 1030: left, top, right, bottom) lies outside" in out, out


def test_a_whole_library_file_shows_each_face_cropped_and_rows_without_a_photo_as_empty_tiles(tmp_path, monkeypatch):
    """Found by a photo-library trial: `kfree assign --all-rows` wrote each face's photo but not its
    box, so `kfree report all.csv --images all.csv` showed a group photo whole in both people's
    clusters; and 40 rows added without a photo (an .npy batch) refused the whole report, naming
    "first: " (an empty path) and advising --image-root."""
    import kfree.report.clusters as clusters_module
    from kfree.cli.report import table_boxes
    from kfree.report.clusters import image_loader

    group = np.zeros((60, 120, 3), dtype=np.uint8)
    group[10:50, 10:50] = (255, 0, 0)  # one face red, the other blue
    group[10:50, 70:110] = (0, 0, 255)
    Image.fromarray(group).save(tmp_path / "group.png")
    table = pd.DataFrame({"row": [0, 1, 2], "cluster": [0, 1, 1], "photo": [str(tmp_path / "group.png")] * 2 + [None],
                          "left": [10, 70, None], "top": [10, 10, None], "right": [50, 110, None],
                          "bottom": [50, 50, None]})
    table.to_csv(tmp_path / "all.csv", index=False)
    boxes = table_boxes(table, tmp_path / "all.csv")
    assert np.isnan(boxes[2]).all()  # a row without a box: shown whole, not refused
    load = image_loader([str(tmp_path / "group.png")] * 2 + [""], boxes)
    red, blue, empty = load(0), load(1), load(2)
    assert red[..., 0].mean() > 2 * red[..., 2].mean() and blue[..., 2].mean() > 2 * blue[..., 0].mean()
    assert (empty == 255).all()
    seen = {}
    real = clusters_module.image_loader
    monkeypatch.setattr(clusters_module, "image_loader",
                        lambda paths, boxes=None, **kw: seen.update(paths=list(paths), boxes=boxes) or real(paths, boxes, **kw))
    code, out = run("report", tmp_path / "all.csv", "--images", tmp_path / "all.csv", "--out", tmp_path / "r")
    assert code == 0 and "1 row name no image (added without one): shown as empty tiles" in " ".join(out.split()), out
    assert seen["paths"][2] == "" and seen["paths"][0] == str(tmp_path / "group.png")
    # each shown cluster's members by name, folded (the montage shows a few: a photo-library trial)
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<details><summary>cluster 1 — 2 items</summary><ul><li>group.png</li>" in page
    assert "(no image)" in page
    np.testing.assert_array_equal(seen["boxes"][:2], [[10, 10, 50, 50], [70, 10, 110, 50]])
    assert (tmp_path / "r" / "montage.png").exists()
    # a part of such a file, cut out by hand, names its own rows' photos: taken row for row (an operations
    # trial's was joined by its 'row' numbers and refused, pointing to an --id-column that did not help)
    table.iloc[1:].to_csv(tmp_path / "part.csv", index=False)
    code, out = run("report", tmp_path / "part.csv", "--images", tmp_path / "part.csv", "--out", tmp_path / "r2")
    assert code == 0, out
    np.testing.assert_array_equal(seen["boxes"][:1], [[70, 10, 110, 50]])


def test_distances_within_and_between_labels_with_a_proposed_cut(tmp_path):
    """The ICPR 2020 paper's Fig. 4 and pair histograms were in the reproductions only (a research
    trial): a report of any labelled rows now draws them, with a cut and its pair error."""
    from scipy.spatial.distance import cdist

    from kfree.report.distances import label_distances, pair_distance_sample, plot_label_distances
    from kfree.threshold import Threshold

    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c", "d"], [30, 20, 10, 1])
    centres = {"a": (0, 0), "b": (3, 0), "c": (0, 5), "d": (9, 9)}
    X = np.array([centres[v] for v in y]) + rng.normal(size=(61, 2)) * 0.5
    stats = label_distances(X, y, max_labels=3, per_label=1000)
    assert stats["labels"].tolist() == ["a", "b", "c"] and stats["sizes"].tolist() == [30, 20, 10]
    assert stats["nearest"].tolist() == ["b", "a", "a"]  # by the labels' means
    within = cdist(X[y == "a"], X[y == "a"])[np.triu_indices(30, 1)]
    assert stats["intra_mean"][0] == pytest.approx(within.mean()) and stats["intra_std"][0] == pytest.approx(within.std())
    assert stats["inter_mean"][0] == pytest.approx(cdist(X[y == "a"], X[y == "b"]).mean())
    assert np.isnan(label_distances(X, y, per_label=1000)["intra_mean"][3])  # one row: nothing within
    same, different = pair_distance_sample(X, y, distance="sqeuclidean")
    assert same.size == 435 + 190 + 45 and different.size == 61 * 60 // 2 - same.size  # every pair: few rows
    assert np.sort(same)[-1] == pytest.approx(max(cdist(X[y == v], X[y == v], "sqeuclidean").max() for v in "abc"))

    pd.DataFrame({"index": range(61), "cluster": y, "label": y}).to_csv(tmp_path / "c.csv", index=False)
    np.save(tmp_path / "x.npy", X)
    code, out = run("report", tmp_path / "c.csv", "--features", tmp_path / "x.npy", "--threshold", "2.25",
                    "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert (tmp_path / "r" / "distances.png").exists() and "Distances within and between the true labels" in page
    wrong_same, wrong_different = np.mean(same > 2.25), np.mean(different <= 2.25)
    assert f"separates {wrong_same:.1%} of same-label pairs and joins {wrong_different:.1%}" in page
    code, out = run("report", tmp_path / "c.csv", "--features", tmp_path / "x.npy", "--threshold", "1.5",
                    "--distance", "euclidean", "--out", tmp_path / "r2")
    assert code == 0 and "(euclidean)" in (tmp_path / "r2" / "index.html").read_text(), out
    one_line_error(*run("report", tmp_path / "c.csv", "--threshold", "2", "--out", tmp_path / "r3"), "give --features")
    pd.DataFrame({"index": range(61), "cluster": y}).to_csv(tmp_path / "u.csv", index=False)
    one_line_error(*run("report", tmp_path / "u.csv", "--features", tmp_path / "x.npy", "--threshold", "2",
                        "--out", tmp_path / "r4"), "give them (--truth")
    pd.DataFrame({"index": range(61), "label": "a"}).to_csv(tmp_path / "one.csv", index=False)
    one_line_error(*run("report", tmp_path / "c.csv", "--features", tmp_path / "x.npy", "--threshold", "2", "--truth",
                        tmp_path / "one.csv", "--out", tmp_path / "r5"), "of 2 or more labels")
    assert not any((tmp_path / name).exists() for name in ("r3", "r4", "r5"))
    # labels that are ids: no pair within one, said instead of "nan%" (a review)
    _, how = plot_label_distances(X, np.arange(61), tmp_path / "ids.png", threshold=Threshold(2.25, "sqeuclidean"))
    assert "no two rows share a label" in how and "nan" not in how and "joins" in how
    # and the BCL paper's curves: NMI/WCP of the complete-linkage cut at every number of clusters, these clusters
    # the point (in the reproductions only before)
    from scipy.cluster.hierarchy import fcluster, linkage

    from kfree.metrics import nmi
    from kfree.report.curves import truth_curve

    assert (tmp_path / "r" / "curve.png").exists() and "Scores against the number of clusters" in page
    curve, rows = truth_curve(X, y, k_max=8)
    assert rows.size == 61 and np.asarray(curve.k).tolist() == list(range(8, 0, -1))
    reference = fcluster(linkage(X, "complete"), 4, criterion="maxclust")
    assert curve.scores["nmi"][list(curve.k).index(4)] == pytest.approx(nmi(y, reference))
    assert f"cut there, NMI {nmi(y, reference):.3f}" in page
    # the proposed threshold's own cut is the curve's point (a ticket trial could not tie the two figures)
    at = fcluster(linkage(X, "complete"), 1.5, criterion="distance")  # 2.25 sqeuclidean
    assert (f"The threshold 2.25 sqeuclidean cuts the rows the curve is drawn on into {np.unique(at).size:,} clusters "
            f"(NMI {nmi(y, at):.3f})") in " ".join(page.split())
    _, rows = truth_curve(X, y, max_rows=20, k_max=3)
    assert rows.size == 20 and np.all(np.diff(rows) > 0)  # a seeded sample, in order
    # the figure's units: a squared cut is drawn on Euclidean distances as its root

    _, how = plot_label_distances(X, y, tmp_path / "d.png", threshold=Threshold(2.25, "sqeuclidean"), distance="euclidean")
    assert "the threshold 1.5 separates" in how
