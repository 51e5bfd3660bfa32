"""The one training loop every training in kfree runs, and the one step it takes.

The trainer (:func:`kfree.train.trainer.train_embedding`: P×K batches or noisy triplets of
feature rows), constraint fine-tuning on an episode's must-/cannot-link index pairs, and the
ICPR 2020 CNN (image batches) differ in where their batches come from and what they record
between steps, not in how they train: :func:`train_steps` takes their :class:`Batch` stream and
runs :func:`optimisation_step` on each — embed the batch, compute the loss on the embeddings and
whatever the batch carries (labels, index pairs, reference distances), back-propagate, update —
then hands the value to the caller's ``on_step`` (validation, early stopping, checkpoints,
progress), which may stop the loop. A change to training (mixed precision, gradient clipping, a
distributed all-gather) is made here once and reaches every training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Batch:
    """One optimisation step's input: the rows to embed and what the loss reads besides them."""

    inputs: torch.Tensor
    args: tuple[Any, ...] = ()  # e.g. (labels,)
    kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. must_link=, cannot_link=


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


def train_steps(model: nn.Module, loss: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch], *,
                on_step: Callable[[int, float], bool | None] | None = None) -> int:
    """Train on ``batches`` (put the model in training mode first); return the steps taken.

    After step ``i`` (1-based) ``on_step(i, loss_value)`` runs; a true return value stops the
    loop before the next batch is drawn.
    """
    model.train()
    steps = 0
    for batch in batches:
        value = optimisation_step(model, loss, batch.inputs, optimizer, *batch.args, **batch.kwargs)
        steps += 1
        if on_step is not None and on_step(steps, value):
            break
    return steps
