"""Score-vs-#clusters plots with operating points (BCL paper, supplement Figures 1–2).

Cutting a dendrogram at every k gives a curve of NMI (or WCP, or any score) against the number
of clusters; a method's *operating point* is where its own threshold cuts. The curve shows how
good the representation could be with an oracle K, the point shows what the method actually
delivers without one — the gap between them is what a stopping rule costs. Inputs are plain
arrays (e.g. from :func:`kfree.cluster.curves.score_curve`), so this works for any data; the
BCL 2019 report (:mod:`.report`) is what draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfree.exceptions import ConfigError
from kfree.report.figures import pyplot, save_png


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
            ax.plot(k[order], scale * np.asarray(c.scores[score])[order], color=col, lw=1.3, label=label)
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
