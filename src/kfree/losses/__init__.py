"""Embedding losses; each one also says which clustering threshold it implies.

Every loss is a :class:`~kfree.losses.base.EmbeddingLoss` (``forward(embeddings, labels)``) with
``implied_threshold()`` returning a :class:`~kfree.threshold.Threshold` or ``None`` ("calibrate
on validation identities"):

=====================  =====================================  ==============================
registry name          class                                  implied threshold
=====================  =====================================  ==============================
``bcl``                :class:`BallClusterLoss`               ``4b`` (squared Euclidean)
``bcl-ft``/``pairwise`` :class:`PairwiseConstraintLoss`       frozen ``4b`` or ``τ``
``triplet-l1``         :class:`TripletLoss` (``variant="l1"``) none
``triplet-l2``/``-l3``  :class:`TripletLoss`                  ``√((α+β)/2)`` (Euclidean)
``prototypical``       :class:`PrototypicalLoss`              none
``contrastive``        :class:`ContrastiveLoss`               none
``softmax``            :class:`SoftmaxLoss`                   none
``norm-softmax``       :class:`NormalizedSoftmaxLoss`         none
=====================  =====================================  ==============================
"""

from .ball_cluster import BallClusterLoss
from .base import EmbeddingLoss
from .contrastive import ContrastiveLoss
from .normalized_softmax import NormalizedSoftmaxLoss
from .pairwise import PairwiseConstraintLoss
from .prototypical import PrototypicalLoss
from .softmax import SoftmaxLoss
from .triplet import TripletLoss

__all__ = [
    "BallClusterLoss",
    "ContrastiveLoss",
    "EmbeddingLoss",
    "NormalizedSoftmaxLoss",
    "PairwiseConstraintLoss",
    "PrototypicalLoss",
    "SoftmaxLoss",
    "TripletLoss",
]
