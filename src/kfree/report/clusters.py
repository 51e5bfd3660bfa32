"""A report of any clustering: cluster sizes, a montage of images or examples of texts, metrics
when true labels are known, as one folder with an ``index.html`` (``kfree report``).

The demo writes such a page for its own run; this one takes a clustering of the user's data —
labels from ``kfree cluster`` or ``kfree assign``, the image files or texts of the rows — so the
clusters can be looked at, not only scored.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import heif_readable, viewable_rgb
from ..exceptions import DataError, DataWarning, OutputError, first_line, user_stacklevel
from ..threshold import Threshold
from ..utils.io import atomic_dir
from .figures import check_png, largest_clusters, pd_isna, plural, pyplot, save_png, short_id

#: thumbnails are read at this size (pixels, longest side) for the montage
THUMBNAIL = 96


def image_loader(paths: Sequence[str | Path], boxes: np.ndarray | None = None, *,
                 failed: list[str] | None = None):
    """A function of a row index → that row's image as a uint8 RGB thumbnail of shape
    (THUMBNAIL, THUMBNAIL, 3), read from ``paths`` only when the montage shows it, turned as a
    viewer shows it (EXIF rotation). With ``boxes`` (n, 4) of left, top, right, bottom in the
    turned photo's pixels (``kfree encode faces`` writes them), each row shows its box with a
    margin: one face of a group photo, not the whole photo (a row whose box is NaN: the whole
    photo; a row whose path is empty: a white tile). An unreadable file raises a one-line
    DataError; with a ``failed`` list, its message is appended there instead and the row is
    shown as a crossed-out tile (:func:`unreadable_tile`)."""
    from PIL import Image, ImageOps

    heif_readable()  # (a face found in an iPhone's HEIC photo is shown from it)

    def load(i: int) -> np.ndarray:
        if not paths[i]:  # (a row without a photo: an empty tile)
            return np.full((THUMBNAIL, THUMBNAIL, 3), 255, dtype=np.uint8)
        p = Path(paths[i])
        box = None if boxes is None or not np.isfinite(boxes[i]).all() else boxes[i]  # (NaN: none, shown whole)
        try:
            with Image.open(p) as im:
                width = im.width
                # a large JPEG decoded at a fraction of its size, enough for the thumbnail: of the
                # whole photo, or of the box with its margin (a face of 92 px in a 6000-px photo was
                # decoded at a quarter and shown from 23 px, blurred: a pictures trial)
                fit = 2.0 * THUMBNAIL / max(im.width, im.height)
                if box is not None:
                    left, top, right, bottom = (float(v) for v in box)
                    fit = THUMBNAIL / max(1.5 * max(right - left, bottom - top), 1.0)
                fit = min(1.0, fit)
                im.draft("RGB", (max(1, math.ceil(im.width * fit)), max(1, math.ceil(im.height * fit))))
                scale = im.width / width
                im = ImageOps.exif_transpose(im)
                if box is not None:
                    left, top, right, bottom = (float(v) * scale for v in box)
                    pad = 0.25 * max(right - left, bottom - top)
                    crop = (max(0, round(left - pad)), max(0, round(top - pad)),
                            min(im.width, round(right + pad)), min(im.height, round(bottom + pad)))
                    if crop[2] <= crop[0] or crop[3] <= crop[1]:  # (Pillow said "Coordinate 'right' is less…")
                        raise _OutsideBox(f"row {i}'s box ({', '.join(f'{float(v):g}' for v in boxes[i])}: left, top, "
                                          f"right, bottom) lies outside its image {p} ({round(im.width / scale)}×{round(im.height / scale)} "
                                          "px); check the boxes' columns and units")
                    im = im.crop(crop)
                im = ImageOps.contain(viewable_rgb(im), (THUMBNAIL, THUMBNAIL))  # small ones enlarged too
                canvas = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (255, 255, 255))
                canvas.paste(im, ((THUMBNAIL - im.width) // 2, (THUMBNAIL - im.height) // 2))
                return np.asarray(canvas, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # (a bomb: too many pixels)
            why = (f"not found: {p}" if isinstance(e, FileNotFoundError) else str(e) if isinstance(e, _OutsideBox) else
                   f"cannot read the image of row {i}, {p}: {first_line(e)}")
            if failed is None:
                raise DataError(why) from None
            failed.append(why)
            return unreadable_tile()

    return load


class _OutsideBox(ValueError):
    """A row's box lies outside its image: said as such, not as an unreadable file."""


def unreadable_tile() -> np.ndarray:
    """The thumbnail of a photo that could not be read: light grey, crossed out."""
    tile = np.full((THUMBNAIL, THUMBNAIL, 3), 235, dtype=np.uint8)
    k = np.arange(THUMBNAIL)
    for off in (-1, 0, 1):
        j = np.clip(k + off, 0, THUMBNAIL - 1)
        tile[k, j] = tile[k, THUMBNAIL - 1 - j] = 150
    return tile


def _count_axis(ax, which: str, values: np.ndarray) -> tuple[float, float]:
    """Whole-number ticks on one axis of counts: linear when the values span less than 20×
    (1, 2, 3 … not 2×10⁰), else logarithmic with plain labels (1, 10, 100 …, and the largest
    value itself). Returns the axis limits."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

    axis = getattr(ax, f"{which}axis")
    low, top = max(1, int(values.min())), max(1, int(values.max()))
    if top / low < 20:
        axis.set_major_locator(MaxNLocator(integer=True, nbins=8, min_n_ticks=1))
        pad = max(1, top - low) * 0.2
        return (0, top * 1.15) if which == "y" else (low - pad, top + pad)
    getattr(ax, f"set_{which}scale")("log")
    steps = (1,) if top / low > 300 else (1, 2, 5)  # wide ranges: decades only, or the labels run together
    ticks = [t for m in range(int(np.log10(top)) + 2) for t in (s * 10**m for s in steps) if low / 2 <= t <= top]
    axis.set_major_locator(FixedLocator([t for t in ticks if top / t >= 2] + [top]))  # the largest, alone
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(lambda v, _: f"{round(v):,}")
    return (0.7, top * 1.5) if which == "y" else (low / 1.5, top * 1.5)


def plot_cluster_sizes(labels: np.ndarray, path: str | Path) -> Path:
    """How many clusters have each size (log scales over wide ranges): singletons, pairs, … the largest."""
    check_png(path)
    _, counts = np.unique(labels, return_counts=True)
    sizes, n_clusters = np.unique(counts, return_counts=True)
    fig, ax = pyplot().subplots(figsize=(6, 3.2))
    xlim, ylim = _count_axis(ax, "x", sizes), _count_axis(ax, "y", n_clusters)
    ax.vlines(sizes, ylim[0], n_clusters, color="#4a90d9", linewidth=2)
    ax.plot(sizes, n_clusters, "o", color="#4a90d9", markersize=4)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("cluster size (items)")
    ax.set_ylabel("number of clusters")
    ax.set_title(f"{plural(counts.size, 'cluster')} of {plural(labels.size, 'item')}", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


#: the map's cluster colours: matplotlib's tab20 without its two greys, which the clusters beyond
#: these share (a grey cluster could not be told from them)
MAP_COLOURS = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
               "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")


def plot_cluster_map(X: np.ndarray, labels: np.ndarray, path: str | Path, *, max_points: int = 10_000,
                     top: int = len(MAP_COLOURS), seed: int = 0) -> tuple[Path, str]:
    """2-d map of the rows ``X`` (n, d), coloured by cluster (the ``top`` largest, each labelled
    with its id where its points lie; the rest light grey).

    openTSNE (``pip install 'kfree[report]'``) when installed, else PCA; a seeded sample of
    ``max_points`` rows above that many. Returns the path and the method's name."""
    from ..distances import check_features

    check_png(path)  # (before the map: t-SNE takes minutes)

    plt = pyplot()
    X = check_features(X, name="features", min_samples=1)  # (as given: only the sample is converted)
    if X.shape[0] != labels.shape[0]:
        raise DataError(f"features must have shape ({labels.shape[0]}, d), got {X.shape}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(X.shape[0], max_points, replace=False)) if X.shape[0] > max_points else np.arange(X.shape[0])
    Xs = np.asarray(X[idx], dtype=np.float64)
    if X.shape[1] < 2 or idx.size < 4:  # nothing to reduce (one feature), or too few rows to embed
        xy = np.column_stack([Xs[:, 0], Xs[:, 1] if X.shape[1] > 1 else np.zeros(idx.size)])
        how = "the first two features" if X.shape[1] > 1 else "the one feature"
    else:
        try:
            from openTSNE import TSNE

            xy = np.asarray(TSNE(perplexity=min(30.0, max(2.0, (idx.size - 1) / 3.0)), initialization="pca",
                                 random_state=seed, n_jobs=1, verbose=False).fit(Xs))
            how = "t-SNE (openTSNE)"
        except ImportError:
            from sklearn.decomposition import PCA

            xy = PCA(n_components=2, random_state=seed).fit_transform(Xs)
            how = "PCA (pip install 'kfree[report]' for t-SNE)"
    lab = labels[idx]
    largest = largest_clusters(labels, min(top, len(MAP_COLOURS)))
    fig, ax = plt.subplots(figsize=(7, 6))
    rest = ~np.isin(lab, largest)
    size = float(np.clip(3000.0 / max(idx.size, 1), 3.0, 30.0))  # dots that stay visible on a small map
    ax.scatter(xy[rest, 0], xy[rest, 1], s=size * 0.75, c="#dddddd", linewidths=0)
    for k, c in enumerate(largest):
        m = lab == c
        if not m.any():  # (a sample may miss a cluster)
            continue
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=MAP_COLOURS[k], linewidths=0)
        # on the cluster's own point nearest its median: a cluster in two blobs has its median between
        # them, where the label named no coloured group (found by a TV-episode trial)
        pts = xy[m]
        cx, cy = pts[np.argmin(((pts - np.median(pts, axis=0)) ** 2).sum(axis=1))]
        ax.annotate(short_id(c), (cx, cy), xytext=(0, 9), textcoords="offset points", fontsize=7, ha="center",
                    va="bottom", parse_math=False,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=MAP_COLOURS[k], alpha=0.8, lw=0.8))
    ax.set_xticks([])
    ax.set_yticks([])
    sample = f", a sample of {idx.size:,} of {X.shape[0]:,} rows" if idx.size < X.shape[0] else ""
    ax.set_title(f"{how}{sample}; " + ("the one cluster in colour" if largest.size == 1 else
                                        f"the {largest.size} largest clusters in colour"), fontsize=9)
    fig.tight_layout()
    return save_png(fig, path), how


def cluster_report(
    out_dir: str | Path,
    labels: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    images: np.ndarray | Sequence[str | Path] | None = None,
    boxes: np.ndarray | None = None,
    texts: Sequence[str] | None = None,
    ids: Sequence[Any] | None = None,
    features: np.ndarray | None = None,
    title: str = "kfree clusters",
    source: str = "",
    max_clusters: int = 40,
    per_cluster: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    notes: Sequence[str] = (),
    threshold: Any = None,
    distance: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` with ``sizes.png``, and ``montage.png`` (images) or examples of
    each cluster's texts; with ``truth``, the metrics and each cluster's majority label.

    Parameters
    ----------
    labels : ndarray of shape (n,), the clusters.
    truth : optional true labels of shape (n,).
    images : optional uint8 array (n, H, W[, 3]) or n image file paths (read only for the members
        the montage shows).
    boxes : optional (n, 4) left, top, right, bottom of each row in its image file (a face in a
        photo): the montage shows the box, not the whole photo.
    texts : optional n strings.
    ids : optional n row ids (ticket ids), shown before each text.
    features : optional (n, d) rows for a 2-d map (:func:`plot_cluster_map`); with ``truth`` too,
        the distances within and between the true labels
        (:func:`~kfree.report.distances.plot_label_distances`).
    threshold : optional :class:`~kfree.threshold.Threshold` (or a number, in squared Euclidean
        units as ``kfree cluster``'s default) drawn on those distances, with its pair error.
    distance : the units those distances are drawn in (default: the threshold's, else euclidean).
    max_clusters : the largest clusters shown in the montage and the text examples.
    per_cluster : random members shown per cluster (default: 6 images, 5 texts).

    notes : sentences shown under the summary (what the page's reader should know of how its rows
        were matched: ``kfree report`` puts its warnings here, which the terminal alone said).
    overwrite : write into an ``out_dir`` that already holds files (those of the report's names
        are replaced). Without it such a folder is refused, as the CLI refuses one without
        ``--force``: a folder of photos or an earlier report is not written over by a typo.

    Negative labels (noise, -1) are each a cluster of their own, with a warning, as in the metrics.

    Returns the path of ``index.html``. The files are written to a temporary folder beside
    ``out_dir`` and moved in at the end, so a failure (an unreadable image) leaves no partial report.
    """
    from ..distances import labels_array
    from ..metrics.clustering import as_numbers, noise_as_singletons

    labels = labels_array(labels, "labels")  # (a list of '0' and 0 was one cluster: a review)
    truth = None if truth is None else labels_array(truth, "truth")
    n = labels.shape[0]
    if labels.ndim != 1 or n == 0:
        raise DataError(f"labels must be a non-empty 1-d array, got shape {labels.shape}")
    # -1 (noise, as HDBSCAN writes it) is a cluster of its own per row here as in the metrics: the
    # page's header, sizes and montage count the same clusters as its scores (found by a README trial).
    # Each is named by its own label and a number, "-1 #2": numbered after the largest id, as the
    # metrics number them, they were shown as clusters the clusters file does not have (a pictures trial)
    numbers = as_numbers(labels)
    noise = np.zeros(n, dtype=bool) if numbers is None else numbers < 0
    if noise.any():
        noise_as_singletons(labels)  # (its warning)
        shown = np.array([str(v) for v in labels.tolist()], dtype=object)
        shown[noise] = [f"{v} #{k}" for k, v in enumerate(labels[noise].tolist(), 1)]
        labels = shown
    if per_cluster is not None:
        from ..config import check_count

        per_cluster = check_count("per_cluster", per_cluster, 1, None)
    for name, v in (("truth", truth), ("images", images), ("boxes", boxes), ("texts", texts), ("ids", ids),
                    ("features", features)):
        if v is not None and len(v) != n:
            raise DataError(f"{name} has {len(v)} rows but there are {n} labels")
    arrays = isinstance(images, np.ndarray) or (images is not None and len(images) > 0
                                                and isinstance(images[0], np.ndarray))  # (a list of arrays too)
    if boxes is not None and (images is None or arrays):
        raise DataError("boxes locate rows in image files: give the images as paths")
    if not overwrite and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        raise OutputError(f"{out_dir} already holds files; pass overwrite=True to write the report into it, "
                          "or give a new folder")
    if images is not None and not arrays:  # (a photo named montage.png among them: a trial)
        writes = [n for n in REPORT_FILES if n not in ("map.png", "distances.png", "curve.png") or features is not None]  # (this run's files: a review)
        targets = {(Path(out_dir) / name).resolve() for name in writes}
        if shown := next((p for p in images if Path(p).name in writes and Path(p).resolve() in targets), None):
            raise OutputError(f"{shown} is one of the images shown, and the report writes a file of that name in "
                              f"{out_dir}: writing there would replace it; give another output folder")
    with atomic_dir(out_dir, owned=REPORT_FILES) as out:
        page = _write_report(out, labels, truth, images, texts, features, title, source, max_clusters, seed,
                             (threshold, distance),
                             per_cluster, boxes, n_noise=int(noise.sum()), ids=ids, notes=tuple(notes))
    return Path(out_dir) / page.name


def _curve_html(out: Path, features: np.ndarray, truth: np.ndarray, labels: np.ndarray, threshold: Threshold | None,
                distance: str | None, seed: int) -> str:
    """``curve.png``: NMI and WCP of the complete-linkage cuts of the features at every number of
    clusters (the BCL paper's curves), with these clusters as a point and the ``threshold``'s cut
    on the curve, and its section."""
    from ..metrics.clustering import nmi, wcp
    from .curves import ScoreCurve, plot_score_curves, truth_curve

    k_here = int(np.unique(labels.astype(str)).size)
    n_true = int(np.unique(truth.astype(str)).size)
    k_max = max(3 * n_true, 2 * k_here, 10)
    cosine = (distance or (threshold.distance if threshold is not None else "")) == "cosine"
    curve, rows = truth_curve(features, truth, distance="cosine" if cosine else "sqeuclidean", k_max=k_max,
                              at=threshold, seed=seed)
    here = {"nmi": (k_here, nmi(truth, labels)), "wcp": (k_here, wcp(truth, labels))}
    at_true = np.flatnonzero(np.asarray(curve.k) == n_true)
    plot_score_curves({"complete-linkage cuts of the features": curve,
                       "these clusters": ScoreCurve(np.array([k_here]), {s: np.array([v[1]]) for s, v in here.items()},
                                                    here)},
                      out / "curve.png", n_true=n_true,
                      k_max=int(max([min(rows.size, k_max), *(p[0] + 1 for p in (curve.operating_point or {}).values())])))
    sample = "" if rows.size == truth.size else f", on a seeded sample of {rows.size:,} of the {truth.size:,} rows"
    said = ""
    if curve.operating_point:
        k_cut, v_cut = curve.operating_point["nmi"]
        said = (f" The threshold {threshold.value:.4g} {threshold.distance} cuts the rows the curve is drawn on into "
                f"{k_cut:,} clusters (NMI {v_cut:.3f}), the point on the curve: complete linkage asks every pair of a "
                "cluster to lie within it, so the cut with the fewest wrong pairs on the left figure splits "
                "more than that.")
    return ("<h2>Scores against the number of clusters</h2><p class='muted'>"
            f"NMI and WCP of the complete-linkage cut of the features at every number of clusters up to "
            f"{int(min(rows.size, k_max)):,}{sample} (the true labels are {n_true:,}, dashed"
            + (f"; cut there, NMI {curve.scores['nmi'][at_true[0]]:.3f}, WCP {curve.scores['wcp'][at_true[0]]:.3f}"
               if at_true.size else "")
            + f"), and these clusters' own scores ({k_here:,} clusters, NMI {here['nmi'][1]:.3f}, WCP "
            f"{here['wcp'][1]:.3f}), the separate point: the curve is what complete linkage with an oracle number "
            "of clusters gives these features, the point what was delivered without one (by any method: it may lie "
            f"above the curve).{said}</p>"
            "<img src='curve.png' alt='NMI and WCP against the number of clusters'>")


#: the files a report may write (those a rewrite does not write again are removed)
REPORT_FILES = ("index.html", "sizes.png", "montage.png", "map.png", "distances.png", "curve.png")


def _write_report(out: Path, labels, truth, images, texts, features, title, source, max_clusters, seed, cut,
                  per_cluster=None, boxes=None, n_noise: int = 0, ids=None, notes: tuple[str, ...] = ()) -> Path:
    from ..metrics import evaluate_clustering
    from .html import (
        members_html,
        shown_note,
        text_clusters_html,
        truth_tables_html,
        write_run_index,
    )
    from .montage import cluster_montage

    n = labels.shape[0]
    _, counts = np.unique(labels, return_counts=True)
    files = [plot_cluster_sizes(labels, out / "sizes.png").name]
    singles = int((counts == 1).sum())
    summary = (f"{plural(n, 'item')} in <b>{plural(counts.size, 'cluster')}</b>: the largest has "
               f"{plural(int(counts.max()), 'item')}, {singles:,} {'is a singleton' if singles == 1 else 'are singletons'}, "
               f"the median size is {int(np.median(counts)):,}.")
    if n_noise:
        summary += (f" {plural(n_noise, 'row')} labelled as noise (negative labels) {'is' if n_noise == 1 else 'are'} "
                    f"each shown as a cluster of {'its' if n_noise == 1 else 'their'} own, named by the label and a "
                    "number (-1 #1, -1 #2, …), as the scores count them.")
    if source:
        summary += f" <span class='muted'>({html.escape(source)})</span>"
    for note in notes:
        summary += f"</p><p class='muted'>Note: {html.escape(note)}"
    rows: list[dict[str, Any]] = []
    if truth is not None:
        truth = np.asarray(truth)
        known = ~np.asarray(pd_isna(truth), dtype=bool)  # rows without a true label are scored by none
        if known.all():
            rows.append({"method": "these clusters", **evaluate_clustering(truth, labels)})
        elif known.any():
            rows.append({"method": f"these clusters, on the {int(known.sum()):,} rows with a true label",
                         **evaluate_clustering(truth[known], labels[known])})
        if rows:  # (found by a user trial: a partly labelled table's labels were the model's training rows)
            summary += (" <span class='muted'>The scores compare these clusters with the true labels given: rows "
                        "whose labels a model was trained on score it in-sample, so what to expect on new data is "
                        "its score on rows it never saw (<code>kfree evaluate</code> on those).</span>")
    montage = None
    if images is not None:
        failed: list[str] = []
        asked: list[int] = []
        load = None if isinstance(images, np.ndarray) or isinstance(images[0], np.ndarray) else image_loader(
            images, boxes, failed=failed)

        def pixels(i: int) -> np.ndarray:
            if load is None:
                return images[i]
            asked.append(i)
            return load(i)

        cluster_montage(pixels, labels, out / "montage.png", labels_true=truth, seed=seed, max_clusters=max_clusters,
                        **({"per_row": per_cluster} if per_cluster else {}))
        if failed:  # a few photos deleted or damaged since: shown crossed out, and said; none read: refused
            if len(failed) == len(asked):
                raise DataError(f"{failed[0]}" + (f" (and the other {len(failed) - 1} images shown)"
                                                  if len(failed) > 1 else ""))
            note = (f"{len(failed):,} of the {len(asked):,} images shown could not be read and "
                    f"{'is' if len(failed) == 1 else 'are'} crossed out "
                    f"(first: {failed[0]})")
            warnings.warn(note, DataWarning, stacklevel=user_stacklevel())
            summary += f" <span class='muted'>{html.escape(note)}.</span>"
        montage = "montage.png"
        files.append(montage)
    extra = "<h2>Cluster sizes</h2><img src='sizes.png' alt='cluster sizes'>"
    if features is not None:
        _, how = plot_cluster_map(features, labels, out / "map.png", seed=seed)
        files.append("map.png")
        extra += f"<h2>Map</h2><p class='muted'>{html.escape(how)}</p><img src='map.png' alt='2-d map'>"
    if features is not None and truth is not None and np.unique(truth[known].astype(str)).size >= 2:
        from .distances import plot_label_distances

        threshold, distance = cut
        threshold = threshold if threshold is None or isinstance(threshold, Threshold) else Threshold(
            threshold, distance or "sqeuclidean", "given")  # (a number in kfree cluster's default units)
        _, how = plot_label_distances(np.asarray(features)[known], truth[known], out / "distances.png",
                                      threshold=threshold, distance=distance, max_labels=max_clusters, seed=seed)
        files.append("distances.png")
        extra += (f"<h2>Distances within and between the true labels</h2><p class='muted'>{html.escape(how)}. "
                  "Where the two overlap, no threshold separates those labels.</p>"
                  "<img src='distances.png' alt='distances within and between labels'>")
        extra += _curve_html(out, np.asarray(features)[known], truth[known], labels[known], threshold, distance, seed)
    if rows:
        extra += truth_tables_html(labels, truth, max_clusters=max_clusters)
    if images is not None and not isinstance(images, np.ndarray) and not isinstance(images[0], np.ndarray):
        extra += members_html(labels, [Path(p).name if p else "" for p in images], max_clusters=max_clusters)
    if texts is not None:
        extra += "<h2>Clusters (examples)</h2>" + text_clusters_html(
            np.asarray(texts, dtype=object), labels, None, truth, max_clusters=max_clusters, seed=seed,
            ids=None if ids is None else np.asarray(ids, dtype=object),
            **({"per_cluster": per_cluster} if per_cluster else {}))
    return write_run_index(out / "index.html", title=title, summary=summary, rows=rows, montage=montage,
                           montage_note=shown_note(labels, max_clusters, "A row"), extra_html=extra, files=files)
