"""Embedding losses; each one also says which clustering threshold it implies.

Every loss is a :class:`~kfree.losses.base.EmbeddingLoss` (``forward(embeddings, labels)``) with
``implied_threshold()`` returning a :class:`~kfree.threshold.Threshold` or ``None`` ("calibrate
on validation identities").
"""

from .ball_cluster import BallClusterLoss
from .base import EmbeddingLoss

__all__ = ["BallClusterLoss", "EmbeddingLoss"]
