"""Threshold HAC on Dask: the partition of the single-machine path, from every kind of input."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from kfree.cluster import ThresholdAgglomerative
from kfree.cluster.distributed import dask_threshold_hac
from kfree.exceptions import ConfigError, DataError, DataWarning, MissingDependencyError

#: the same cut in each distance's units, for unit-norm rows (d² = 2 d_cos)
CUTS = {"sqeuclidean": 0.6, "euclidean": 0.6**0.5, "cosine": 0.3}
#: small blocks and chunks, so that rows are routed between blocks and chunks
SMALL = dict(block_rows=700, chunk_rows=450)


def test_missing_dask_says_what_to_install(monkeypatch):
    # first in this file: no cluster is running yet whose threads could import from distributed
    X = np.random.default_rng(0).standard_normal((30, 4))
    for name in ("dask", "dask.array", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'kfree\[dask\]'"):
        ThresholdAgglomerative(0.6, backend="dask").fit(X)
    assert ThresholdAgglomerative(0.6).fit(X).n_clusters_ >= 1  # the local path needs no dask


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def X():
    """2,600 unit-norm rows in 16-d: 60 clusters of 5–75 points (well separated at the cut,
    with a few near it) plus the rest scattered."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 75, size=60)
    centres = rng.standard_normal((60, 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    pts = [c + rng.standard_normal((s, 16)) * (0.45 / 4) for c, s in zip(centres, sizes, strict=True)]
    pts.append(rng.standard_normal((2600 - int(sizes.sum()), 16)))
    X = np.concatenate(pts)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X[rng.permutation(X.shape[0])].astype(np.float32)


def local(X, linkage="complete", distance="sqeuclidean"):
    """The single-machine fit (the reference), once per data and rule in this module."""
    key = (hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest(), X.shape, X.dtype.str, linkage, distance)
    if key not in _LOCAL:
        _LOCAL[key] = ThresholdAgglomerative(CUTS[distance], linkage=linkage, distance=distance).fit(X)
    return _LOCAL[key]


_LOCAL: dict[tuple, ThresholdAgglomerative] = {}


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("linkage", ["complete", "average", "single"])
def test_same_partition_as_local(X, client, linkage, distance):
    ref = local(X, linkage, distance)
    res = dask_threshold_hac(X, CUTS[distance], linkage=linkage, distance=distance, client=client,
                             **SMALL)
    assert res.stats["n_blocks"] == 4 and res.stats["n_samples"] == X.shape[0]
    # labels are numbered by first appearance on both paths: same partition, same array
    np.testing.assert_array_equal(res.labels(), ref.labels_)
    assert 60 <= ref.n_clusters_ < X.shape[0] // 4  # the cut is neither trivial nor everything


def test_rows_of_a_cluster_share_a_block(X, client):
    res = dask_threshold_hac(X, 0.6, client=client, **SMALL)
    # routing by the sample's component centres keeps clusters whole: no cell is cut
    assert res.stats["n_cells"] == res.stats["n_virtual_cells"]
    np.testing.assert_array_equal(res.labels(), local(X).labels_)


def scatter(S32, thr_sq, n_blocks, seed):
    """Routing that cuts clusters: each row to the block of a random sample row."""
    rng = np.random.default_rng(seed)
    return (S32, rng.integers(0, n_blocks, S32.shape[0]), S32[:0], n_blocks)


def test_every_stage_is_exercised(X, client, monkeypatch):
    import kfree.cluster.distributed as dist

    monkeypatch.setattr(dist, "_sample_blocks", scatter)  # in-process workers see it too
    res = dask_threshold_hac(X, 0.6, client=client, **SMALL)
    st = res.stats
    # clusters cut by blocks become fragments, grouped again into virtual cells; some candidates
    # are decided against shells, some are shipped to the fragment's block
    assert st["n_virtual_cells"] < st["n_cells"] and 0 < st["shipped"] < st["candidates"]
    np.testing.assert_array_equal(res.labels(), local(X).labels_)
    monkeypatch.setattr(dist, "SHELL_BIG_TABLE", 0)  # half shells: more candidates travel
    half = dask_threshold_hac(X, 0.6, client=client, **SMALL)
    assert half.stats["shipped"] > st["shipped"]
    np.testing.assert_array_equal(half.labels(), local(X).labels_)


def test_candidates_in_passes_and_half_precision_rows_shipped(X, client, monkeypatch, tmp_path):
    import kfree.cluster.distributed as dist

    X16 = (X + 3.0).astype(np.float16)  # off the origin: rows are centred before the GEMMs
    np.save(tmp_path / "x16.npy", X16)
    monkeypatch.setattr(dist, "_sample_blocks", scatter)
    monkeypatch.setattr(dist, "SHELL", 1)  # shells of one member: most candidates travel
    one = dask_threshold_hac(str(tmp_path / "x16.npy"), 0.6, client=client, **SMALL)
    # a block's points in passes of 97 (one union-find across passes); unresolved rows travel
    # as float16 and are prepared again where they land: the same candidates, the same labels
    monkeypatch.setattr(dist, "QUERY_ROWS", 97)
    many = dask_threshold_hac(str(tmp_path / "x16.npy"), 0.6, client=client, **SMALL)
    assert 0 < many.stats["shipped"] and many.stats["candidates"] == one.stats["candidates"]
    ref = local(X16.astype(np.float32)).labels_
    np.testing.assert_array_equal(one.labels(), ref)
    np.testing.assert_array_equal(many.labels(), ref)


def test_components_kept_for_a_cluster_state(X, client, monkeypatch):
    import kfree.cluster.distributed as dist
    from kfree.cluster import incremental
    from kfree.cluster.incremental import ClusterState

    monkeypatch.setattr(dist, "_sample_blocks", scatter)  # clusters cut across blocks
    res = dask_threshold_hac(X, 0.6, client=client, **SMALL)
    comp, labels = res.components, res.labels()
    # each component (a union of exact τ-components) holds whole clusters
    assert comp.shape == labels.shape and comp.min() == 0
    pairs = np.unique(np.stack([labels, comp], axis=1), axis=0)
    assert np.unique(pairs[:, 0]).shape[0] == pairs.shape[0]
    ref = ClusterState.fit(X, 0.6)
    m = ThresholdAgglomerative(0.6, backend="dask", scheduler=client).fit(X)

    def no_second_pass(*a, **k):
        raise AssertionError("the Dask run's components were not reused")

    monkeypatch.setattr(incremental, "radius_components", no_second_pass)
    st = ClusterState.from_fit(m, X)
    np.testing.assert_array_equal(st.labels, ref.labels)
    np.testing.assert_array_equal(st.components, ref.components)


def test_estimator_backend_dask(X, client):
    ref = local(X)
    m = ThresholdAgglomerative(0.6, backend="dask", scheduler=client).fit(X)
    np.testing.assert_array_equal(m.labels_, ref.labels_)
    assert m.n_clusters_ == ref.n_clusters_ and m.algorithm_ == "dask"
    # the merges up to the threshold are kept: lower cuts without refitting, as a sparse fit
    np.testing.assert_array_equal(m.labels_at(0.3), local(X).labels_at(0.3))
    with pytest.raises(ConfigError, match="refit with threshold >= 0.9"):
        m.labels_at(0.9)


def test_memmapped_npy_float16_and_dask_array(X, client, tmp_path):
    X16 = X.astype(np.float16)
    np.save(tmp_path / "x16.npy", X16)
    # float16 is computed in float32: the result is the exact one for those float32 values
    ref = local(X16.astype(np.float32)).labels_
    res = dask_threshold_hac(str(tmp_path / "x16.npy"), 0.6, client=client, **SMALL)
    np.testing.assert_array_equal(res.labels(), ref)
    arr = da.from_array(X, chunks=(500, 8))  # columns in two chunks: rechunked, not gathered
    res = dask_threshold_hac(arr, 0.6, client=client, block_rows=900)
    np.testing.assert_array_equal(res.labels(), local(X).labels_)


def test_float64_pairs_are_decided_in_float64(client):
    """Pairs a hair beyond the cut in float64 are within it once rounded to float32: the last,
    exact step must see the rows as they came, as the single-machine path does."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((40, 3)) * 50
    X = np.concatenate([base, base + np.array([1 + 1e-9, 0, 0])])  # 40 pairs at d² = (1+1e-9)²
    assert (np.float32(1 + 1e-9) - np.float32(0)) ** 2 <= 1.0  # float32 would merge them
    for linkage in ("complete", "single"):
        ref = ThresholdAgglomerative(1.0, linkage=linkage).fit(X)
        assert ref.n_clusters_ == 80
        res = dask_threshold_hac(X, 1.0, linkage=linkage, client=client)
        np.testing.assert_array_equal(res.labels(), ref.labels_)
    near = X.copy()
    near[40:, 0] = base[:, 0] + (1 - 1e-9)  # just inside: merged on both paths
    res = dask_threshold_hac(near, 1.0, client=client)
    np.testing.assert_array_equal(res.labels(), ThresholdAgglomerative(1.0).fit(near).labels_)
    assert np.unique(res.labels()).size == 40


def test_parquet_row_groups(X, client, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {f"f{i}": X[:, i] for i in range(X.shape[1])}
    cols["label"] = np.arange(X.shape[0])  # not a feature
    pq.write_table(pa.table(cols), tmp_path / "x.parquet", row_group_size=600)
    res = dask_threshold_hac(tmp_path / "x.parquet", 0.6, client=client, block_rows=1000)
    np.testing.assert_array_equal(res.labels(), local(X).labels_)
    # a DataFrame written with its (non-default) index: pandas stores it as a column, which is
    # no feature (it was clustered as one)
    import pandas as pd

    df = pd.DataFrame({f"f{i}": X[:, i] for i in range(X.shape[1])}, index=np.arange(X.shape[0]) * 1000 + 7)
    df.to_parquet(tmp_path / "pd.parquet")
    assert "__index_level_0__" in pq.read_schema(tmp_path / "pd.parquet").names
    res = dask_threshold_hac(tmp_path / "pd.parquet", 0.6, client=client, block_rows=1000)
    np.testing.assert_array_equal(res.labels(), local(X).labels_)
    # vectors in a list column (float16, as embeddings are often stored), columns named as not features
    from kfree.cluster.distributed import ParquetRows

    pd.DataFrame({"sku_id": np.arange(X.shape[0]) * 3, "stock": np.arange(X.shape[0]) % 7,
                  "embedding": list(X.astype(np.float16))}).to_parquet(tmp_path / "v.parquet", row_group_size=500)
    res = dask_threshold_hac(ParquetRows(tmp_path / "v.parquet", ignore_columns=("sku_id", "stock")), 0.6,
                             client=client, block_rows=1000, dtype="float32")
    np.testing.assert_array_equal(res.labels(), local(X.astype(np.float16).astype(np.float32)).labels_)
    est = ThresholdAgglomerative(0.6, backend="dask", scheduler=client)
    with pytest.warns(DataWarning, match=r"other columns \['sku_id', 'stock'\] are left out"):
        est.fit(ParquetRows(tmp_path / "v.parquet"))
    np.testing.assert_array_equal(est.labels_, res.labels())
    assert est.n_features_in_ == X.shape[1]


def test_labels_as_dask_dataframe_and_file(X, client, tmp_path):
    res = dask_threshold_hac(X, 0.6, client=client, **SMALL)
    df = res.to_dask_dataframe(npartitions=3)
    assert df.npartitions == 3
    got = df.compute()
    np.testing.assert_array_equal(got["cluster"].to_numpy(), local(X).labels_)
    np.testing.assert_array_equal(got["index"].to_numpy(), np.arange(X.shape[0]))
    res.write(tmp_path / "labels.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), local(X).labels_)
    with pytest.raises(ConfigError, match=r"\.npy, \.csv or \.parquet"):
        res.write(tmp_path / "labels.txt")


def test_bad_input_is_one_clear_error(X, client, tmp_path):
    bad = X.copy()
    bad[1234, 3] = np.nan
    with pytest.raises(DataError, match="row 1234"):
        dask_threshold_hac(da.from_array(bad, chunks=(500, -1)), 0.6, client=client)
    zero = X.copy()
    zero[77] = 0
    with pytest.raises(DataError, match=r"all-zero rows, and 1 of a block.s .* rows are \(first: row 77, from 0\)"):
        dask_threshold_hac(zero, 0.3, distance="cosine", client=client)
    np.save(tmp_path / "one_d.npy", np.zeros(5))
    with pytest.raises(DataError, match="2-d array"):
        dask_threshold_hac(str(tmp_path / "one_d.npy"), 0.6, client=client)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"reads \.npy .* and \.parquet"):
        dask_threshold_hac(tmp_path / "x.csv", 0.6, client=client)
    with pytest.raises(DataError, match="does not exist"):
        dask_threshold_hac(tmp_path / "nope.npy", 0.6, client=client)
    with pytest.raises(ConfigError, match="block_rows=1 must be an integer >= 2"):
        dask_threshold_hac(X, 0.6, client=client, block_rows=1)


def test_bad_params_are_checked_at_fit(X, client):
    m = ThresholdAgglomerative(0.6, backend="spark")  # set_params/__init__ never raise
    with pytest.raises(ConfigError, match=r"backend='spark' is not one of \('local', 'dask'\)"):
        m.fit(X)
    with pytest.raises(ConfigError, match="scheduler and n_workers are for backend='dask'"):
        ThresholdAgglomerative(0.6, scheduler="tcp://localhost:1").fit(X)
    with pytest.raises(ConfigError, match="n_clusters=3 needs the full dense tree"):
        ThresholdAgglomerative(n_clusters=3, backend="dask", scheduler=client).fit(X)
    with pytest.raises(ConfigError, match="must_link/cannot_link"):
        ThresholdAgglomerative(0.6, backend="dask", scheduler=client).fit(X, must_link=[[0, 1]])
    with pytest.raises(ConfigError, match="scheduler=123 must be an address"):
        ThresholdAgglomerative(0.6, backend="dask", scheduler=123).fit(X)
    with pytest.raises(ConfigError, match="n_workers applies only to a LocalCluster"):
        ThresholdAgglomerative(0.6, backend="dask", scheduler=client, n_workers=2).fit(X)
    with pytest.raises(ConfigError, match="n_workers=0 must be an integer >= 1"):
        ThresholdAgglomerative(0.6, backend="dask", n_workers=0).fit(X)
