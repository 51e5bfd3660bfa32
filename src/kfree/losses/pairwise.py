"""BCL's pairwise constraint loss, for fine-tuning with must-link / cannot-link pairs.

Supplement §A of Tapaswi, Law & Fidler (ICCV 2019). On a test episode there are no identity
labels, only constraints that come from the video: faces of one track must link, tracks that
co-occur in time cannot link. With the clustering threshold frozen, the model is fine-tuned so
the constraints hold *at that threshold*:

- ``variant="bcl"`` (BCL-FT), ball radius ``b`` frozen:
  must-link ``d²(f_i, f_j) < min(d²_orig(f_i, f_j), 4b)`` — never push apart what is already
  close (``d²_orig`` is the pair's distance before fine-tuning);
  cannot-link ``d²(f_i, f_k) > 4b + ε``.
- ``variant="plain"`` (TRI-FT, PRO-FT), for models trained with losses that imply no threshold:
  with their validation threshold ``τ``, must-link ``d² < τ`` and cannot-link ``d² > τ``.

Each constraint becomes a hinge ``[·]_+``; the loss is the mean must-link hinge plus the mean
cannot-link hinge. The threshold it enforces is the one it implies.

The constraint interface takes index pairs, not identity labels::

    loss = PairwiseConstraintLoss.from_bcl(bcl_loss)        # b frozen at the trained value
    value = loss(emb, must_link=ml, cannot_link=cl, orig_sq_dist=d2_before)

Called as ``loss(emb, labels)`` (so ``kfree train --loss pairwise`` works), every same-label pair
of the batch is a must-link and every other pair a cannot-link.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..config import check_choice, finite_nonnegative, finite_positive
from ..exceptions import ConfigError, DataError
from ..registry import register
from ..threshold import Threshold
from .base import EmbeddingLoss, pair_sq
from .miners import all_pairs

PAIR_VARIANTS: tuple[str, ...] = ("bcl", "plain")


@register("loss", "pairwise")
@register("loss", "bcl-ft", variant="bcl")
class PairwiseConstraintLoss(EmbeddingLoss):
    """Hinge losses that make must-link pairs fall below, and cannot-link pairs above, a frozen cut.

    Parameters
    ----------
    variant : {"bcl", "plain"}
        ``"bcl"``: the cut is ``4b`` with cannot-links pushed past ``4b + eps`` and must-links
        kept below ``min(d²_orig, 4b)``. ``"plain"``: the cut is ``threshold``, must-links below
        and cannot-links above it (``+ eps``).
    b : float, optional
        BCL's frozen squared ball radius (required for ``"bcl"``); typical 0.1–0.75 for unit-norm
        embeddings (the released BCL checkpoint: 0.205).
    threshold : float, optional
        The frozen cut for ``"plain"`` (a validation threshold), in units of ``distance``.
    distance : {"sqeuclidean", "euclidean"}
        Units of ``threshold``; the hinges always work on squared distances.
    eps : float, optional
        Extra margin for cannot-links, ``>= 0``. Default 0.05 for ``"bcl"`` (BCL's ``ε``) and 0
        for ``"plain"`` (the supplement's plain ``d² > τ``).
    """

    name = "pairwise"
    min_classes_per_batch = 2
    min_samples_per_class = 2

    def __init__(
        self,
        *,
        variant: str = "bcl",
        b: float | None = None,
        threshold: float | None = None,
        distance: str = "sqeuclidean",
        eps: float | None = None,
    ) -> None:
        super().__init__()
        check_choice("variant", variant, PAIR_VARIANTS)
        check_choice("distance", distance, ("sqeuclidean", "euclidean"))
        if variant == "bcl":
            if b is None:
                raise ConfigError("variant='bcl' needs b= (the trained ball's squared radius, > 0): "
                                  "TrainConfig(loss_params={'b': 0.2}), or kfree train --loss-param b=0.2")
            if threshold is not None:
                raise ConfigError(f"variant='bcl' cuts at 4b; threshold={threshold} is only for variant='plain'")
            self.b: float | None = finite_positive("b", b)
            self.cut_sq = 4.0 * self.b
        else:
            if threshold is None:
                raise ConfigError("variant='plain' needs threshold= (e.g. the validation threshold, > 0; with kfree "
                                  "train: --loss-param variant=plain --loss-param threshold=T)")
            if b is not None:
                raise ConfigError(f"b={b} is only for variant='bcl'")
            t = finite_positive("threshold", threshold)
            self.b = None
            self.cut_sq = t * t if distance == "euclidean" else t
        eps = (0.05 if variant == "bcl" else 0.0) if eps is None else eps
        self.variant = variant
        self.eps = finite_nonnegative("eps", eps)
        self.distance = distance

    # --------------------------------------------------------------- construction
    @classmethod
    def from_bcl(cls, loss: Any, *, eps: float | None = None) -> PairwiseConstraintLoss:
        """BCL-FT from a trained :class:`~kfree.losses.ball_cluster.BallClusterLoss` (``b`` frozen)."""
        return cls(variant="bcl", b=float(loss.radius_sq().detach()), eps=eps)

    @classmethod
    def from_threshold(cls, threshold: Threshold, *, eps: float | None = None) -> PairwiseConstraintLoss:
        """TRI-FT / PRO-FT from a (validation) :class:`~kfree.threshold.Threshold`."""
        thr = threshold if threshold.distance in ("sqeuclidean", "euclidean") else threshold.to("sqeuclidean")
        return cls(variant="plain", threshold=thr.value, distance=thr.distance, eps=eps)

    # ------------------------------------------------------------------- forward
    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        must_link: torch.Tensor | None = None,
        cannot_link: torch.Tensor | None = None,
        orig_sq_dist: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``loss(emb, labels)`` (pairs from labels) or ``loss(emb, must_link=, cannot_link=)``."""
        if labels is not None:
            if must_link is not None or cannot_link is not None or orig_sq_dist is not None:
                raise DataError("pass either labels or must_link/cannot_link pairs, not both")
            return super().forward(embeddings, labels)
        return self.pair_loss(embeddings, must_link, cannot_link, orig_sq_dist)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pos, neg = all_pairs(labels)  # same label -> must-link, different -> cannot-link
        return self.pair_loss(embeddings, pos, neg)

    def pair_loss(
        self,
        embeddings: torch.Tensor,
        must_link: torch.Tensor | None,
        cannot_link: torch.Tensor | None,
        orig_sq_dist: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean must-link hinge + mean cannot-link hinge.

        Parameters
        ----------
        embeddings : tensor of shape (B, dim)
        must_link, cannot_link : LongTensor of shape (m, 2) and (c, 2), row indices into
            ``embeddings``; either may be None or empty.
        orig_sq_dist : tensor of shape (m,), optional
            Squared distances of the must-link pairs *before* fine-tuning (``"bcl"`` only); a
            must-link is then only asked to stay below ``min(d²_orig, 4b)``. Without it, ``4b``.
        """
        if embeddings.ndim != 2:
            raise DataError(f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}")
        ml = self._check_pairs("must_link", must_link, embeddings.shape[0])
        cl = self._check_pairs("cannot_link", cannot_link, embeddings.shape[0])
        total = self.zero(embeddings)
        if ml.shape[0] > 0:
            d2 = pair_sq(embeddings, ml)  # (m,)
            bound = torch.full_like(d2, self.cut_sq)
            if orig_sq_dist is not None:
                if self.variant != "bcl":
                    raise DataError("orig_sq_dist is only used by variant='bcl' (the supplement's min(d²_orig, 4b))")
                orig = torch.as_tensor(orig_sq_dist, dtype=d2.dtype, device=d2.device).detach()
                if orig.shape != d2.shape:
                    raise DataError(f"orig_sq_dist must have shape ({d2.shape[0]},), got {tuple(orig.shape)}")
                bound = torch.minimum(bound, orig)
            total = total + F.relu(d2 - bound).mean()
        elif orig_sq_dist is not None and torch.as_tensor(orig_sq_dist).numel() > 0:
            raise DataError("orig_sq_dist was given but there are no must_link pairs")
        if cl.shape[0] > 0:
            total = total + F.relu(self.cut_sq + self.eps - pair_sq(embeddings, cl)).mean()
        return total

    @staticmethod
    def _check_pairs(name: str, pairs: torch.Tensor | None, n: int) -> torch.Tensor:
        if pairs is None:
            return torch.empty(0, 2, dtype=torch.long)
        pairs = torch.as_tensor(pairs)
        if pairs.numel() == 0:
            return pairs.reshape(0, 2).long()
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise DataError(f"{name} must have shape (n_pairs, 2), got {tuple(pairs.shape)}")
        if pairs.dtype.is_floating_point:
            raise DataError(f"{name} must hold integer row indices, got dtype {pairs.dtype}")
        lo, hi = int(pairs.min()), int(pairs.max())
        if lo < 0 or hi >= n:
            raise DataError(f"{name} indices must lie in [0, {n - 1}], got range [{lo}, {hi}]")
        return pairs.long()

    # ----------------------------------------------------------------- threshold
    def implied_threshold(self) -> Threshold:
        if self.variant == "bcl":
            return Threshold(value=self.cut_sq, distance="sqeuclidean", source="4b (frozen)")
        # math.sqrt and t * t (in __init__), not kfree.distances' ** 0.5 and ** 2: those round
        # differently in the last bit on some values, and the frozen cut must stay the one trained at
        value = math.sqrt(self.cut_sq) if self.distance == "euclidean" else self.cut_sq
        return Threshold(value=value, distance=self.distance, source="frozen threshold")

    def hparams(self) -> dict[str, Any]:
        return {"variant": self.variant, "b": self.b, "cut_sq": self.cut_sq, "eps": self.eps,
                "distance": self.distance}
