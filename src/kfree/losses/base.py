"""Template for embedding losses (after pytorch-metric-learning's base loss).

``forward`` validates shapes and calls ``compute_loss``; subclasses write only ``compute_loss``
and take keyword-only hyper-parameters. When a batch has no valid pair/triplet the loss returns
a zero that stays in the autograd graph, so training loops never special-case it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..exceptions import DataError
from ..threshold import Threshold


class EmbeddingLoss(nn.Module):
    """Base class: ``loss = criterion(embeddings, labels)``.

    Class attributes
    ----------------
    name : str
        The name messages call the loss by. Leave it unset in a new loss (it stays ``"base"``):
        ``kfree.registry.get`` then names each instance by the name it was asked for. Set, it
        names every registration of the class alike (the built-ins set theirs).
    min_classes_per_batch : int
        Batches with fewer identities carry no signal (BCL needs >= 2).
    param_lr_scale : float
        Learning-rate multiplier for the loss's own parameters (e.g. BCL's radius), relative to
        the model's learning rate.
    min_samples_per_class : int
        Samples of one identity a P×K batch must hold for the loss to see any positive pair
        (2 for pair, triplet and centroid losses; 1 for classification losses). The trainer
        rejects ``k`` below it.
    batch_layout : str
        How the loss reads a batch: ``"labels"`` (identity labels, any order; P×K batches) or
        ``"triplets"`` (consecutive anchor/positive/negative rows from a triplet sampler). The
        trainer checks it against the sampler.
    """

    name: str = "base"
    min_classes_per_batch: int = 1
    param_lr_scale: float = 1.0
    min_samples_per_class: int = 1
    batch_layout: str = "labels"

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2:
            raise DataError(f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}")
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise DataError(
                f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}"
            )
        return self.compute_loss(embeddings, labels)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def implied_threshold(self) -> Threshold | None:
        """The clustering threshold this loss implies, or ``None`` (needs calibration)."""
        return None

    def on_num_classes(self, n_classes: int, dim: int) -> None:
        """Hook for losses that need the number of training classes (softmax heads)."""

    def hparams(self) -> dict[str, Any]:
        """Hyper-parameters to record in saved models."""
        return {}

    #: keys of :meth:`hparams` that training changes (learned values, e.g. BCL's radius)
    learned_hparams: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        """The hyper-parameters the loss was made with (:meth:`hparams` less what training
        changes): what a resumed run must share with the run that wrote the checkpoint."""
        return {k: v for k, v in self.hparams().items() if k not in self.learned_hparams}

    @staticmethod
    def zero(embeddings: torch.Tensor) -> torch.Tensor:
        """A zero that keeps the graph connected (so ``backward`` always works)."""
        return embeddings.sum() * 0.0


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (rows of x) × (rows of y), clamped at 0; differentiable."""
    d = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return d.clamp_min(0.0)


def pair_sq(embeddings: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n_pairs,) of the row pairs ``pairs`` (n_pairs, 2); exact
    differences rather than :func:`squared_distances`' expansion, which cancels for close pairs."""
    return (embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]]).pow(2).sum(1)


def class_sums(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums of the rows of a batch: ``(inv, sums)``, ``inv`` (batch,) the class index of
    each row (classes in sorted label order) and ``sums`` (n_classes, dim).

    Sums, not means: BCL re-normalises them to the unit sphere (where the count cancels), the
    prototypical loss divides by the counts it also needs for its per-class average.
    """
    classes, inv = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(classes.shape[0], embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    return inv, sums.index_add_(0, inv, embeddings)
