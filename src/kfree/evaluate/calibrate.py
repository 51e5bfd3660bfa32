"""Choose a clustering threshold on labelled validation data, for losses that imply none.

**Validation #clusters match** (the BCL paper's baseline protocol): build the complete-linkage
dendrogram of the validation embeddings once and cut it between the two merge heights that
bracket the true number of clusters. That is exact and deterministic — no search needed,
because the number of clusters of a monotone dendrogram only changes at merge heights.
"""

from __future__ import annotations

import numpy as np

from ..cluster.threshold_hac import ThresholdAgglomerative
from ..exceptions import DataError
from ..threshold import Threshold


def threshold_for_n_clusters(
    Z: np.ndarray, n_clusters: int, *, distance: str = "sqeuclidean", linkage: str = "complete"
) -> Threshold:
    """The cut height at which HAC of ``Z`` yields ``n_clusters`` clusters.

    Parameters
    ----------
    Z : ndarray of shape (n, d), validation embeddings.
    n_clusters : the true number of validation identities (``1 <= n_clusters < n``).

    Returns the midpoint between the merge heights that bracket ``n_clusters``; where the tree
    has ties and no height gives exactly ``n_clusters``, the nearest achievable count is used.
    """
    n = Z.shape[0]
    if not 1 <= n_clusters < n:
        raise DataError(f"calibration needs 1 <= n_clusters < n_samples, got n_clusters={n_clusters}, n={n}")
    hac = ThresholdAgglomerative(n_clusters=n_clusters, distance=distance, linkage=linkage).fit(Z)
    heights = np.sort(hac.linkage_matrix_[:, 2])
    # after m merges there are n - m clusters: the cut lies between merge n-k-1 and merge n-k
    lo = heights[n - n_clusters - 1]
    hi = heights[n - n_clusters] if n - n_clusters < heights.shape[0] else lo * 2 + 1e-6
    value = float((lo + hi) / 2.0) if hi > lo else float(lo)
    if value <= 0:
        value = float(np.nextafter(0.0, 1.0)) if hi <= 0 else float(hi) / 2
    return Threshold(value=value, distance=distance, source=f"validation #clusters={n_clusters}")
