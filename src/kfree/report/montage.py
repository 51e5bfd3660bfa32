"""Cluster montages: one row of thumbnails per predicted cluster (BCL paper, Figure 3 layout).

A thumbnail's frame says whether it belongs to its cluster's majority identity (green) or not
(red), so impure clusters are visible at a glance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .figures import pd_isna, plural, pyplot, sample_clusters, save_png, short_id


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
    """
    shown = list(sample_clusters(labels_pred, per_row, labels_true=labels_true, max_clusters=max_clusters, seed=seed))
    unit_scale = None  # (an array's scale is decided once, over all its images)
    if not callable(images):
        images = np.asarray(images)
        unit_scale = images.dtype.kind == "f" and images.size > 0 and bool(np.nanmax(images) <= 1.0)
    rows = len(shown)
    fig, axes = pyplot().subplots(rows, per_row + 1, figsize=(1.1 * (per_row + 1) + 0.6, 1.25 * rows + 0.6),
                                  squeeze=False)
    for r, (c, members, pick, majority, _) in enumerate(shown):
        pick = np.sort(pick)
        ax = axes[r, 0]
        ax.axis("off")
        # parse_math=False: a cluster id is the user's text, "$...$" in it is no formula
        name = f"cluster {c}" if len(str(c)) <= 8 else f"cluster\n{short_id(c, 16)}"  # long ids on a line of their own
        ax.text(0.5, 0.5, f"{name}\n{plural(members.size, 'item')}", ha="center", va="center", fontsize=7,
                parse_math=False, clip_on=True)
        for j in range(per_row):
            ax = axes[r, j + 1]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= pick.size:
                ax.axis("off")
                continue
            i = pick[j]
            img = _as_uint8(images(int(i)) if callable(images) else images[i], unit_scale)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            if majority is not None:
                colour = ("#969696" if pd_isna(labels_true[i]) else  # no true label: grey
                          "#1a9850" if labels_true[i] == majority else "#d73027")
                for s in ax.spines.values():
                    s.set_edgecolor(colour)
                    s.set_linewidth(2.5)
    if title:
        fig.suptitle(title, fontsize=9)
    if credit:
        fig.text(0.5, 0.003, credit, ha="center", va="bottom", fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.015, 1, 0.98 if title else 1))
    return save_png(fig, path)
