"""The one optimisation step every training in kfree takes.

The trainer (:func:`kfree.train.trainer.train_embedding`: P×K batches or noisy triplets of
feature rows), constraint fine-tuning on an episode's must-/cannot-link index pairs, and the
ICPR 2020 CNN (image batches) differ in where their batches come from and what they record, not
in how they step: embed the batch, compute the loss on the embeddings and whatever the batch
carries (labels, index pairs, reference distances), back-propagate, update. That step lives here
once, so a change to it (mixed precision, gradient clipping, a distributed all-gather) reaches
every training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def optimisation_step(model: nn.Module, loss: nn.Module, inputs: torch.Tensor, optimizer: torch.optim.Optimizer,
                      *targets: Any, **named_targets: Any) -> float:
    """One step on one batch; returns the loss value.

    ``inputs`` are the rows the model embeds; ``targets``/``named_targets`` are passed to the loss
    after the embeddings (``labels`` for P×K batches and triplet rows, ``must_link=``,
    ``cannot_link=``, ``orig_sq_dist=`` for constraint pairs).
    """
    embeddings = model(inputs)
    value = loss(embeddings, *targets, **named_targets)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return float(value.detach())
