"""kfree — learn embeddings whose geometry says where a cluster ends.

Cluster data when the number of clusters is unknown: Ball Cluster Learning, triplet losses with
implied thresholds, exact threshold HAC, minimum cost multicut, and the metrics to judge them.

Top-level names are imported lazily so ``kfree --help`` does not pay for torch and sklearn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["BallClusterLearner", "ClusterLearner", "Threshold", "TrainConfig", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .learner import BallClusterLearner, ClusterLearner
    from .threshold import Threshold


def __getattr__(name: str) -> Any:
    if name in ("ClusterLearner", "BallClusterLearner"):
        from . import learner

        return getattr(learner, name)
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name == "Threshold":
        from .threshold import Threshold

        return Threshold
    raise AttributeError(f"module 'kfree' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazily imported names too (tab completion lists them)."""
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
