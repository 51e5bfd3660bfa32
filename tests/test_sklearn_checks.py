"""scikit-learn's own estimator checks on the learner (those that apply to a y-requiring transformer)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from kfree import ClusterLearner, TrainConfig

# Every check applies and passes. The estimator declares ``target_tags.required`` (it learns from
# identity labels, so checks call ``fit(X, y)``), ``input_tags.sparse = False`` (dense features
# only, with an explicit error) and ``preserves_dtype = ["float32"]`` (embeddings are float32).
# sklearn skips its array-API check unless SCIPY_ARRAY_API is set. A check listed here must say
# why it cannot apply.
EXPECTED_FAILED: dict[str, str] = {}


# the checks' data have 2 or 3 classes, too few to hold any out: the learner says so each time
@pytest.mark.filterwarnings("ignore:only [23] identities. none held out:UserWarning")
@parametrize_with_checks(
    [ClusterLearner(TrainConfig(dims=(8,), epochs=2, p=2, k=2, eval_every=1))],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
