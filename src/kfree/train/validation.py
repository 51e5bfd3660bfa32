"""Score an embedding on validation identities during training (used for model selection)."""

from __future__ import annotations

import numpy as np
from torch import nn

from ..cluster.threshold_hac import ThresholdAgglomerative
from ..embed.encode import encode
from ..losses.base import EmbeddingLoss
from ..metrics import nmi


def validation_score(model: nn.Module, loss: EmbeddingLoss, X_val: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    """NMI and #clusters of complete-linkage HAC on the validation embeddings.

    At the loss's implied threshold when it has one; otherwise at the cut that yields the true
    number of validation identities (the only threshold such a loss can be judged at).
    """
    Z = encode(model, X_val)
    thr = loss.implied_threshold()
    if thr is not None:
        hac = ThresholdAgglomerative(thr.value, distance=thr.distance).fit(Z)
    else:
        hac = ThresholdAgglomerative(n_clusters=len(np.unique(y_val)), distance="sqeuclidean").fit(Z)
    return {"val_nmi": nmi(y_val, hac.labels_), "val_clusters": float(hac.n_clusters_),
            "val_true": float(len(np.unique(y_val)))}
