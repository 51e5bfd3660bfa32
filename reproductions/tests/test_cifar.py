"""CIFAR-10 loader: tiny fake copies of both layouts, plus the real shared copy's counts."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from kfree.exceptions import ConfigError, DataError, DataFileNotFoundError
from kfree_reproductions.icpr2020 import cifar
from kfree_reproductions.icpr2020.cifar import CIFAR10_CLASSES, load_cifar10

N_TRAIN, N_TEST = 20, 10  # 2 and 1 images per class


@pytest.fixture
def tiny_sizes(monkeypatch):
    monkeypatch.setitem(cifar.SPLIT_SIZES, "train", N_TRAIN)
    monkeypatch.setitem(cifar.SPLIT_SIZES, "test", N_TEST)


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat-coloured 32×32 images (survive JPEG almost exactly) and shuffled balanced labels."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, size=(n, 3))
    images = np.broadcast_to(colours[:, None, None, :], (n, 32, 32, 3)).astype(np.uint8).copy()
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    return images, labels


def _batch_blob(images: np.ndarray, labels: np.ndarray) -> bytes:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # official: R plane, G, B
    return pickle.dumps({b"data": data, b"labels": labels.tolist(), b"batch_label": b"x"})


def _write_pickles(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True)
    tr, te = _images(N_TRAIN, 0), _images(N_TEST, 1)
    # a non-flat pixel pattern in one image checks the channel/plane layout exactly
    tr[0][0] = np.arange(32 * 32 * 3).reshape(32, 32, 3) % 256
    for i in range(5):
        sl = slice(4 * i, 4 * i + 4)
        (folder / f"data_batch_{i + 1}").write_bytes(_batch_blob(tr[0][sl], tr[1][sl]))
    (folder / "test_batch").write_bytes(_batch_blob(*te))
    return {"train": tr, "test": te}


def test_pickle_folder_and_parent(tmp_path, tiny_sizes):
    want = _write_pickles(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path / "cifar-10-batches-py", tmp_path):
        for split in ("train", "test"):
            x, y = load_cifar10(root, split=split)
            assert x.shape == (len(want[split][0]), 32, 32, 3) and x.dtype == np.uint8
            assert y.dtype == np.int64
            np.testing.assert_array_equal(x, want[split][0])
            np.testing.assert_array_equal(y, want[split][1])


def test_pickle_targz(tmp_path, tiny_sizes):
    want = _write_pickles(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    x, y = load_cifar10(archive, split="train")
    np.testing.assert_array_equal(x, want["train"][0])
    np.testing.assert_array_equal(y, want["train"][1])
    x, _ = load_cifar10(tmp_path, split="test")  # the folder holding the archive works too
    np.testing.assert_array_equal(x, want["test"][0])


def _write_jpeg_copy(
    folder: Path, *, drop: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    data = {"train": _images(N_TRAIN, 2), "test": _images(N_TEST, 3)}
    rows = []
    with tarfile.open(folder / cifar.JPEG_TAR, "w") as tf:
        for split, (images, labels) in data.items():
            per_class = {c: 0 for c in range(10)}
            for i, (img, lab) in enumerate(zip(images, labels)):
                name = f"{per_class[int(lab)]:04d}.jpg"
                per_class[int(lab)] += 1
                path = f"cifar10_jpeg/{split}/{CIFAR10_CLASSES[lab]}/{name}"
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="JPEG", quality=95)
                blob = buf.getvalue()
                rows.append(
                    {
                        "split": split,
                        "class": CIFAR10_CLASSES[lab],
                        "filename": name,
                        "label": int(lab),
                        "official_index": i,
                        "path_in_tar": path,
                        "nbytes": len(blob),
                    }
                )
                if drop is not None and split == "test" and i == drop:
                    continue
                info = tarfile.TarInfo(path)
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    rng = np.random.default_rng(4)
    rows = [rows[i] for i in rng.permutation(len(rows))]  # the loader must sort, not trust order
    with (folder / cifar.MANIFEST).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return data


def test_jpeg_tar_decodes_in_official_order_and_caches(tmp_path, tiny_sizes, monkeypatch):
    want = _write_jpeg_copy(tmp_path / "copy")
    cache = tmp_path / "cache"
    steps = []
    x, y = load_cifar10(
        tmp_path / "copy",
        split="test",
        cache_dir=cache,
        hook=lambda s, completed, total: steps.append((s, completed, total)),
    )
    assert steps[-1] == ("decode", N_TRAIN + N_TEST, N_TRAIN + N_TEST)
    np.testing.assert_array_equal(y, want["test"][1])
    assert np.abs(x.astype(int) - want["test"][0]).max() <= 3  # JPEG of flat colours: near exact
    cached = sorted(p.name for p in (cache / "cifar10").iterdir())
    assert any(n.endswith("_train_images.npy") for n in cached)  # both splits cached in one pass

    def no_decode(*a, **k):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(cifar, "decode_jpeg_tar", no_decode)
    x2, y2 = load_cifar10(tmp_path / "copy", split="train", cache_dir=cache)
    np.testing.assert_array_equal(y2, want["train"][1])
    assert x2.shape == (N_TRAIN, 32, 32, 3)


def test_jpeg_tar_missing_member_is_an_error(tmp_path, tiny_sizes):
    _write_jpeg_copy(tmp_path / "copy", drop=3)
    with pytest.raises(DataError, match="holds 29 of the 30 images"):
        load_cifar10(tmp_path / "copy", split="test", cache_dir=tmp_path / "cache")


def test_wrong_counts_are_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(cifar.SPLIT_SIZES, "train", N_TRAIN)
    monkeypatch.setitem(cifar.SPLIT_SIZES, "test", 20)  # the fake test split only has 10
    _write_pickles(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match="expected \\(20, 32, 32, 3\\)"):
        load_cifar10(tmp_path, split="test")


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="split='val'"):
        load_cifar10(tmp_path, split="val")
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
    with pytest.raises(DataFileNotFoundError, match="no CIFAR-10 found"):
        load_cifar10(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"0")
    with pytest.raises(DataError, match="kfree cannot read as CIFAR-10"):
        load_cifar10(tmp_path / "x.bin")


def test_no_root_and_nothing_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KFREE_SHARED_DATA", raising=False)
    monkeypatch.setenv("KFREE_CIFAR10", str(tmp_path / "absent"))
    with pytest.raises(DataFileNotFoundError, match=r"Set \$KFREE_CIFAR10"):
        load_cifar10()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KFREE_CACHE", str(tmp_path / "c"))
    assert cifar.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KFREE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cifar.default_cache_dir() == tmp_path / "x" / "kfree"


@pytest.mark.shared_data
def test_shared_copy_counts(shared_data):
    """The staged JPEG copy: 50,000 / 10,000 images listed once each, 10 balanced classes in the
    official order, and the test split's 10,000 JPEGs decode to 32×32 RGB (all 60,000 take
    ≈ 10 s; users decode them once into the cache)."""
    root = shared_data / "cifar10"
    rows = cifar.read_manifest(root)  # checks each split's official_index is 0..n-1 exactly once
    assert {s: len(r) for s, r in rows.items()} == {"train": 50_000, "test": 10_000}
    y = np.array([int(r["label"]) for r in rows["train"]])
    assert np.bincount(y).tolist() == [5000] * 10
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # official data_batch_1 order
    x, y = cifar.decode_jpeg_tar(root, splits=("test",))["test"]
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8 and x.std() > 30
    assert np.bincount(y).tolist() == [1000] * 10
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # official test_batch order
