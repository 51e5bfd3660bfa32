"""Cluster montages: one row of thumbnails per predicted cluster (BCL paper, Figure 3 layout).

A thumbnail's frame says whether it belongs to its cluster's majority identity (green) or not
(red), so impure clusters are visible at a glance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_path
from .figures import pd_isna, plural, sample_clusters, short_id


def _as_uint8(img: Any, unit_scale: bool | None = None) -> np.ndarray:
    """An image as uint8 pixels: float images on the [0, 1] scale (matplotlib's and
    scikit-image's) are scaled by 255 (drawn on the 0–255 scale they were black), 16- and 32-bit
    unsigned ones from their full range, masks to black and white, others clipped to 0–255; a
    trailing channel of one is grey. ``unit_scale``: whether the images are on [0, 1], decided once for a whole stack
    (a dark image on the 0–255 scale also has no pixel above 1); None decides by this image."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:  # (H, W, 1): grey, as torch and keras lay it out (was false colour)
        img = img[..., 0]
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:  # a mask: white where set (was all black)
        return img.astype(np.uint8) * 255
    if img.dtype.kind == "u" and img.dtype.itemsize > 1:  # 16-bit (a PNG's) on its full scale (was all white)
        return (img / np.iinfo(img.dtype).max * 255.0).round().astype(np.uint8)
    if unit_scale is None:
        unit_scale = img.dtype.kind == "f" and img.size > 0 and np.nanmax(img) <= 1.0
    if unit_scale:
        img = img * 255.0
    return np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)


#: a montage's geometry, in pixels: the square each thumbnail fits in, the gap around it, the
#: frame's width and the caption column's width
TILE, GAP, FRAME, CAPTION = 96, 6, 3, 128
_FRAME_COLOURS = {"majority": (26, 152, 80), "other": (215, 48, 39), "unknown": (150, 150, 150)}


def _font(size: int):
    """DejaVu Sans (matplotlib ships it) at ``size`` px, else Pillow's own font."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except (OSError, ImportError, ValueError):
        return ImageFont.load_default(size)


def _fitted_id(draw, c: Any, font) -> str:
    """The id as :func:`short_id` writes it, shortened until it fits the caption column (centred
    in it, a longer one ran under the first thumbnail and lost both ends: a review)."""
    most = 18
    while most > 5 and draw.textlength(short_id(c, most), font=font) > CAPTION - 2 * GAP:
        most -= 1
    return short_id(c, most)


def cluster_montage(
    images: np.ndarray | Callable[[int], np.ndarray],
    labels_pred: np.ndarray,
    path: str | Path,
    *,
    labels_true: np.ndarray | None = None,
    per_row: int = 6,
    max_clusters: int = 40,
    seed: int = 0,
    title: str | None = None,
    credit: str | None = None,
) -> Path:
    """Save a PNG montage: a row per cluster (largest first), up to ``per_row`` random members.

    Parameters
    ----------
    images : ndarray of shape (n, H, W) or (n, H, W, 3), uint8 (or floats in [0, 1], scaled); or
        a function of a row index returning that row's image, so that only the members shown are
        read (photo folders).
    labels_pred : ndarray of shape (n,), the predicted clusters.
    labels_true : optional identities; frames then mark majority (green) vs other (red).

    Drawn with Pillow, each thumbnail fitted in a :data:`TILE`-pixel square at its own resolution:
    a matplotlib figure of one axes per thumbnail took 0.16 s a cluster (3.5 min for 1,000, found
    by a pictures trial), this takes milliseconds.
    """
    from PIL import Image, ImageDraw

    shown = list(sample_clusters(labels_pred, per_row, labels_true=labels_true, max_clusters=max_clusters, seed=seed))
    unit_scale = None  # (an array's scale is decided once, over all its images)
    if not callable(images):
        images = np.asarray(images)
        unit_scale = images.dtype.kind == "f" and images.size > 0 and bool(np.nanmax(images) <= 1.0)
    font, small = _font(12), _font(10)
    cell = TILE + 2 * GAP
    top = 30 if title else GAP
    bottom = 20 if credit else GAP
    width = CAPTION + per_row * cell
    canvas = Image.new("RGB", (width, top + len(shown) * cell + bottom), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((width // 2, top // 2), title, fill=(20, 20, 20), font=font, anchor="mm")
    for r, (c, members, pick, majority, _) in enumerate(shown):
        y = top + r * cell
        draw.multiline_text((CAPTION // 2, y + cell // 2), f"cluster\n{_fitted_id(draw, c, font)}\n"
                            f"{plural(members.size, 'item')}", fill=(20, 20, 20), font=font, anchor="mm",
                            align="center", spacing=4)
        for j, i in enumerate(np.sort(pick)):
            x = CAPTION + j * cell
            img = _as_uint8(images(int(i)) if callable(images) else images[i], unit_scale)
            thumb = Image.fromarray(img).convert("RGB")
            thumb.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)  # (never enlarged: sharp as it is)
            if thumb.width < TILE // 2 and thumb.height < TILE // 2:  # a tiny image, shown at twice its size
                thumb = thumb.resize((thumb.width * 2, thumb.height * 2), Image.Resampling.NEAREST)
            left, up = x + GAP + (TILE - thumb.width) // 2, y + GAP + (TILE - thumb.height) // 2
            canvas.paste(thumb, (left, up))
            if majority is not None:
                kind = "unknown" if pd_isna(labels_true[i]) else "majority" if labels_true[i] == majority else "other"
                draw.rectangle((left - FRAME, up - FRAME, left + thumb.width + FRAME - 1, up + thumb.height + FRAME - 1),
                               outline=_FRAME_COLOURS[kind], width=FRAME)
    if credit:
        draw.text((width // 2, canvas.height - bottom // 2), credit, fill=(85, 85, 85), font=small, anchor="mm")
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG", optimize=False)
    return Path(path)
