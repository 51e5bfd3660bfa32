"""Normalised-softmax classification features (NormFace; Wang et al. 2017).

Like :mod:`kfree.losses.softmax`, but both the embedding and the class weight vectors are
L2-normalised and the logits are cosines divided by a temperature: ``cos(f, w_k) / T``. This puts
the classification geometry on the unit sphere the embedding lives on, which tends to give
tighter clusters than plain softmax, yet still implies no clustering threshold for unseen
identities (calibrate one).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import finite_positive
from ..registry import register
from .softmax import ClassifierLoss, check_classes


@register("loss", "norm-softmax")
class NormalizedSoftmaxLoss(ClassifierLoss):
    """Cross-entropy over ``cos(f_i, w_k) / temperature`` for the training identities ``k``.

    Parameters
    ----------
    temperature : float
        ``T > 0``; logits lie in ``[−1/T, 1/T]``. Typical 0.05 (pytorch-metric-learning's
        default) to 0.1.
    n_classes, dim : int, optional
        Usually supplied by the trainer through :meth:`on_num_classes`.

    The weight matrix ``W`` has shape (dim, n_classes), as in pytorch-metric-learning's
    ``NormalizedSoftmaxLoss``, so weights can be compared one to one.
    """

    name = "norm-softmax"
    min_classes_per_batch = 1

    def __init__(self, *, temperature: float = 0.05, n_classes: int | None = None, dim: int | None = None) -> None:
        super().__init__()
        self.temperature = finite_positive("temperature", temperature, "typical 0.05–0.1")
        check_classes(n_classes, dim)
        self.W: nn.Parameter | None = None
        if n_classes is not None and dim is not None:
            self.on_num_classes(n_classes, dim)

    def on_num_classes(self, n_classes: int, dim: int) -> None:
        check_classes(int(n_classes), int(dim))
        if self.W is None or tuple(self.W.shape) != (dim, n_classes):
            self.W = nn.Parameter(torch.randn(int(dim), int(n_classes)) / math.sqrt(dim))

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Scaled cosines of shape (batch, n_classes)."""
        self.check_input(embeddings, None if self.W is None else self.W.shape[0])
        return F.normalize(embeddings, dim=1) @ F.normalize(self.W, dim=0) / self.temperature

    def hparams(self) -> dict[str, Any]:
        return {"temperature": self.temperature,
                "n_classes": int(self.W.shape[1]) if self.W is not None else None}
