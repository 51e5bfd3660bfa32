"""kfree — learn embeddings whose geometry says where a cluster ends.

Cluster data when the number of clusters is unknown: Ball Cluster Learning, triplet losses with
implied thresholds, exact threshold HAC, minimum cost multicut, and the metrics to judge them.

Top-level names are imported lazily so ``kfree --help`` does not pay for torch and sklearn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["BallClusterLearner", "Threshold", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .learner import BallClusterLearner
    from .threshold import Threshold


def __getattr__(name: str) -> Any:
    if name == "BallClusterLearner":
        from .learner import BallClusterLearner

        return BallClusterLearner
    if name == "Threshold":
        from .threshold import Threshold

        return Threshold
    raise AttributeError(f"module 'kfree' has no attribute {name!r}")
