"""Figures of the ICPR 2020 triplet-loss study (Ho et al.), from plain arrays.

- :func:`plot_acc_vs_noise` — ACC against label noise (the paper's Fig. 5 layout: rows =
  positive noise, negative noise, both; columns = multicut, k-means), ours beside the paper's.
- :func:`plot_tsne` — t-SNE of a test embedding coloured by the 10 largest multicut clusters,
  #clusters and ACC in the title (Fig. 6).
- :func:`plot_intra_inter` — per class, the mean distance inside the class and to the nearest
  other class, with σ and 2σ bands (Fig. 4): where the bands of two losses overlap, no single
  distance threshold separates "same" from "different".
- :func:`plot_pair_histograms` — distances of same-class and different-class pairs with the
  clustering threshold marked: the picture behind τ = √((α+β)/2).
- :func:`plot_acc_vs_epoch` — Protocol A's per-epoch curves.

Nothing here trains or clusters; matplotlib runs headless (Agg) and files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kfree.exceptions import DataError
from kfree.report.figures import pyplot
from kfree.utils.io import atomic_path

LOSS_COLORS = {"l1": "tab:green", "l2": "tab:blue", "l3": "tab:red"}
LOSS_NAMES = {"l1": "Triplet Loss (1)", "l2": "Triplet Loss (2)", "l3": "Triplet Loss (3)"}


def _plt():
    return pyplot()  # (kfree's figure makers: the caller's matplotlib backend is left as it is)


def _save(fig, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ Fig. 5
#: the three noise lines of Fig. 5: (label, [(wrong positives, wrong negatives), ...], x labels)
FIG5_LINES: tuple[tuple[str, tuple[tuple[float, float | str], ...]], ...] = (
    ("noise on positives", ((0.0, 0.0), (0.05, 0.0), (0.10, 0.0), (0.20, 0.0))),
    ("noise on negatives", ((0.0, 0.0), (0.0, 0.02), (0.0, 0.05), (0.0, 0.07), (0.0, "random"))),
    ("noise on both", ((0.0, 0.0), (0.05, 0.05), (0.10, 0.07), (0.20, "random"))),
)


def _noise_label(pos: float, neg: float | str, line: str) -> str:
    pct = lambda v: "rand" if v == "random" else f"{round(float(v) * 100)}%"
    if line.endswith("positives"):
        return pct(pos)
    if line.endswith("negatives"):
        return pct(neg)
    return f"{pct(pos)}/{pct(neg)}"


def plot_acc_vs_noise(
    ours: Mapping[tuple[str, str, float, float | str], tuple[float, float]],
    paper: Mapping[str, Mapping[str, Mapping[tuple[float, float | str], float]]] | None,
    path: str | os.PathLike[str],
    *,
    losses: Sequence[str] = ("l1", "l2", "l3"),
    title: str | None = None,
) -> Path:
    """ACC (%) against noise, ours solid (mean ± std over seeds), the paper's dashed.

    Parameters
    ----------
    ours : ``{(method, loss, pos, neg): (mean_acc_percent, std)}`` for the cells that ran;
        missing cells leave gaps.
    paper : ``paper[method][loss][(pos, neg)]`` (see :mod:`kfree_reproductions.icpr2020.paper`).
    """
    plt = _plt()
    fig, axes = plt.subplots(3, 2, figsize=(11, 11), sharey=False)
    for r, (line, points) in enumerate(FIG5_LINES):
        for c, method in enumerate(("multicut", "kmeans")):
            ax = axes[r, c]
            x = np.arange(len(points))
            for loss in losses:
                col = LOSS_COLORS.get(loss, None)
                if paper is not None:
                    yp = [paper[method][loss].get(pt, np.nan) for pt in points]
                    ax.plot(x, yp, "--", color=col, alpha=0.6, marker="x", label=f"{LOSS_NAMES[loss]} (paper)")
                ym = np.array([ours.get((method, loss, *pt), (np.nan, np.nan))[0] for pt in points])
                ys = np.array([ours.get((method, loss, *pt), (np.nan, np.nan))[1] for pt in points])
                ok = np.isfinite(ym)
                if ok.any():
                    ax.errorbar(x[ok], ym[ok], yerr=np.nan_to_num(ys[ok]), color=col, marker="o", capsize=3,
                                label=f"{LOSS_NAMES[loss]} (ours)")
            ax.set_xticks(x, [_noise_label(p, n, line) for p, n in points])
            ax.set_title(f"{'minimum cost multicut' if method == 'multicut' else 'k-means (k = 10)'}: {line}",
                         fontsize=10)
            ax.set_xlabel("share of wrong pairs (positives / negatives)", fontsize=8)
            ax.set_ylabel("ACC (%)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8,
               title="ours: mean, bars ± 1 standard deviation over seeds; paper: dashed", title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return _save(fig, path)


# ------------------------------------------------------------------------------ Fig. 6
def tsne_2d(Z: np.ndarray, *, seed: int = 0, n_jobs: int = 1) -> np.ndarray:
    """2-d openTSNE of ``Z`` (n, d) (perplexity 30, PCA initialisation); shape (n, 2)."""
    from openTSNE import TSNE

    return np.asarray(TSNE(perplexity=30, initialization="pca", random_state=seed, n_jobs=n_jobs,
                           verbose=False).fit(np.asarray(Z, dtype=np.float64)))


def plot_tsne(
    Y2: np.ndarray,
    labels_pred: np.ndarray,
    path: str | os.PathLike[str],
    *,
    acc: float,
    labels_true: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    top: int = 10,
    title: str = "",
) -> Path:
    """Scatter of a 2-d map ``Y2`` (n, 2), the ``top`` largest predicted clusters in colour.

    Each coloured cluster is named by its majority true class when ``labels_true`` is given;
    the rest are grey. The title states #clusters, how many have fewer than 10 items, and ACC.
    """
    Y2 = np.asarray(Y2)
    labels_pred = np.asarray(labels_pred)
    if Y2.ndim != 2 or Y2.shape[1] != 2 or Y2.shape[0] != labels_pred.shape[0]:
        raise DataError(f"Y2 must have shape (n, 2) matching labels (n,), got {Y2.shape} and {labels_pred.shape}")
    plt = _plt()
    ids, inv, sizes = np.unique(labels_pred, return_inverse=True, return_counts=True)
    order = np.argsort(-sizes)[:top]
    fig, ax = plt.subplots(figsize=(8, 8))
    rest = ~np.isin(inv, order)
    if rest.any():  # (none: no legend entry for "other clusters (0 items)")
        ax.scatter(Y2[rest, 0], Y2[rest, 1], s=2, c="lightgrey", label=f"other clusters ({int(rest.sum())} items)")
    cmap = plt.get_cmap("tab10")
    for rank, k in enumerate(order):
        m = inv == k
        name = f"cluster {rank + 1}"
        if labels_true is not None:
            vals, cnt = np.unique(np.asarray(labels_true)[m], return_counts=True)
            maj = vals[np.argmax(cnt)]
            cls = class_names[int(maj)] if class_names is not None else str(maj)
            name = f"{cls} ({int(sizes[k])}, {cnt.max() / m.sum():.0%} pure)"
        ax.scatter(Y2[m, 0], Y2[m, 1], s=2, color=cmap(rank % 10), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    small = int((sizes < 10).sum())
    ax.set_title(f"{title}\n{ids.shape[0]} clusters ({small} with < 10 items), ACC {acc * 100:.2f} %".strip(),
                 fontsize=10)
    # beside the map, not on it: loc="best" still covered a cluster's points
    ax.legend(markerscale=5, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)  # (saved with bbox_inches="tight": the legend is kept)


# ------------------------------------------------------------------------------ Fig. 4
def intra_inter_distances(
    Z: np.ndarray, y: np.ndarray, *, per_class: int = 400, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per class: mean and std of Euclidean distances within the class and to its nearest class.

    The nearest class of ``c`` is the one with the smallest mean cross distance. At most
    ``per_class`` random items per class are used (distances are O(per_class²) per class pair).

    Returns ``{"classes", "intra_mean", "intra_std", "inter_mean", "inter_std", "nearest"}``,
    arrays of shape (n_classes,).
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    if Z.ndim != 2 or y.shape != (Z.shape[0],):
        raise DataError(f"Z must be (n, d) and y (n,), got {Z.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    if classes.shape[0] < 2:
        raise DataError("intra/inter distances need at least 2 classes")
    pick = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # (len(a), len(b))
        return np.sqrt(np.maximum(d2, 0.0))

    k = classes.shape[0]
    cross = np.full((k, k), np.inf)
    out = {n: np.zeros(k) for n in ("intra_mean", "intra_std", "inter_mean", "inter_std")}
    for i in range(k):
        d = dist(Z[pick[i]], Z[pick[i]])
        iu = np.triu_indices(d.shape[0], 1)
        out["intra_mean"][i], out["intra_std"][i] = d[iu].mean(), d[iu].std()
        for j in range(k):
            if j != i:
                cross[i, j] = dist(Z[pick[i]], Z[pick[j]]).mean()
    nearest = np.argmin(cross, axis=1)
    for i in range(k):
        d = dist(Z[pick[i]], Z[pick[nearest[i]]])
        out["inter_mean"][i], out["inter_std"][i] = d.mean(), d.std()
    return {"classes": classes, "nearest": classes[nearest], **out}


def plot_intra_inter(
    stats: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """One panel per loss: intra (red) and nearest-class (blue) distance per class, σ/2σ bands.

    ``stats[loss]`` is :func:`intra_inter_distances`'s output; ``thresholds[loss]`` draws the
    multicut's distance threshold (τ, or L1's logistic 0.5 crossing) as a dashed line.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(stats), figsize=(5.5 * len(stats), 4.2), sharey=True, squeeze=False)
    for ax, (loss, s) in zip(axes[0], stats.items()):
        x = np.arange(len(s["classes"]))
        for key, col, name in (("intra", "tab:red", "within class"), ("inter", "tab:blue", "to nearest class")):
            m, sd = s[f"{key}_mean"], s[f"{key}_std"]
            # (a distance is not negative: a band of mean − 2σ below 0 had drawn negative distances)
            ax.fill_between(x, np.maximum(m - 2 * sd, 0.0), m + 2 * sd, color=col, alpha=0.12, lw=0)
            ax.fill_between(x, np.maximum(m - sd, 0.0), m + sd, color=col, alpha=0.25, lw=0)
            ax.plot(x, m, color=col, marker="o", label=f"{name} (mean, σ, 2σ)")
        if thresholds and loss in thresholds:
            ax.axhline(thresholds[loss], color="k", ls="--", lw=1, label=f"threshold {thresholds[loss]:.3f}")
        names = [class_names[int(c)] if class_names is not None else str(c) for c in s["classes"]]
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(LOSS_NAMES.get(loss, loss))
        ax.set_ylabel("Euclidean distance")
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, framealpha=0.6)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ histograms
def pair_distances(Z: np.ndarray, y: np.ndarray, *, n_pairs: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances of random same-class and different-class pairs (each about ``n_pairs/2``)."""
    from kfree.evaluate.calibrate import labelled_pairs

    i, j, diff = labelled_pairs(np.asarray(y), max_pairs=n_pairs, stratify=True, seed=seed)
    Z = np.asarray(Z, dtype=np.float64)
    d = np.sqrt(((Z[i] - Z[j]) ** 2).sum(1))
    return d[~diff], d[diff]


def plot_pair_histograms(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    *,
    thresholds: Mapping[str, tuple[float, str]] | None = None,
    alpha: float = 0.8,
    beta: float = 0.4,
) -> Path:
    """One panel per loss: histograms of same-class and different-class pair distances.

    ``pairs[loss] = (same, different)`` Euclidean distances; ``thresholds[loss] = (value, label)``
    marks the multicut threshold. √β and √α (where L2/L3 put positives and negatives) are dotted.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 3.8), squeeze=False)
    bins = np.linspace(0.0, 2.0, 81)
    for ax, (loss, (same, diff)) in zip(axes[0], pairs.items()):
        ax.hist(same, bins=bins, density=True, alpha=0.55, color="tab:red", label="same class")
        ax.hist(diff, bins=bins, density=True, alpha=0.55, color="tab:blue", label="different class")
        title = LOSS_NAMES.get(loss, loss)
        if thresholds and loss in thresholds:
            v, lab = thresholds[loss]
            ax.axvline(v, color="k", ls="--", label=f"{lab} = {v:.3f}")
            err = 0.5 * (np.mean(same > v) + np.mean(diff <= v))
            title += f" (pair error at threshold {err:.1%})"  # (in the panel, it ran into the √β label)
        if loss != "l1":
            for v, lab in ((np.sqrt(beta), "√β"), (np.sqrt(alpha), "√α")):
                ax.axvline(v, color="grey", ls=":", lw=1)
                ax.text(v, ax.get_ylim()[1] * 0.9, lab, fontsize=8, ha="center")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("Euclidean distance")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ Protocol A
def plot_acc_vs_epoch(
    runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
    path: str | os.PathLike[str],
    *,
    paper: Mapping[str, Mapping[str, float]] | None = None,
    methods: Sequence[tuple[str, str]] = (("multicut", "minimum cost multicut (GAEC + KLj)"),
                                          ("multicut_avg_kl", "multicut, average-linkage start + KLj"),
                                          ("kmeans", "k-means (k = 10)")),
) -> Path:
    """ACC after each evaluated epoch, one panel per clustering, one colour per loss.

    ``runs[loss]`` = one list of per-epoch records per seed (``epoch`` and ``<method>`` →
    ``acc``); each seed is a thin line, their mean (at epochs every seed reached) a thick one.
    ``paper[method][loss]`` (ACC in %, after 100 epochs) is drawn as a dashed level; the
    average-linkage panel uses the paper's multicut level.
    """
    plt = _plt()
    present = [(m, t) for m, t in methods if any(m in r for seeds in runs.values() for rows in seeds for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(5.5 * max(1, len(present)), 4), sharey=True,
                             squeeze=False)
    for ax, (method, title) in zip(axes[0], present):
        for loss, seeds in runs.items():
            color = LOSS_COLORS.get(loss)
            per_seed = [{r["epoch"]: 100 * r[method]["acc"] for r in rows if method in r} for rows in seeds]
            for curve in per_seed:
                if curve:
                    ax.plot(list(curve), list(curve.values()), color=color, lw=0.7, alpha=0.35)
            common = sorted(set.intersection(*(set(c) for c in per_seed))) if per_seed else []
            if common:
                ax.plot(common, [np.mean([c[e] for c in per_seed]) for e in common], color=color, lw=2,
                        marker="o", ms=2.5, label=f"{LOSS_NAMES.get(loss, loss)} (mean of {len(per_seed)} seeds)")
            level = (paper or {}).get("kmeans" if method == "kmeans" else "multicut", {}).get(loss)
            if level is not None:
                ax.axhline(level, color=color, ls="--", alpha=0.6, label=f"paper, 100 epochs ({level:.2f})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("ACC (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
