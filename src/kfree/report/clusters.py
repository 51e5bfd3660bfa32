"""A report of any clustering: cluster sizes, a montage of images or examples of texts, metrics
when true labels are known, as one folder with an ``index.html`` (``kfree report``).

The demo writes such a page for its own run; this one takes a clustering of the user's data —
labels from ``kfree cluster`` or ``kfree assign``, the image files or texts of the rows — so the
clusters can be looked at, not only scored.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import DataError
from ..utils.io import atomic_path

#: thumbnails are read at this size (pixels, longest side) for the montage
THUMBNAIL = 96


def image_loader(paths: Sequence[str | Path]):
    """A function of a row index → that row's image as a uint8 RGB thumbnail (n, n, 3), read
    from ``paths`` only when the montage shows it. An unreadable file raises a one-line DataError."""
    from PIL import Image

    def load(i: int) -> np.ndarray:
        p = Path(paths[i])
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((THUMBNAIL, THUMBNAIL))
                canvas = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (255, 255, 255))
                canvas.paste(im, ((THUMBNAIL - im.width) // 2, (THUMBNAIL - im.height) // 2))
                return np.asarray(canvas, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read the image of row {i}, {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    return load


def plot_cluster_sizes(labels: np.ndarray, path: str | Path) -> Path:
    """Bar chart of how many clusters have each size (log scales): singletons, pairs, … the largest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, counts = np.unique(labels, return_counts=True)
    sizes, n_clusters = np.unique(counts, return_counts=True)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.vlines(sizes, 0.7, n_clusters, color="#4a90d9", linewidth=2)
    ax.plot(sizes, n_clusters, "o", color="#4a90d9", markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.7, n_clusters.max() * 1.5)
    ax.set_xlabel("cluster size (items)")
    ax.set_ylabel("number of clusters")
    ax.set_title(f"{counts.size:,} clusters of {labels.size:,} items", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def cluster_report(
    out_dir: str | Path,
    labels: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    images: np.ndarray | Sequence[str | Path] | None = None,
    texts: Sequence[str] | None = None,
    title: str = "kfree clusters",
    source: str = "",
    max_clusters: int = 40,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/index.html`` with ``sizes.png``, and ``montage.png`` (images) or examples of
    each cluster's texts; with ``truth``, the metrics and each cluster's majority label.

    Parameters
    ----------
    labels : ndarray of shape (n,), the clusters.
    truth : optional true labels of shape (n,).
    images : optional uint8 array (n, H, W[, 3]) or n image file paths (read only for the members
        the montage shows).
    texts : optional n strings.
    max_clusters : the largest clusters shown in the montage and the text examples.

    Returns the path of ``index.html``.
    """
    from ..metrics import evaluate_clustering
    from .html import text_clusters_html, write_run_index
    from .montage import cluster_montage

    labels = np.asarray(labels)
    n = labels.shape[0]
    if labels.ndim != 1 or n == 0:
        raise DataError(f"labels must be a non-empty 1-d array, got shape {labels.shape}")
    for name, v in (("truth", truth), ("images", images), ("texts", texts)):
        if v is not None and len(v) != n:
            raise DataError(f"{name} has {len(v)} rows but there are {n} labels")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, counts = np.unique(labels, return_counts=True)
    files = [plot_cluster_sizes(labels, out / "sizes.png").name]
    summary = (f"{n:,} items in <b>{counts.size:,} clusters</b>: the largest has {counts.max():,} items, "
               f"{int((counts == 1).sum()):,} are singletons, the median size is {int(np.median(counts)):,}.")
    if source:
        summary += f" <span class='muted'>({html.escape(source)})</span>"
    rows: list[dict[str, Any]] = []
    if truth is not None:
        truth = np.asarray(truth)
        rows.append({"method": "these clusters", **evaluate_clustering(truth, labels)})
    montage = None
    if images is not None:
        pixels = images if isinstance(images, np.ndarray) else image_loader(images)
        cluster_montage(pixels, labels, out / "montage.png", labels_true=truth, seed=seed, max_clusters=max_clusters)
        montage = "montage.png"
        files.append(montage)
    extra = "<h2>Cluster sizes</h2><img src='sizes.png' alt='cluster sizes'>"
    if texts is not None:
        extra += "<h2>Clusters (examples)</h2>" + text_clusters_html(
            np.asarray(texts, dtype=object), labels, None, truth, max_clusters=max_clusters, seed=seed)
    return write_run_index(out / "index.html", title=title, summary=summary, rows=rows, montage=montage,
                           extra_html=extra, files=files)
