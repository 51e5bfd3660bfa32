"""Fine-tune a trained head on must-link / cannot-link pairs of unlabelled rows (the BCL paper's
BCL-FT, supplement §A).

On new data there are no labels, but there may be constraints: the frames of one face track must
link, tracks seen together cannot. With the clustering cut frozen (``4b`` for BCL, the chosen
rule's threshold otherwise) the head is trained with
:class:`~kfree.losses.pairwise.PairwiseConstraintLoss` on those pairs (lr 3e-4, up to 2,000
steps, ~1,000 pairs: the supplement's schedule), then the data is clustered at the *same* cut.
:meth:`kfree.learner.ClusterLearner.finetune` holds part of the pairs out and keeps the
fine-tuned head only where neither kind of held-out pair (must-links within the cut, cannot-links
beyond it) fares worse than with the head it started from, and both together fare better: in our
BCL reproduction fine-tuning over-merged (``results/bcl2019``), so it is checked, not trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import ConfigError

__all__ = ["FinetuneConfig", "choose_pairs", "finetune_head", "pair_shares", "run_finetune"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Schedule of the constraint fine-tuning (defaults: the supplement's).

    Parameters
    ----------
    iterations : int
        Optimiser steps (2,000).
    lr : float
        Adam learning rate (3e-4, 0.1× the training rate).
    max_pairs : int
        Most constraint pairs used (~1,000): all cannot-links (the scarce ones), then must-links
        up to the total, both seeded random subsets when there are more.
    seed : int
    stop_after_zero : int
        Stop early once the loss has been exactly 0 for this many consecutive iterations (0: never).
        A zero hinge loss has a zero gradient, and Adam's steps then decay geometrically
        (0.9^k / sqrt(0.999^k)): after 100 such iterations the remaining updates are < 1e-4 of a
        normal step, so stopping changes nothing measurable and saves most of the 2,000 iterations
        on our small episodes. The supplement's 2,000 stays the cap.
    """

    iterations: int = 2000
    lr: float = 3e-4
    max_pairs: int = 1000
    seed: int = 0
    stop_after_zero: int = 100

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations={self.iterations} must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if self.max_pairs < 1:
            raise ConfigError(f"max_pairs={self.max_pairs} must be >= 1")
        if self.stop_after_zero < 0:
            raise ConfigError(f"stop_after_zero={self.stop_after_zero} must be >= 0 (0 = never stop early)")


def choose_pairs(
    must_link: np.ndarray, cannot_link: np.ndarray, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_pairs`` constraints: cannot-links first (they are scarce), then must-links."""
    cl = cannot_link
    if cl.shape[0] > max_pairs:
        cl = cl[np.sort(rng.choice(cl.shape[0], max_pairs, replace=False))]
    room = max_pairs - cl.shape[0]
    ml = must_link
    if ml.shape[0] > room:
        ml = ml[np.sort(rng.choice(ml.shape[0], room, replace=False))] if room > 0 else ml[:0]
    return ml.reshape(-1, 2), cl.reshape(-1, 2)


def finetune_head(model: Any, loss: Any, X: np.ndarray, must_link: np.ndarray, cannot_link: np.ndarray,
                  cfg: FinetuneConfig = FinetuneConfig(), *, hook: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place on the row pairs of ``X`` (``must_link``, ``cannot_link``: (m, 2)
    row indices) with the constraint ``loss``; every step embeds all rows (an episode's frames).

    Returns the log: pairs used, the first and last loss, steps run."""
    import torch

    from .step import Batch

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    ml, cl = choose_pairs(np.asarray(must_link, dtype=np.int64).reshape(-1, 2),
                          np.asarray(cannot_link, dtype=np.int64).reshape(-1, 2), cfg.max_pairs, rng)
    if not ml.shape[0] and not cl.shape[0]:
        raise ConfigError("fine-tuning needs must-link or cannot-link pairs; none was given")
    rows = torch.as_tensor(np.asarray(X, dtype=np.float32))
    must = torch.as_tensor(ml) if ml.shape[0] else None
    cannot = torch.as_tensor(cl) if cl.shape[0] else None
    orig = None
    if must is not None and getattr(loss, "variant", None) == "bcl":  # BCL-FT keeps must-links below their start
        model.eval()
        with torch.no_grad():
            E = model(rows)
            orig = (E[must[:, 0]] - E[must[:, 1]]).pow(2).sum(1)
    batch = Batch(rows, kwargs={"must_link": must, "cannot_link": cannot, "orig_sq_dist": orig})
    steps, losses = run_finetune(model, loss, (batch for _ in range(cfg.iterations)), cfg, hook=hook)
    return {"n_must_link": int(ml.shape[0]), "n_cannot_link": int(cl.shape[0]),
            "loss_first_last": losses, "iterations_run": steps}


def run_finetune(model: Any, loss: Any, batches: Any, cfg: FinetuneConfig,
                 *, hook: Callable[..., None] | None = None) -> tuple[int, list[float]]:
    """The fine-tuning loop: Adam at ``cfg.lr`` over ``batches`` (:class:`~.step.Batch`), stopped
    after ``cfg.stop_after_zero`` steps of zero loss; the model is left in eval mode. Returns the
    steps taken and the first and last loss. (The BCL reproduction's episodes draw their own
    batches: a random frame per track for the cannot-links.)"""
    import torch

    from .step import train_steps

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
    losses: list[float] = []
    last = [float("nan")]
    zero_run = 0

    def on_step(i: int, v: float) -> bool:
        nonlocal zero_run
        if i == 1:
            losses.append(v)
        last[0] = v
        zero_run = zero_run + 1 if v == 0.0 else 0
        if hook is not None:
            hook("fine-tune", completed=i, total=cfg.iterations)
        return bool(cfg.stop_after_zero and zero_run >= cfg.stop_after_zero)

    steps = train_steps(model, loss, opt, batches, on_step=on_step)
    model.eval()
    return steps, [*losses, last[0]]


def pair_shares(Z: np.ndarray, must_link: np.ndarray, cannot_link: np.ndarray, cut_sq: float) -> tuple[float, float]:
    """The share of must-link pairs within the cut and of cannot-link pairs beyond it (squared
    Euclidean distances of the rows of ``Z``; NaN for a kind without pairs)."""
    Z = np.asarray(Z, dtype=np.float64)
    shares = []
    for pairs, inside in ((must_link, True), (cannot_link, False)):
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        d = ((Z[pairs[:, 0]] - Z[pairs[:, 1]]) ** 2).sum(1)
        shares.append(float(np.mean(d <= cut_sq if inside else d > cut_sq)) if pairs.shape[0] else float("nan"))
    return shares[0], shares[1]
