"""Incremental clustering: ClusterState + assign against full ThresholdAgglomerative recomputes."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist, squareform

from kfree.cluster import ThresholdAgglomerative
from kfree.cluster.incremental import STATE_FORMAT, ClusterState, ClusterStateError, assign
from kfree.cluster.labels import first_seen_labels
from kfree.data.synthetic import sphere_blobs
from kfree.exceptions import ConfigError, DataError, OutputError

CASES = [("sqeuclidean", 0.5), ("euclidean", 0.7), ("cosine", 0.25)]


def blobs(rng, n, k=12, d=6, spread=0.3):
    """Unit vectors around k random centres: random floats, so no exact distance ties."""
    C = rng.standard_normal((k, d))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    X = C[rng.integers(0, k, n)] + rng.standard_normal((n, d)) * spread / np.sqrt(d)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def full(X, tau, distance):
    return ThresholdAgglomerative(tau, distance=distance).fit(X).labels_


def single_components(X, tau, distance):
    """Reference τ-components: connected components of scipy's pdist graph at <= tau."""
    from scipy.sparse.csgraph import connected_components

    D = squareform(pdist(X, distance))
    return first_seen_labels(connected_components(D <= tau, directed=False)[1])


def check_bookkeeping(state):
    """Sizes match the labels, and every member lies within its label's radius of the
    reference point (what the candidate bounds rely on)."""
    np.testing.assert_array_equal(np.bincount(state.labels, minlength=state.next_label), state.sizes)
    P = state._prepared(state.X)
    dist = np.linalg.norm(P - state.centres[state.labels], axis=1)
    assert (dist <= state.radii[state.labels] * (1 + 1e-12) + 1e-12).all()


def max_within(X, labels, distance):
    return max(cdist(X[labels == lab], X[labels == lab], distance).max() for lab in np.unique(labels))


@pytest.mark.parametrize(("distance", "tau"), CASES)
def test_recluster_affected_equals_full_recompute(distance, tau):
    rng = np.random.default_rng(1)
    kept = redone = 0
    for trial in range(3):
        centres_rng = np.random.default_rng(100 + trial)  # batches share the initial centres
        X = blobs(centres_rng, 150)
        state = ClusterState.fit(X, tau, distance=distance)
        for _ in range(6):
            Xb = blobs(np.random.default_rng(100 + trial), int(rng.integers(1, 40)))
            Xb = Xb[rng.permutation(Xb.shape[0])] + rng.standard_normal(Xb.shape) * 0.02
            X = np.vstack([X, Xb])
            labels_new = assign(state, Xb, recluster_affected=True)
            kept += state.meta["last_assign"]["n_components_kept_whole"]
            redone += state.meta["last_assign"]["n_reclustered"] > 0
            np.testing.assert_array_equal(state.labels[-Xb.shape[0]:], labels_new)
            np.testing.assert_array_equal(first_seen_labels(state.labels), full(X, tau, distance))
            np.testing.assert_array_equal(first_seen_labels(state.components),
                                          single_components(X, tau, distance))
            check_bookkeeping(state)
        assert state.n_samples == X.shape[0]
        assert state.n_clusters == np.unique(state.labels).shape[0]
    assert kept and redone  # both the clique shortcut and the re-agglomeration were exercised


@pytest.mark.parametrize(("distance", "tau"), CASES)
def test_greedy_assigns_say_what_they_left_unsettled_and_one_recluster_settles_it_all(distance, tau, tmp_path):
    rng = np.random.default_rng(5)
    X = blobs(np.random.default_rng(100), 150)
    state = ClusterState.fit(X, tau, distance=distance)
    assert state.n_unsettled == 0 and state.unsettled is None
    exact = True
    for _ in range(5):  # greedy batches drawn like the rows: some land where a recompute regroups
        Xb = blobs(np.random.default_rng(100), int(rng.integers(5, 40))) + rng.standard_normal((1, 6)) * 0.01
        X = np.vstack([X, Xb])
        assign(state, Xb)
        exact &= np.array_equal(first_seen_labels(state.labels), full(X, tau, distance))
        last = state.meta["last_assign"]
        assert last["n_unsettled"] == state.n_unsettled
        # every row a recompute could regroup lies in an unsettled component
        settled = ~np.isin(state.components, np.unique(state.components[state.unsettled])) \
            if state.unsettled is not None else np.ones(state.n_samples, bool)
        full_lab = full(X, tau, distance)
        for c in np.unique(state.components[settled]):
            rows = np.flatnonzero(state.components == c)
            np.testing.assert_array_equal(first_seen_labels(state.labels[rows]), first_seen_labels(full_lab[rows]))
    assert not exact and state.n_unsettled > 0  # the stream drifted, and the state knows where
    state = ClusterState.load(state.save(tmp_path / "s.kstate"))  # the flags survive a save
    assert state.n_unsettled == last["n_unsettled"]
    # one row far from everything: it touches no unsettled component, yet the recluster settles all
    far = -blobs(np.random.default_rng(7), 1, k=1) if distance == "cosine" else np.full((1, 6), 9.0)
    X = np.vstack([X, far])
    assign(state, far, recluster_affected=True)
    assert state.n_unsettled == 0 and state.unsettled is None
    assert state.meta["last_assign"]["n_reclustered"] > 0
    np.testing.assert_array_equal(first_seen_labels(state.labels), full(X, tau, distance))
    check_bookkeeping(state)


@pytest.mark.parametrize(("distance", "tau"), CASES)
def test_greedy_assign_keeps_complete_linkage_invariant(distance, tau):
    rng = np.random.default_rng(2)
    X = blobs(np.random.default_rng(7), 200)
    state = ClusterState.fit(X, tau, distance=distance)
    for _ in range(5):
        before = state.labels.copy()
        Xb = blobs(np.random.default_rng(7), int(rng.integers(1, 50))) + rng.standard_normal((1, 6)) * 0.05
        labels_new = assign(state, Xb)
        X = np.vstack([X, Xb])
        np.testing.assert_array_equal(state.labels[: before.shape[0]], before)  # nobody moves
        assert max_within(X, state.labels, distance) <= tau
        np.testing.assert_array_equal(first_seen_labels(state.components), single_components(X, tau, distance))
        check_bookkeeping(state)
        # replay the documented rule: in row order, the cluster (existing members and the batch's
        # points placed before) with every member within tau, smallest largest distance, then
        # lowest label; none -> a new label
        n_old = before.shape[0]
        placed = before.tolist()
        opened = 0
        for i, lab in enumerate(labels_new):
            d = cdist(Xb[i : i + 1], X[: n_old + i], distance)[0]
            arr = np.array(placed)
            fits = sorted((d[arr == c].max(), c) for c in np.unique(arr) if d[arr == c].max() <= tau)
            if fits:
                assert lab == fits[0][1]
            else:
                assert lab not in placed  # opened a new cluster
                opened += 1
            placed.append(int(lab))
        assert opened == len(set(labels_new.tolist()) - set(before.tolist()))


@pytest.mark.parametrize(("distance", "tau"), CASES)
def test_checking_candidates_in_small_passes_changes_nothing(monkeypatch, distance, tau):
    """assign checks its (new row, cluster) candidates in passes of about _PAIRS_PER_PASS and
    bounds them in blocks of about _NEAR_BLOCK: passes of a few pairs (so one row's candidates
    span passes) and blocks of one row give the very states one pass gives, in both modes."""
    from kfree.cluster import incremental

    X = blobs(np.random.default_rng(5), 300, spread=0.6)
    batches = [blobs(np.random.default_rng(5), k, spread=0.6) for k in (40, 1, 25)]

    def run(recluster):
        state = ClusterState.fit(X, tau, distance=distance)
        labels = [assign(state, Xb, recluster_affected=recluster) for Xb in batches]
        return labels, state

    for recluster in (False, True):
        monkeypatch.setattr(incremental, "_PAIRS_PER_PASS", 10**9)
        monkeypatch.setattr(incremental, "_NEAR_BLOCK", 10**9)
        one_labels, one = run(recluster)
        monkeypatch.setattr(incremental, "_PAIRS_PER_PASS", 5)
        monkeypatch.setattr(incremental, "_NEAR_BLOCK", 1)
        labels, state = run(recluster)
        for a, b in zip(labels, one_labels, strict=True):
            np.testing.assert_array_equal(a, b)
        for name in ("labels", "components", "centres", "radii", "sizes"):
            np.testing.assert_array_equal(getattr(state, name), getattr(one, name), err_msg=name)
        assert state.n_clusters > 5 and len(np.unique(np.concatenate(labels))) > 5
        check_bookkeeping(state)


def greedy_rule(m, first_new, joins, edges):
    """The greedy placement as the module docstring states it, in plain Python: ``joins`` maps a
    row to its (largest distance, existing label) options, ``edges`` a pair (a < b) of the batch
    to its distance."""
    nbr = [{} for _ in range(m)]
    for (a, b), dist in edges.items():
        nbr[a][b] = nbr[b][a] = dist
    out, members, nxt = [], {}, first_new
    for i in range(m):
        opened = {out[j] for j in nbr[i] if j < i and out[j] >= first_new}
        best = None
        for h, lab in list(joins.get(i, [])) + [(-np.inf, lab) for lab in opened]:
            if all(a in nbr[i] for a in members.get(lab, [])):
                h = max([h] + [nbr[i][a] for a in members.get(lab, [])])
                best = min(best, (h, lab)) if best else (h, lab)
        lab = best[1] if best else nxt
        nxt += best is None
        out.append(lab)
        members.setdefault(lab, []).append(i)
    return out


def test_the_greedy_kernel_places_rows_by_the_stated_rule():
    """The compiled placement (:func:`_greedy`) against the rule written out in Python, on random
    options and τ-edges, half of them with tied distances (the lowest label must win a tie)."""
    from kfree.cluster.incremental import _greedy

    rng = np.random.default_rng(0)

    class State:
        next_label = 0

    opened_joined = ties = 0
    for trial in range(400):
        m, first_new = int(rng.integers(1, 30)), int(rng.integers(0, 6))
        draw = (lambda k: rng.integers(0, 3, k).astype(float)) if trial % 2 else rng.random
        pairs = sorted({(int(rng.integers(0, m)), int(rng.integers(0, first_new))) for _ in
                        range(int(rng.integers(0, 3 * m)) if first_new else 0)})
        pairs = [pairs[k] for k in rng.permutation(len(pairs))]  # in no order: the rule decides
        jd = draw(len(pairs))
        density = rng.random()
        E = [(a, b) for a in range(m) for b in range(a + 1, m) if rng.random() < density]
        ed = draw(len(E))
        joins = {}
        for (p, lab), dist in zip(pairs, jd, strict=True):
            joins.setdefault(p, []).append((dist, lab))
        want = greedy_rule(m, first_new, joins, dict(zip(E, ed, strict=True)))
        State.next_label = first_new
        got = _greedy(State, m, np.array([p for p, _ in pairs], dtype=np.int64),
                      np.array([lab for _, lab in pairs], dtype=np.int64), jd,
                      np.array([a for a, _ in E], dtype=np.int32), np.array([b for _, b in E], dtype=np.int32), ed)
        assert got.tolist() == want, trial
        sizes = np.bincount(got)
        opened_joined += int((sizes[first_new:] > 1).sum())
        ties += trial % 2 and len(set(jd.tolist())) < len(jd)
    assert opened_joined > 100 and ties > 50  # rows joined clusters the batch opened; ties were decided


def test_choice_rule_smallest_max_distance_then_lowest_label():
    X = np.array([[0.0], [10.0]])
    state = ClusterState.fit(X, 4.0)
    assert list(state.labels) == [0, 1]
    lab = assign(state, np.array([[1.0], [9.5], [20.0], [21.0], [5.0]]))
    # 1 -> cluster 0; 9.5 -> cluster 1; 20 opens 2; 21 joins 2 (1.0 <= 4); 5 is 25 from 0 and
    # 4.5**2 = 20.25 from 9.5: nothing within tau, opens 3
    assert lab.tolist() == [0, 1, 2, 2, 3]
    # exact tie of the largest distance: both clusters {0} and {4} at 4.0 from 2.0 -> lower label
    state = ClusterState.fit(np.array([[0.0], [4.0]]), 4.0)
    assert state.n_clusters == 2
    assert assign(state, np.array([[2.0]])).tolist() == [0]


def test_threshold_is_inclusive_as_scipy():
    state = ClusterState.fit(np.array([[0.0, 0.0], [10.0, 0.0]]), 1.0, distance="euclidean")
    assert assign(state, np.array([[1.0, 0.0], [0.0, 1.0 + 1e-12]])).tolist() == [0, 2]


def test_untouched_labels_stable_and_new_labels_not_reused():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(0, 0.05, (20, 2)), rng.normal(5, 0.05, (20, 2)), rng.normal(10, 0.05, (20, 2))])
    state = ClusterState.fit(X, 0.5)
    far = state.labels[40:].copy()
    assign(state, rng.normal(0, 0.05, (5, 2)), recluster_affected=True)
    assign(state, rng.normal(5, 0.05, (5, 2)), recluster_affected=True)
    np.testing.assert_array_equal(state.labels[40:60], far)
    lab = assign(state, np.array([[50.0, 50.0]]))
    assert lab[0] == state.next_label - 1 >= 3


def test_components_exact_when_wide_components_join_clusters():
    # a chain: consecutive points within tau, so complete linkage makes several clusters but
    # single linkage (the τ-component) one
    X = np.arange(12, dtype=float)[:, None] * 0.9
    state = ClusterState.fit(X, 1.0)
    assert state.n_clusters > 1 and state.n_components == 1
    assign(state, np.array([[30.0], [10.5]]))
    assert state.components[-2] != state.components[-1] == state.components[0]


@pytest.mark.parametrize(("distance", "tau"), CASES)
def test_from_fit_reuses_the_fits_components_pass(monkeypatch, distance, tau):
    from kfree.cluster import incremental, threshold_hac

    X = blobs(np.random.default_rng(5), 600)
    monkeypatch.setattr(threshold_hac, "COMPONENTS_MIN_SAMPLES", 0)  # the per-component path
    monkeypatch.setattr(threshold_hac, "COMPONENTS_MIN_NEIGHBOURS", 0)
    est = ThresholdAgglomerative(tau, distance=distance, algorithm="sparse").fit(X)
    assert est._coarse_components is not None
    fresh = ClusterState.from_fit(est, X).components  # computed again (the spy is not set yet)
    calls = []
    orig = incremental.radius_components
    monkeypatch.setattr(incremental, "radius_components", lambda *a, **k: calls.append(1) or orig(*a, **k))
    reused = ClusterState.from_fit(est, X)
    assert not calls  # the fit's pass was reused ...
    np.testing.assert_array_equal(reused.components, single_components(X, tau, distance))  # ... exactly
    np.testing.assert_array_equal(reused.components, fresh)
    est.set_params(algorithm="dense").fit(X)  # a refit that makes none leaves none behind
    assert est._coarse_components is None
    np.testing.assert_array_equal(ClusterState.from_fit(est, X).components, fresh)
    assert calls


def test_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    X = blobs(rng, 120).astype(np.float32)
    # a provenance key named like a field of the state must not replace it
    state = ClusterState.fit(X, 0.5, meta={"model": {"name": "m.kfree", "sha256": "ab"}, "threshold": 0.1,
                                           "note": "x"})
    assign(state, blobs(rng, 10).astype(np.float32))
    path = state.save(tmp_path / "s.kstate")
    back = ClusterState.load(path)
    assert back.threshold == 0.5 and back.meta["note"] == "x"
    assert back.meta["last_assign"] == state.meta["last_assign"]
    for name in ("X", "labels", "components", "origin", "centres", "radii", "sizes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(state, name))
    assert back.X.dtype == np.float32
    assert (back.threshold, back.distance, back.linkage, back.next_component) == (
        state.threshold, state.distance, state.linkage, state.next_component)
    assert back.meta["model"] == {"name": "m.kfree", "sha256": "ab"} and back.meta["assigns"] == 1
    with zipfile.ZipFile(path) as zf:
        assert '"format": "' + STATE_FORMAT + '"' in zf.read("state.json").decode()
    # the loaded state continues exactly like the original
    Xb = blobs(rng, 15).astype(np.float32)
    np.testing.assert_array_equal(assign(back, Xb), assign(state, Xb))
    with np.load(path) as z:  # plain numpy reads the arrays too
        assert z["labels"].shape == (130,)


def test_save_refuses_overwrite_and_failed_write_keeps_old_state(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    state = ClusterState.fit(blobs(rng, 50), 0.5)
    path = state.save(tmp_path / "s.kstate")
    old = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        state.save(path)
    assign(state, blobs(rng, 5))

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OutputError, match="No space left"):
        state.save(path, overwrite=True)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["s.kstate"]  # no temporary left behind
    monkeypatch.undo()
    state.save(path, overwrite=True)
    assert ClusterState.load(path).n_samples == 55


def test_load_errors(tmp_path):
    with pytest.raises(ClusterStateError, match="not found"):
        ClusterState.load(tmp_path / "missing.kstate")
    (tmp_path / "junk.kstate").write_bytes(b"not a zip")
    with pytest.raises(ClusterStateError, match="not a readable kfree cluster state"):
        ClusterState.load(tmp_path / "junk.kstate")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("state.json", '{"format": "something/9"}')
    with pytest.raises(ClusterStateError, match="has format 'something/9'"):
        ClusterState.load(tmp_path / "other.zip")
    state = ClusterState.fit(blobs(np.random.default_rng(0), 30), 0.5)
    path = state.save(tmp_path / "s.kstate")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte inside the arrays
    (tmp_path / "bad.kstate").write_bytes(bytes(data))
    with pytest.raises(ClusterStateError):
        ClusterState.load(tmp_path / "bad.kstate")


def test_input_errors():
    state = ClusterState.fit(blobs(np.random.default_rng(0), 30), 0.5)
    with pytest.raises(DataError, match="X_new has 3 features but the cluster state has 6"):
        assign(state, np.zeros((2, 3)))
    with pytest.raises(DataError, match="NaN"):
        assign(state, np.full((1, 6), np.nan))
    with pytest.raises(ConfigError, match="complete linkage only"):
        ClusterState.from_fit(ThresholdAgglomerative(0.5, linkage="average").fit(np.eye(3)), np.eye(3))
    with pytest.raises(ConfigError, match="not at n_clusters"):
        ClusterState.from_fit(ThresholdAgglomerative(n_clusters=2).fit(np.eye(3)), np.eye(3))
    with pytest.raises(DataError, match="rows it was fitted on"):
        ClusterState.from_fit(ThresholdAgglomerative(0.5).fit(np.eye(3)), np.eye(4)[:, :3])
    n = state.n_samples
    with pytest.raises(DataError):
        assign(state, np.zeros((2, 3)))
    assert state.n_samples == n  # a refused batch leaves the state as it was


def test_greedy_exact_on_integer_grid_ties():
    # integer coordinates: squared distances are exact integers, many exactly at tau = 2
    rng = np.random.default_rng(6)
    X = rng.integers(0, 6, (80, 3)).astype(float)
    state = ClusterState.fit(X, 2.0)
    for _ in range(4):
        Xb = rng.integers(0, 6, (15, 3)).astype(float)
        assign(state, Xb)
        X = np.vstack([X, Xb])
        assert max_within(X, state.labels, "sqeuclidean") <= 2.0
        np.testing.assert_array_equal(first_seen_labels(state.components),
                                      single_components(X, 2.0, "sqeuclidean"))
    # a point at exactly tau from every member of a cluster joins it
    state = ClusterState.fit(np.array([[0.0, 0.0], [1.0, 1.0]]), 2.0)
    assert assign(state, np.array([[1.0, -0.0], [5.0, 5.0]])).tolist() == [0, 1]


def test_a_fit_with_constraints_cannot_become_a_state():
    X = np.array([[0.0], [0.5], [5.0]])
    for kw in ({"cannot_link": [[0, 1]]}, {"must_link": [[0, 2]]}):
        est = ThresholdAgglomerative(1.0).fit(X, **kw)
        with pytest.raises(ConfigError, match="constraints"):
            ClusterState.from_fit(est, X)


def test_row_hashes_know_rows_in_any_dtype_and_order_and_survive_save_and_assign(tmp_path):
    from kfree.cluster.incremental import row_hashes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    h = row_hashes(X)
    assert h.dtype == np.uint64 and np.unique(h).size == 60
    np.testing.assert_array_equal(row_hashes(X.astype(np.float64)), h)  # the same numbers, any dtype
    assert not np.isin(row_hashes(X + np.float32(1e-6)), h).any()
    state = ClusterState.fit(X[:40], 0.5)
    np.testing.assert_array_equal(state.held(row_hashes(X[::-1])), np.arange(20, 60))  # reversed: its last 40
    np.testing.assert_array_equal(state.held(X[::-1]), np.arange(20, 60))  # the rows themselves, too
    with pytest.raises(DataError, match="held takes the rows"):
        state.held(X[0])
    embedded = 2 * X[40:]  # the rows a model made of the batch: the hashes are the given rows'
    assign(state, embedded, input_hashes=row_hashes(X[40:]))
    np.testing.assert_array_equal(state.row_hashes, h)
    again = ClusterState.load(state.save(tmp_path / "s.kstate"))
    np.testing.assert_array_equal(again.row_hashes, h)
    with pytest.raises(DataError, match=r"input_hashes has shape \(3,\) but X_new has 2 rows"):
        assign(again, X[:2], input_hashes=h[:3])
    # a state written before row hashes: a model-free one gets them from its rows (the rows as
    # given); one of a model's embedding cannot, and knows none
    plain = ClusterState.fit(X, 0.5)
    plain.row_hashes = None
    np.testing.assert_array_equal(ClusterState.load(plain.save(tmp_path / "old.kstate")).row_hashes, h)
    again.row_hashes = None
    again.meta["model"] = {"name": "m.kfree"}
    old = ClusterState.load(again.save(tmp_path / "old_model.kstate"))
    assert old.row_hashes is None and old.held(h).size == 0
    assign(old, X[:3])
    assert old.row_hashes is None and old.n_samples == 63


def test_rows_of_data_where_equal_rows_are_common_are_not_refused_as_held():
    """Found by review: with integer features many distinct items have equal rows, and every
    batch was refused as already held. A state whose own rows repeat recognises none."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, (150, 3)).astype(np.float32)
    state = ClusterState.fit(X, 1.0)
    assert state.held(rng.integers(0, 3, (50, 3)).astype(np.float32)).size == 0


def test_a_state_with_a_few_repeated_rows_still_recognises_the_rows_it_holds():
    """Found by an embeddings trial: a photo library with 3 % of its photos kept twice stopped
    recognising rows (the limit was 1 %), and a day re-exported in another order was added twice."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 16)).astype(np.float32)
    state = ClusterState.fit(np.vstack([X, X[:30]]), 3.0)
    assert state.recognises_rows()
    np.testing.assert_array_equal(np.sort(state.held(X[500:600][::-1])), np.arange(100))


def test_a_state_checks_its_rows_and_a_dataframes_columns():
    """Found by a notebook user: from_fit took rows other than those the estimator was fitted on,
    and a state fitted on a DataFrame took a batch with its columns reordered by position (15 new
    clusters instead of 2)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(100, 4))
    with pytest.raises(DataError, match="X is not the rows the estimator was fitted on"):
        ClusterState.from_fit(ThresholdAgglomerative(0.5).fit(Z[:50]), Z[50:100])
    ClusterState.from_fit(ThresholdAgglomerative(0.5, dtype="float32").fit(Z[:50]), Z[:50])  # (its dtype)
    df = pd.DataFrame(Z, columns=list("abcd"))
    state = ClusterState.fit(df.iloc[:80], 2.0)
    assert state.meta["feature_names"] == list("abcd")
    with pytest.raises(DataError, match="X_new's columns are not the state's \\(in another order\\)"):
        assign(state, df.iloc[80:][list("dcba")])
    with pytest.raises(DataError, match=r"it has \['z'\], lacks \['a'\]"):
        assign(state, df.iloc[80:].rename(columns={"a": "z"}))
    assign(state, df.iloc[80:])
    assert state.n_samples == 100


def test_from_fit_tells_swapped_rows_and_another_dtype():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    est = ThresholdAgglomerative(0.5).fit(X)
    Y = X.copy()
    Y[[1, 2]] = Y[[2, 1]]
    with pytest.raises(DataError, match="other values or order"):
        ClusterState.from_fit(est, Y)
    with pytest.raises(DataError, match="X is float32, the estimator was fitted on float64 rows"):
        ClusterState.from_fit(est, X.astype(np.float32))


@pytest.mark.parametrize("recluster_affected", [False, True])
def test_a_batch_of_no_rows_adds_nothing(recluster_affected):
    """A scheduled batch may be empty: no labels, the state as it was (not an error about 0 samples);
    a batch of the wrong width is still refused."""
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    state = ClusterState.fit(X, 2.0)
    before = (state.labels.copy(), state.X.copy(), dict(state.meta))
    got = assign(state, np.zeros((0, 4), np.float32), recluster_affected=recluster_affected)
    assert got.shape == (0,) and got.dtype == np.int64
    np.testing.assert_array_equal(state.labels, before[0])
    np.testing.assert_array_equal(state.X, before[1])
    assert state.meta == before[2]
    with pytest.raises(DataError, match="X_new has 3 features but the cluster state has 4"):
        assign(state, np.zeros((0, 3), np.float32))


@pytest.mark.parametrize("kind", ["text", "numbers"])
def test_a_state_keeps_its_rows_ids_through_assign_and_save(tmp_path, kind):
    """Found by a helpdesk user: a state named its rows only by position, so after
    --recluster-affected the earlier tickets that changed cluster could not be told by id."""
    rng = np.random.default_rng(7)
    X, X2, X3 = blobs(rng, 60), blobs(rng, 8), blobs(rng, 3)
    make = (lambda a, b: [f"T-{i:03d}" for i in range(a, b)]) if kind == "text" else (lambda a, b: np.arange(a, b) * 10)
    state = ClusterState.fit(X, 0.5, ids=make(0, 60))
    assert state.ids.dtype.kind == ("U" if kind == "text" else "i")
    plain = ClusterState.fit(X, 0.5)
    # ids change nothing in the clustering: the same labels with and without them
    np.testing.assert_array_equal(assign(state, X2, ids=make(60, 68), recluster_affected=True),
                                  assign(plain, X2, recluster_affected=True))
    np.testing.assert_array_equal(state.labels, plain.labels)
    back = ClusterState.load(state.save(tmp_path / "s.kstate"))
    np.testing.assert_array_equal(back.ids, np.asarray(make(0, 68)))
    before = (back.X.copy(), back.labels.copy())
    with pytest.raises(DataError, match=r"1 of the ids is already in the state \('?(T-005|50)'?\)"):
        assign(back, X3, ids=[*make(70, 72), make(5, 6)[0]])
    with pytest.raises(DataError, match="ids repeat"):
        assign(back, X3, ids=[*make(70, 72), make(70, 71)[0]])
    with pytest.raises(DataError, match="the state names its rows by their ids"):
        assign(back, X3)
    with pytest.raises(DataError, match="ids are .* but the state's ids are"):
        assign(back, X3, ids=[1, 2, 3] if kind == "text" else ["a", "b", "c"])
    with pytest.raises(DataError, match="keeps no ids"):
        assign(plain, X3, ids=make(70, 73))
    np.testing.assert_array_equal(back.X, before[0])  # a refused batch leaves the state as it was
    np.testing.assert_array_equal(back.labels, before[1])
    assign(back, X3, ids=make(70, 73))
    assert back.ids.shape == (71,) and back.ids[-1] == np.asarray(make(72, 73))[0]
    with pytest.raises(DataError, match="ids must be 60 whole numbers or texts"):
        ClusterState.fit(X, 0.5, ids=np.arange(59))


def test_rows_of_another_length_than_the_states_are_warned_about():
    """Found by a photo-library trial: a batch of unit-length vectors (another encoder) went into a
    state of dlib descriptors (length ~1.4) without a word, every row opening a cluster of its own."""
    import warnings

    from kfree.exceptions import DataWarning

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 128)) * 0.13  # length ~1.47, as dlib's
    state = ClusterState.fit(X, 0.5)
    other = rng.normal(size=(20, 128))
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    with pytest.warns(DataWarning, match=r"the new rows' median length is 1, outside the state's rows' 1\.3"):
        assign(state, other)
    assert state.n_samples == 80  # added all the same
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assign(state, rng.normal(size=(20, 128)) * 0.13)  # drawn like the state's
        cosine = ClusterState.fit(X, 0.3, distance="cosine")
        assign(cosine, other)  # cosine ignores lengths
    # a batch added after its warning does not widen the range the next one is checked against (a photo-library
    # trial: a ×3 batch took it from 1.33–1.5 to 1.34–2.4); the range is the rows' the state was made from
    with pytest.warns(DataWarning, match="median length is 4"):
        assign(state, rng.normal(size=(60, 128)) * 0.4)
    with pytest.warns(DataWarning, match=r"median length is 2\.26, outside the state's rows' 1\.35–1\.59"):
        assign(state, rng.normal(size=(20, 128)) * 0.2)


def test_an_id_longer_than_a_state_keeps_is_refused_naming_its_row():
    """A security review: a state keeps text ids at the longest one's width, and one ticket id of
    2,500 characters made 20,000 rows' ids 200 MB, rewritten by every assign."""
    X = np.random.default_rng(0).normal(size=(20, 4))
    ids = [f"T{i}" for i in range(20)]
    ids[7] = "x" * 2500
    with pytest.raises(DataError, match=r"the id of row 7 \(from 0\) has 2,500 characters, more than the 512"):
        ClusterState.fit(X, 1.0, ids=ids)
    assert ClusterState.fit(X, 1.0, ids=[f"T{i}" for i in range(20)]).ids.dtype.kind == "U"


def test_review_fixes_of_the_states_checks():
    """A review: ids declared wider than they are (U600 of "a", "bb") were refused as 600 characters
    long; a float32 row of 1e-25 (its norm 0 in float32) passed the cosine check."""
    from kfree.distances import refuse_zero_rows

    X = np.random.default_rng(0).normal(size=(3, 4))
    state = ClusterState.fit(X, 1.0, ids=np.array(["a", "bb", "c"], dtype="U600"))
    assert state.ids.dtype == np.dtype("U2")
    tiny = np.ones((4, 3), dtype=np.float32)
    tiny[2] = 1e-25
    with pytest.raises(DataError, match=r"1 of X's 4 rows are \(first: row 2"):
        refuse_zero_rows(tiny, "cosine")


def test_threads_assigning_to_one_state_take_turns():
    """A web-service trial: two threads assigning to one state at once kept 424 of 1,573 rows,
    raised raw IndexErrors and left clusters wider than the cut; save wrote the broken state."""
    import copy
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    X, _ = sphere_blobs(40, 12, dim=8, spread=0.25, seed=5)
    X = X.astype(np.float64)
    tau = 0.5
    one = ClusterState.fit(X[:100], tau)
    many = copy.deepcopy(one)  # (a lock is made anew on copy and pickle)
    assert pickle.loads(pickle.dumps(one)).n_samples == 100
    batches = [X[i:i + 7] for i in range(100, X.shape[0], 7)]
    for b in batches:
        assign(one, b)
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda b: assign(many, b), batches))
    assert many.n_samples == one.n_samples == X.shape[0]
    for state in (one, many):  # every cluster within the cut, whatever order the batches came in
        for c in np.unique(state.labels):
            rows = state.X[state.labels == c]
            d = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
            assert d.max() <= tau + 1e-9


def test_a_state_of_a_newer_format_says_to_upgrade(tmp_path):
    """An operations trial: a state of a newer format was only told its format."""
    import json

    X, _ = sphere_blobs(4, 5, dim=3, seed=0)
    ClusterState.from_fit(ThresholdAgglomerative(0.5).fit(X), X).save(tmp_path / "s.kstate")
    with zipfile.ZipFile(tmp_path / "s.kstate") as zin, zipfile.ZipFile(tmp_path / "n.kstate", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "state.json":
                data = json.dumps({**json.loads(data), "format": "kfree-cluster-state/2"}).encode()
            zout.writestr(item.filename, data)
    with pytest.raises(ClusterStateError, match=rf"format 'kfree-cluster-state/2'; this kfree reads '{STATE_FORMAT}': "
                                                r"it was written by a newer kfree, upgrade kfree to read it"):
        ClusterState.load(tmp_path / "n.kstate")


def test_a_few_rows_of_another_scale_are_warned_about(tmp_path):
    """An operations trial: 5 rows ×3 went into a state without a word (the check needed 10 rows).
    From 3 rows, every one of them far outside the state's lengths is said; rows like the state's
    are not, nor one or two rows."""
    import warnings

    from kfree.exceptions import DataWarning

    X, _ = sphere_blobs(10, 8, dim=6, spread=0.3, seed=0)
    X = X * np.random.default_rng(1).uniform(0.9, 1.1, (X.shape[0], 1))  # lengths 0.9-1.1
    state = ClusterState.from_fit(ThresholdAgglomerative(0.5).fit(X), X)
    with pytest.warns(DataWarning, match="median length is"):
        assign(state, X[:5] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assign(state, X[5:10] * 1.02)
        assign(state, X[10:12] * 3)


def test_a_state_grown_before_unsettled_rows_were_marked_is_taken_as_unsettled_and_small_states_get_a_range(tmp_path):
    """A review: a state whose greedy assigns predate the marks read as settled, so --recluster-affected
    left its drift; and a state made from under 10 rows never recorded the lengths batches are checked
    against, so warned batches widened them still."""
    from kfree.exceptions import DataWarning

    rng = np.random.default_rng(0)
    X = blobs(np.random.default_rng(100), 60)
    state = ClusterState.fit(X[:40], 0.5)
    assign(state, X[40:])
    state.unsettled = None  # as an older kfree wrote it
    del state.meta["last_assign"]["n_unsettled"]
    old = ClusterState.load(state.save(tmp_path / "old.kstate"))
    assert old.n_unsettled == old.n_samples
    assign(old, X[:1] + 1e-3, recluster_affected=True)
    assert old.n_unsettled == 0
    np.testing.assert_array_equal(first_seen_labels(old.labels), full(np.vstack([X, X[:1] + 1e-3]), 0.5, "sqeuclidean"))
    small = ClusterState.fit(rng.normal(size=(5, 16)) * 0.25, 4.0)
    assert "row_lengths" not in small.meta
    assign(small, rng.normal(size=(20, 16)) * 0.25)
    assert small.meta["row_lengths"][1] < 1.5  # lengths ~1: recorded once the state has 10 rows
    with pytest.warns(DataWarning, match="median length"):
        assign(small, rng.normal(size=(20, 16)) * 2.5)
    with pytest.warns(DataWarning, match="median length"):  # the range did not widen
        assign(small, rng.normal(size=(20, 16)) * 0.6)
