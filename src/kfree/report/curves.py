"""Score-vs-#clusters plots with operating points (BCL paper, supplement Figures 1–2).

Cutting a dendrogram at every k gives a curve of NMI (or WCP, or any score) against the number
of clusters; a method's *operating point* is where its own threshold cuts. The curve shows how
good the representation could be with an oracle K, the point shows what the method actually
delivers without one — the gap between them is what a stopping rule costs. Inputs are plain
arrays (e.g. from :func:`kfree.cluster.curves.score_curve`), so this works for any data:
:func:`truth_curve` makes the curve of complete-linkage cuts of any labelled rows, and ``kfree
report --features`` with true labels draws it with its clustering as the operating point (the
BCL 2019 reproduction draws its methods' curves with it too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from .figures import pyplot, save_png


@dataclass(frozen=True)
class ScoreCurve:
    """One method's curve and operating point.

    Parameters
    ----------
    k : ndarray of shape (m,), numbers of clusters of the cuts.
    scores : mapping score name -> ndarray of shape (m,), e.g. ``{"nmi": ..., "wcp": ...}``.
    operating_point : mapping score name -> (k, value), optional; the method's own cut.
    """

    k: np.ndarray
    scores: Mapping[str, np.ndarray]
    operating_point: Mapping[str, tuple[int, float]] | None = None

    def __post_init__(self) -> None:
        k = np.asarray(self.k)
        for name, v in self.scores.items():
            if np.asarray(v).shape != k.shape:
                raise ConfigError(f"score {name!r} has shape {np.asarray(v).shape} but k has shape {k.shape}")


def plot_score_curves(
    curves: Mapping[str, ScoreCurve],
    path: str | Path,
    *,
    scores: Sequence[str] = ("nmi", "wcp"),
    n_true: int | None = None,
    title: str | None = None,
    k_max: int | None = None,
    percent: bool = True,
) -> Path:
    """Save a PNG with one panel per score: every method's curve and its operating point (circle).

    Parameters
    ----------
    curves : mapping method label -> :class:`ScoreCurve`
    path : where to write the PNG (written atomically)
    scores : which scores to plot, one panel each
    n_true : true number of clusters; drawn as a dashed vertical line
    title : figure title
    k_max : right end of the x axis (default: the largest k of any curve)
    percent : show scores × 100 (the paper's units)
    """
    plt = pyplot()
    if not curves:
        raise ConfigError("plot_score_curves needs at least one curve")
    scale = 100.0 if percent else 1.0
    fig, axes = plt.subplots(1, len(scores), figsize=(4.6 * len(scores), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, score in enumerate(scores):
        ax = axes[0, j]
        for i, (label, c) in enumerate(curves.items()):
            if score not in c.scores:
                raise ConfigError(f"curve {label!r} has no score {score!r}; it has {sorted(c.scores)}")
            col = colours[i % len(colours)]
            k = np.asarray(c.k)
            order = np.argsort(k)
            # (a curve of one point, a clustering's own scores, is that point: a line of one point showed as
            # a line in the legend and nowhere in the plot, a research trial)
            style = {"marker": "o", "ms": 7, "mfc": "none", "mew": 2, "ls": "none"} if k.size == 1 else {"lw": 1.3}
            ax.plot(k[order], scale * np.asarray(c.scores[score])[order], color=col, label=label, **style)
            if c.operating_point and score in c.operating_point:
                kk, v = c.operating_point[score]
                ax.plot([kk], [scale * v], "o", ms=7, mfc="none", mec=col, mew=2)
        if n_true is not None:
            ax.axvline(n_true, color="#444", ls="--", lw=0.8)
        if k_max is not None:
            ax.set_xlim(0, k_max)
        ax.set_xlabel("number of clusters")
        ax.set_ylabel(score.upper() + (" (%)" if percent else ""))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


#: rows a report's curve is computed on at most (a seeded sample above): complete linkage is dense
CURVE_ROWS = 3000


def truth_curve(X: Any, y: Any, *, distance: str = "sqeuclidean", max_rows: int = CURVE_ROWS,
                k_max: int | None = None, at: Any = None, seed: int = 0) -> tuple[ScoreCurve, np.ndarray]:
    """NMI and WCP against the true labels ``y`` of the complete-linkage cut of ``X`` at every
    number of clusters up to ``k_max`` (the BCL paper's curves: how good the rows could be
    clustered with an oracle K; each cut is scored, so a bound saves time), on a seeded sample of ``max_rows`` rows when there are more (complete linkage is
    a dense O(n²) pass). With ``at`` (a :class:`~kfree.threshold.Threshold`), the curve's
    operating point is the complete-linkage cut at that threshold: where a proposed cut falls on
    the curve (a ticket trial could not tie the two). Returns the curve and the rows it was
    computed on."""
    from ..cluster.curves import score_curve
    from ..cluster.threshold_hac import ThresholdAgglomerative
    from ..distances import check_distance
    from ..metrics.clustering import nmi, wcp

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    rows = np.arange(X.shape[0])
    if rows.size > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows.size, max_rows, replace=False))
    Z, t = X[rows], y[rows]
    distance = check_distance(distance)
    # a cut above every distance (cosine's are at most 2): the whole tree
    top = 3.0 if distance == "cosine" else float(((Z.max(0) - Z.min(0)) ** 2).sum()) + 1.0
    tree = ThresholdAgglomerative(threshold=top, linkage="complete",
                                  distance=distance, algorithm="dense").fit(Z)
    cur = score_curve(tree, {"nmi": lambda lab: nmi(t, lab), "wcp": lambda lab: wcp(t, lab)},
                      None if k_max is None else range(1, min(k_max, rows.size) + 1))
    point = None
    if at is not None:
        from ..distances import resolve_cut

        cut = tree.labels_at(resolve_cut(at, distance))
        k = int(np.unique(cut).size)
        point = {"nmi": (k, nmi(t, cut)), "wcp": (k, wcp(t, cut))}
    return ScoreCurve(cur["k"], {"nmi": cur["nmi"], "wcp": cur["wcp"]}, point), rows
