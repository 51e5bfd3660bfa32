"""Losses that imply no threshold recover the number of unseen identities once calibrated.

Two calibrations on the 20 validation identities: the HAC cut that yields their true number
(what the learner does by itself) and the 0.5 crossing of a logistic regression on their pair
distances. The threshold is then applied to 30 *other* identities. Saved models (with the
softmax losses' classifier weights, restored through ``on_num_classes``) must cluster the same.
"""

from __future__ import annotations

import numpy as np
import pytest
from _recovery import N_TEST, blobs, fit, within

from kfree.evaluate.calibrate import LogisticCalibration
from kfree.learner import ClusterLearner

# Measured on data seeds 0-3 of this set-up (30 test identities; #clusters at the validation-
# match / logistic threshold): triplet-l1, prototypical, softmax and norm-softmax stay within
# 28-32; contrastive is the fragile one: 30/31, 35/36, 30/33, 31/31 (seed 1 fails the 10% bound,
# and training twice as long makes it worse, 36/42: it over-clusters unseen identities). The test
# uses data seed 0.
LOSSES = ["triplet-l1", "prototypical", "contrastive", "softmax", "norm-softmax"]


@pytest.mark.parametrize("loss", LOSSES)
def test_calibrated_thresholds_recover_number_of_unseen_identities(loss, tmp_path):
    model = fit(loss)
    assert model.loss_.implied_threshold() is None
    _, _, X_va, y_va, X_te, _ = blobs()
    # 1) validation #clusters match (the learner's own fallback)
    assert model.threshold_.source == "validation #clusters=20"
    n = np.unique(model.cluster(X_te)).shape[0]
    assert within(n, N_TEST), f"{loss}: {n} clusters at {model.threshold_}"
    # 2) logistic regression on validation pair distances
    thr = LogisticCalibration.fit_embeddings(model.transform(X_va), y_va).threshold()
    n = np.unique(model.cluster(X_te, threshold=thr.to(model.threshold_.distance).value)).shape[0]
    assert within(n, N_TEST), f"{loss}: {n} clusters at logistic {thr}"
    # the saved model (classifier weights of the softmax losses included) clusters the same
    back = ClusterLearner.load(model.save(tmp_path / "m.kfree"))
    assert (back.cluster(X_te) == model.cluster(X_te)).all()
