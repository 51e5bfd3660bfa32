"""Prototypical loss (Snell et al. 2017), in the batch form of the BCL paper's baseline.

Each identity's prototype is the mean of its embeddings in the batch; every sample is classified
among the batch's prototypes by a softmax over ``−scale · d²`` (squared Euclidean), and the loss
is the cross-entropy, averaged per identity and then over identities (the BCL reference code's
"mean of means", equal to the plain mean for balanced P×K batches). It orders distances but sets
no absolute scale for unseen identities, so it implies no threshold (calibrate one).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..config import finite_positive
from ..registry import register
from .base import EmbeddingLoss, class_sums, squared_distances


@register("loss", "prototypical")
class PrototypicalLoss(EmbeddingLoss):
    """Cross-entropy over ``−scale · d²(f_i, μ_k)`` to the batch class prototypes ``μ_k``.

    Parameters
    ----------
    scale : float
        Inverse temperature ``> 0`` applied to the squared distances. For unit-norm embeddings
        ``d² ∈ [0, 4]``, so ``scale = 1`` (Snell et al.) leaves soft posteriors; the BCL reference
        uses 0.1.
    """

    name = "prototypical"
    min_classes_per_batch = 2
    min_samples_per_class = 2

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = finite_positive("scale", scale, "typical 0.1–10")

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        inv, sums = class_sums(embeddings, labels)
        k = sums.shape[0]
        if k < 2:
            return self.zero(embeddings)
        counts = torch.bincount(inv, minlength=k).to(embeddings.dtype)  # (k,)
        prototypes = sums / counts[:, None]  # (k, dim)
        logits = -self.scale * squared_distances(embeddings, prototypes)  # (batch, k)
        per_sample = F.cross_entropy(logits, inv, reduction="none")  # (batch,)
        per_class = torch.zeros(k, dtype=embeddings.dtype, device=embeddings.device)
        per_class.index_add_(0, inv, per_sample)
        return (per_class / counts).mean()

    def hparams(self) -> dict[str, Any]:
        return {"scale": self.scale}
