"""Losses that imply a threshold recover the number of *unseen* identities at that threshold.

No validation data is used for the threshold: it is read off the trained loss (BCL ``4b``,
triplet L2/L3 ``√((α+β)/2)``, the frozen cut of the pairwise constraint loss).
"""

from __future__ import annotations

import numpy as np
import pytest
from _recovery import N_TEST, blobs, fit, within

# Measured on data seeds 0-3 of this set-up (30 test identities): bcl 30/30/31/30,
# triplet-l2 and -l3 30 on all four, bcl-ft 30/31/30/30 clusters. The test uses data seed 0.
CASES = {
    # init_h=-1 starts b at softplus(-1) = 0.31 so that 9b+eps < 4 is reachable within 300
    # steps; from the reference's 0.1 (b = 0.74) the radius needs thousands of steps to shrink
    "bcl": {"init_h": -1.0},
    "triplet-l2": {},
    "triplet-l3": {},
    "bcl-ft": {"b": 0.15},
}


@pytest.mark.parametrize("loss", list(CASES))
def test_implied_threshold_recovers_number_of_unseen_identities(loss):
    model = fit(loss, **CASES[loss])
    thr = model.threshold_
    assert "validation" not in thr.source  # the loss's own threshold, not a calibrated one
    _, _, _, _, X_te, _ = blobs()
    labels = model.cluster(X_te)
    n = np.unique(labels).shape[0]
    assert within(n, N_TEST), f"{loss}: {n} clusters for {N_TEST} identities at {thr}"


def test_thresholds_are_those_the_losses_imply():
    assert fit("triplet-l3").threshold_.value == pytest.approx(np.sqrt(0.6))
    assert fit("bcl-ft", b=0.15).threshold_.value == pytest.approx(0.6)
