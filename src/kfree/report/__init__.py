"""Reports people look at: cluster montages, plots, an HTML page per run.

From Python: :func:`cluster_report` writes the page ``kfree report`` writes (sizes, a montage of
images or examples of texts, metrics, a 2-d map, the distances within and between true labels);
:func:`plot_cluster_sizes`, :func:`plot_cluster_map`, :func:`plot_label_distances` and
:func:`plot_learner_validation` write one PNG each and return its path (the map and the
distances: its path and what it shows; :func:`truth_curve` gives NMI/WCP at every number of
clusters and :func:`plot_score_curves` draws such curves, t-SNE or PCA; figures are drawn on canvases of their own: a notebook's matplotlib backend is left as it
is). Imported on first use (matplotlib is slow to import).
"""

from __future__ import annotations

from typing import Any

__all__ = ["cluster_report", "plot_cluster_map", "plot_cluster_sizes", "plot_label_distances", "plot_learner_validation",
           "plot_score_curves", "truth_curve"]


def __getattr__(name: str) -> Any:
    if name in ("cluster_report", "plot_cluster_map", "plot_cluster_sizes"):
        from . import clusters

        return getattr(clusters, name)
    if name in ("plot_score_curves", "truth_curve"):
        from . import curves

        return getattr(curves, name)
    if name == "plot_label_distances":
        from .distances import plot_label_distances

        return plot_label_distances
    if name == "plot_learner_validation":
        from .validation import plot_learner_validation

        return plot_learner_validation
    raise AttributeError(f"module 'kfree.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
