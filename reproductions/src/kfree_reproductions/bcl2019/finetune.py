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

import numpy as np

from kfree.exceptions import ConfigError
from kfree.train.finetune import FinetuneConfig, choose_pairs, run_finetune

log = logging.getLogger(__name__)


def finetune_on_episode(
    method,
    episode,
    cfg: FinetuneConfig | None = None,
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
    from kfree.train.step import Batch
    from kfree_reproductions.bcl2019.methods import FittedMethod

    cfg = FinetuneConfig() if cfg is None else cfg
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
    # one random frame per track for cannot-links: their rows sit after the images in the batch
    cl_t = torch.as_tensor(cl, dtype=torch.long) + X.shape[0]
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

    steps, losses = run_finetune(model, loss, batches(), cfg, hook=hook)
    learner.history_ = list(learner.history_) + [{
        "finetune": True, "episode": episode.name, "n_must_link": int(ml.shape[0]),
        "n_cannot_link": int(cl.shape[0]), "loss_first_last": losses, "tracks": n_tr,
        "iterations_run": steps,
    }]
    return FittedMethod(f"{method.name}-ft", method.threshold, method.train_threshold, learner)
