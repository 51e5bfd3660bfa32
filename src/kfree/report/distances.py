"""Where labelled rows lie from each other: the picture that tells where a cut belongs.

The ICPR 2020 triplet-loss paper judges an embedding by two figures: the distances of pairs of
one class and of two classes (a cut between the two histograms errs little), and, per class,
the mean distance within it against the mean distance to its nearest class (its Fig. 4: where
the bands overlap, as for *cat* and *dog*, no threshold separates them). Both need only rows and
their labels, so ``kfree report --features F --truth T`` draws them for any data, with the cut a
user proposes (``--threshold``) and its pair error.

Sizes are bounded: pairs are a seeded sample (half within labels, half across), and the per-label
panel shows the ``max_labels`` largest labels, each on at most ``per_label`` of its rows, with its
nearest label found among all labels by their means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..distances import check_distance, pair_distances, resolve_cut
from ..exceptions import DataError
from ..threshold import Threshold
from .figures import plural, pyplot, save_png

__all__ = ["label_distances", "pair_distance_sample", "plot_label_distances"]


def _measure(A: np.ndarray, B: np.ndarray, distance: str) -> np.ndarray:
    """All distances between the rows of ``A`` and ``B`` in ``distance`` units (scipy's ``cdist``:
    sqeuclidean, euclidean, or cosine as 1 - cos)."""
    from scipy.spatial.distance import cdist

    return cdist(A, B, distance)


def _rows_and_labels(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataError(f"rows must be (n, d) and labels (n,), got {X.shape} and {y.shape}")
    if np.unique(y).shape[0] < 2:
        raise DataError("distances within and between labels need rows of at least 2 labels")
    return X, y


def pair_distance_sample(X: Any, y: Any, *, distance: str = "euclidean", n_pairs: int = 100_000,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distances of pairs of one label and of pairs of two labels: every pair when there are at
    most ``n_pairs``, else a seeded draw of about half each (:func:`~kfree.evaluate.calibrate.labelled_pairs`).
    Returns ``(same, different)``."""
    from ..evaluate.calibrate import labelled_pairs

    X, y = _rows_and_labels(X, y)
    i, j, different = labelled_pairs(y, max_pairs=n_pairs, stratify=True, seed=seed)
    d = pair_distances(X, i, j, check_distance(distance))
    return d[~different], d[different]


def label_distances(X: Any, y: Any, *, distance: str = "euclidean", max_labels: int = 40, per_label: int = 200,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Per label (the ``max_labels`` largest, then by label): mean and standard deviation of the
    distances within it and to its nearest other label (the one whose mean row is closest, among
    all labels), each on at most ``per_label`` seeded rows of a label.

    Returns ``{"labels", "nearest", "sizes", "intra_mean", "intra_std", "inter_mean",
    "inter_std"}``, arrays of one entry per label shown. A label of one row has no distance within
    it (NaN)."""
    X, y = _rows_and_labels(X, y)
    distance = check_distance(distance)
    names, inverse, sizes = np.unique(y, return_inverse=True, return_counts=True)
    means = np.zeros((names.shape[0], X.shape[1]))
    np.add.at(means, inverse, X)
    means /= sizes[:, None]  # (cosine: their directions, as cdist measures them)
    shown = np.lexsort((np.arange(names.shape[0]), -sizes))[:max_labels]
    rng = np.random.default_rng(seed)
    members = {}

    def rows(k: int) -> np.ndarray:
        if k not in members:
            members[k] = X[rng.permutation(np.flatnonzero(inverse == k))[:per_label]]
        return members[k]

    out = {key: np.full(shown.shape[0], np.nan) for key in ("intra_mean", "intra_std", "inter_mean", "inter_std")}
    nearest = np.empty(shown.shape[0], dtype=np.int64)
    for t, k in enumerate(shown.tolist()):
        to_means = _measure(means[k:k + 1], means, distance)[0]
        to_means[k] = np.inf
        nearest[t] = int(np.argmin(to_means))
        own = rows(k)
        if own.shape[0] > 1:
            d = _measure(own, own, distance)[np.triu_indices(own.shape[0], 1)]
            out["intra_mean"][t], out["intra_std"][t] = d.mean(), d.std()
        d = _measure(own, rows(nearest[t]), distance).ravel()
        out["inter_mean"][t], out["inter_std"][t] = d.mean(), d.std()
    return {"labels": names[shown], "nearest": names[nearest], "sizes": sizes[shown], **out}


def plot_label_distances(X: Any, y: Any, path: str | Path, *, threshold: Threshold | None = None,
                         distance: str | None = None, max_labels: int = 40, seed: int = 0) -> tuple[Path, str]:
    """Draw :func:`pair_distance_sample`'s two histograms (left) and :func:`label_distances` per
    label (right: within, red; to the nearest label, blue; bands of one and two standard
    deviations), in ``distance`` units (default: the threshold's, else Euclidean), with the
    ``threshold`` as a dashed line. Returns the path and a sentence saying what the figure shows
    (with the threshold's pair error: the mean of the share of same-label pairs it separates and
    of different-label pairs it joins)."""
    distance = check_distance(distance or (threshold.distance if threshold is not None else "euclidean"))
    # in the figure's units (squared and plain Euclidean convert; cosine is its own)
    cut = None if threshold is None else resolve_cut(threshold, distance).value
    same, different = pair_distance_sample(X, y, distance=distance, seed=seed)
    stats = label_distances(X, y, distance=distance, max_labels=max_labels, seed=seed)
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(12.0, 4.2), gridspec_kw={"width_ratios": [1, 1.5]})
    top = np.quantile(np.concatenate([same, different]), 0.995) if same.size + different.size else 1.0
    bins = np.linspace(0.0, max(float(top), cut or 0.0) * 1.05 or 1.0, 61)
    left.hist(same, bins=bins, density=True, alpha=0.55, color="tab:red", label=f"same label ({same.size:,} pairs)")
    left.hist(different, bins=bins, density=True, alpha=0.55, color="tab:blue",
              label=f"different labels ({different.size:,} pairs)")
    how = (f"Pair distances ({distance}) within and between the true labels, and per label (the "
           f"{plural(stats['labels'].shape[0], 'largest label')}) the mean distance within it and to its nearest label")
    if not same.size:  # (labels that are ids: no pair shares one, and a rate of none is no number: a review)
        how += "; no two rows share a label, so no pair lies within one"
    if cut is not None:
        left.axvline(cut, color="k", ls="--", lw=1, label=f"threshold {cut:.4g}")
        joins = float(np.mean(different <= cut))
        if same.size:
            splits = float(np.mean(same > cut))
            how += (f"; the threshold {cut:.4g} separates {splits:.1%} of same-label pairs and joins {joins:.1%} of "
                    f"different-label pairs (pair error {0.5 * (splits + joins):.1%})")
        else:
            how += f"; the threshold {cut:.4g} joins {joins:.1%} of different-label pairs"
    left.set_xlabel(f"{distance} distance")
    left.set_ylabel("density")
    left.legend(fontsize=7)
    left.set_title("pairs", fontsize=10)
    x = np.arange(stats["labels"].shape[0])
    for key, colour, name in (("intra", "tab:red", "within the label"), ("inter", "tab:blue", "to its nearest label")):
        m, sd = stats[f"{key}_mean"], stats[f"{key}_std"]
        right.fill_between(x, np.maximum(m - 2 * sd, 0.0), m + 2 * sd, color=colour, alpha=0.12, lw=0)
        right.fill_between(x, np.maximum(m - sd, 0.0), m + sd, color=colour, alpha=0.25, lw=0)
        right.plot(x, m, color=colour, marker="o", ms=3, label=f"{name} (mean, σ, 2σ)")
    if cut is not None:
        right.axhline(cut, color="k", ls="--", lw=1, label=f"threshold {cut:.4g}")
    right.set_xticks(x, [str(v)[:16] for v in stats["labels"].tolist()], rotation=60, ha="right", fontsize=7)
    right.set_ylabel(f"{distance} distance")
    right.set_ylim(bottom=0.0)
    right.grid(alpha=0.3)
    right.legend(fontsize=7, framealpha=0.6)
    right.set_title("per label, largest first", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path), how
