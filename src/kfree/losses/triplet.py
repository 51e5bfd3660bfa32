"""Triplet losses L1/L2/L3 on squared Euclidean distances (Ho, Keuper, Pfreundt & Keuper, ICPR 2020).

With ``d²`` the squared Euclidean distance, anchor ``a``, positive ``p`` and negative ``n``:

- **L1** (FaceNet): ``[d²(a,p) − d²(a,n) + α]_+`` — only the *difference* of distances is
  constrained, so no absolute distance separates clusters: it implies no threshold and needs
  calibration (logistic regression on pair distances, or the validation #clusters match).
- **L2** (Zhang et al.): ``L1 + [d²(a,p) − β]_+`` — positives are also pulled inside ``β``.
- **L3** (the ICPR paper's proposal): ``[α − d²(a,n)]_+ + [d²(a,p) − β]_+`` — absolute margins:
  positives within ``β``, negatives beyond ``α``.

For L2/L3 a satisfied loss leaves same-identity pairs at ``d² ≤ β`` and different-identity pairs
at ``d² ≥ α`` (for L2 because ``d²(a,n) ≥ d²(a,p) + α ≥ α``), so the midpoint ``(α+β)/2`` in
squared units — ``τ = √((α+β)/2)`` in plain Euclidean units, the paper's Eq. (7) — separates them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..config import check_choice, finite_positive
from ..exceptions import ConfigError, DataError
from ..registry import register
from ..threshold import Threshold
from .base import EmbeddingLoss, squared_distances
from .miners import TRIPLET_MINING, all_triplets, given_triplets, hard_triplets, random_triplets

VARIANTS: tuple[str, ...] = ("l1", "l2", "l3")
REDUCTIONS: tuple[str, ...] = ("mean", "mean-nonzero")


@register("loss", "triplet")
@register("loss", "triplet-l1", variant="l1")
@register("loss", "triplet-l2", variant="l2")
@register("loss", "triplet-l3", variant="l3")
class TripletLoss(EmbeddingLoss):
    """Triplet loss in the ICPR 2020 variants L1, L2 and L3, with a choice of triplet mining.

    Parameters
    ----------
    variant : {"l1", "l2", "l3"}
        Which formula (see the module docstring). Default ``"l3"``.
    alpha : float
        Margin ``α`` in squared Euclidean units, ``> 0`` (paper: 0.8). For unit-norm embeddings
        squared distances lie in ``[0, 4]``, so useful values lie in ``(0, 4)``.
    beta : float
        Bound ``β`` on positive squared distances for L2/L3, ``0 < β < α`` (paper: 0.4 = α/2).
        Ignored by L1.
    mining : {"batch-all", "batch-hard", "random", "given"}
        Which triplets of a batch are used: all valid ones, the hardest positive and negative per
        anchor, one random positive and negative per anchor (the paper's random triplets), or the
        batch itself read as consecutive ``(anchor, positive, negative)`` rows — the layout of
        :class:`~kfree.data.samplers.TripletSampler`, whose label noise must reach the loss
        unfiltered (labels are then not consulted).
    reduction : {"mean", "mean-nonzero"}
        Average over all mined triplets, or only over those with a positive loss (what
        pytorch-metric-learning's default ``AvgNonZeroReducer`` does; keeps the gradient from
        fading as most triplets become easy).
    """

    name = "triplet"
    min_classes_per_batch = 2
    min_samples_per_class = 2

    def __init__(
        self,
        *,
        variant: str = "l3",
        alpha: float = 0.8,
        beta: float = 0.4,
        mining: str = "batch-all",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_choice("variant", variant, VARIANTS)
        finite_positive("alpha", alpha, "paper: 0.8")
        if variant != "l1":
            finite_positive("beta", beta, "paper: 0.4")
            if beta >= alpha:
                raise ConfigError(
                    f"beta={beta} must be < alpha={alpha}: positives (d² <= beta) must end closer "
                    "than negatives (d² >= alpha), else no threshold separates them"
                )
        check_choice("mining", mining, TRIPLET_MINING)
        check_choice("reduction", reduction, REDUCTIONS)
        self.variant = variant
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.mining = mining
        self.reduction = reduction

    @property
    def batch_layout(self) -> str:
        """``"triplets"`` when batches must come from a triplet sampler, else ``"labels"``."""
        return "triplets" if self.mining == "given" else "labels"

    def mine(self, sq_dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Index tensors ``(a, p, n)`` of the triplets this loss uses on a batch."""
        if self.mining == "batch-all":
            return all_triplets(labels)
        if self.mining == "batch-hard":
            return hard_triplets(sq_dist, labels)
        if self.mining == "random":
            return random_triplets(labels)
        return given_triplets(labels.shape[0], device=labels.device)

    def triplet_losses(self, d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
        """Per-triplet loss from squared distances ``d_ap``, ``d_an`` of shape (T,)."""
        if self.variant == "l1":
            return F.relu(d_ap - d_an + self.alpha)
        if self.variant == "l2":
            return F.relu(d_ap - d_an + self.alpha) + F.relu(d_ap - self.beta)
        return F.relu(self.alpha - d_an) + F.relu(d_ap - self.beta)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.mining == "given" and embeddings.shape[0] % 3 != 0:
            raise DataError(
                f"mining='given' reads the batch as (anchor, positive, negative) rows, so its size "
                f"must be a multiple of 3, got {embeddings.shape[0]}"
            )
        d2 = squared_distances(embeddings, embeddings)  # (B, B)
        a, p, n = self.mine(d2, labels)
        if a.numel() == 0:
            return self.zero(embeddings)
        losses = self.triplet_losses(d2[a, p], d2[a, n])  # (T,)
        if self.reduction == "mean-nonzero":
            nonzero = losses > 0
            if not bool(nonzero.any()):
                return self.zero(embeddings)
            return losses[nonzero].mean()
        return losses.mean()

    def implied_threshold(self) -> Threshold | None:
        if self.variant == "l1":
            return None  # relative margins only: calibrate (logistic regression or #clusters)
        return Threshold(
            value=math.sqrt((self.alpha + self.beta) / 2.0), distance="euclidean", source="sqrt((alpha+beta)/2)"
        )

    def hparams(self) -> dict[str, Any]:
        return {"variant": self.variant, "alpha": self.alpha, "beta": self.beta, "mining": self.mining,
                "reduction": self.reduction}
