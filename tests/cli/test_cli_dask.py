"""``kfree cluster DATA --backend dask``: the local path's clusters, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from _cli import run

from kfree.cluster import ThresholdAgglomerative
from kfree.data.synthetic import sphere_blobs


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask_cli")
    X, _ = sphere_blobs(12, 10, dim=8, spread=0.2, seed=0)
    np.save(d / "x.npy", X.astype(np.float32))
    return d


@pytest.fixture(scope="module")
def address():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def test_cluster_on_dask_equals_local(d, address):
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--backend", "dask",
                    "--scheduler", address, "--out", d / "c.csv")
    assert code == 0, out
    assert "(hac on dask, complete linkage, threshold 1 sqeuclidean)" in out and "wrote" in out
    # distributed logs at INFO (client connections, ...) stay out of the default output
    assert "INFO" not in out and "Receive client connection" not in out, out
    got = pd.read_csv(d / "c.csv")
    assert list(got.columns) == ["index", "cluster"]
    ref = ThresholdAgglomerative(1.0).fit(np.load(d / "x.npy")).labels_
    np.testing.assert_array_equal(got["cluster"].to_numpy(), ref)
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--backend", "dask",
                    "--scheduler", address, "--out", d / "c.npy")
    assert code == 0, out
    np.testing.assert_array_equal(np.load(d / "c.npy"), ref)
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--backend", "dask",
                    "--scheduler", address, "--out", d / "c.parquet")
    assert code == 0, out
    pd.testing.assert_frame_equal(pd.read_parquet(d / "c.parquet"), got)  # the CSV's columns and values


def test_a_tables_own_index_names_the_rows_on_dask(d, address, tmp_path):
    """A Parquet (or CSV) table with an 'index' column: the clusters file carries its values, so
    `kfree evaluate` joins truth keyed by them; a repeated value is refused before any work."""
    from kfree.metrics import evaluate_clustering

    X = np.load(d / "x.npy")
    _, y = sphere_blobs(12, 10, dim=8, spread=0.2, seed=0)
    ids = np.random.default_rng(1).permutation(len(X)) + 500
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    table.insert(0, "index", ids)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    table.to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"index": ids, "label": y}).iloc[::-1].to_csv(tmp_path / "truth.csv", index=False)
    ref = ThresholdAgglomerative(1.0).fit(X).labels_
    for src, out in [("t.parquet", "c.csv"), ("t.parquet", "c.parquet"), ("t.csv", "c2.csv")]:
        code, text = run("cluster", tmp_path / src, "--threshold", "1.0", "--backend", "dask", "--scheduler", address,
                         "--out", tmp_path / out)
        assert code == 0, text
        got = pd.read_csv(tmp_path / out) if out.endswith(".csv") else pd.read_parquet(tmp_path / out)
        assert list(got.columns) == ["index", "cluster", "row"]
        np.testing.assert_array_equal(got["index"], ids)
        np.testing.assert_array_equal(got["cluster"], ref)
    code, text = run("evaluate", tmp_path / "c.csv", tmp_path / "truth.csv")
    assert code == 0, text
    nmi = evaluate_clustering(y, ref)["nmi"]
    assert f"{nmi:.3f}" in text
    table.assign(index=np.r_[ids[:-1], ids[0]]).to_parquet(tmp_path / "dup.parquet", index=False)
    code, text = run("cluster", tmp_path / "dup.parquet", "--threshold", "1.0", "--backend", "dask", "--scheduler",
                     address, "--out", tmp_path / "dup.csv")
    assert code == 1 and "column 'index' repeats 1 value(s)" in text and len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "dup.csv").exists()


def test_state_from_a_dask_clustering_then_assign(d, address):
    from kfree.cluster.incremental import ClusterState, assign

    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--backend", "dask",
                    "--scheduler", address, "--out", d / "sd.csv", "--state", d / "sd.kstate")
    assert code == 0 and "cluster state saved to" in out, out
    X = np.load(d / "x.npy")
    st = ClusterState.load(d / "sd.kstate")
    ref = ClusterState.fit(X, 1.0)  # the same state as clustering on one machine
    np.testing.assert_array_equal(st.labels, pd.read_csv(d / "sd.csv")["cluster"].to_numpy())
    np.testing.assert_array_equal(st.labels, ref.labels)
    np.testing.assert_array_equal(st.components, ref.components)
    new = X[:5] + 0.01
    np.save(d / "new.npy", new)
    code, out = run("assign", d / "sd.kstate", d / "new.npy", "--out", d / "new.csv")
    assert code == 0, out
    np.testing.assert_array_equal(pd.read_csv(d / "new.csv")["cluster"].to_numpy(), assign(ref, new))


def _pairs_rounded_apart(n_pairs: int, seed: int = 0) -> np.ndarray:
    """Pairs at float64 squared distance 1 - 1e-9, above 1 once rounded to float32, far apart."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < 2 * n_pairs:
        p = rng.uniform(-100, 100, size=2) + 1000.0 * len(rows)
        u = rng.normal(size=2)
        q = p + u / np.linalg.norm(u) * np.sqrt(1 - 1e-9)
        if ((p.astype(np.float32) - q.astype(np.float32)).astype(np.float64) ** 2).sum() > 1:
            rows += [p, q]
    return np.array(rows)


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_float64_file_on_dask_is_clustered_as_the_local_cli_reads_it(d, address, suffix):
    """The CLI reads every file as float32; the Dask workers read the file themselves, at float64,
    so pairs within float32 rounding of the cut were joined there and the state (float32 rows)
    then held clusters wider than its cut (found by review)."""
    from kfree.cluster.incremental import ClusterState

    X = _pairs_rounded_apart(10)
    path = d / f"flip64{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    else:
        pd.DataFrame(X, columns=["a", "b"]).to_parquet(path)
    out = {}
    for backend in ("local", "dask"):
        extra = ["--backend", "dask", "--scheduler", address] if backend == "dask" else []
        code, text = run("cluster", path, "--threshold", "1", *extra, "--out", d / f"f_{backend}.csv",
                         "--state", d / f"f_{backend}.kstate", "--force")
        assert code == 0, text
        out[backend] = pd.read_csv(d / f"f_{backend}.csv")["cluster"].to_numpy()
    assert np.unique(out["local"]).shape[0] == 20
    np.testing.assert_array_equal(out["dask"], out["local"])
    st = ClusterState.load(d / "f_dask.kstate")
    np.testing.assert_array_equal(st.labels, out["local"])
    np.testing.assert_array_equal(st.components, ClusterState.load(d / "f_local.kstate").components)


def test_state_from_a_folder_is_refused_before_any_work(d):
    (d / "parts").mkdir(exist_ok=True)
    code, out = run("cluster", d / "parts", "--threshold", "1.0", "--backend", "dask", "--out",
                    d / "p.csv", "--state", d / "p.kstate")
    assert code == 1 and "is a folder" in out and len(out.strip().splitlines()) == 1, out
    assert not (d / "p.csv").exists() and not (d / "p.kstate").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "spark"], "--backend 'spark' is not one of local, dask"),
    (["--workers", "2"], "--scheduler and --workers are for --backend dask"),
    (["--backend", "dask", "--n-clusters", "3"], "--n-clusters needs the full tree"),
    (["--backend", "dask", "--method", "multicut"], "runs threshold HAC (--method hac)"),
    (["--backend", "dask", "--scheduler", "tcp://a:1", "--workers", "2"], "--workers starts a local"),
])
def test_bad_dask_options_are_one_line(d, args, message):
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", *args, "--out", d / "bad.csv")
    assert code == 1 and message in out, out
    assert len(out.strip().splitlines()) == 1 and not (d / "bad.csv").exists()


def test_missing_threshold_and_model(d):
    code, out = run("cluster", d / "x.npy", "--backend", "dask", "--out", d / "bad.csv")
    assert code == 1 and "needs --threshold" in out, out
    code, out = run("cluster", d / "m.kfree", d / "x.npy", "--threshold", "1", "--backend", "dask",
                    "--out", d / "bad.csv")
    assert code == 1 and "clusters features as they are (no model)" in out and "kfree embed MODEL DATA" in out, out


def test_memory_limit_is_an_option_and_a_worker_resource_error_is_one_line(d, address):
    """Found by a photo-library user: a ResourceError raised on a Dask worker reached the command
    line as an 85-line traceback (distributed could not rebuild the exception class), and its
    advice, "raise memory_limit", named no option of kfree cluster."""
    import os

    from distributed.protocol.pickle import dumps, loads

    from kfree.cluster.threshold_hac import MEMORY_LIMIT_ENV
    from kfree.exceptions import ResourceError

    back = loads(dumps(ResourceError("too big")))  # as a worker's exception comes back
    assert type(back) is ResourceError and back.args == ("too big",) and isinstance(back, MemoryError)
    np.save(d / "dense.npy", np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32))
    for backend in (["--backend", "dask", "--scheduler", address], []):  # every pair within the cut
        code, out = run("cluster", d / "dense.npy", "--threshold", "1000", *backend, "--memory-limit", "0.001",
                        "--out", d / "mem.csv")
        lines = [x for x in out.splitlines() if not x.startswith("[")]  # (progress lines aside)
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), out
        assert "memory_limit=0.001 GiB" in out and "kfree cluster --memory-limit" in out, out
        assert "Traceback" not in out and not (d / "mem.csv").exists()
        assert MEMORY_LIMIT_ENV not in os.environ  # the option lasts for the command only
    code, out = run("cluster", d / "x.npy", "--threshold", "1.0", "--memory-limit", "2", "--out", d / "mem.csv")
    assert code == 0, out


def test_tables_with_ids_other_columns_and_vectors_cluster_on_dask_as_locally(d, address, tmp_path):
    """Found by a scale trial: a Parquet folder of 'embedding' lists named by 'photo_id' (what the
    local backend reads with --id-column) was refused on Dask, as were --id-column and
    --ignore-columns. Now the workers expand the vectors, leave the named columns out, and the
    clusters file is named by the ids, as the local backend's is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.load(d / "x.npy")
    ids = [f"p{i:03d}" for i in range(len(X))]
    local = tmp_path / "local.csv"
    table = pd.DataFrame({"photo_id": ids, "taken": np.arange(len(X)) * 1000, "embedding": list(X)})
    (tmp_path / "parts").mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(X)), 3)):  # three parts, two row groups each
        pq.write_table(pa.Table.from_pandas(table.iloc[part], preserve_index=False),
                       tmp_path / "parts" / f"{k}.parquet", row_group_size=25)
    code, out = run("cluster", tmp_path / "parts", "--threshold", "1.0", "--id-column", "photo_id",
                    "--ignore-columns", "taken", "--out", local)
    assert code == 0, out
    for extra in (["--ignore-columns", "taken"], []):  # without it: the local reader's warning, the same clusters
        got = tmp_path / f"dask{len(extra)}.csv"
        code, out = run("cluster", tmp_path / "parts", "--threshold", "1.0", "--id-column", "photo_id", *extra,
                        "--backend", "dask", "--scheduler", address, "--out", got)
        assert code == 0, out
        assert ("other columns ['taken'] are left out" in out) == (not extra), out
        pd.testing.assert_frame_equal(pd.read_csv(got), pd.read_csv(local))
    assert pd.read_csv(local)["index"].tolist() == ids
    np.testing.assert_array_equal(pd.read_csv(local)["cluster"], ThresholdAgglomerative(1.0).fit(X).labels_)

    # vectors of a declared size (fixed_size_list), and a table of plain columns with its ids elsewhere
    fixed = pa.table({"photo_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])})
    pq.write_table(fixed, tmp_path / "fixed.parquet")
    wide = pd.DataFrame(X, columns=[f"e{j}" for j in range(X.shape[1])]).assign(sku_id=ids, batch=7)
    wide.to_parquet(tmp_path / "wide.parquet", index=False)
    for src, extra in (("fixed.parquet", []), ("wide.parquet", ["--ignore-columns", "batch"])):
        code, out = run("cluster", tmp_path / src, "--threshold", "1.0", "--id-column",
                        "photo_id" if src == "fixed.parquet" else "sku_id", *extra, "--backend", "dask",
                        "--scheduler", address, "--out", tmp_path / "c.csv", "--force")
        assert code == 0, out
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c.csv"), pd.read_csv(local))

    # what cannot be read is one line that names it
    bad = table.copy()
    bad.at[40, "embedding"] = X[40][:5]
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    for args, message in (
            (["bad.parquet", "--id-column", "photo_id"], "bad.parquet: column 'embedding' holds vectors of 8 values, "
                                                         "but row 40 of its row group 0 does not (the first has 5 values)"),
            (["bad.parquet", "--id-column", "photo"], "bad.parquet has no id column 'photo' (--id-column)"),
            (["bad.parquet", "--ignore-columns", "when"], "bad.parquet has no column 'when' to leave out"),
            ([d / "x.npy", "--id-column", "photo_id"], "x.npy is an array without columns"),
            (["bad.parquet", "--link-column", "photo_id"], "--link-column, --cannot-link and --skip-invalid are for "
                                                           "the local backend")):
        first = args[0] if isinstance(args[0], Path) else tmp_path / args[0]
        code, out = run("cluster", first, *args[1:], "--threshold", "1.0", "--backend", "dask",
                        "--scheduler", address, "--out", tmp_path / "e.csv")
        assert code == 1 and out.splitlines()[-1].startswith("error: ") and message in out, out
        assert not (tmp_path / "e.csv").exists()
