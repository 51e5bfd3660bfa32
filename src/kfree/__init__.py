"""kfree — learn embeddings whose geometry says where a cluster ends.

Cluster data when the number of clusters is unknown: Ball Cluster Learning, triplet losses with
implied thresholds, exact threshold HAC, minimum cost multicut, and the metrics to judge them.
"""

__version__ = "0.1.0"

from .learner import BallClusterLearner  # noqa: E402
from .threshold import Threshold  # noqa: E402

__all__ = ["BallClusterLearner", "Threshold", "__version__"]
