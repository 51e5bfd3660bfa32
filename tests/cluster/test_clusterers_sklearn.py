"""scikit-learn's estimator checks on every registered clusterer (configured where needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from kfree import registry
from kfree.cluster import MulticutClustering, ThresholdAgglomerative
from kfree.exceptions import ConfigError, DataError, ParameterConflictWarning

#: constructor arguments of the clusterers that cannot run with their defaults (a threshold)
CONFIGURED = {"hac": dict(threshold=1.0), "multicut": dict(threshold=1.0), "ward": dict(threshold=1.0)}


def clusterers():
    names = registry.names("cluster")
    out = [registry.get("cluster", name, **CONFIGURED.get(name, {})) for name in names]
    # the cut at K is a second mode of the same class: check it too
    return out + [registry.get("cluster", "hac", n_clusters=2)]


def test_every_registered_clusterer_is_checked():
    # the built-ins at least (a contributor's new clusterer is checked too, with no edit here;
    # one whose defaults cannot run, e.g. no default threshold, gets an entry in CONFIGURED)
    assert {"finch", "gmeans", "hac", "hac-k", "hdbscan", "kmeans", "knn-cc", "multicut", "ward",
            "xmeans"} <= set(registry.names("cluster"))
    assert {type(e).__name__ for e in clusterers()} == {
        registry.resolve("cluster", n)[0].__name__ for n in registry.names("cluster")
    }


# sklearn's checks set n_clusters on any clusterer that has it, also on a thresholded
# ThresholdAgglomerative: n_clusters then wins, with a ParameterConflictWarning
@pytest.mark.filterwarnings("ignore::kfree.exceptions.ParameterConflictWarning")
@parametrize_with_checks(clusterers(), expected_failed_checks=lambda est: {})
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_threshold_hac_n_clusters_wins_and_is_validated_at_fit():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [9.0]])
    m = ThresholdAgglomerative(threshold=1.0).set_params(n_clusters=2)  # set_params never raises
    with pytest.warns(ParameterConflictWarning, match="n_clusters=2 and threshold=1.0"):
        assert m.fit(X).n_clusters_ == 2
    assert ThresholdAgglomerative(threshold=1.0).fit(X).n_clusters_ == 3
    with pytest.raises(ConfigError, match="threshold or n_clusters"):
        ThresholdAgglomerative().fit(X)
    with pytest.raises(ConfigError, match="n_clusters=0"):
        ThresholdAgglomerative(n_clusters=0).fit(X)
    with pytest.warns(ParameterConflictWarning):  # an unused threshold is not validated
        assert ThresholdAgglomerative(-1.0, n_clusters=1).fit(X).n_clusters_ == 1


@pytest.mark.parametrize("make", [
    lambda: ThresholdAgglomerative(0.5, distance="cosine"),
    lambda: MulticutClustering(0.5, distance="cosine"),
])
def test_all_zero_rows_under_cosine_are_counted_and_the_first_named(make):
    """Found by an embeddings trial: "cosine distance is undefined for all-zero rows" named no row
    of 58,000."""
    X = np.random.default_rng(0).normal(size=(30, 4))
    X[[7, 19]] = 0.0
    with pytest.raises(DataError, match=r"2 of X's 30 rows are \(first: row 7, from 0\)"):
        make().fit(X)
