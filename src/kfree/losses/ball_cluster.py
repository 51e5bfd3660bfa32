"""Ball Cluster Learning loss (Tapaswi, Law & Fidler, ICCV 2019).

Each identity should be a ball of squared radius ``b`` around its centroid, and balls should be
far enough apart that complete linkage cut at ``4b`` separates them:

- positive term ``[d²(f, μ_own) − b]_+`` (weighted ×4, as in the reference code);
- negative term ``[9b + ε − d²(f, μ_hardest other)]_+``.

Centroids are batch class means re-normalised to the unit sphere; ``b = softplus(h)`` with ``h``
learned, initialised at 0.1 (``b ≈ 0.744``), as in the reference implementation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import finite_nonnegative, finite_positive, is_real
from ..exceptions import ConfigError
from ..registry import register
from ..threshold import Threshold
from .base import EmbeddingLoss, class_sums, squared_distances


@register("loss", "bcl")
class BallClusterLoss(EmbeddingLoss):
    """BCL in its centroid form.

    Parameters
    ----------
    init_h : float
        Initial pre-softplus radius parameter (reference: 0.1, so ``b ≈ 0.744``).
    alpha_pos, alpha_neg : float
        Weights of the positive and negative terms (reference: 4 and 1).
    eps : float
        Extra margin ``ε`` in ``9b + ε`` (reference ``gamma_eps = 0.05``).
    learn_radius : bool
        If False, ``b`` stays at its initial value (used when fine-tuning with frozen ``b``).
    radius_lr_scale : float
        Learning-rate multiplier for ``h`` relative to the network. Measured on the AT&T demo
        (60 epochs of 6 batches, Adam lr 1e-3): with 0.1 ``b`` stays at ≈ 0.743 and HAC at 4b
        puts the 10 unseen people in 1–3 clusters; with 1, b ≈ 0.58 (3–4 clusters); with 10,
        b ≈ 0.27–0.39 and 8–10 clusters. Adam moves ``h`` by about ``lr`` per step, so
        ``h`` needs a larger rate than the network to travel from 0.1 to ≈ −1.5 in a short run.
    """

    name = "bcl"
    min_classes_per_batch = 2
    min_samples_per_class = 2

    def __init__(
        self,
        *,
        init_h: float = 0.1,
        alpha_pos: float = 4.0,
        alpha_neg: float = 1.0,
        eps: float = 0.05,
        learn_radius: bool = True,
        radius_lr_scale: float = 10.0,
    ) -> None:
        super().__init__()
        # NaN or infinity would train on: a NaN loss, or a term silently dropped
        self.alpha_pos = finite_nonnegative("alpha_pos", alpha_pos)
        self.alpha_neg = finite_nonnegative("alpha_neg", alpha_neg)
        if self.alpha_pos + self.alpha_neg == 0:
            raise ConfigError("alpha_pos and alpha_neg are both 0: nothing to learn")
        self.eps = finite_nonnegative("eps", eps)
        self.param_lr_scale = finite_positive("radius_lr_scale", radius_lr_scale)
        if not (is_real(init_h) and math.isfinite(init_h)):
            raise ConfigError(f"init_h={init_h!r} must be a finite number (b = softplus(init_h) at the start)")
        self.h = nn.Parameter(torch.tensor(float(init_h)), requires_grad=learn_radius)

    def radius_sq(self) -> torch.Tensor:
        """The learned squared radius ``b = softplus(h)``."""
        return F.softplus(self.h)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        inv, sums = class_sums(embeddings, labels)
        k = sums.shape[0]
        if k < 2:
            return self.zero(embeddings) + self.h * 0.0
        centroids = F.normalize(sums, dim=1)  # class means (k, dim) re-normalised to the unit sphere
        d2 = squared_distances(embeddings, centroids)  # (batch, k)
        b = self.radius_sq()
        own = d2.gather(1, inv[:, None]).squeeze(1)  # (batch,)
        other = d2.masked_fill(F.one_hot(inv, k).bool(), math.inf).min(dim=1).values  # (batch,)
        pos = F.relu(own - b)
        neg = F.relu(9.0 * b + self.eps - other)
        return (self.alpha_pos * pos + self.alpha_neg * neg).mean()

    def implied_threshold(self) -> Threshold:
        # pairs inside one ball of squared radius b are at most (2 sqrt b)^2 = 4b apart; a radius
        # that training shrank below float32 (b = softplus(h) = 0 at h < -104) keeps no pair: the
        # smallest cut there is, not an error that would end the run at its next validation
        b = float(self.radius_sq().detach())
        return Threshold(value=max(4.0 * b, float(np.finfo(np.float64).tiny)), distance="sqeuclidean", source="4b")

    learned_hparams = ("b", "h")

    def hparams(self) -> dict[str, Any]:
        return {
            "alpha_pos": self.alpha_pos,
            "alpha_neg": self.alpha_neg,
            "eps": self.eps,
            "b": float(self.radius_sq().detach()),
            "h": float(self.h.detach()),
        }
