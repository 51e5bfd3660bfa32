"""Threshold HAC: dense and sparse paths against scipy, constraints, cuts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from kfree.cluster import ThresholdAgglomerative
from kfree.cluster.curves import iter_cuts, score_curve
from kfree.cluster.labels import first_seen_labels
from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import ConfigError, DataError, ResourceError


def same_partition(a, b) -> bool:
    return np.array_equal(first_seen_labels(np.asarray(a)), first_seen_labels(np.asarray(b)))


def scipy_cut(X, t, linkage_, distance):
    return fcluster(linkage(pdist(np.asarray(X, np.float64), distance), linkage_), t, "distance")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 70),
    d=st.integers(1, 5),
    q=st.floats(0.02, 0.6),
    seed=st.integers(0, 10_000),
    linkage_=st.sampled_from(["complete", "single", "average"]),
    distance=st.sampled_from(["sqeuclidean", "euclidean", "cosine"]),
)
def test_sparse_and_dense_equal_scipy(n, d, q, seed, linkage_, distance):
    X = np.random.default_rng(seed).standard_normal((n, d))
    D = pdist(X, distance)
    t = float(np.quantile(D, q)) * (1 + 1e-7) + 1e-9
    ref = scipy_cut(X, t, linkage_, distance)
    for algorithm in ("sparse", "dense"):
        m = ThresholdAgglomerative(t, linkage=linkage_, distance=distance, algorithm=algorithm)
        assert same_partition(m.fit(X).labels_, ref), algorithm


def test_pair_at_exactly_threshold_is_joined():
    X = np.array([[0.0], [1.0], [3.0]])
    for algorithm in ("sparse", "dense"):
        m = ThresholdAgglomerative(1.0, distance="euclidean", algorithm=algorithm).fit(X)
        assert m.labels_.tolist() == [0, 0, 1]
        m = ThresholdAgglomerative(0.999, distance="euclidean", algorithm=algorithm).fit(X)
        assert m.n_clusters_ == 3


def test_sparse_complete_on_blobs_matches_scipy_and_finds_clusters():
    X, y = sphere_blobs(30, np.arange(30) % 7 + 3, 16, spread=0.3, seed=1)
    ref = scipy_cut(X, 0.6, "complete", "sqeuclidean")
    m = ThresholdAgglomerative(0.6, algorithm="sparse").fit(X)
    assert same_partition(m.labels_, ref)
    assert same_partition(m.labels_, y)
    assert m.n_clusters_ == 30
    assert m.algorithm_ == "sparse" and m.linkage_matrix_ is None and m.n_edges_ > 0


def test_single_linkage_threshold_property():
    X, _ = sphere_blobs(8, 12, 8, spread=0.9, seed=3)
    t = 0.5
    m = ThresholdAgglomerative(t, linkage="single", algorithm="sparse").fit(X)
    D = pdist(X.astype(np.float64), "sqeuclidean")
    from scipy.spatial.distance import squareform

    S = squareform(D)
    lab = m.labels_
    # every pair across clusters is above the threshold
    assert (S[lab[:, None] != lab[None, :]] > t).all()


def test_labels_at_and_labels_at_k_without_refit():
    X, _ = sphere_blobs(6, 10, 8, spread=0.8, seed=2)
    dense = ThresholdAgglomerative(1.2, algorithm="dense").fit(X)
    sparse = ThresholdAgglomerative(1.2, algorithm="sparse").fit(X)
    for t in (0.3, 0.7, 1.2):
        assert same_partition(dense.labels_at(t), sparse.labels_at(t))
        assert same_partition(dense.labels_at(t), scipy_cut(X, t, "complete", "sqeuclidean"))
    for k in range(sparse.n_clusters_, 61, 7):
        assert same_partition(dense.labels_at_k(k), sparse.labels_at_k(k))
        assert sparse.labels_at_k(k).max() + 1 == k
    with pytest.raises(ConfigError, match="refit"):
        sparse.labels_at(1.5)
    with pytest.raises(ConfigError, match="fewer than"):
        sparse.labels_at_k(1)
    assert dense.labels_at_k(1).max() == 0


@pytest.mark.parametrize("linkage_", ["complete", "average", "single", "ward"])
def test_a_cut_at_k_gives_k_clusters_on_tied_heights(linkage_):
    """Merges tied at one height: scipy's maxclust cut returns fewer than k clusters there; the
    first n − k merges give exactly k, as the sparse path and iter_cuts do."""
    from kfree.cluster import AgglomerativeK, WardThreshold

    line = np.arange(6.0)[:, None]  # 5 merges at distance 1 (single linkage: all tied)
    square = np.array([[0.0, 0], [0, 1], [5, 0], [5, 1], [0, 9], [5, 9]])
    grid = np.array([[i, j] for i in range(4) for j in range(4)], dtype=float)
    for X in (line, square, grid):
        for k in range(1, X.shape[0] + 1):
            if linkage_ == "ward":
                lab = WardThreshold(n_clusters=k).fit(X).labels_
            else:
                m = ThresholdAgglomerative(n_clusters=k, linkage=linkage_).fit(X)
                lab = m.labels_
                assert np.array_equal(AgglomerativeK(k, linkage=linkage_).fit(X).labels_, lab)
                assert np.array_equal(m.labels_at_k(k), lab)
            assert lab.max() + 1 == k, (X.shape, k)
            np.testing.assert_array_equal(lab, first_seen_labels(lab))


def test_curves_cut_every_k_like_labels_at_k():
    X, y = sphere_blobs(5, 8, 6, spread=0.9, seed=4)
    m = ThresholdAgglomerative(n_clusters=5).fit(X)
    cuts = dict(iter_cuts(m.merge_pairs_, X.shape[0], range(1, 41)))
    assert sorted(cuts) == list(range(1, 41))
    for k in (1, 3, 5, 17, 40):
        assert same_partition(cuts[k], m.labels_at_k(k))
    curve = score_curve(m, {"k_pred": lambda lab: lab.max() + 1})
    assert np.array_equal(curve["k"], curve["k_pred"])


def test_must_link_merges_first_and_cannot_link_splits():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
    base = ThresholdAgglomerative(1.0, distance="euclidean").fit(X)
    assert base.n_clusters_ == 3
    m = ThresholdAgglomerative(1.0, distance="euclidean").fit(X, must_link=[[1, 2]])
    # complete linkage between {1,2} and 0 or 3 is ~5 > 1: groups stay, 0 and 3 become alone
    assert m.labels_[1] == m.labels_[2]
    assert m.labels_[0] != m.labels_[1] and m.labels_[3] != m.labels_[2]
    c = ThresholdAgglomerative(1.0, distance="euclidean").fit(X, cannot_link=[[0, 1]])
    assert c.labels_[0] != c.labels_[1] and c.labels_[2] == c.labels_[3]
    for lk in ("single", "average"):
        c = ThresholdAgglomerative(1.0, distance="euclidean", linkage=lk).fit(
            X, cannot_link=[[0, 1]], must_link=[[3, 4]]
        )
        assert c.labels_[0] != c.labels_[1] and c.labels_[3] == c.labels_[4]


def test_a_cannot_link_pair_contradicting_the_must_links_is_named():
    from kfree.exceptions import DataError

    X = np.arange(8, dtype=float).reshape(4, 2)
    with pytest.raises(DataError, match=r"pair \(2, 2\) contradicts the must-link constraints: it pairs sample 2 with "
                                        r"itself; remove"):
        ThresholdAgglomerative(1.0).fit(X, cannot_link=[[2, 2]])
    with pytest.raises(DataError, match=r"pair \(0, 2\) contradicts .*: the two samples are joined by must-link pairs"):
        ThresholdAgglomerative(1.0).fit(X, must_link=[[0, 1], [1, 2]], cannot_link=[[0, 2]])


def test_must_link_groups_wider_than_a_complete_cut_are_warned_about():
    """A TV-episode trial: face tracks wider than the cut (a turn of the head) could join nothing
    under complete linkage and stayed clusters of their own, 132 for 25 characters, silently."""
    import warnings

    from kfree.exceptions import DataWarning

    # one person's rows around 0, a track of two of them 1.6 apart, another person's track around 10
    X = np.array([[-0.4], [0.0], [0.4], [-0.8], [0.8], [10.0], [10.3]])
    tracks = [[3, 4], [5, 6]]
    with pytest.warns(DataWarning, match=r"^1 of 2 must-link groups \(tracks\) are wider than the threshold 1 \(their "
                                         r"rows up to 1.6 apart, euclidean\), and 1 of them stayed clusters of their own"):
        m = ThresholdAgglomerative(1.0, distance="euclidean").fit(X, must_link=tracks)
    assert m.labels_[3] == m.labels_[4] and (m.labels_ == m.labels_[3]).sum() == 2
    # the advice names the option of a model too (kfree cluster MODEL refuses --linkage: a TV trial)
    with pytest.warns(DataWarning, match=r"measures groups by their mean distance .*kfree cluster --linkage average, "
                                         r"or for a model kfree train --linkage average") as said:
        ThresholdAgglomerative(1.0, distance="euclidean").fit(X, must_link=tracks)
    assert "scale" not in str(said[0].message)
    # tracks hundreds of times the cut wide: features on another scale (times, boxes clustered: a TV trial)
    with pytest.warns(DataWarning, match=r"most groups' own rows lie over 100× the threshold apart: are the features "
                                         r"on the scale"):
        ThresholdAgglomerative(1.0, distance="euclidean").fit(X * 1000, must_link=tracks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # average linkage, tight tracks, no tracks: nothing to say
        avg = ThresholdAgglomerative(1.0, distance="euclidean", linkage="average").fit(X, must_link=tracks)
        assert (avg.labels_ == avg.labels_[0]).sum() == 5
        ThresholdAgglomerative(1.0, distance="euclidean").fit(X, must_link=[[0, 1], [5, 6]])
        ThresholdAgglomerative(1.0, distance="euclidean").fit(X)


@pytest.mark.parametrize("linkage_", ["complete", "average", "single"])
def test_constraints_with_nothing_to_merge_or_across_components(linkage_):
    """A must-link group with no τ-edge to any other group, and cannot-link pairs whose partner
    lies in another τ-component: they change nothing (these crashed, or split a cluster)."""
    X = np.array([[0.0], [10.0], [20.0]])
    m = ThresholdAgglomerative(1.0, linkage=linkage_).fit(X, must_link=[[0, 1]])
    np.testing.assert_array_equal(m.labels_, [0, 0, 1])
    X = np.array([[0.0], [0.5], [1.0], [100.0]])
    m = ThresholdAgglomerative(1.2, linkage=linkage_).fit(X, cannot_link=[[0, 3]])
    np.testing.assert_array_equal(m.labels_, [0, 0, 0, 1])
    X = np.array([[0.0], [10.0], [10.5], [0.5], [0.9]])
    m = ThresholdAgglomerative(1.0, linkage=linkage_).fit(X, cannot_link=[[0, 3], [2, 4]])
    assert m.labels_[0] != m.labels_[3] and m.labels_[1] == m.labels_[2]
    assert m.labels_[4] in (m.labels_[0], m.labels_[3])  # 0.9 joins one side of the forbidden pair


def test_too_few_clusters_for_the_cannot_links_says_so():
    X = np.array([[0.0], [0.1], [0.2]])
    with pytest.raises(ConfigError, match="fewer than the 2 clusters the cannot-link constraints allow"):
        ThresholdAgglomerative(n_clusters=1).fit(X, cannot_link=[[0, 2]])


def test_cannot_link_propagates_through_merges():
    # 0-1-2 on a line; single linkage would chain them, cannot-link 0/2 forbids one cluster
    X = np.array([[0.0], [0.5], [1.0]])
    m = ThresholdAgglomerative(0.6, distance="euclidean", linkage="single").fit(
        X, cannot_link=[[0, 2]]
    )
    assert m.n_clusters_ == 2 and m.labels_[0] != m.labels_[2]


def test_constrained_matches_brute_force_groups():
    """Must-link groups as initial clusters == scipy on a data set where groups are points."""
    rng = np.random.default_rng(7)
    C = rng.standard_normal((12, 3))
    X = np.repeat(C, 3, axis=0) + rng.standard_normal((36, 3)) * 1e-3
    ml = np.array([[3 * i, 3 * i + j] for i in range(12) for j in (1, 2)])
    t = float(np.quantile(pdist(C, "sqeuclidean"), 0.3))
    m = ThresholdAgglomerative(t).fit(X, must_link=ml)
    ref = scipy_cut(C, t, "complete", "sqeuclidean")
    assert same_partition(m.labels_[::3], ref)


def test_contradiction_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(DataError, match="contradicts"):
        ThresholdAgglomerative(1.0).fit(X, must_link=[[0, 1], [1, 2]], cannot_link=[[0, 2]])
    with pytest.raises(DataError, match="out of range"):
        ThresholdAgglomerative(1.0).fit(X, must_link=[[0, 9]])
    with pytest.raises(DataError, match="shape"):
        ThresholdAgglomerative(1.0).fit(X, cannot_link=[0, 1])


@pytest.mark.parametrize("algorithm", ["dense", "sparse"])
def test_bad_input(algorithm):
    with pytest.raises(DataError):
        ThresholdAgglomerative(1.0, algorithm=algorithm).fit(np.empty((0, 3)))
    with pytest.raises(DataError, match="NaN"):
        ThresholdAgglomerative(1.0, algorithm=algorithm).fit([[0.0, np.nan], [1.0, 1.0]])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="threshold"):
            ThresholdAgglomerative(bad, algorithm=algorithm).fit([[0.0], [1.0]])
    with pytest.raises(DataError, match="n_clusters"):
        ThresholdAgglomerative(n_clusters=5).fit(np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="threshold or n_clusters"):
        ThresholdAgglomerative().fit(np.zeros((3, 2)))
    one = ThresholdAgglomerative(1.0, algorithm=algorithm).fit([[1.0, 2.0]])
    assert one.labels_.tolist() == [0] and one.n_clusters_ == 1
    dup = ThresholdAgglomerative(1e-6, algorithm=algorithm).fit(np.ones((4, 3)))
    assert dup.n_clusters_ == 1
    # one line, not a raw error from deep inside (numpy, fastcluster, an attribute not set yet)
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"a": [0.0, 0.1, 5.0, 5.1], "group": pd.Categorical(list("uvuv"))})
    with pytest.raises(DataError, match=r"non-numeric column\(s\): \['group'\]"):
        ThresholdAgglomerative(1.0, algorithm=algorithm).fit(table)
    with pytest.raises(DataError, match="squared distances overflow"):
        ThresholdAgglomerative(1.0, algorithm=algorithm).fit(np.array([[0.0], [1e200], [2e200]]))
    from sklearn.exceptions import NotFittedError

    for cut in (lambda m: m.labels_at(1.0), lambda m: m.labels_at_k(2)):
        with pytest.raises(NotFittedError, match="call fit"):
            cut(ThresholdAgglomerative(1.0, algorithm=algorithm))


def test_resource_error_when_graph_will_not_fit():
    X = np.random.default_rng(0).standard_normal((3000, 4)).astype(np.float32)
    with pytest.raises(ResourceError, match="memory_limit"):
        ThresholdAgglomerative(100.0, algorithm="sparse", memory_limit=0.01).fit(X)
    with pytest.raises(ResourceError, match="GiB"):
        ThresholdAgglomerative(n_clusters=3, memory_limit=0.001).fit(X)


def test_one_large_ball_goes_dense_and_is_not_refused(monkeypatch):
    """Found by review: a ball of points all within the threshold (one cluster) was refused when
    its τ-graph (48 bytes an edge) did not fit, though its condensed distances (4 bytes a pair)
    did; and below 50,000 points it went through its whole τ-graph, 4.5× slower than dense."""
    import kfree.cluster.threshold_hac as th

    rng = np.random.default_rng(2)
    X = (rng.normal(size=(5000, 8)) * 0.05 + 1.0).astype(np.float32)  # every pair within the cut
    part = X[:1500]
    # the limit is relative to the ball's size: the refusal and the fit happen at any size (from
    # DENSE_BATCH_MIN points); 1500 points: ~0.05 GiB of τ-edges, 0.008 condensed
    edges_gib = 1500 * 1499 / 2 * th.BYTES_PER_EDGE / 2**30
    dense_calls = []
    real = th._dense_component_merges
    monkeypatch.setattr(th, "_dense_component_merges", lambda *a: dense_calls.append(1) or real(*a))
    m = ThresholdAgglomerative(1.0, algorithm="sparse", memory_limit=edges_gib / 2).fit(part)  # edges do not fit
    assert m.n_clusters_ == 1 and dense_calls
    dense_calls.clear()
    # the default (auto) route from 5000 points (DENSE_MAX_SAMPLES; below, auto is dense HAC
    # outright) is the τ-graph: a dense one goes the dense route
    m = ThresholdAgglomerative(1.0).fit(X)
    assert m.algorithm_ == "sparse" and m.n_clusters_ == 1 and dense_calls
    # and the route is exact where the cut splits the ball (half of all pairs within it: dense)
    cut = float(np.median(pdist(part.astype(np.float64), "sqeuclidean")))
    dense_calls.clear()
    got = ThresholdAgglomerative(cut, algorithm="sparse").fit(part).labels_
    ref = fcluster(linkage(part.astype(np.float64), "complete", metric="sqeuclidean"), cut, "distance")
    assert dense_calls and len(np.unique(ref)) > 1 and same_partition(got, ref)


@pytest.mark.parametrize(
    "spread,tau,tile,scale",
    [(0.3, 0.6, 4096, 1.0), (0.9, 1.2, 64, 1.0), (0.3, 0.05, 4096, 1.0), (0.3, 0.6, 4096, 300.0)],
)
def test_pruned_radius_graph_is_exact(spread, tau, tile, scale):
    """The cell-pruned graph holds every pair <= tau exactly once, with exact distances (also
    far from the origin, where float32 rounding of |x|² + |c|² − 2x·c is largest)."""
    from kfree.cluster._radius_graph import radius_edges

    X, _ = sphere_blobs(40, 25, 16, spread=spread, seed=5)
    X = X.astype(np.float64) * scale + (scale - 1.0) * 2.0
    tau = tau * scale**2
    a = radius_edges(X, tau, prune=False, tile=tile)
    b = radius_edges(X, tau, prune=True, tile=tile)
    assert (b[0] < b[1]).all()
    ka = set(zip(a[0].tolist(), a[1].tolist()))
    kb = set(zip(b[0].tolist(), b[1].tolist()))
    assert len(kb) == b[0].shape[0]  # no pair twice
    assert ka == kb and len(ka) > 0
    D = squareform(pdist(X.astype(np.float64), "sqeuclidean"))
    assert len(ka) == int((D[np.triu_indices(len(X), 1)] <= tau).sum())
    np.testing.assert_allclose(b[2], D[b[0], b[1]], rtol=1e-12, atol=1e-12)


def test_radius_components_match_the_graph():
    """Components without edges equal the connected components of the exact τ-graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from kfree.cluster._radius_graph import radius_components, radius_edges

    for spread, tau in ((0.3, 0.6), (0.9, 1.2), (0.5, 0.02)):
        X, _ = sphere_blobs(30, 20, 16, spread=spread, seed=6)
        ei, ej, _ = radius_edges(X, tau)
        A = coo_matrix((np.ones(len(ei)), (ei, ej)), shape=(len(X), len(X)))
        _, ref = connected_components(A, directed=False)
        got = radius_components(X, tau)
        assert np.array_equal(first_seen_labels(ref), first_seen_labels(got))


def test_tight_cells_are_tight_pure_and_about_one_per_cluster():
    """Pruning cells: every member pair within the radius (so a cell is connected without
    comparing its pairs), no cell mixing two separated clusters, and fragments of a cluster
    that k-means cut apart joined again. Small target/block sizes force the k-means split of
    oversized cells and the complete-linkage cut inside them."""
    import math

    from kfree.cluster._radius_graph import (
        _kmeans_cells,
        _merge_fragments,
        _recentre,
        _tight_cells,
    )

    X, y = sphere_blobs(120, np.arange(120) % 13 + 2, 32, spread=0.3, seed=11)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    rad = math.sqrt(0.6)
    km = _kmeans_cells(X32, target=64)
    frag, centres, _, tight = _tight_cells(X32, km, rad, 0, block=40)
    assert tight.all()
    merged, mcentres, mradii, mtight = _merge_fragments(X32, frag, centres, tight, rad)
    assert mtight.all()
    n_true = len(np.unique(y))
    n_frag, n_cells = len(centres), len(mcentres)
    assert n_cells <= n_frag and n_frag > n_true  # k-means did cut clusters apart ...
    assert n_cells <= 1.2 * n_true  # ... and merging joined nearly all fragments
    for assign in (frag, merged):
        for c in np.unique(assign):
            members = X32[assign == c].astype(np.float64)
            assert len(np.unique(y[assign == c])) == 1
            if len(members) > 1:
                assert pdist(members).max() <= rad
    # centres and radii are exact
    _, c2, r2 = _recentre(X32, merged)
    np.testing.assert_allclose(mcentres, c2)
    np.testing.assert_allclose(mradii, r2)


def test_tiny_radius_keeps_coarse_cells_and_exact_components():
    """A radius far below the spacing of the points (almost nothing joins): cutting every
    k-means cell into single points would make the point-to-cell pass all pairs, so such cells
    stay whole (not tight) — and the components are still those of the exact graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from kfree.cluster._radius_graph import _pruning_cells, radius_components, radius_edges

    X, _ = sphere_blobs(100, 30, 16, spread=0.3, seed=14)  # blobs: the cells do prune
    X[1::50] = X[::50] + 0.003  # 60 near-duplicate pairs: the only τ-edges
    tau = 0.001
    cells = _pruning_cells(X, float(np.sqrt(tau)), 0)
    assert cells is not None
    assert len(cells[1]) < 300 and not cells[3].any()
    ei, ej, _ = radius_edges(X, tau, prune=False)
    A = coo_matrix((np.ones(len(ei)), (ei, ej)), shape=(len(X), len(X)))
    _, ref = connected_components(A, directed=False)
    assert np.array_equal(first_seen_labels(ref), first_seen_labels(radius_components(X, tau)))
    assert len(np.unique(ref)) == 3000 - 60


def test_radius_components_on_many_clusters_match_the_graph():
    """Thousands of points in hundreds of clusters (the pruned path with tight cells: a point
    is near 3.5 % / 9.3 % of the cells), clusters of very different sizes, thresholds that
    join some of them."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from kfree.cluster._radius_graph import radius_components, radius_edges

    sizes = np.r_[np.full(150, 3), np.full(40, 25), [400, 900]]
    for spread, tau in ((0.3, 0.6), (0.3, 0.8)):  # 181 and 104 components of 192 clusters
        X, _ = sphere_blobs(len(sizes), sizes, 24, spread=spread, seed=12)
        ei, ej, _ = radius_edges(X, tau, prune=False)
        A = coo_matrix((np.ones(len(ei)), (ei, ej)), shape=(len(X), len(X)))
        _, ref = connected_components(A, directed=False)
        got = radius_components(X, tau)
        assert np.array_equal(first_seen_labels(ref), first_seen_labels(got))
        assert radius_edges(X, tau, prune=True)[0].shape == ei.shape


@pytest.mark.parametrize("threads", [2, 5])
def test_point_to_cell_pass_on_several_threads(monkeypatch, threads):
    """The point-to-cell pass splits its blocks over a thread pool sized by the BLAS budget (one
    thread in this suite, see conftest.py): on several threads the pruned graph and components
    are the ones the single thread finds, and those of the exact graph."""
    from kfree.cluster import _radius_graph

    sizes = np.r_[np.full(150, 3), np.full(40, 25), [400, 900]]
    X, _ = sphere_blobs(len(sizes), sizes, 24, spread=0.3, seed=12)
    one = _radius_graph.radius_edges(X, 0.6, prune=True), _radius_graph.radius_components(X, 0.6)
    calls = []

    def several() -> int:
        calls.append(threads)
        return threads

    monkeypatch.setattr(_radius_graph, "_n_threads", several)
    many = _radius_graph.radius_edges(X, 0.6, prune=True), _radius_graph.radius_components(X, 0.6)
    assert len(calls) >= 2  # both calls ran the pass on the pool
    for a, b in zip(one[0], many[0]):
        assert np.array_equal(a, b)
    assert np.array_equal(one[1], many[1])
    exact = _radius_graph.radius_edges(X, 0.6, prune=False)
    assert exact[0].shape == one[0][0].shape


def test_registry_names():
    from kfree import registry

    assert isinstance(registry.get("cluster", "hac", threshold=1.0), ThresholdAgglomerative)


def test_componentwise_path_when_edges_do_not_fit_at_once(monkeypatch):
    """Over the memory limit, complete linkage runs per tau-component; same partition."""
    from kfree.cluster import threshold_hac

    X, y = sphere_blobs(60, np.arange(60) % 9 + 2, 16, spread=0.3, seed=9)
    ref = scipy_cut(X, 0.25, "complete", "sqeuclidean")
    whole = ThresholdAgglomerative(0.25, algorithm="sparse").fit(X)
    # budget: more than the biggest component, less than the whole graph
    limit_gb = whole.n_edges_ * threshold_hac.BYTES_PER_EDGE / 2**30 / 3
    seen = {}
    orig = threshold_hac._complete_by_components

    def spy(*args, **kw):
        seen["called"] = True
        return orig(*args, batch_points=50)

    monkeypatch.setattr(threshold_hac, "_complete_by_components", spy)
    m = ThresholdAgglomerative(0.25, algorithm="sparse", memory_limit=limit_gb).fit(X)
    assert seen.get("called")
    assert same_partition(m.labels_, ref) and same_partition(m.labels_, whole.labels_)
    assert m.n_edges_ == whole.n_edges_
    for t in (0.1, 0.2):
        assert same_partition(m.labels_at(t), scipy_cut(X, t, "complete", "sqeuclidean"))


def test_dense_components_take_the_dense_path_with_the_same_tree(monkeypatch):
    """Per-component complete linkage: big clusters that are balls within the cut (all pairs
    joinable) go through fastcluster; labels at the cut and below equal scipy's."""
    from kfree.cluster import threshold_hac

    sizes = np.r_[[300, 280], np.arange(30) % 7 + 1]
    X, _ = sphere_blobs(len(sizes), sizes, 16, spread=0.3, seed=13)
    monkeypatch.setattr(threshold_hac, "COMPONENTS_MIN_SAMPLES", 100)
    monkeypatch.setattr(threshold_hac, "COMPONENTS_MIN_NEIGHBOURS", 0)
    calls = []
    orig = threshold_hac._dense_component_merges

    def spy(Xc, *a):
        calls.append(len(Xc))
        return orig(Xc, *a)

    monkeypatch.setattr(threshold_hac, "_dense_component_merges", spy)
    m = ThresholdAgglomerative(0.6, algorithm="sparse").fit(X)
    assert calls == [len(X)]  # one batch of all components, dense enough (35 % of pairs)
    D = pdist(X.astype(np.float64), "sqeuclidean")
    assert m.n_edges_ == int((D <= 0.6).sum())
    for t in (0.6, 0.3, 0.15):
        assert same_partition(m.labels_at(t), scipy_cut(X, t, "complete", "sqeuclidean"))


def test_sklearn_interface_and_progress_hook():
    from sklearn.base import clone

    X, y = sphere_blobs(4, 10, 8, spread=0.2, seed=1)
    m = ThresholdAgglomerative(0.5, algorithm="sparse")
    calls = []
    m.fit(X, hook=lambda step, completed, total: calls.append((step, completed, total)))
    assert calls and calls[-1][1] == calls[-1][2]
    assert np.array_equal(clone(m).fit_predict(X), m.labels_)
    assert clone(m).get_params()["threshold"] == 0.5
    assert not ThresholdAgglomerative.requires_n_clusters


def test_dtype_rounds_the_rows_before_clustering():
    """``dtype="float32"`` clusters what a float32 copy of X clusters (how the CLI reads files); a
    pair within float32 rounding of the cut may fall on the other side than in float64."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) * 100
    d2 = squareform(pdist(X, "sqeuclidean"))
    # just below a pair whose float32 copy is within the cut (pair 391 of this draw)
    cut = float(np.sort(d2[np.triu_indices(300, 1)])[391]) - 1e-9
    for algorithm in ("dense", "sparse"):
        got = ThresholdAgglomerative(cut, algorithm=algorithm, dtype="float32").fit(X).labels_
        ref = ThresholdAgglomerative(cut, algorithm=algorithm).fit(X.astype(np.float32)).labels_
        np.testing.assert_array_equal(got, ref)
        assert (ThresholdAgglomerative(cut, algorithm=algorithm).fit(X).labels_ != got).any()
    with pytest.raises(ConfigError, match="dtype='float16'"):
        ThresholdAgglomerative(1.0, dtype="float16").fit(X)


@pytest.mark.parametrize("linkage_", ["complete", "average", "single"])
def test_float16_rows_on_the_graph_path_cluster_as_their_float32_values(linkage_):
    """Found by review: float16 rows (the shipped Banking77 embeddings are float16) failed in a
    numba kernel, 60 frames deep, on the sparse path, which constraints and more than 5,000 rows
    always take."""
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float16)
    ref = ThresholdAgglomerative(1.0, linkage=linkage_, algorithm="dense").fit(X.astype(np.float32)).labels_
    got = ThresholdAgglomerative(1.0, linkage=linkage_, algorithm="sparse").fit(X).labels_
    np.testing.assert_array_equal(got, ref)
    joined = ThresholdAgglomerative(1.0, linkage=linkage_).fit(X, must_link=[[0, 1]]).labels_
    assert joined[0] == joined[1]


def test_a_ward_merge_height_is_refused_as_a_pair_distance():
    """Found by review: a model's chosen Ward threshold passed to ThresholdAgglomerative was cut
    as a complete-linkage diameter (3 clusters for 8 people, NMI 0.71 instead of 0.93)."""
    from kfree.cluster.multicut import MulticutClustering
    from kfree.cluster.ward import WardThreshold
    from kfree.exceptions import ConfigError
    from kfree.threshold import Threshold

    X = np.random.default_rng(0).normal(size=(30, 4))
    ward = Threshold(1.5, "euclidean", "Ward, validation #clusters=5")
    assert ward.is_ward_height and not Threshold(1.5, "euclidean", "4b").is_ward_height
    for make in (lambda: ThresholdAgglomerative(ward), lambda: MulticutClustering(threshold=ward)):
        with pytest.raises(ConfigError, match="is a Ward merge height .* learner.state_rule"):
            make().fit(X)
    np.testing.assert_array_equal(WardThreshold(ward).fit(X).labels_, WardThreshold(1.5).fit(X).labels_)


def test_a_ward_fit_of_many_rows_says_beforehand_that_it_takes_minutes(monkeypatch):
    """Found by a user trial: Ward on 29,471 rows of 512 features ran 12 minutes with no word
    (complete linkage shows progress; fastcluster's Ward cannot)."""
    import warnings

    from kfree.cluster import ward
    from kfree.exceptions import ScaleWarning

    X = np.random.default_rng(0).normal(size=(60, 4))
    monkeypatch.setattr(ward, "WARD_SLOW_ROWS", 50)
    with pytest.warns(ScaleWarning, match=r"Ward's agglomeration of 60 rows takes O\(n²·d\) time"):
        slow = ward.WardThreshold(2.0).fit(X).labels_
    monkeypatch.setattr(ward, "WARD_SLOW_ROWS", 60)
    np.testing.assert_array_equal(slow, ward.WardThreshold(2.0).fit(X).labels_)  # the same cut, said or not
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleWarning)
        ward.WardThreshold(2.0).fit(X[:50])  # at the limit: no word


def test_above_the_components_size_rows_with_few_neighbours_take_one_pass(monkeypatch):
    """Found by a scale trial: above 50,000 rows every complete-linkage fit went one τ-component at
    a time, which on 100,000 face descriptors (5.5 τ-neighbours per row, 128-d) took 212 s where
    one pass over the whole τ-graph took 30 s, with the same clusters. Rows with few neighbours now
    take that pass; balls of many neighbours per row keep the components pass. Same labels."""
    from kfree.cluster import threshold_hac

    monkeypatch.setattr(threshold_hac, "COMPONENTS_MIN_SAMPLES", 100)
    rng = np.random.default_rng(0)
    small = np.repeat(rng.normal(0, 3, (150, 16)), 4, axis=0) + rng.normal(0, 0.05, (600, 16))  # 3 neighbours
    balls, _ = sphere_blobs(4, 150, 16, spread=0.3, seed=1)  # ~150 neighbours per row
    for X, components in ((small, False), (balls, True)):
        m = ThresholdAgglomerative(0.6, algorithm="sparse").fit(X)
        assert (m._coarse_components is not None) == components
        assert same_partition(m.labels_, scipy_cut(X, 0.6, "complete", "sqeuclidean"))


def test_ward_linkage_points_to_the_ward_clusterer():
    """A scikit-learn user's trial: AgglomerativeClustering takes linkage='ward'; here it only said
    what the linkages are."""
    from kfree.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"use kfree.cluster.WardThreshold\(threshold\)"):
        ThresholdAgglomerative(0.2, linkage="ward").fit(np.eye(3))
