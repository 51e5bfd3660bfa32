"""Threshold HAC decides every pair as scipy does: at exactly tau, far from the origin, in
euclidean units; exact ties follow scipy's merge order (graph paths: restricted to the τ-graph)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from kfree._exact_distances import gemm_band, gemm_ready, grid_centre, pair_distances
from kfree.cluster import ThresholdAgglomerative
from kfree.cluster import threshold_hac as th
from kfree.cluster.labels import first_seen_labels
from kfree.distances import condensed_distances_blocked

ALGORITHMS = ("dense", "sparse", "components")


def same_partition(a, b) -> bool:
    return np.array_equal(first_seen_labels(np.asarray(a)), first_seen_labels(np.asarray(b)))


def scipy_cut(X, t, distance, method="complete"):
    return fcluster(linkage(pdist(np.asarray(X, np.float64), distance), method), t, "distance")


def fit_labels(X, t, distance, algorithm, monkeypatch=None):
    """Labels of one of the three complete-linkage paths; "components" forces the per-component
    path (tiny components threshold, dense batches from 2 points)."""
    if algorithm != "components":
        return ThresholdAgglomerative(t, distance=distance, algorithm=algorithm).fit(X).labels_
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(th, "COMPONENTS_MIN_SAMPLES", 0)
        mp.setattr(th, "COMPONENTS_MIN_NEIGHBOURS", 0)  # (whatever the rows' τ-neighbours)
        mp.setattr(th, "DENSE_BATCH_MIN", 2)
        return ThresholdAgglomerative(t, distance=distance, algorithm="sparse").fit(X).labels_


# ---------------------------------------------------------------------------- regressions
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pair_at_exactly_tau_joins_in_squared_units(algorithm):
    """|x|² + |y|² − 2x·y put this pair a hair above scipy's own squared distance."""
    X = np.array([[0.2], [0.6]])
    t = float(pdist(X, "sqeuclidean")[0])
    assert t == 0.15999999999999998
    assert fit_labels(X, t, "sqeuclidean", algorithm).tolist() == [0, 0]
    assert fit_labels(X, np.nextafter(t, 0), "sqeuclidean", algorithm).tolist() == [0, 1]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_euclidean_boundary_is_decided_in_euclidean_units(algorithm):
    """sqrt(3) <= sqrt(3) although 3 > fl(sqrt(3))²; the sparse path compared d² with tau²."""
    X = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    t = float(np.sqrt(3.0))
    assert t**2 < 3.0 and pdist(X)[0] == t
    assert fit_labels(X, t, "euclidean", algorithm).tolist() == [0, 0]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_far_from_origin_equals_scipy(algorithm):
    """An offset of 1e5 with a spread of 1e-2: uncentred dense distances were up to 51 % off and
    8 of these 9 cuts differed from scipy."""
    rng = np.random.default_rng(0)
    for s in range(9):
        X = 1e5 + 1e-2 * rng.standard_normal((60, 3))
        for distance in ("sqeuclidean", "euclidean"):
            D = pdist(X, distance)
            t = float(np.quantile(D, 0.1 + 0.1 * s))
            assert same_partition(fit_labels(X, t, distance, algorithm), scipy_cut(X, t, distance))


def test_dense_distances_far_from_origin_are_accurate():
    rng = np.random.default_rng(1)
    X = 1e5 + 1e-2 * rng.standard_normal((50, 4))
    ref = pdist(X, "sqeuclidean")
    d = condensed_distances_blocked(X, "sqeuclidean", block=16)
    assert np.max(np.abs(d - ref) / ref) < 1e-6  # was up to 0.51 uncentred
    t = float(np.median(ref))
    d = condensed_distances_blocked(X, "sqeuclidean", block=16, exact_near=t)
    assert np.array_equal(d <= t, ref <= t)


@pytest.mark.parametrize("d", [1, 3, 64, 512])
@pytest.mark.parametrize("offset", [0.0, 1.0, 1e3, 1e6])
def test_gemm_band_bounds_the_gemm_error(d, offset):
    """The band of gemm_band contains |GEMM value − scipy's value| for every pair, with room."""
    rng = np.random.default_rng(d)
    X = offset + rng.standard_normal((80, d)) * rng.uniform(0.01, 10.0, size=d)
    ref = pdist(X, "sqeuclidean")
    g = condensed_distances_blocked(X, "sqeuclidean")  # GEMM values, no recomputation
    M = float((gemm_ready(X, "sqeuclidean") ** 2).sum(1).max())
    band = gemm_band(ref, M, d, "sqeuclidean")
    assert np.all(np.abs(g - ref) <= band / 4)
    Xc = X / np.linalg.norm(X, axis=1, keepdims=True)
    gc = condensed_distances_blocked(Xc, "cosine")
    refc = pdist(Xc, "cosine")
    assert np.all(np.abs(2 * gc - 2 * refc) <= gemm_band(2 * refc, 1.0, d, "cosine") / 4)


def test_pair_distances_are_scipys_bits_and_centre_is_exact_on_grids():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 17)) * 30 + 1e4
    i, j = np.triu_indices(40, 1)
    assert np.array_equal(pair_distances(X, i, j, "sqeuclidean"), pdist(X, "sqeuclidean"))
    assert np.array_equal(pair_distances(X, i, j, "euclidean"), pdist(X, "euclidean"))
    assert np.allclose(pair_distances(X, i, j, "cosine"), pdist(X, "cosine"), rtol=0, atol=1e-15)
    G = rng.integers(-7, 9, size=(30, 3)).astype(float) * 0.5 + 1000
    c = grid_centre(G.min(0), G.max(0))
    assert np.all(np.mod(c, 0.5) == 0)  # centred grid data stay on the grid: exact GEMM, exact ties
    assert np.array_equal(condensed_distances_blocked(G), pdist(G, "sqeuclidean"))


# ---------------------------------------------------------------------------- ties
def restricted_chain_labels(D, t):
    """scipy's nearest-neighbour chain for complete linkage on the τ-graph (pairs above ``t``
    missing): the tie order the graph paths promise (``linkage_core`` docstring)."""
    n = D.shape[0]
    D = np.where(D <= t, D, np.inf)
    np.fill_diagonal(D, np.inf)
    active = np.ones(n, dtype=bool)
    parent = np.arange(n)
    chain: list[int] = []
    while True:
        if not chain:
            starts = [i for i in range(n) if active[i] and np.isfinite(D[i, active]).any()]
            if not starts:
                break
            chain = [starts[0]]
        x = chain[-1]
        y, cur = (chain[-2], D[x, chain[-2]]) if len(chain) > 1 else (-1, np.inf)
        for i in range(n):
            if active[i] and i != x and D[x, i] < cur:
                y, cur = i, D[x, i]
        if y < 0:  # a chain root left without neighbours within the cut
            chain.pop()
            continue
        if not (len(chain) > 1 and y == chain[-2]):
            chain.append(y)
            continue
        chain = chain[:-2]
        a, b = min(x, y), max(x, y)  # b, the larger index, survives
        D[b, :] = D[:, b] = np.maximum(D[a, :], D[b, :])
        D[b, b] = np.inf
        D[a, :] = D[:, a] = np.inf
        active[a] = False
        parent[parent == a] = b
    return parent


def test_ties_example_scipy_chain_enters_through_a_pair_above_the_cut():
    """The one documented difference: scipy's chain starts at the isolated point 0, walks to 2
    (above the cut), then joins {3, 2}; the graph paths start at 3 and join {3, 4}."""
    X = np.array([[0.0], [3.0], [4.0], [2.0]])
    assert first_seen_labels(scipy_cut(X, 1.0, "euclidean")).tolist() == [0, 1, 2, 1]
    assert fit_labels(X, 1.0, "euclidean", "dense").tolist() == [0, 1, 2, 1]
    for algorithm in ("sparse", "components"):
        assert fit_labels(X, 1.0, "euclidean", algorithm).tolist() == [0, 1, 1, 2]


def test_ties_merged_cluster_keeps_the_larger_index_as_scipy():
    """Keeping the smaller index (as before) joined {0, 1, 0} here; scipy joins {0, 0}, {1, 2}."""
    X = np.array([[0.0], [1.0], [2.0], [0.0]])
    for algorithm in ALGORITHMS:
        assert fit_labels(X, 1.0, "euclidean", algorithm).tolist() == [0, 1, 1, 0]


def test_ties_on_integer_grids_follow_the_pinned_order():
    """Dense = scipy; sparse and per-component = scipy's chain on the τ-graph, on grid data
    full of exact ties (the old sparse kernel differed from scipy on 109 of 375 such cuts)."""
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(40):
        d, n = int(rng.integers(1, 4)), int(rng.integers(5, 30))
        X = rng.integers(0, 5, (n, d)).astype(float)
        D = pdist(X, "sqeuclidean")
        u = np.unique(D)
        t = float(rng.choice(u[u > 0]))
        ref = scipy_cut(X, t, "sqeuclidean")
        assert same_partition(fit_labels(X, t, "sqeuclidean", "dense"), ref)
        want = restricted_chain_labels(squareform(D), t)
        for algorithm in ("sparse", "components"):
            assert same_partition(fit_labels(X, t, "sqeuclidean", algorithm), want), algorithm
        differ += not same_partition(want, ref)
    assert differ <= 4  # the documented difference is rare (1 of these 40 cuts; ~6 % in general)


# ---------------------------------------------------------------------------- property
def tie_free(X, t_sq) -> bool:
    """No two squared distances at or below the cut within ~1e-12 of the spread (GEMM rounding
    may order such near-ties either way; exact ties make several partitions valid)."""
    D = np.sort(pdist(X, "sqeuclidean"))
    M = float((gemm_ready(X, "sqeuclidean") ** 2).sum(1).max())
    below = D[D <= t_sq * (1 + 1e-9) + 1e-300]
    return bool(np.all(np.diff(below) > 1e-12 * max(M, 1e-300)))


@st.composite
def data_and_threshold(draw):
    n = draw(st.integers(2, 24))
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from([0.0, 1.0, -37.5, 1e3, 1e5]))
    if draw(st.booleans()):
        X = rng.integers(-3, 4, (n, d)).astype(float) + offset  # integer grid (ties)
    else:
        scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
        X = rng.standard_normal((n, d)) * scale + offset
    distance = draw(st.sampled_from(["sqeuclidean", "euclidean"]))
    D = pdist(X, distance)
    pos = np.unique(D[D > 0])
    if pos.size == 0:
        t = 1.0
    elif draw(st.booleans()):
        t = float(pos[draw(st.integers(0, pos.size - 1))])  # exactly a pairwise distance
    else:
        t = float(np.quantile(pos, draw(st.floats(0.0, 1.0))))
    return X, t, distance


@settings(max_examples=60, deadline=None)
@given(case=data_and_threshold(), algorithm=st.sampled_from(ALGORITHMS))
def test_complete_linkage_equals_scipy_wherever_tie_free(case, algorithm):
    X, t, distance = case
    t_sq = t * t if distance == "euclidean" else t
    if not tie_free(X, t_sq):
        return
    assert same_partition(fit_labels(X, t, distance, algorithm), scipy_cut(X, t, distance))


def test_multicut_and_knn_components_are_safe_far_from_the_origin():
    """Their own GEMM distances centre the data first, like threshold HAC."""
    from kfree.cluster import KNNConnectedComponents, MulticutClustering

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (20, 3)), rng.normal(0, 0.01, (20, 3)) + 0.1])
    for est, far in ((MulticutClustering(threshold=0.05, distance="euclidean"), 1e7),
                     (KNNConnectedComponents(threshold=0.05, distance="euclidean"), 1e6)):
        for offset in (0.0, far):
            labels = est.fit(X + offset).labels_
            assert len(np.unique(labels[:20])) == 1 and len(np.unique(labels[20:])) == 1
            assert labels[0] != labels[20]
