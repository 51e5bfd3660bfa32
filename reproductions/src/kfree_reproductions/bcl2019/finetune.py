"""Fine-tune a trained head on one test episode with must-link / cannot-link constraints.

Supplement §A of the BCL paper: on a test episode there are no labels, only constraints from
the video — the frames of one track must link, tracks that overlap in time cannot link. With the
clustering threshold frozen (``4b`` for BCL, the validation ``τ`` for triplet / prototypical),
the head is fine-tuned with :class:`~kfree.losses.pairwise.PairwiseConstraintLoss` at lr 3e-4
for 2,000 iterations on ~1,000 pairs, one random frame per track for the cannot-links, and the
episode is clustered again at the *same* threshold. Labels are never read.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kfree.exceptions import ConfigError

log = logging.getLogger(__name__)


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


def finetune_on_episode(
    method,
    episode,
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    hook: Callable[..., None] | None = None,
):
    """Return a copy of ``method`` whose head was fine-tuned on ``episode``'s constraints.

    Parameters
    ----------
    method : FittedMethod
        A learned method (``bcl`` → BCL-FT with ``b`` frozen; any other → plain variant at its
        validation threshold).
    episode : kfree_reproductions.bcl2019.episodes.Episode
        Uses ``image_descriptors``, ``image_track``, ``must_link`` (image pairs) and
        ``cannot_link`` (track pairs); never the labels.

    Returns
    -------
    FittedMethod with the same threshold and a fine-tuned learner; its ``learner.history_`` gains
    a ``"finetune"`` entry (first/last loss, pairs used).
    """
    import torch

    from kfree.losses.pairwise import PairwiseConstraintLoss
    from kfree.train.step import Batch, train_steps
    from kfree_reproductions.bcl2019.methods import FittedMethod

    if method.learner is None:
        raise ConfigError(f"method {method.name!r} has no trained head to fine-tune; fine-tune bcl/triplet/prototypical")
    learner = copy.deepcopy(method.learner)
    model = learner.model_
    if method.name == "bcl":
        loss = PairwiseConstraintLoss.from_bcl(learner.loss_)
    else:
        loss = PairwiseConstraintLoss.from_threshold(method.threshold)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    ml, cl = choose_pairs(episode.must_link, episode.cannot_link, cfg.max_pairs, rng)
    X = torch.as_tensor(np.asarray(episode.image_descriptors, np.float32))  # (n_images, 128)
    n_tr = episode.n_tracks
    ml_t = torch.as_tensor(ml, dtype=torch.long)
    orig = None
    model.eval()
    with torch.no_grad():
        if ml.shape[0]:
            E = model(X)
            orig = (E[ml_t[:, 0]] - E[ml_t[:, 1]]).pow(2).sum(1)  # (m,) distances before fine-tuning
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
    # one random frame per track for cannot-links: their rows sit after the images in the batch
    cl_t = torch.as_tensor(cl, dtype=torch.long) + X.shape[0]
    losses: list[float] = []
    last = [float("nan")]
    zero_run = 0
    must = ml_t if ml.shape[0] else None
    cannot = cl_t if cl.shape[0] else None
    orig_d = orig if (ml.shape[0] and method.name == "bcl") else None

    def batches():
        for _ in range(cfg.iterations):
            frames = torch.as_tensor(episode.sample_images(rng))  # (n_tracks,) image index per track
            if must is None and cannot is None:
                return
            # every image, then one random frame per track (n_images + n_tracks rows)
            yield Batch(torch.cat([X, X[frames]]), kwargs=dict(must_link=must, cannot_link=cannot,
                                                               orig_sq_dist=orig_d))

    def on_step(i: int, v: float) -> bool:
        nonlocal zero_run
        if i == 1:
            losses.append(v)
        last[0] = v
        zero_run = zero_run + 1 if v == 0.0 else 0
        if hook is not None:
            hook("fine-tune", completed=i, total=cfg.iterations)
        return bool(cfg.stop_after_zero and zero_run >= cfg.stop_after_zero)

    steps = train_steps(model, loss, opt, batches(), on_step=on_step)
    v = last[0]
    losses.append(v)
    model.eval()
    learner.history_ = list(learner.history_) + [{
        "finetune": True, "episode": episode.name, "n_must_link": int(ml.shape[0]),
        "n_cannot_link": int(cl.shape[0]), "loss_first_last": losses, "tracks": n_tr,
        "iterations_run": steps,
    }]
    return FittedMethod(f"{method.name}-ft", method.threshold, method.train_threshold, learner)
