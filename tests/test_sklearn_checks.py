"""scikit-learn's own estimator checks on the learner (those that apply to a y-requiring transformer)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from kfree import BallClusterLearner

# Checks that cannot apply, and why:
# - none known so far; a check listed here must say why it cannot apply.
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [BallClusterLearner(dims=(8,), epochs=2, p=2, k=2, eval_every=1)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
