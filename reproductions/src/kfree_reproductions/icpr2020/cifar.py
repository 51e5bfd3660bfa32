"""CIFAR-10 as uint8 arrays, from the shared JPEG copy or from the official python pickles.

Two layouts are understood:

- **JPEG tar + manifest** (the copy staged in ``shared/data/cifar10/``): ``cifar10_jpeg.tar``
  holding 60,000 JPEG files and ``cifar10_manifest.csv`` giving each file's split, label and
  position in the official order. This copy is a **lossy JPEG re-encoding** (quality 75,
  ≈ 30.5 dB PSNR against the official pixels), so accuracy and clustering numbers computed on it
  can differ slightly from papers that used the official pickles. Decoding 60,000 JPEGs takes a
  while, so it happens once and the arrays are cached (``.npy``) in the cache directory.
- **Official python pickles** (``cifar-10-batches-py/`` with ``data_batch_1..5`` and
  ``test_batch``, or the ``cifar-10-python.tar.gz`` archive that contains it): read directly,
  these are exact pixels and fast to load, so nothing is cached.

Either way the samples come back in the official order (train = ``data_batch_1..5``
concatenated, test = ``test_batch``), with the official label numbering
(:data:`CIFAR10_CLASSES`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kfree.exceptions import ConfigError, DataError, DataFileNotFoundError
from kfree.utils.io import atomic_path

log = logging.getLogger(__name__)

Hook = Callable[..., None]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SPLIT_SIZES: dict[str, int] = {"train": 50_000, "test": 10_000}
JPEG_TAR = "cifar10_jpeg.tar"
MANIFEST = "cifar10_manifest.csv"
PICKLE_DIR = "cifar-10-batches-py"
PICKLE_ARCHIVE = "cifar-10-python.tar.gz"
PICKLE_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CACHE_FORMAT = 1  # bump when the cached arrays change meaning


def default_cache_dir() -> Path:
    """kfree's cache directory: ``$KFREE_CACHE`` if set, else ``$XDG_CACHE_HOME/kfree``, else
    ``~/.cache/kfree``. Decoded images and extracted features live here, never in the repo."""
    env = os.environ.get("KFREE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "kfree"


def _candidate_roots() -> list[Path]:
    """Where to look for CIFAR-10 when the caller gives no ``root`` (in this order)."""
    out: list[Path] = []
    if os.environ.get("KFREE_CIFAR10"):
        out.append(Path(os.environ["KFREE_CIFAR10"]).expanduser())
    if os.environ.get("KFREE_SHARED_DATA"):
        out.append(Path(os.environ["KFREE_SHARED_DATA"]).expanduser() / "cifar10")
    cwd = Path.cwd()
    out += [cwd / "shared" / "data" / "cifar10", cwd.parent / "shared" / "data" / "cifar10"]
    return out


def _layout(root: Path) -> tuple[str, Path]:
    """Classify ``root``: ``("jpeg", dir)``, ``("pickle_dir", dir)`` or ``("pickle_tar", file)``."""
    if root.is_file():
        if root.name.endswith((".tar.gz", ".tgz")):
            return "pickle_tar", root
        if root.name == JPEG_TAR:
            return _layout(root.parent)
        raise DataError(
            f"{root} is a file kfree cannot read as CIFAR-10; pass the folder holding "
            f"{JPEG_TAR} + {MANIFEST}, a {PICKLE_DIR}/ folder, or {PICKLE_ARCHIVE}"
        )
    if (root / JPEG_TAR).is_file() and (root / MANIFEST).is_file():
        return "jpeg", root
    if (root / "data_batch_1").is_file() and (root / "test_batch").is_file():
        return "pickle_dir", root
    if (root / PICKLE_DIR).is_dir():
        return _layout(root / PICKLE_DIR)
    if (root / PICKLE_ARCHIVE).is_file():
        return "pickle_tar", root / PICKLE_ARCHIVE
    found = sorted(p.name for p in root.iterdir())[:10] if root.is_dir() else []
    raise DataFileNotFoundError(
        f"no CIFAR-10 found in {root} (it holds {found}); expected {JPEG_TAR} + {MANIFEST}, "
        f"a {PICKLE_DIR}/ folder with data_batch_1..5 and test_batch, or {PICKLE_ARCHIVE}"
    )


def find_cifar10(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve where CIFAR-10 lives.

    Parameters
    ----------
    root : path, optional
        A folder with ``cifar10_jpeg.tar`` + ``cifar10_manifest.csv``, a ``cifar-10-batches-py``
        folder (or its parent), or ``cifar-10-python.tar.gz``. When omitted: ``$KFREE_CIFAR10``,
        then ``$KFREE_SHARED_DATA/cifar10``, then ``shared/data/cifar10`` beside or above the
        working directory.
    """
    if root is not None:
        p = Path(root).expanduser()
        if not p.exists():
            raise DataFileNotFoundError(f"CIFAR-10 root {p} does not exist (check the path)")
        return _layout(p)[1]
    tried = _candidate_roots()
    for p in tried:
        if p.exists():
            try:
                return _layout(p)[1]
            except DataError:
                continue
    raise DataFileNotFoundError(
        "CIFAR-10 not found; tried "
        + ", ".join(str(p) for p in tried)
        + ". Set $KFREE_CIFAR10 to the folder holding the shared JPEG copy or the official "
        "cifar-10-batches-py (from Python you can also pass root=...)"
    )


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike[str] | None = None,
    hook: Hook | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one CIFAR-10 split as uint8 images and int64 labels, in the official order.

    Parameters
    ----------
    root : path, optional
        See :func:`find_cifar10`. The shared copy is a lossy JPEG re-encoding of the official
        images (≈ 30.5 dB PSNR); the official pickles give the exact pixels.
    split : {"train", "test"}
        ``train``: 50,000 images (``data_batch_1..5``); ``test``: 10,000 (``test_batch``).
    cache_dir : path, optional
        Where decoded JPEG arrays are cached (default :func:`default_cache_dir`, under
        ``cifar10/``). The first call decodes all 60,000 images (both splits) once.
    hook : callable, optional
        Progress while decoding: ``hook("decode", completed=i, total=60000)``.

    Returns
    -------
    images : ndarray of shape (n, 32, 32, 3), uint8, RGB, channels last.
    labels : ndarray of shape (n,), int64 in ``0..9`` (:data:`CIFAR10_CLASSES`).
    """
    if split not in SPLIT_SIZES:
        raise ConfigError(f"split={split!r} must be one of {tuple(SPLIT_SIZES)}")
    path = find_cifar10(root)
    kind, path = _layout(path)
    if kind == "jpeg":
        images, labels = _load_jpeg_cached(path, split, cache_dir, hook)
    elif kind == "pickle_dir":
        images, labels = _load_pickles_dir(path, split)
    else:
        images, labels = _load_pickles_tar(path, split)
    _verify(images, labels, split, source=str(path))
    return images, labels


# --- verification --------------------------------------------------------------------------


def _verify(images: np.ndarray, labels: np.ndarray, split: str, *, source: str) -> None:
    n = SPLIT_SIZES[split]
    if images.shape != (n, 32, 32, 3) or images.dtype != np.uint8:
        raise DataError(
            f"CIFAR-10 {split} from {source}: images have shape {images.shape} dtype "
            f"{images.dtype}, expected ({n}, 32, 32, 3) uint8; the copy is incomplete or corrupt"
        )
    if labels.shape != (n,):
        raise DataError(f"CIFAR-10 {split} from {source}: {labels.shape[0]} labels for {n} images")
    counts = np.bincount(labels, minlength=10) if labels.size and labels.min() >= 0 else None
    if counts is None or counts.size != 10 or not np.all(counts == n // 10):
        raise DataError(
            f"CIFAR-10 {split} from {source}: class counts {None if counts is None else counts.tolist()}"
            f" are not 10 classes × {n // 10}; the copy is incomplete or corrupt"
        )


# --- official pickles ----------------------------------------------------------------------


def _unpickle_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(blob, encoding="bytes")
    except Exception as e:
        raise DataError(f"cannot unpickle CIFAR-10 batch {name}: {e}") from e
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"CIFAR-10 batch {name} has keys {sorted(d)}, expected 'data' and 'labels'")
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-10 batch {name}: data has shape {data.shape}, expected (n, 3072)")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 3072) -> (n, 32, 32, 3)
    return np.ascontiguousarray(images), np.asarray(d["labels"], dtype=np.int64)


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _load_pickles_dir(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in PICKLE_FILES[split]:
        f = folder / name
        if not f.is_file():
            raise DataFileNotFoundError(
                f"CIFAR-10 batch {f} is missing; re-extract {PICKLE_ARCHIVE}"
            )
        parts.append(_unpickle_batch(f.read_bytes(), name))
    return _concat(parts)


def _load_pickles_tar(archive: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = {Path(m.name).name: m for m in tf.getmembers() if m.isfile()}
            for name in PICKLE_FILES[split]:
                if name not in members:
                    raise DataError(
                        f"{archive} has no member {name}; is it cifar-10-python.tar.gz?"
                    )
                parts.append(_unpickle_batch(tf.extractfile(members[name]).read(), name))
    except tarfile.TarError as e:
        raise DataError(f"cannot read {archive} as a tar archive: {e}") from e
    return _concat(parts)


# --- JPEG tar + manifest -------------------------------------------------------------------


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, list[dict[str, str]]]:
    """Rows of ``cifar10_manifest.csv`` per split, sorted by ``official_index``.

    Checks that each split's ``official_index`` runs over ``0..n-1`` exactly once and that each
    row's ``label`` matches its ``class`` name in the official numbering.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataFileNotFoundError(f"manifest {path} not found (it ships beside {JPEG_TAR})")
    need = {"split", "class", "label", "official_index", "path_in_tar"}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"manifest {path} lacks columns {sorted(missing)}")
        rows: dict[str, list[dict[str, str]]] = {s: [] for s in SPLIT_SIZES}
        for r in reader:
            if r["split"] not in rows:
                raise DataError(f"manifest {path}: unknown split {r['split']!r}")
            rows[r["split"]].append(r)
    for split, rs in rows.items():
        rs.sort(key=lambda r: int(r["official_index"]))
        idx = [int(r["official_index"]) for r in rs]
        if idx != list(range(SPLIT_SIZES[split])):
            raise DataError(
                f"manifest {path}: split {split} has {len(rs)} rows whose official_index is not "
                f"0..{SPLIT_SIZES[split] - 1} exactly once; the manifest is incomplete"
            )
        for r in rs:
            lab = int(r["label"])
            if not 0 <= lab < 10 or CIFAR10_CLASSES[lab] != r["class"]:
                raise DataError(
                    f"manifest {path}: row {r} has label {lab} for class {r['class']!r}"
                )
    return rows


def _source_key(folder: Path) -> str:
    """Cheap fingerprint of the JPEG source (sizes and mtimes) plus the decoder's version, so a
    changed copy or a different libjpeg invalidates the cache."""
    import PIL

    parts = [f"format={_CACHE_FORMAT}", f"pillow={PIL.__version__}"]
    for name in (JPEG_TAR, MANIFEST):
        st = (folder / name).stat()
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cache_paths(cache_dir: Path, key: str, split: str) -> tuple[Path, Path]:
    d = cache_dir / "cifar10"
    return d / f"jpeg_{key}_{split}_images.npy", d / f"jpeg_{key}_{split}_labels.npy"


def _load_jpeg_cached(
    folder: Path, split: str, cache_dir: str | os.PathLike[str] | None, hook: Hook | None
) -> tuple[np.ndarray, np.ndarray]:
    cdir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = _source_key(folder)
    img_path, lab_path = _cache_paths(cdir, key, split)
    if img_path.is_file() and lab_path.is_file():
        try:
            return np.load(img_path), np.load(lab_path)
        except (OSError, ValueError) as e:  # a damaged cache is rebuilt, not fatal
            log.warning("cached CIFAR-10 arrays %s unreadable (%s); decoding again", img_path, e)
    log.info("decoding CIFAR-10 JPEGs from %s (once; cached in %s)", folder, img_path.parent)
    arrays = decode_jpeg_tar(folder, hook=hook)
    for s, (images, labels) in arrays.items():
        _verify(images, labels, s, source=str(folder))
        ip, lp = _cache_paths(cdir, key, s)
        with atomic_path(ip) as tmp, open(tmp, "wb") as f:
            np.save(f, images)
        with atomic_path(lp) as tmp, open(tmp, "wb") as f:
            np.save(f, labels)
    info = {
        "source": str(folder),
        "key": key,
        "format": _CACHE_FORMAT,
        "note": "lossy JPEG re-encoding of CIFAR-10 (quality 75), decoded with Pillow",
    }
    with atomic_path(img_path.parent / f"jpeg_{key}.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return arrays[split]


def decode_jpeg_tar(
    folder: str | os.PathLike[str], *, hook: Hook | None = None, splits: tuple[str, ...] = ("train", "test")
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode the JPEGs of ``splits`` in ``cifar10_jpeg.tar`` (one sequential pass) into uint8 arrays.

    Returns ``{"train": (images, labels), "test": (images, labels)}`` (the splits asked for) in
    the official order, labels taken from the manifest. Raises
    :class:`~kfree.exceptions.DataError` when a listed file is missing from the tar or is not a
    32×32 image.
    """
    from PIL import Image

    folder = Path(folder)
    rows = read_manifest(folder)
    where: dict[str, tuple[str, int]] = {}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, rs in rows.items():
        if split not in splits:
            continue
        n = len(rs)
        out[split] = (
            np.zeros((n, 32, 32, 3), np.uint8),
            np.array([int(r["label"]) for r in rs], np.int64),
        )
        for i, r in enumerate(rs):
            where[r["path_in_tar"]] = (split, i)
    total = len(where)
    seen = 0
    tar_path = folder / JPEG_TAR
    try:
        with tarfile.open(tar_path, "r:") as tf:
            for m in tf:
                if not m.isfile() or m.name not in where:
                    continue
                split, i = where.pop(m.name)  # pop: a duplicate member is decoded once
                blob = tf.extractfile(m).read()
                try:
                    with Image.open(io.BytesIO(blob)) as im:
                        arr = np.asarray(im.convert("RGB"))
                except Exception as e:
                    raise DataError(f"{tar_path}: cannot decode {m.name}: {e}") from e
                if arr.shape != (32, 32, 3):
                    raise DataError(f"{tar_path}: {m.name} is {arr.shape}, expected (32, 32, 3)")
                out[split][0][i] = arr
                seen += 1
                if hook is not None and (seen % 5000 == 0 or seen == total):
                    hook("decode", completed=seen, total=total)
                if not where:  # every listed image decoded: the rest of the tar is other splits
                    break
    except tarfile.TarError as e:
        raise DataError(f"cannot read {tar_path} as a tar archive: {e}") from e
    if seen != total:
        raise DataError(
            f"{tar_path} holds {seen} of the {total} images its manifest lists; the tar is "
            "incomplete (compare its sha256 with the NOTE.md beside it)"
        )
    return out
