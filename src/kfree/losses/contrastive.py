"""Contrastive loss (Hadsell, Chopra & LeCun 2006), as in the BCL paper's baseline.

For a pair at Euclidean distance ``d``: ``½ d²`` if the two samples share an identity, and
``½ [m − d]²_+`` otherwise. Positives are pulled to a point, negatives pushed beyond ``m``;
the loss does not bound the size of a cluster of *unseen* identities relative to ``m``, so it
implies no clustering threshold (calibrate one on validation identities).

The BCL reference code learns the margin as ``m = softplus(h)`` with ``h`` initialised at 1
(``m = ln(1 + e) ≈ 1.313``, our default margin) and draws as many random negative pairs as there
are positive pairs; both are options here. Note that the loss only ever *decreases* in ``m`` (``∂L/∂m = [m − d]_+ ≥ 0``), so a
learned margin can only shrink; that is why ``learn_margin`` is off by default.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_choice, finite_positive
from ..exceptions import ConfigError
from ..registry import register
from .base import EmbeddingLoss, pair_sq
from .miners import all_pairs

NEGATIVES: tuple[str, ...] = ("all", "random")
REFERENCE_MARGIN = math.log1p(math.e)  # softplus(1): the BCL reference's initial margin


@register("loss", "contrastive")
class ContrastiveLoss(EmbeddingLoss):
    """``½·mean_pos d² + ½·mean_neg [m − d]²_+`` over the pairs of a batch (Euclidean ``d``).

    Parameters
    ----------
    margin : float
        Margin ``m`` in plain Euclidean units, ``> 0``. For unit-norm embeddings distances lie in
        ``[0, 2]``; default ``softplus(1) ≈ 1.313``, the BCL reference's starting value. (On
        synthetic blobs, m = 1 left unseen identities overlapping: nearest different-identity
        pairs at 0.49 while same-identity pairs reached 0.85.)
    learn_margin : bool
        Learn ``m = softplus(h)`` (``h`` initialised so that ``m`` starts at ``margin``), as the
        BCL reference does. The loss is monotone in ``m``, so it can only shrink.
    negatives : {"all", "random"}
        Every negative pair of the batch, or as many uniformly drawn negative pairs as there
        are positive pairs (the reference's sampling; uses the global torch RNG).
    margin_lr_scale : float
        Learning-rate multiplier for ``h`` relative to the network.
    """

    name = "contrastive"
    min_classes_per_batch = 2
    min_samples_per_class = 2

    def __init__(
        self,
        *,
        margin: float = REFERENCE_MARGIN,
        learn_margin: bool = False,
        negatives: str = "all",
        margin_lr_scale: float = 0.1,
    ) -> None:
        super().__init__()
        margin = finite_positive("margin", margin, "unit-norm range (0, 2]")
        check_choice("negatives", negatives, NEGATIVES)
        if not margin_lr_scale > 0:
            raise ConfigError(f"margin_lr_scale={margin_lr_scale} must be > 0")
        self.learn_margin = bool(learn_margin)
        self.negatives = negatives
        self.param_lr_scale = float(margin_lr_scale)
        # inverse softplus, so that softplus(h) == margin at the start
        h0 = margin + math.log(-math.expm1(-margin))
        self.h = nn.Parameter(torch.tensor(h0), requires_grad=self.learn_margin)

    def margin(self) -> torch.Tensor:
        """The current margin ``m = softplus(h)`` (Euclidean units)."""
        return F.softplus(self.h)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pos, neg = all_pairs(labels)  # (n_pos, 2), (n_neg, 2)
        if self.negatives == "random" and pos.shape[0] > 0 and neg.shape[0] > 0:
            pick = torch.randint(neg.shape[0], (pos.shape[0],), device=neg.device)
            neg = neg[pick]
        total = self.zero(embeddings) + self.h * 0.0
        if pos.shape[0] > 0:
            total = total + 0.5 * pair_sq(embeddings, pos).mean()
        if neg.shape[0] > 0:
            d_neg = pair_sq(embeddings, neg).clamp_min(1e-12).sqrt()  # clamp: sqrt has no gradient at 0
            total = total + 0.5 * F.relu(self.margin() - d_neg).pow(2).mean()
        return total

    @property
    def learned_hparams(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("margin",) if self.learn_margin else ()  # the margin moves only when it is learned

    def hparams(self) -> dict[str, Any]:
        return {"margin": float(self.margin().detach()), "learn_margin": self.learn_margin,
                "negatives": self.negatives}
