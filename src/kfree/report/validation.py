"""The validation curve of a training run: what each step did on held-out classes.

A head trained on a few seen classes is usually best early, before it memorises them; this plot
makes that visible. Top: validation NMI of every candidate rule the run tracked (the loss's own
threshold and the recalibrated cuts) against optimisation steps, the chosen step marked, the
raw features' best NMI as a dashed line, and as a dotted line what the model scored once the
choice of step was paid for (each half of the identities at the step chosen on the other half:
the score compared with the raw features). Bottom: #clusters at the loss's own threshold against
the true number of validation classes, and the training loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .figures import check_png, pyplot, save_png


def plot_learner_validation(learner: Any, path: str | Path, *, title: str | None = None) -> Path | None:
    """The validation curve of a fitted :class:`~kfree.learner.ClusterLearner`: its history, the
    step it kept, the rule it chose and the raw features' best score (what ``kfree train`` and
    ``kfree demo`` draw). ``None`` when it validated nothing."""
    from sklearn.utils.validation import check_is_fitted

    from ..evaluate.selection import ClusterRule, best_rule

    check_is_fitted(learner, "selection_")  # (a NotFittedError, as the learner's own methods raise)
    sel = learner.selection_
    chosen = sel["chosen"]
    # the raw rule the model had to beat (the raw cuts rank among themselves as the choice ranks them)
    raw = [ClusterRule.from_dict(c) for c in sel.get("candidates", []) if c["features"] == "raw"]
    best_raw = best_rule(raw) if raw else None
    thr = chosen["threshold"]
    what = "raw features" if chosen["features"] == "raw" else "model"
    rule = f"chosen: {what}, {chosen['linkage']} at {thr['value']:.4g} {thr['distance']}"
    cross = sel.get("model_cross_fit")
    return plot_validation_curve(
        learner.history_, path, chosen=chosen, kept_step=learner.best_step_,
        raw_nmi=None if best_raw is None else best_raw.val_nmi,
        raw_label=None if best_raw is None else "raw features, best cut",
        cross_nmi=None if cross is None else float(np.mean(cross["nmi"])),
        title=f"{title or learner.train_config.loss + ': validation on held-out identities'}\n{rule}")


def plot_validation_curve(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    chosen: dict[str, Any] | None = None,
    kept_step: int | None = None,
    raw_nmi: float | None = None,
    raw_label: str | None = None,
    cross_nmi: float | None = None,
    title: str = "validation on held-out classes",
) -> Path | None:
    """Write the validation curve of ``history`` (rows from training) to ``path`` (PNG).

    ``kept_step`` marks the step whose model was kept (default: ``chosen``'s step), also when the
    raw features were chosen over it. ``raw_label`` names the line at ``raw_nmi`` (the raw
    features' best rule, scored on the same halves of the validation identities as the model:
    :func:`~kfree.evaluate.selection.raw_rules`). ``cross_nmi`` is the model's score with each half
    at the step chosen on the other half (:func:`~kfree.evaluate.selection.cross_fitted`).
    Returns ``None`` (writes nothing) when the history holds no validation rows.
    """
    check_png(path)
    rows = [r for r in history if "val_nmi" in r]
    if not rows:
        return None
    x_key = "step" if all("step" in r for r in rows) else "epoch"
    x = np.array([r[x_key] for r in rows], dtype=float)
    marker = "o" if len(rows) < 3 else None  # (one or two points draw no line)
    fig, (ax1, ax2) = pyplot().subplots(2, 1, figsize=(7.5, 6), sharex=True, height_ratios=[3, 2])
    series = sorted({k[len("val_nmi_"):] for r in rows for k in r if k.startswith("val_nmi_")})
    for name in series:
        y = np.array([r.get(f"val_nmi_{name}", np.nan) for r in rows], dtype=float)
        ax1.plot(x, y, lw=1.3, marker=marker, label=name.replace("_", ", "))
    if not series:
        ax1.plot(x, [r["val_nmi"] for r in rows], lw=1.3, marker=marker, label="model")
    if raw_nmi is not None:
        ax1.axhline(raw_nmi, color="k", ls="--", lw=1, label=f"{raw_label or 'raw features (best cut)'} {raw_nmi:.3f}")
    if cross_nmi is not None:
        ax1.axhline(cross_nmi, color="tab:red", ls=":", lw=1.2,
                    label=f"model, step chosen on the other half {cross_nmi:.3f}")
    if kept_step is None and chosen is not None:
        kept_step = chosen.get("step")
    if kept_step is not None:
        ax1.axvline(kept_step, color="tab:red", lw=1, alpha=0.7, label=f"model kept: {x_key} {kept_step}")
    ax1.set_ylabel("validation NMI")
    ax1.legend(fontsize=8, loc="lower right")
    ax1.set_title(title, fontsize=10)
    handles = []
    own = [k for k in ("val_clusters_complete_learned",) if any(k in r for r in rows)]
    if own:
        handles += ax2.plot(x, [r.get(own[0], np.nan) for r in rows], color="tab:blue", marker=marker,
                            label="#clusters at own threshold")
        handles.append(ax2.axhline(rows[0].get("val_true", np.nan), color="tab:blue", ls=":", label="true #classes"))
        ax2.set_ylabel("#clusters")
    else:
        ax2.set_yticks([])  # nothing on the left axis (a loss with no threshold of its own)
    loss = np.array([r.get("loss", np.nan) for r in rows], dtype=float)
    top = ax2
    if np.isfinite(loss).any():
        top = ax2.twinx()
        handles += top.plot(x, loss, color="tab:gray", lw=1, marker=marker, label="training loss")
        top.set_ylabel("training loss", color="tab:gray")
    if handles:  # one legend, on the top axis, so no line is drawn over it
        top.legend(handles=handles, fontsize=8, loc="upper left").set_zorder(10)
    ax2.set_xlabel("optimisation step" if x_key == "step" else "epoch")
    fig.tight_layout()
    return save_png(fig, path)


