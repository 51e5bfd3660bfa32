"""Frozen-backbone features for image sets, extracted once, in resumable chunks, and cached.

A CNN forward pass over 60,000 upscaled CIFAR-10 images takes tens of minutes to hours on a
laptop CPU, while the embedding heads trained on top of the features take about a minute. So the
features are computed once and kept in the user's cache directory (never in the repository):

``<cache>/features/<name>/`` holds ``<split>.npy`` (float16 by default, shape ``(n, 1280)``),
``<split>_labels.npy`` when labels are known, and ``meta.json`` (backbone, input size,
normalisation, weights and image checksums, library versions, wall time). While a split is being
extracted, finished chunks sit in ``<split>.chunks/``; a run that is killed loses at most the chunk
in progress and the next run resumes from there. The folder name carries a hash of everything
that changes the numbers (backbone, weights, input size, normalisation, the images themselves), so
a different configuration never reads stale features.

Run the CIFAR-10 extraction from a shell (it is niced by the caller, see the module ``__main__``)::

    nice -n 10 python -m kfree_reproductions.icpr2020.features --size 128 --threads 1
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kfree.exceptions import ConfigError, DataError
from kfree.utils.io import atomic_path, file_sha256, write_json
from kfree_reproductions.icpr2020.cifar import (
    CIFAR10_CLASSES,
    default_cache_dir,
    find_cifar10,
    load_cifar10,
)
from kfree_reproductions.icpr2020.efficientnet import (
    FEATURE_DIM,
    NORMALIZATIONS,
    EfficientNetLite,
    default_weights_path,
    load_efficientnet_lite,
)

log = logging.getLogger(__name__)

Hook = Callable[..., None]

BACKBONES = {"efficientnet-lite0": "lite0", "efficientnet-lite1": "lite1", "efficientnet-lite2": "lite2"}  # name -> variant
DEFAULT_SIZE = 128  # measured trade-off of time vs quality, see results/icpr2020/backbone_check.md
DTYPES = {"float16": np.float16, "float32": np.float32}


def _sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8).data).hexdigest()


def extract_features(
    model: EfficientNetLite,
    images: np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    size: int = DEFAULT_SIZE,
    batch_size: int = 50,
    chunk_size: int = 2000,
    dtype: str = "float16",
    hook: Hook | None = None,
) -> np.ndarray:
    """Pooled backbone features of ``images``, written to ``out_path`` (``.npy``), resumable.

    Parameters
    ----------
    model : EfficientNetLite
        The backbone (fused or not); used in eval mode under ``torch.inference_mode``.
    images : ndarray of shape (n, h, w, 3), uint8 RGB.
    out_path : path
        Final ``.npy`` file. If it exists with the right shape it is returned without any work.
        Chunks go to ``<out_path without .npy>.chunks/chunk_<start>.npy`` until all are done, then
        they are concatenated and removed. Finished chunks are trusted on resume, so the path must
        be specific to the images, backbone and size (:func:`cifar10_feature_dir` hashes them
        into the folder name).
    size : int
        Square input size the images are resized to (224 is Lite0's native size; smaller is
        quadratically faster, at some cost in quality).
    batch_size : int
        Images per forward pass (50 keeps activations small; bigger batches are not faster on
        CPU, where fresh memory is expensive to touch).
    chunk_size : int
        Images per saved chunk: the most work a kill can lose.
    dtype : {"float16", "float32"}
        Storage type (float16 halves the disk footprint; features are in [0, 6] after ReLU6).
    hook : callable, optional
        ``hook("extract", completed=i, total=n)`` after every chunk.

    Returns
    -------
    ndarray of shape (n, 1280), of ``dtype``, memory-mapped from ``out_path``.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} must be one of {tuple(DTYPES)}")
    if batch_size < 1 or chunk_size < 1:
        raise ConfigError(f"batch_size={batch_size} and chunk_size={chunk_size} must be >= 1")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(
            f"images must be uint8 of shape (n, h, w, 3), got {images.dtype} {images.shape}"
        )
    out_path = Path(out_path)
    n = int(images.shape[0])
    if out_path.is_file():
        done = np.load(out_path, mmap_mode="r")
        if done.shape == (n, FEATURE_DIM):
            return done
        log.warning(
            "%s has shape %s, expected %s; extracting again", out_path, done.shape, (n, FEATURE_DIM)
        )
    chunk_dir = out_path.with_suffix(".chunks")
    chunk_dir.mkdir(parents=True, exist_ok=True)
    np_dtype = DTYPES[dtype]
    model = model.eval()
    timing_path = chunk_dir / "timing.json"  # seconds per chunk, summed over resumed runs
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    starts = list(range(0, n, chunk_size))
    for start in starts:
        stop = min(start + chunk_size, n)
        cpath = chunk_dir / f"chunk_{start:07d}.npy"
        if cpath.is_file():
            try:
                if np.load(cpath, mmap_mode="r").shape == (stop - start, FEATURE_DIM):
                    if hook is not None:
                        hook("extract", completed=stop, total=n)
                    continue
            except (OSError, ValueError):
                pass  # a damaged chunk is recomputed
        t0 = time.perf_counter()
        parts = []
        with torch.inference_mode():
            for b in range(start, stop, batch_size):
                x = model.preprocess(images[b : min(b + batch_size, stop)], size)
                parts.append(model.features(x).numpy().astype(np_dtype))
        feats = np.concatenate(parts)  # (stop - start, 1280)
        if not np.all(np.isfinite(feats)):
            raise DataError(f"non-finite features in images {start}..{stop}; check the weights")
        with atomic_path(cpath) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
        dt = time.perf_counter() - t0
        timing[str(start)] = round(dt, 2)
        write_json(timing_path, timing)
        log.info(
            "features %d..%d of %d in %.1f s (%.1f img/s)", start, stop, n, dt, (stop - start) / dt
        )
        if hook is not None:
            hook("extract", completed=stop, total=n)
    full = np.concatenate([np.load(chunk_dir / f"chunk_{s:07d}.npy") for s in starts])
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, full)
    write_json(
        out_path.with_suffix(".timing.json"),
        {
            "compute_s": round(sum(timing.values()), 1),
            "n": n,
            "chunks_timed": len(timing),
            "size": size,
            "batch_size": batch_size,
            "torch_threads": torch.get_num_threads(),
        },
    )
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return np.load(out_path, mmap_mode="r")


def _cifar10_images_sha256(
    source: Path, cache_dir: str | os.PathLike[str] | None
) -> dict[str, str]:
    """sha256 of the decoded images of both splits, remembered per source fingerprint.

    Hashing needs the decoded arrays; the result is stored in
    ``<cache>/cifar10/images_sha256.json`` under a fingerprint of the source files' names, sizes
    and modification times, so that reading cached features later does not touch the images.
    """
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    stamp = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    fingerprint = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    memo_path = base / "cifar10" / "images_sha256.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8")) if memo_path.is_file() else {}
    except (OSError, ValueError):
        memo = {}
    if fingerprint in memo and set(memo[fingerprint]) == {"train", "test"}:
        return memo[fingerprint]
    sha = {
        s: _sha256_array(load_cifar10(source, split=s, cache_dir=cache_dir)[0])
        for s in ("train", "test")
    }
    memo[fingerprint] = sha
    write_json(memo_path, memo)
    return sha


def _versions() -> dict[str, str]:
    import PIL

    try:
        from importlib.metadata import version

        kfree_v = version("kfree")
    except Exception:
        kfree_v = "unknown"
    return {
        "kfree": kfree_v,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }


def cifar10_feature_dir(
    *,
    root: str | os.PathLike[str] | None = None,
    backbone: str = "efficientnet-lite0",
    size: int = DEFAULT_SIZE,
    normalization: str = "tf",
    dtype: str = "float16",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The cache folder for one feature configuration, and the metadata that names it.

    The folder name is ``cifar10_<backbone>_s<size>_<hash>``, the hash covering the backbone, its
    weights' sha256, size, normalisation, dtype and the sha256 of the images of both splits.
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"backbone={backbone!r} must be one of {tuple(BACKBONES)}")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization={normalization!r} must be one of {tuple(NORMALIZATIONS)}")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} must be one of {tuple(DTYPES)}")
    if not 32 <= int(size) <= 1024:
        raise ConfigError(f"size={size} must be in [32, 1024] (224 is the backbone's native size)")
    source = find_cifar10(root)
    images_sha = _cifar10_images_sha256(source, cache_dir)
    weights = default_weights_path(BACKBONES[backbone])
    meta: dict[str, Any] = {
        "dataset": "cifar10",
        "source": str(source),
        "images_sha256": images_sha,
        "backbone": backbone,
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
        "size": int(size),
        "resize": "bilinear (align_corners=False)",
        "normalization": normalization,
        "dtype": dtype,
        "feature_dim": FEATURE_DIM,
        "pooling": "global average of the ReLU6 head (1280 channels)",
        "classes": list(CIFAR10_CLASSES),
    }
    key_fields = {
        k: meta[k]
        for k in ("images_sha256", "backbone", "weights_sha256", "size", "normalization", "dtype")
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:10]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "features" / f"cifar10_{backbone}_s{int(size)}_{key}", meta


def extract_cifar10_features(
    *,
    root: str | os.PathLike[str] | None = None,
    splits: tuple[str, ...] = ("train", "test"),
    backbone: str = "efficientnet-lite0",
    size: int = DEFAULT_SIZE,
    normalization: str = "tf",
    dtype: str = "float16",
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 50,
    chunk_size: int = 2000,
    hook: Hook | None = None,
) -> Path:
    """Extract (or finish extracting) backbone features of CIFAR-10; return the folder.

    Resumable: run it again after a kill and it continues from the last saved chunk. The test
    split goes first when both are asked for, as it is the one the clustering is evaluated on.
    See :func:`load_cifar10_features` for reading the result.
    """
    folder, meta = cifar10_feature_dir(
        root=root,
        backbone=backbone,
        size=size,
        normalization=normalization,
        dtype=dtype,
        cache_dir=cache_dir,
    )
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["splits"] = old.get("splits", {})
    else:
        meta["splits"] = {}
    meta["versions"] = _versions()
    model = load_efficientnet_lite(BACKBONES[backbone], normalization=normalization)
    model = model.fuse_batchnorm()
    for split in sorted(splits, key=lambda s: s != "test"):
        if split in meta["splits"] and (folder / f"{split}.npy").is_file():
            continue
        images, labels = load_cifar10(meta["source"], split=split, cache_dir=cache_dir)
        with atomic_path(folder / f"{split}_labels.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, labels)
        t0 = time.perf_counter()
        extract_features(
            model,
            images,
            folder / f"{split}.npy",
            size=size,
            batch_size=batch_size,
            chunk_size=chunk_size,
            dtype=dtype,
            hook=hook,
        )
        tpath = folder / f"{split}.timing.json"
        timing = json.loads(tpath.read_text()) if tpath.is_file() else {}
        meta["splits"][split] = {
            "n": int(images.shape[0]),
            "wall_s_last_run": round(time.perf_counter() - t0, 1),
            "compute_s_all_runs": timing.get("compute_s"),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch_threads": torch.get_num_threads(),
        }
        write_json(meta_path, meta)
    write_json(meta_path, meta)
    return folder


def load_cifar10_features(
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    backbone: str = "efficientnet-lite0",
    size: int = DEFAULT_SIZE,
    normalization: str = "tf",
    dtype: str = "float16",
    cache_dir: str | os.PathLike[str] | None = None,
    extract: bool = False,
    hook: Hook | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cached backbone features (default EfficientNet-Lite0) of one CIFAR-10 split.

    Parameters
    ----------
    split : {"train", "test"}
    extract : bool
        Compute missing features now (tens of minutes on a CPU) instead of raising.

    Returns
    -------
    X : ndarray of shape (n, 1280), float32 (non-negative; not normalised).
    y : ndarray of shape (n,), int64 labels in the official order.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split={split!r} must be 'train' or 'test'")
    folder, _ = cifar10_feature_dir(
        root=root,
        backbone=backbone,
        size=size,
        normalization=normalization,
        dtype=dtype,
        cache_dir=cache_dir,
    )
    path = folder / f"{split}.npy"
    if not path.is_file():
        if not extract:
            raise DataError(
                f"no cached CIFAR-10 {split} features at {path}; run "
                f"`nice -n 10 python -m kfree_reproductions.icpr2020.features --backbone {backbone} --size {size}` "
                "(resumable) or pass "
                "extract=True"
            )
        extract_cifar10_features(
            root=root,
            splits=(split,),
            backbone=backbone,
            size=size,
            normalization=normalization,
            dtype=dtype,
            cache_dir=cache_dir,
            hook=hook,
        )
    X = np.load(path).astype(np.float32)
    y = np.load(folder / f"{split}_labels.npy")
    if X.shape[0] != y.shape[0]:
        raise DataError(
            f"{path}: {X.shape[0]} feature rows for {y.shape[0]} labels; delete {folder}"
        )
    return X, y


def tune_malloc() -> bool:
    """Keep freed memory in the process heap (glibc only) so that the next batch reuses it.

    By default glibc returns every large block (> 128 KiB, growing to 32 MiB) to the kernel, and
    the next batch's activations are fresh pages that must fault in again; EfficientNet's large,
    short-lived activations pay that on every batch. Process-wide, so only the command-line
    entry point calls it. Returns whether it took effect.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20)  # largest value glibc accepts on 64-bit
        ok &= libc.mallopt(m_trim_threshold, 1 << 30)
        ok &= libc.mallopt(m_top_pad, 256 << 20)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m kfree_reproductions.icpr2020.features``: extract CIFAR-10 features into the cache (resumable)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--root", default=None, help="CIFAR-10 folder (default: shared copy)")
    p.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help="input size (default %(default)s)"
    )
    p.add_argument("--backbone", default="efficientnet-lite0", choices=tuple(BACKBONES))
    p.add_argument("--normalization", default="tf", choices=tuple(NORMALIZATIONS))
    p.add_argument("--dtype", default="float16", choices=tuple(DTYPES))
    p.add_argument("--splits", default="test,train", help="comma-separated (default %(default)s)")
    p.add_argument("--cache-dir", default=None, help="default $KFREE_CACHE or ~/.cache/kfree")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default %(default)s: on a shared, busy CPU two threads spent "
        "≈ 5× more CPU per image in OpenMP spin-waits than one)",
    )
    p.add_argument("--chunk-size", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=50)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(a.threads)
    log.info("malloc tuned: %s; torch threads: %d", tune_malloc(), a.threads)
    folder = extract_cifar10_features(
        root=a.root,
        splits=tuple(s for s in a.splits.split(",") if s),
        backbone=a.backbone,
        size=a.size,
        normalization=a.normalization,
        dtype=a.dtype,
        cache_dir=a.cache_dir,
        batch_size=a.batch_size,
        chunk_size=a.chunk_size,
    )
    log.info("features in %s", folder)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised from the shell
    raise SystemExit(main())
