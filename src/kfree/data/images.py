"""Users' photos as kfree reads them: which files a folder or a list names, and one photo as pixels.

A photo library is a folder tree (often one folder per person when it is labelled) or a list of
paths. :func:`find_images` turns either into a sorted list of files, so that the rows an encoder
writes come in the same order on every run; :func:`read_rgb` gives the pixels the way a viewer
shows them (a phone's EXIF rotation applied), shrunk when very large, because a face detector's
cost grows with the pixels and a 12-megapixel photo holds no more face than a 1,600-pixel one.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..exceptions import DataError, DataFileNotFoundError, first_line
from .io import read_lines, read_npz

#: what to do with HEIC photos where pillow-heif is missing
HEIF_ADVICE = "HEIC/HEIF photos are read once pillow-heif is installed (pip install pillow-heif)"
#: file endings read as images when a folder is searched (a list of paths may name any file)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".pgm",
                  ".ppm", ".pbm")
#: photo formats kfree does not read (cameras' raw files, newer and editors' formats): a folder
#: holding them is told to convert them; other files passed over (notes, Thumbs.db) need nothing,
#: and HEIC has advice of its own (:data:`HEIF_ADVICE`)
UNREAD_PHOTO_SUFFIXES = (".cr2", ".cr3", ".nef", ".nrw", ".arw", ".dng", ".raf", ".orf", ".rw2", ".pef", ".srw",
                         ".jxl", ".jp2", ".j2k", ".psd", ".xcf", ".svg")
#: the photos of iPhones (and of many Android phones): read when pillow-heif is installed
#: (``kfree[faces]`` brings it), passed over and counted otherwise
HEIF_SUFFIXES = (".heic", ".heif", ".hif")


@functools.cache
def heif_readable() -> bool:
    """Whether Pillow reads HEIC/HEIF photos. pillow-heif adds the reader to Pillow on the first
    call, in each process that reads photos (not at import: importing kfree changes no library's
    state); False without pillow-heif."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def image_suffixes() -> tuple[str, ...]:
    """The file endings read as images when a folder is searched: :data:`IMAGE_SUFFIXES`, and
    :data:`HEIF_SUFFIXES` when pillow-heif is installed."""
    return IMAGE_SUFFIXES + (HEIF_SUFFIXES if heif_readable() else ())


def find_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[str | None], dict[str, int]]:
    """The image files named by ``inputs`` and, for each, the folder it lies in below its root.

    Each input is a folder (searched recursively for :func:`image_suffixes`, hidden files and
    folders skipped, sorted by path), a ``.txt`` list of paths (one per line, relative ones from
    the list's folder; blank lines skipped), or an image file. The second list gives each file's
    folder just below the folder input it was found in (``"alice"`` for ``photos/alice/1.jpg``
    and for ``photos/alice/2019/2.jpg`` under ``photos/``), the identity label of a library laid
    out one folder per person (subfolders by year or event stay that person's), and None for
    files directly in the folder given, named one by one or by a list. A file named twice is one file, kept where first
    named: encoding it twice would make it two rows of one face. The third value counts the
    files of other suffixes a folder held (``{".heic": 3}`` without pillow-heif), which were
    passed over and should be said: a person whose photos are all HEIC would otherwise vanish
    unnoticed."""
    paths: list[Path] = []
    groups: list[str | None] = []
    seen: set[Path] = set()
    ignored: Counter[str] = Counter()
    suffixes = image_suffixes()

    def add(p: Path, group: str | None) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(p)
            groups.append(group)

    for item in inputs:
        root = Path(item)
        if not root.exists():
            raise DataFileNotFoundError(f"not found: {root} (give image files, folders of them, or a .txt list)")
        if root.is_dir():
            files = [p for p in root.rglob("*") if p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(root).parts)]
            found = sorted(p for p in files if p.suffix.lower() in suffixes)
            ignored.update(Counter(p.suffix.lower() or "(none)" for p in files if p.suffix.lower() not in suffixes))
            if not found:
                raise DataError(f"{root} holds no image file ({', '.join(suffixes)}, in any subfolder)"
                                + (f"; {HEIF_ADVICE}" if ignored.keys() & set(HEIF_SUFFIXES) else ""))
            for p in found:
                rel = p.relative_to(root).parts
                add(p, rel[0] if len(rel) > 1 else None)
        elif root.suffix.lower() == ".txt":
            lines = [line.strip() for line in read_lines(root)]
            listed = [Path(line) if Path(line).is_absolute() else root.parent / line for line in lines if line]
            if not listed:
                raise DataError(f"{root.name} lists no image path (one per line)")
            if missing := [p for p in listed if not p.is_file()]:
                raise DataFileNotFoundError(f"{root.name} lists {len(missing)} path{'s' if len(missing) > 1 else ''} "
                                            f"that {'are' if len(missing) > 1 else 'is'} no file (first: {missing[0]}); "
                                            "relative paths are read from the list's folder")
            for p in listed:
                add(p, None)
        else:
            add(root, None)
    return paths, groups, dict(ignored)


def _spread(n: int) -> list[int]:
    """Positions of the first 20 of ``n`` listed paths and a spread of 30 over the rest: the
    paths checked before deciding a list moved (photos deleted since, the first ones say, are no
    sign of that)."""
    return sorted(set(range(min(20, n))) | set(np.linspace(0, n - 1, 30).astype(int).tolist())) if n else []


def locate_images(listed: Sequence[str], listed_in: Path, *, image_root: Path | None = None,
                  written_in: Path | None = None, strict: bool = True) -> list[str]:
    """The image files of ``listed`` (paths as a list file holds them), with relative paths read
    from ``image_root``, else from the folder of ``listed_in`` (the file listing them) or, for an
    .npz of ``kfree encode faces`` that was moved away from the photos, ``written_in``, the
    folder it was written in (its ``root``). Under ``image_root`` the paths may also have lost
    their first folders ("photos/a/1.jpg" in the folder that now holds "a/"), and absolute paths
    are read there too ("/home/ann/photos/a/1.jpg" moved to ``image_root``/"a/1.jpg": a clusters
    file's ``photo`` column, after the photos moved to another disk).

    When none of the first relative paths is found from there (or, without ``image_root``, none of
    the first absolute paths is found), a one-line DataError says where they were looked for and
    what to give (``strict``; else they are read from the list's
    folder): a report of blank tiles, or one failing on its first photo with a bare "not
    found", would not say that the list had moved."""
    def parts(p: str) -> tuple[str, ...]:  # under --image-root an absolute path is moved as a relative one is
        q = Path(p)
        return q.parts[1:] if q.is_absolute() and image_root is not None else q.parts

    # the paths read from a base folder: the relative ones, and under --image-root all of them
    from_base = [p for p in listed if image_root is not None or not Path(p).is_absolute()]
    if image_root is not None:
        if not image_root.is_dir():
            raise DataFileNotFoundError(f"--image-root {image_root}: no such folder")
        bases = [image_root]
    else:
        bases = [listed_in.resolve().parent]
        if written_in is not None and written_in != bases[0]:
            bases.append(written_in)
    sample = [parts(from_base[i]) for i in _spread(len(from_base))]
    tries = [(b, k) for b in bases for k in range(max(map(len, sample)) if image_root is not None and sample else 1)]
    base, drop = next(((b, k) for b, k in tries
                       if any(len(p) > k and os.path.exists(os.path.normpath(b.joinpath(*p[k:]))) for p in sample)),
                      (None, 0))
    if base is None and from_base:
        if not strict:
            base = bases[0]
        elif image_root is not None:
            raise DataFileNotFoundError(
                f"{listed_in.name}: its images are not found under --image-root {image_root} (first: "
                f"{from_base[0]}), even without their first folders; give the folder they now lie in")
        else:
            where = " or ".join(str(b) for b in bases)
            raise DataFileNotFoundError(
                f"{listed_in.name}: its images are not found from {where} (first: {from_base[0]}); relative paths are "
                f"read from the folder of {listed_in.name}" + (" or the one it was written in" if len(bases) > 1 else "")
                + "; give the folder they now lie in with --image-root")
    absolute = [p for p in listed if image_root is None and Path(p).is_absolute()]
    if strict and absolute and not any(os.path.exists(absolute[i]) for i in _spread(len(absolute))):
        raise DataFileNotFoundError(f"{listed_in.name}: its images are not where it says (first: {absolute[0]}); "
                                    "give the folder they now lie in with --image-root")
    # ("photos/../x" resolved by name: the folder the paths start from may be gone since)
    return [p if Path(p).is_absolute() and image_root is None else os.path.normpath(base.joinpath(*parts(p)[drop:]))
            for p in listed]


def written_in(p: Path) -> Path | None:
    """The folder the .npz of ``kfree encode faces`` at ``p`` was written in (its ``root``: where
    its relative paths start), or None for another file."""
    if Path(p).suffix.lower() != ".npz":
        return None
    root = read_npz(Path(p), ("root",))[1].get("root")
    return None if root is None else Path(str(root))


class FacePhotos(NamedTuple):
    """Each row's photo and its face's box there (left, top, right, bottom in the photo's pixels;
    None when the file has no boxes)."""

    paths: list[str]
    boxes: np.ndarray | None


def face_photos(p: Path) -> FacePhotos | None:
    """The photo of each row of ``p`` when it is the .npz of ``kfree encode faces`` (its ``paths``,
    found as :func:`locate_images` finds them) and each face's box, for the clusters file to name
    each face's photo and where the face is in it (a report of a table then shows the face, not
    the whole photo); None for any other file."""
    if Path(p).suffix.lower() != ".npz":
        return None
    held = read_npz(Path(p), ("paths", "boxes"))[1]
    paths = held.get("paths")
    if paths is None or paths.ndim != 1:
        return None
    boxes = held.get("boxes")
    boxes = boxes.astype(np.float64) if boxes is not None and boxes.shape == (paths.shape[0], 4) else None
    return FacePhotos(locate_images([str(v) for v in paths.tolist()], Path(p), strict=False,
                                    written_in=written_in(p)), boxes)


def read_rgb(path: str | Path, *, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """The photo at ``path`` as a uint8 RGB array (height, width, 3), as a viewer shows it (EXIF
    rotation applied; grey, palette, 16-bit, float and alpha images made 8-bit RGB as
    :func:`viewable_rgb` does), and the factor its sides were
    multiplied by: 1.0, or less when the longer side was over ``max_side`` pixels and the photo
    was shrunk to it. Divide coordinates found on the array by the factor to get the photo's own.

    An unreadable file raises a one-line :class:`~kfree.exceptions.DataError`."""
    from PIL import Image, ImageOps

    p = Path(path)
    if not heif_readable() and p.suffix.lower() in HEIF_SUFFIXES:
        raise DataError(f"cannot read the image {p}: {HEIF_ADVICE}")
    try:
        with Image.open(p) as im:
            im = viewable_rgb(ImageOps.exif_transpose(im))
            scale = 1.0
            if max_side is not None and max(im.size) > max_side:
                scale = max_side / max(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                               Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8), scale
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read the image {p}: {first_line(e)}") from None


def viewable_rgb(im):
    """The Pillow image ``im`` as 8-bit RGB, as a viewer shows it. Pillow's plain
    ``convert("RGB")`` clips 16-bit and 32-bit values above 255 and truncates 0–1 floats to 0
    (blank thumbnails, and photos in which no face could be found), and drops the alpha channel,
    showing whatever colour lies under transparent pixels."""
    from PIL import Image

    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        a = np.nan_to_num((a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a), nan=0.0)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im.convert("RGB")
