"""The validation curve of a training run: what each step did on held-out classes.

A head trained on a few seen classes is usually best early, before it memorises them; this plot
makes that visible. Top: validation NMI of every candidate rule the run tracked (the loss's own
threshold and the recalibrated cuts) against optimisation steps, the chosen step marked, and the
raw features' best NMI as a dashed line. Bottom: #clusters at the loss's own threshold against
the true number of validation classes, and the training loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .figures import pyplot, save_png


def plot_validation_curve(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    chosen: dict[str, Any] | None = None,
    raw_nmi: float | None = None,
    title: str = "validation on held-out classes",
) -> Path | None:
    """Write the validation curve of ``history`` (rows from training) to ``path`` (PNG).

    Returns ``None`` (writes nothing) when the history holds no validation rows.
    """
    rows = [r for r in history if "val_nmi" in r]
    if not rows:
        return None
    x_key = "step" if all("step" in r for r in rows) else "epoch"
    x = np.array([r[x_key] for r in rows], dtype=float)
    fig, (ax1, ax2) = pyplot().subplots(2, 1, figsize=(7.5, 6), sharex=True, height_ratios=[3, 2])
    series = sorted({k[len("val_nmi_"):] for r in rows for k in r if k.startswith("val_nmi_")})
    for name in series:
        y = np.array([r.get(f"val_nmi_{name}", np.nan) for r in rows], dtype=float)
        ax1.plot(x, y, lw=1.3, label=name.replace("_", ", "))
    if not series:
        ax1.plot(x, [r["val_nmi"] for r in rows], lw=1.3, label="model")
    if raw_nmi is not None:
        ax1.axhline(raw_nmi, color="k", ls="--", lw=1, label=f"raw features (best cut) {raw_nmi:.3f}")
    if chosen is not None and chosen.get("step") is not None:
        ax1.axvline(chosen["step"], color="tab:red", lw=1, alpha=0.7, label=f"kept: {x_key} {chosen['step']}")
    ax1.set_ylabel("validation NMI")
    ax1.legend(fontsize=8, loc="lower right")
    ax1.set_title(title, fontsize=10)
    own = [k for k in ("val_clusters_complete_learned",) if any(k in r for r in rows)]
    if own:
        ax2.plot(x, [r.get(own[0], np.nan) for r in rows], color="tab:blue", label="#clusters at own threshold")
        ax2.axhline(rows[0].get("val_true", np.nan), color="tab:blue", ls=":", label="true #classes")
        ax2.set_ylabel("#clusters")
        ax2.legend(fontsize=8, loc="upper left")
    loss = np.array([r.get("loss", np.nan) for r in rows], dtype=float)
    if np.isfinite(loss).any():
        ax3 = ax2.twinx()
        ax3.plot(x, loss, color="tab:gray", lw=1, label="training loss")
        ax3.set_ylabel("training loss", color="tab:gray")
    ax2.set_xlabel("optimisation step" if x_key == "step" else "epoch")
    fig.tight_layout()
    return save_png(fig, path)


def raw_best_nmi(selection: dict[str, Any]) -> float | None:
    """The best validation NMI among the raw-feature candidates of a learner's ``selection_``."""
    raw = [c["val_nmi"] for c in selection.get("candidates", []) if c["features"] == "raw"]
    return max(raw) if raw else None
