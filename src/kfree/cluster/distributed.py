"""Exact threshold HAC on a Dask cluster: the τ-components in blocks, then each one exactly.

Why this works. Pairs farther than the cut never join below it — not in complete, average or
single linkage — so the partition at ``tau`` is the union of the partitions of the connected
components of the τ-graph, each agglomerated on its own (see the module docstring of
:mod:`~kfree.cluster.threshold_hac`). Finding the components is the only step that looks at
pairs across the data; everything after it is embarrassingly parallel.

Plan (every step a set of Dask tasks; the driver only holds O(n) integers and the cells):

1. **Chunks.** Rows arrive in chunks (a numpy array scattered in slices, a ``dask.array``'s row
   blocks, row ranges of a memory-mapped ``.npy`` read by the workers themselves, or a Parquet
   file's row groups); no step gathers the data on one node. One pass validates them (finite,
   no zero rows for cosine) and takes column ranges and a row sample.
2. **Blocks.** The τ-components of a row sample (about one per cluster the sample meets) are
   dealt to blocks of about ``block_rows`` points, whole components per block, and every row
   goes to the block of its nearest component centre: a point is far closer to its own
   cluster's centre than to any other, so a cluster mostly stays in one block. Rows near no
   centre (clusters the sample missed) go to a few orphan blocks. (The nearest
   of a few coarse k-means centres would not do: in high dimensions, with clusters in random
   directions, it is nearly a coin toss per point, and every cluster is cut.) Block ``t`` has a centre ``C_t`` and a radius ``R_t``; a point ``x``
   can have τ-neighbours in it only if ``|x − C_t| <= sqrt(tau) + R_t`` — the same exact
   triangle-inequality bound :mod:`~kfree.cluster._radius_graph` uses for its cells, one level
   up. Where the data has coarse structure, a block meets only the blocks within reach; where
   it has none (random directions in 64-d), every block is within reach of every other and
   only the cell level below prunes.
3. **Cells per block** (in parallel): the tight cells of
   :mod:`~kfree.cluster._radius_graph` (every member pair within the radius, about one per
   cluster), so a cell is connected without comparing its pairs. Blocks cut clusters, so a
   cluster may leave a fragment (cell) in several blocks; fragments whose centres are close
   are grouped into *virtual cells* with one exact bound (centre, and the largest
   ``|c_v − c_f| + R_f``), so the next pass meets about one cell per cluster again. Each block
   then finds, for its points, the virtual cells (with a fragment in a block within reach, and
   not below the point's own, so each pair of fragments is searched from one side) that may
   hold a τ-neighbour — about n × clusters / 2 GEMM evaluations, the dominant cost, split over
   blocks — and the fragments in them that pass their own bound. A block's points are taken
   ``QUERY_ROWS`` at a time, so a task holds one pass's candidates (where clusters' cells are
   wide against the gaps between clusters, a point passes the bound of hundreds of cells).
4. **Shells.** Most of those candidates are far: a cell's members sorted by distance to its
   centre, a query ``x`` needs only members farther out than ``|x − c| − sqrt(tau)``. Each
   cell's outermost members (its *shell*) are broadcast, so most candidates are decided in the
   querying block; only the rest travel, as rows, to the block that owns the cell, where a
   join task per (source, target) pair runs ahead of further candidate tasks, so the rows
   are freed as soon as their source is done.
5. **Components.** Unions found anywhere are joined on the driver (union-find over the blocks'
   intra-cell components: O(n) integers).
6. **Exact agglomeration per component** (in parallel): each component's rows go to the block
   holding most of them, and components are agglomerated exactly by
   :class:`~kfree.cluster.threshold_hac.ThresholdAgglomerative` (dense or sparse, the
   library's own kernels), small ones together in batches of about ``batch_points`` points.
   Only the merges up to ``tau`` come back; labels are cut from them as on one machine.

Exactness. Steps 2–5 compare float32 GEMM values with the same safety margin as
:func:`~kfree.cluster._radius_graph.radius_components`, so a component may be the union of two
true ones; step 6 is exact either way, so the labels define the partition of the single-machine
path (scipy's, away from exact ties; on ties the graph paths' tie order applies per component).
Half-precision input is computed in float32: the result is the exact one for float32 input of
the same values; float64 input is agglomerated in float64 (only the candidate search of steps 2–5
rounds it to float32, inside the margin).
"""

from __future__ import annotations

import logging
import math
import operator
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from .._exact_distances import gemm_ready, grid_centre
from ..distances import check_features, check_rows_dtype, refuse_zero_rows, to_sq
from ..exceptions import (
    ConfigError,
    DataError,
    DataTypeError,
    DataWarning,
    MissingDependencyError,
    first_line,
    user_stacklevel,
)
from ._radius_graph import (
    _query_lists,
    cell_order,
    centre_index,
    f32_slack,
    reach_limit,
    scan_cell,
    sq_dist_rows,
    widened_bound2,
    widened_cut,
)
from .labels import group_order
from .linkage_core import find_root, find_roots, roots_to_labels, union_find_labels, union_roots

log = logging.getLogger(__name__)

__all__ = ["DaskThresholdResult", "dask_client", "dask_threshold_hac", "fit_dask", "import_distributed"]

#: rows per chunk when kfree cuts the input itself (numpy arrays, .npy files)
CHUNK_ROWS = 250_000
#: points per block (coarse k-means cell) by default
BLOCK_ROWS = 125_000
#: outermost members per cell broadcast to every block (half as many above SHELL_BIG_TABLE cells)
SHELL = 16
SHELL_BIG_TABLE = 400_000
#: points of a block per candidate pass (bounds a candidate task's memory)
QUERY_ROWS = 16_384
#: at most this many blocks by default (each adds fragments of the clusters it cuts)
MAX_BLOCKS = 24
#: the largest component a worker agglomerates densely (its condensed distances: 1.6 GB)
DENSE_MAX_ROWS = 20_000
_HINT = "pip install 'kfree[dask]'"


def import_distributed():
    """``distributed``, or a one-line :class:`~kfree.exceptions.MissingDependencyError`."""
    try:
        import dask.array  # noqa: F401
        import distributed
    except ImportError:
        raise MissingDependencyError(
            f"backend='dask' needs dask and distributed, which are not installed: {_HINT}"
        ) from None
    return distributed


@contextmanager
def dask_client(scheduler: Any = None, n_workers: int | None = None):
    """A ``distributed.Client``: the one given, one connected to the address ``scheduler``, or
    (``None``) a ``LocalCluster`` of ``n_workers`` single-threaded worker processes started and
    closed here."""
    distributed = import_distributed()
    if isinstance(scheduler, distributed.Client):
        if n_workers is not None:
            raise ConfigError("n_workers applies only to a LocalCluster kfree starts; this Client "
                              "is already connected (scale its cluster instead)")
        yield scheduler
        return
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ConfigError(f"scheduler={scheduler!r} must be an address such as "
                              "'tcp://host:8786', a distributed.Client, or None")
        if n_workers is not None:
            raise ConfigError("n_workers applies only to a LocalCluster kfree starts; with "
                              f"scheduler={scheduler!r} the cluster's own workers run")
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"cannot connect to the Dask scheduler at {scheduler!r}: {first_line(e)}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers is not None and not (int(n_workers) == n_workers and int(n_workers) >= 1):
        raise ConfigError(f"n_workers={n_workers!r} must be an integer >= 1")
    import os

    workers = int(n_workers) if n_workers is not None else max(1, min(4, os.cpu_count() or 1))
    cluster = client = None
    try:  # started inside: a Ctrl-C while they start still closes them (not distributed's atexit)
        # silence_logs: a task's error reaches the caller as its own exception (a ResourceError
        # is one line); the workers' "Compute Failed" log and traceback would only repeat it
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit=0,
                                           silence_logs=logging.CRITICAL)
        client = distributed.Client(cluster)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


# ============================================================================ input sources
class _Source:
    """Where the rows are: a list of (loader, args) per chunk, with row offsets."""

    def __init__(self, n: int, d: int, chunks: list, what: str) -> None:
        self.n, self.d, self.chunks, self.what = n, d, chunks, what


def _check_dtype(dtype, what: str) -> None:
    if np.dtype(dtype).kind not in "fiu":
        raise DataTypeError(f"{what} has dtype {np.dtype(dtype)}; features must be real numbers")


@dataclass(frozen=True)
class ParquetRows:
    """A Parquet file, or a folder of parts read in name order, whose rows the Dask workers read
    themselves, with the columns that are not features named: ids, tracks, timestamps
    (``kfree cluster --id-column/--ignore-columns``). A path alone does the same with none
    named; either way 'label', 'index' and a DataFrame index pandas wrote are not features.

    Features are the numeric columns, or, where the file holds vectors in list columns (one
    ``embedding`` per row, as the local reader takes them), those vectors: each a block of
    features, and the other numeric columns left out with a
    :class:`~kfree.exceptions.DataWarning`, as the local reader does."""

    path: str | Path
    ignore_columns: tuple[str, ...] = ()


def _source(X: Any, client, chunk_rows: int, dtype=None) -> _Source:
    """Chunks of ``X`` as futures on the workers (nothing gathered on the driver), rounded to
    ``dtype`` when given (files: by the workers, as they read them)."""
    if isinstance(X, ParquetRows):
        p = Path(X.path)
        if not p.exists():
            raise DataError(f"{p} does not exist")
        return _parquet_source(p, client, dtype, tuple(X.ignore_columns))
    if isinstance(X, (str, Path)):
        p = Path(X)
        if not p.exists():
            raise DataError(f"{p} does not exist")
        if p.suffix.lower() == ".npy":
            try:
                M = np.load(p, mmap_mode="r", allow_pickle=False)
            except Exception as e:
                raise DataError(f"cannot read {p.name} as a .npy array: {first_line(e)}") from None
            if M.ndim != 2:
                raise DataError(f"{p.name} must hold a 2-d array (rows, features), got shape {M.shape}")
            _check_dtype(M.dtype, p.name)
            n, d = M.shape
            del M
            futs = [client.submit(_load_npy_rows, str(p.resolve()), a, min(n, a + chunk_rows), dtype,
                                  pure=False) for a in range(0, n, chunk_rows)]
            return _Source(n, d, futs, p.name)
        if p.suffix.lower() in (".parquet", ".pq") or p.is_dir():
            return _parquet_source(p, client, dtype)
        raise DataError(f"{p.name}: the dask backend reads .npy (memory-mapped) and .parquet files; "
                        "load other formats yourself and pass an array")
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - import_distributed ran first
        da = None
    if da is not None and isinstance(X, da.Array):
        if X.ndim != 2:
            raise DataError(f"X must be a 2-d array of shape (n_samples, n_features), got shape {X.shape}")
        _check_dtype(X.dtype, "X")
        if any(math.isnan(s) for s in X.shape):
            raise DataError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
        X = X.rechunk({1: -1})
        if dtype is not None:
            X = X.astype(dtype)
        blocks = X.to_delayed().ravel().tolist()
        futs = client.compute(blocks)
        return _Source(int(X.shape[0]), int(X.shape[1]), list(futs), "X")
    X = np.asarray(check_features(X, min_samples=1))
    if dtype is not None:
        X = X.astype(dtype, copy=False)
    n, d = X.shape
    futs = [client.scatter(np.ascontiguousarray(X[a : a + chunk_rows]))
            for a in range(0, n, chunk_rows)]
    return _Source(n, d, futs, "X")


def _numeric(t) -> bool:
    return str(t).startswith(("float", "int", "uint", "halffloat", "double"))


def _parquet_source(p: Path, client, dtype=None, ignore: tuple[str, ...] = ()) -> _Source:
    from ..data.io import parquet_files

    futs, n, cols = [], 0, None
    for f, meta in parquet_files(p):
        schema = meta.schema_arrow
        if cols is None and (absent := [c for c in ignore if c not in schema.names]):
            raise DataError(f"{f.name} has no column {absent[0]!r} to leave out; its columns are "
                            f"{schema.names[:12]}{'…' if len(schema.names) > 12 else ''}")
        # a DataFrame's index written by pandas (e.g. __index_level_0__) names rows, as an 'index'
        # column does: not a feature (the local reader restores it as the index)
        kept_index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
        skip = {"label", "index", *kept_index, *ignore}
        fields = [fld for fld in schema if fld.name not in skip]
        # (name, None) a numeric column; (name, k) a column of vectors of k numbers, one per row
        vectors = [fld for fld in fields if str(fld.type).startswith(("list", "large_list", "fixed_size_list"))
                   and _numeric(fld.type.value_type)]
        if vectors:
            names = [(fld.name, _vector_length(f, meta, fld)) for fld in vectors]
        else:
            names = [(fld.name, None) for fld in fields if _numeric(fld.type)]
        if cols is None:
            cols = names
            if not cols:
                raise DataError(f"{f.name} has no numeric feature columns")
            if vectors and (others := [fld.name for fld in fields if _numeric(fld.type)]):
                # (the local reader's rule: a price beside an embedding would decide every distance)
                warnings.warn(f"{f.name}: the features are the vectors of {', '.join(repr(c) for c, _ in cols)}; "
                              f"its other columns {others[:6]}{'…' if len(others) > 6 else ''} are left out "
                              f"(--ignore-columns {','.join(others[:6])} says so and silences this)",
                              DataWarning, stacklevel=user_stacklevel())
        elif names != cols:
            raise DataError(f"{f.name} has feature columns {_shown(names)}, the first file {_shown(cols)}")
        for g in range(meta.num_row_groups):
            futs.append(client.submit(_load_parquet_group, str(f), g, cols, dtype, pure=False))
            n += meta.metadata.row_group(g).num_rows
    return _Source(n, sum(1 if k is None else k for _, k in cols), futs, p.name)


def _shown(cols: list) -> list[str]:
    return [c if k is None else f"{c}[{k}]" for c, k in cols]


def _vector_length(f: Path, meta, fld) -> int:
    """How many numbers each vector of the list column ``fld`` holds: its declared size, or that
    of its first vector (the workers check every row against it)."""
    if str(fld.type).startswith("fixed_size_list"):
        return int(fld.type.list_size)
    import pyarrow.compute as pc

    for g in range(meta.num_row_groups):
        lengths = pc.list_value_length(meta.read_row_group(g, columns=[fld.name]).column(fld.name)).drop_null()
        if len(lengths):
            return int(lengths[0].as_py())
    raise DataError(f"{f.name}: column {fld.name!r} holds no vectors")


def _load_npy_rows(path: str, a: int, b: int, dtype=None) -> np.ndarray:
    M = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(M[a:b], dtype=dtype)


def _load_parquet_group(path: str, g: int, cols: list, dtype=None) -> np.ndarray:
    """Row group ``g`` of ``path`` as rows: ``cols`` as :func:`_parquet_source` lists them, a
    column of vectors expanded to its numbers (a missing vector, or one of another length, is a
    DataError naming the row: the local backend's --skip-invalid leaves such rows out)."""
    import pyarrow.parquet as pq

    t = pq.ParquetFile(path).read_row_group(g, columns=[c for c, _ in cols])
    parts = []
    for c, k in cols:
        col = t.column(c)
        if k is None:
            parts.append(col.to_numpy(zero_copy_only=False).reshape(-1, 1))
            continue
        import pyarrow.compute as pc

        arr = col.combine_chunks()
        lengths = pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False)
        if (bad := np.flatnonzero(lengths != k)).size:
            what = "no vector" if lengths[bad[0]] == -1 else f"{int(lengths[bad[0]])} values"
            rows = f"{len(bad):,} rows of its row group {g} do not" if len(bad) > 1 else f"row {bad[0]} of its row group {g} does not"
            raise DataError(f"{Path(path).name}: column {c!r} holds vectors of {k} values, but {rows} (the first has "
                            f"{what}); cluster it with the local backend, whose --skip-invalid leaves such rows out")
        parts.append(arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, k))
    rows = np.hstack(parts) if len(parts) > 1 else parts[0]
    return rows if dtype is None else rows.astype(dtype, copy=False)


# ============================================================================ worker tasks
def _chunk_stats(rows: np.ndarray, offset: int, distance: str, n_sample: int, seed: int):
    """Column ranges, a row sample, and the input checks of one chunk."""
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise DataError(f"a chunk of X has shape {rows.shape}; X must be 2-d")
    _check_dtype(rows.dtype, "X")
    if rows.shape[0] == 0:
        return None
    R = rows.astype(np.float64)
    bad = ~np.isfinite(R).all(axis=1)
    if bad.any():
        raise DataError(f"X contains NaN or infinite values (first: row "
                        f"{offset + int(np.flatnonzero(bad)[0])}); drop or impute them first")
    refuse_zero_rows(R, distance, "a block", offset)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(rows.shape[0], size=min(rows.shape[0], n_sample), replace=False))
    return R.min(axis=0), R.max(axis=0), rows.shape[0], R[take]


def _prepare(rows: np.ndarray, centre, distance: str) -> np.ndarray:
    """Float32 rows for the candidate GEMMs (centred by the global centre, or unit rows)."""
    return gemm_ready(rows, distance, centre=centre).astype(np.float32)


def _route_chunk(rows, offset: int, centre, route: tuple | None, n_blocks: int, thr_sq: float,
                 distance: str):
    """Each row's block, the rows split by block, and their max |x|².

    A row within the cut of a sample component's centre goes to that component's block (whole
    clusters go together); a row near none (a cluster the sample missed) goes to an orphan
    block, the nearest of a few orphan centres, so a missed cluster is cut at most among them.
    """
    X32 = _prepare(rows, centre, distance)
    if route is None:
        dest = np.zeros(X32.shape[0], dtype=np.int64)
    else:
        centres, block_of, orphan_centres, first_orphan = route
        near, d2 = _nearest(centres, X32)
        dest = block_of[near]
        far = d2 > thr_sq
        if orphan_centres.shape[0] and far.any():
            dest[far] = first_orphan + _nearest(orphan_centres, X32[far])[0]
    idx = offset + np.arange(X32.shape[0], dtype=np.int64)
    rows = np.asarray(rows)
    parts = []
    for b in range(n_blocks):
        sel = dest == b
        parts.append((idx[sel], rows[sel]))
    mx = float(np.einsum("ij,ij->i", X32, X32).max()) if X32.shape[0] else 0.0
    return parts, mx


def _nearest(centres: np.ndarray, X32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Approximately) nearest centre of each row and the squared distance to it: an IVF index
    over the centres (routing only decides where work happens, never the result)."""
    index = centre_index(centres, exact_up_to=256, nlist=int(math.sqrt(centres.shape[0])),
                         nprobe=8)
    D, a = index.search(np.ascontiguousarray(X32), 1)
    a = a.ravel()
    return np.maximum(a, 0).astype(np.int64), np.where(a >= 0, D.ravel(), np.inf)


def _sample_blocks(S32: np.ndarray, thr_sq: float, n_blocks: int, seed: int):
    """Routing from a sample: the centres of its τ-components (about one per cluster the
    sample meets), each with a block (whole components per block, balanced by size), and for
    the rows near none of them (clusters the sample missed, about as many as the sample's
    lone points suggest) a few orphan blocks with centres of their own.

    Why nearest centres route whole clusters (and coarse k-means centres would not): step 2 of
    the module docstring."""
    import faiss

    from ._radius_graph import radius_components

    comp = radius_components(S32.astype(np.float64), thr_sq, "sqeuclidean")
    k = int(comp.max()) + 1
    counts = np.bincount(comp, minlength=k).astype(np.float64)
    centres = np.zeros((k, S32.shape[1]))
    np.add.at(centres, comp, S32.astype(np.float64))
    centres = (centres / counts[:, None]).astype(np.float32)
    lone = counts[comp] == 1  # Good-Turing: about the share of rows in clusters never sampled
    n_orphan = 0
    if lone.sum() >= 2:
        n_orphan = min(n_blocks - 1, max(1, round(n_blocks * float(lone.mean()))))
    n_regular = n_blocks - n_orphan
    block_of = np.empty(k, dtype=np.int64)
    load = np.zeros(n_regular)
    for c in np.argsort(-counts, kind="stable"):  # largest first, to the lightest block
        b = int(np.argmin(load))
        block_of[c] = b
        load[b] += counts[c]
    orphan = np.zeros((0, S32.shape[1]), dtype=np.float32)
    if n_orphan:
        km = faiss.Kmeans(S32.shape[1], n_orphan, niter=10, seed=seed, verbose=False,
                          min_points_per_centroid=1)
        km.train(np.ascontiguousarray(S32[lone]))
        orphan = np.ascontiguousarray(km.centroids, dtype=np.float32)
    return centres, block_of, orphan, n_regular


class _Block:
    """A block's rows and cells, kept on the worker that built it."""

    def __init__(self, idx, rows, X32, assign, centres, radii, tight, order, starts, rb, comp):
        self.idx, self.rows, self.X32 = idx, rows, X32
        self.assign, self.centres, self.radii, self.tight = assign, centres, radii, tight
        self.order, self.starts, self.rb, self.comp = order, starts, rb, comp


def _build_block(centre, distance: str, thr_c: float, seed: int, *parts) -> _Block | None:
    from ._radius_graph import _components_kernel, _pruning_cells, _recentre

    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return None
    idx = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    X32 = _prepare(rows, centre, distance)
    rad = math.sqrt(thr_c)
    cells = _pruning_cells(X32, rad, seed) if X32.shape[0] > 1 else None
    if cells is None:  # one cell of the whole block, not tight: its pairs are compared
        assign, centres, radii = _recentre(X32, np.zeros(X32.shape[0], dtype=np.int64))
        tight = np.zeros(1, dtype=bool) if X32.shape[0] > 1 else np.ones(1, dtype=bool)
    else:
        assign, centres, radii, tight = cells
    k = centres.shape[0]
    rb, order, starts = cell_order(X32, assign, centres)
    parent = np.arange(X32.shape[0], dtype=np.int64)
    _components_kernel(X32, order, starts, np.zeros(k + 1, dtype=np.int64),
                       np.empty(0, dtype=np.int64), thr_c, parent, tight,
                       np.ascontiguousarray(centres, dtype=np.float32), rb)
    comp = roots_to_labels(parent)
    return _Block(idx, rows, X32, assign, np.ascontiguousarray(centres, dtype=np.float32), radii,
                  tight, order, starts, rb, comp)


def _block_summary(blk: _Block | None, shell: int) -> dict | None:
    """What the driver needs of a block: cells, shells, its centre and radius, component
    sizes."""
    if blk is None:
        return None
    k = blk.centres.shape[0]
    d = blk.X32.shape[1]
    block_centre = blk.X32.mean(axis=0, dtype=np.float64).astype(np.float32)
    diff = blk.X32.astype(np.float64) - block_centre.astype(np.float64)
    R = float(np.sqrt(np.einsum("ij,ij->i", diff, diff).max()))
    sizes = np.diff(blk.starts)
    m = np.minimum(sizes, shell)
    sh_rows = np.zeros((k, shell, d), dtype=np.float32)
    sh_rb = np.full((k, shell), -np.inf)
    sh_comp = np.zeros((k, shell), dtype=np.int64)
    rest_rb = np.full(k, -np.inf)
    for j in range(shell):
        has = m > j
        pos = blk.order[blk.starts[:-1][has] + j]
        sh_rows[has, j] = blk.X32[pos]
        sh_rb[has, j] = blk.rb[pos]
        sh_comp[has, j] = blk.comp[pos]
    more = sizes > shell
    rest_rb[more] = blk.rb[blk.order[blk.starts[:-1][more] + shell]]
    whole = np.ones(k, dtype=bool)
    first = blk.comp[blk.order[blk.starts[:-1]]]
    same = blk.comp[blk.order] == np.repeat(first, sizes)
    whole[np.unique(blk.assign[blk.order][~same])] = False
    n_comp = int(blk.comp.max()) + 1
    return dict(n=blk.X32.shape[0], radius=R, centre=block_centre, centres=blk.centres, radii=blk.radii,
                shell_rows=sh_rows, shell_rb=sh_rb, shell_comp=sh_comp, shell_n=m,
                rest_rb=rest_rb, whole=whole, n_comp=n_comp,
                comp_sizes=np.bincount(blk.comp, minlength=n_comp), cell_sizes=sizes)


@nb.njit(cache=True)
def _shell_kernel(X32, xcomp, qptr, qpts, sh_rows, sh_rb, sh_comp, sh_n, rest_rb, whole,
                  centres, rad, thr, parent, unresolved):
    """Decide candidates (x, cell) against the cells' shells; flag those that need the cell.

    ``xcomp``/``sh_comp`` index ``parent`` (a union-find over components). For cell j and its
    queries x: skip when x is already joined to a whole cell; otherwise scan the shell
    (outermost first) until a member is too close to the centre to be within reach of x
    (decided), a τ-neighbour joins a whole cell (decided), or the shell ends with members left
    that may still be within reach (``unresolved[t] = True``)."""
    for j in range(qptr.shape[0] - 1):
        for t in range(qptr[j], qptr[j + 1]):
            x = qpts[t]
            cx = xcomp[x]
            if whole[j] and find_root(parent, cx) == find_root(parent, sh_comp[j, 0]):
                continue
            lim = reach_limit(X32[x], centres[j], rad)
            done = False
            for q in range(sh_n[j]):
                if sh_rb[j, q] < lim:
                    done = True
                    break
                if (sq_dist_rows(X32[x], sh_rows[j, q]) <= thr
                        and find_root(parent, cx) != find_root(parent, sh_comp[j, q])):
                    union_roots(parent, cx, sh_comp[j, q])
                    if whole[j]:
                        done = True
                        break
            if not done and rest_rb[j] >= lim:
                unresolved[t] = True


@nb.njit(cache=True)
def _join_kernel(X32, order, starts, rb, mcomp, centres, whole, qx, rcomp, qrow, qcell, rad, thr,
                 parent):
    """Queries (row qx[qrow[t]], of component rcomp[qrow[t]]) against all members of cell
    qcell[t]."""
    for t in range(qcell.shape[0]):
        c = qcell[t]
        r = qrow[t]
        cx = rcomp[r]
        s0 = starts[c]
        s1 = starts[c + 1]
        if whole[c] and find_root(parent, cx) == find_root(parent, mcomp[order[s0]]):
            continue
        scan_cell(qx[r], cx, X32, order, s0, s1, rb, mcomp, reach_limit(qx[r], centres[c], rad),
                  thr, whole[c], parent)


def _local_uf(ids: np.ndarray):
    """Union-find over the distinct global ids in ``ids``: (unique ids, positions of ids)."""
    u, inv = np.unique(ids, return_inverse=True)
    return u, inv.ravel().astype(np.int64)


def _uf_pairs(u: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """The unions found, as (k, 2) global component ids."""
    roots = find_roots(parent)
    moved = roots != np.arange(parent.shape[0])
    return np.stack([u[moved], u[roots[moved]]], axis=1)


@nb.njit(cache=True)
def _expand_kernel(X32, frag_x, vx, cx, cv, vf_ptr, vf_ids, fcentres, bound2, out_x, out_f):
    """Candidates (point, virtual cell) → (point, fragment): every fragment f of the virtual
    cell other than the point's own (in its own virtual cell only f > own, so each pair of
    fragments is searched from one side), kept when ``|x − c_f|² <= bound2[f]``."""
    d = X32.shape[1]
    k = 0
    for t in range(cx.shape[0]):
        x = cx[t]
        v = cv[t]
        fx = frag_x[x]
        for q in range(vf_ptr[v], vf_ptr[v + 1]):
            f = vf_ids[q]
            if f == fx or (v == vx[x] and f < fx):
                continue
            s = 0.0
            for j in range(d):
                w = np.float64(X32[x, j]) - np.float64(fcentres[f, j])
                s += w * w
            if s <= bound2[f]:
                if k >= out_x.shape[0]:
                    return -1
                out_x[k] = x
                out_f[k] = f
                k += 1
    return k


def _query_block(blk: _Block | None, s: int, comp_off: int, cell_off: np.ndarray, glob: dict,
                 thr_c: float, n_blocks: int):
    """Candidates of block ``s``'s points: point × virtual cell (fragments of one cluster from
    several blocks, one bound), expanded to fragments, decided against the fragments' shells
    here; the rest go to the fragment's block as (rows, component ids, cells of that block).
    Returns (union pairs, bundles per block, counts).

    The points are taken ``QUERY_ROWS`` at a time (in order of their own virtual cell, so each
    pass's GEMM skips the cells below it), with one union-find kept across passes: a task's
    memory is bounded by one pass's candidates, not the block's (where cluster radii are large
    against the gaps between clusters, a point has hundreds of candidate cells).
    """
    empty = (np.zeros((0, 2), dtype=np.int64), [None] * n_blocks, (0, 0))
    if blk is None:
        return empty
    rad = math.sqrt(thr_c)
    X32 = blk.X32
    frag_x = cell_off[s] + blk.assign  # global fragment (cell) of each point
    vid = glob["vid"]
    vx = vid[frag_x]
    fc = glob["centres"]
    xn = np.einsum("ij,ij->i", X32, X32)
    slack = f32_slack(float(xn.max()), float(np.einsum("ij,ij->i", fc, fc).max()), X32.shape[1])
    # blocks within reach of some point of this block (|x − C_t| <= rad + R_t; exact bound,
    # widened for rounding): only virtual cells with a fragment in one of them are searched
    bc = glob["block_centres"]
    reach = np.zeros(n_blocks, dtype=bool)
    for a0 in range(0, X32.shape[0], 65536):
        d2 = (xn[a0 : a0 + 65536, None] + np.einsum("ij,ij->i", bc, bc)[None, :]
              - 2.0 * (X32[a0 : a0 + 65536] @ bc.T))
        reach |= (d2 <= widened_bound2(rad, glob["block_radii"], slack)[None, :]).any(0)
    reach[s] = True
    del xn
    fblock = np.searchsorted(cell_off, np.arange(fc.shape[0]), side="right") - 1
    sel_v = np.unique(vid[reach[fblock]])
    # v >= vx[x]: a pair of fragments in two virtual cells is searched from the smaller one
    low = np.searchsorted(sel_v, vx) - 1
    vcen, vrad = glob["vcentres"][sel_v], glob["vradii"][sel_v]
    bound2 = widened_bound2(rad, glob["radii"], slack)
    n_frag = fc.shape[0]
    # union-find over this block's components and the components of all shells
    xcomp_g = comp_off + blk.comp
    sc = glob["shell_comp"]
    u, pos = _local_uf(np.concatenate([xcomp_g, sc.ravel()]))
    xcomp = pos[: X32.shape[0]]
    shc = pos[X32.shape[0]:].reshape(sc.shape)
    parent = np.arange(u.shape[0], dtype=np.int64)
    left_x, left_f = [], []  # candidates the shells could not decide
    pass_rows = int(QUERY_ROWS)
    n_cand = 0
    by = np.argsort(low, kind="stable")
    for p0 in range(0, by.shape[0], max(1, pass_rows)):
        sub = by[p0 : p0 + pass_rows]
        qptr, qpts = _query_lists(X32[sub], low[sub], vcen, vrad, rad, n_threads=1)
        cv = sel_v[np.repeat(np.arange(qptr.shape[0] - 1), np.diff(qptr))]
        qpts = sub[qpts]
        cap = max(1 << 16, 2 * qpts.shape[0])
        while True:
            out_x = np.empty(cap, dtype=np.int64)
            out_f = np.empty(cap, dtype=np.int64)
            k = _expand_kernel(X32, frag_x, vx, qpts, cv, glob["vf_ptr"], glob["vf_ids"], fc,
                               bound2, out_x, out_f)
            if k >= 0:
                break
            cap *= 2
        del qpts, cv, qptr
        o = np.argsort(out_f[:k], kind="stable")
        px, pf = out_x[:k][o], out_f[:k][o]
        del out_x, out_f, o
        n_cand += int(px.shape[0])
        if px.shape[0] == 0:
            continue
        fptr = np.searchsorted(pf, np.arange(n_frag + 1)).astype(np.int64)
        unresolved = np.zeros(px.shape[0], dtype=bool)
        _shell_kernel(X32, xcomp, fptr, px, glob["shell_rows"], glob["shell_rb"], shc,
                      glob["shell_n"], glob["rest_rb"], glob["whole"], fc, rad, thr_c, parent,
                      unresolved)
        left_x.append(px[unresolved])
        left_f.append(pf[unresolved])
        del px, pf, unresolved
    pairs = _uf_pairs(u, parent)
    bundles: list = [None] * n_blocks
    ux = np.concatenate(left_x) if left_x else np.zeros(0, dtype=np.int64)
    f = np.concatenate(left_f) if left_f else np.zeros(0, dtype=np.int64)
    del left_x, left_f
    if ux.shape[0]:
        # half-precision input travels as it came (half the bytes of its float32 copy) and is
        # prepared again where it lands (_join_block): the same float32 values either way
        ship = blk.rows if np.asarray(blk.rows).dtype == np.float16 else X32
        tb = np.searchsorted(cell_off, f, side="right") - 1
        for t in np.unique(tb):
            m = tb == t
            # each row once per target block (a row is often unresolved in several of its cells)
            pts, row = np.unique(ux[m], return_inverse=True)
            bundles[t] = (np.asarray(ship[pts]), xcomp_g[pts],
                          (f[m] - cell_off[t]).astype(np.int64), row.ravel().astype(np.int64))
    return pairs, bundles, (n_cand, int(ux.shape[0]))


def _virtual_cells(centres: np.ndarray, radii: np.ndarray, sizes: np.ndarray, block: np.ndarray,
                   rad: float, *, neighbours: int = 8):
    """Fragments of one cluster in different blocks, grouped: (vid, centres, radii, CSR).

    Coarse blocks cut clusters, so each block's tight cells are fragments, and the point-to-cell
    pass costs a distance per point and cell: fragments from different blocks whose centres lie
    within ``rad / 2`` (approximate neighbours by faiss; a missed pair only costs speed) are
    grouped into one virtual cell, whose centre is their weighted mean and whose radius bounds
    every member exactly (``max |c_v − c_f| + R_f``), so the pass meets about one cell per
    cluster again."""
    from ._radius_graph import near_centres
    from .linkage_core import connected_components

    k, d = centres.shape
    if k > 1:
        rows, D, Ind = near_centres(centres, neighbours)
        ok = (Ind >= 0) & (D <= (rad / 2) ** 2)
        ok &= block[rows] != block[np.maximum(Ind, 0)]
        vid = connected_components(k, rows[ok].astype(np.int64), Ind[ok].astype(np.int64))
    else:
        vid = np.zeros(k, dtype=np.int64)
    n_v = int(vid.max()) + 1
    w = sizes.astype(np.float64)
    vc = np.zeros((n_v, d))
    np.add.at(vc, vid, centres.astype(np.float64) * w[:, None])
    vc /= np.bincount(vid, weights=w, minlength=n_v)[:, None]
    vc32 = vc.astype(np.float32)
    gap = np.sqrt(((centres.astype(np.float64) - vc32[vid].astype(np.float64)) ** 2).sum(axis=1))
    vr = np.zeros(n_v)
    np.maximum.at(vr, vid, gap + radii)
    vf_ids, vf_ptr = group_order(vid, n_v)
    return vid.astype(np.int64), vc32, vr * (1 + 1e-7), vf_ptr, vf_ids


def _join_block(blk: _Block | None, comp_off: int, thr_c: float, whole: np.ndarray, centre,
                distance: str, *bundles):
    """Unresolved candidates sent to this block, against all members of their cells
    (half-precision rows arrive as the input had them and are prepared here)."""
    bundles = [b for b in bundles if b is not None]
    if blk is None or not bundles:
        return np.zeros((0, 2), dtype=np.int64)
    qx = np.concatenate([b[0] if b[0].dtype == np.float32 else _prepare(b[0], centre, distance)
                         for b in bundles])
    rcomp_g = np.concatenate([b[1] for b in bundles])
    qcell = np.concatenate([b[2] for b in bundles])
    first = np.cumsum([0] + [b[0].shape[0] for b in bundles[:-1]])
    qrow = np.concatenate([f + b[3] for f, b in zip(first, bundles, strict=True)])
    o = np.argsort(qcell, kind="stable")  # cell by cell: the members stay in cache
    qcell, qrow = qcell[o], qrow[o]
    u, pos = _local_uf(np.concatenate([comp_off + blk.comp, rcomp_g]))
    n = blk.X32.shape[0]
    parent = np.arange(u.shape[0], dtype=np.int64)
    _join_kernel(blk.X32, blk.order, blk.starts, blk.rb, pos[:n], blk.centres, whole,
                 np.ascontiguousarray(qx), pos[n:], qrow, qcell, math.sqrt(thr_c), thr_c, parent)
    return _uf_pairs(u, parent)


def _point_components(blk: _Block | None, roots: np.ndarray):
    """(point ids, τ-component of each) of this block's points."""
    if blk is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return blk.idx, roots[blk.comp]


def _route_home(blk: _Block | None, roots: np.ndarray, home: np.ndarray, n_blocks: int):
    """This block's rows split by the block that agglomerates their component."""
    if blk is None:
        return [None] * n_blocks
    r = roots[blk.comp]
    dest = home[r]
    out: list = [None] * n_blocks
    for t in np.unique(dest):
        m = dest == t
        out[t] = (blk.idx[m], r[m], blk.rows[m])
    return out


def _agglomerate(threshold: float, linkage: str, distance: str, memory_limit, batch_points: int,
                 *parts):
    """Exact merges up to ``threshold`` of whole components, small ones batched together."""
    from .threshold_hac import (
        ThresholdAgglomerative,
        _dense_component_merges,
        component_batches,
        dense_is_faster,
        memory_limit_bytes,
    )

    parts = [p for p in parts if p is not None]
    if not parts:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    idx = np.concatenate([p[0] for p in parts])
    root = np.concatenate([p[1] for p in parts])
    rows = np.concatenate([p[2] for p in parts])
    o = np.lexsort((idx, root))  # by component, points in input order (as on one machine)
    idx, root, rows = idx[o], root[o], rows[o]
    starts = np.flatnonzero(np.r_[True, root[1:] != root[:-1], True])
    out_p, out_h = [], []
    limit = memory_limit_bytes(memory_limit)
    for a, b in component_batches(starts, batch_points):
        if b - a < 2:
            continue
        # the rows as they came (float16 as float32): the exact step decides float64 input in
        # float64, as the single-machine path does
        X = np.asarray(rows[a:b], dtype=np.result_type(rows.dtype, np.float32))
        if linkage == "complete" and dense_is_faster(X, threshold, distance, limit,
                                                     max_rows=DENSE_MAX_ROWS):
            # mostly pairs within the cut (a cluster that is a ball): fastcluster on all pairs,
            # as the single-machine per-component path decides it
            pa, pb, h, _ = _dense_component_merges(X, threshold, distance)
            out_p.append(idx[a:b][np.stack([pa, pb], axis=1)])
            out_h.append(h)
            continue
        # otherwise the τ-graph (sparse) for complete linkage; average and single linkage are
        # agglomerated densely per τ-component either way
        m = ThresholdAgglomerative(threshold, linkage=linkage, distance=distance,
                                   algorithm="sparse", memory_limit=memory_limit).fit(X)
        keep = m.merge_heights_ <= threshold
        out_p.append(idx[a:b][m.merge_pairs_[keep]])
        out_h.append(m.merge_heights_[keep])
    if not out_p:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    return np.concatenate(out_p), np.concatenate(out_h)


# ============================================================================ driver
class DaskThresholdResult:
    """Merges up to the threshold (sample ids, increasing height), run statistics, and (when the
    run made them) each sample's component of the τ-graph found in float32 with a safety margin
    (a union of exact τ-components: no cluster spans two)."""

    def __init__(self, n: int, pairs: np.ndarray, heights: np.ndarray, stats: dict,
                 components: np.ndarray | None = None) -> None:
        self.n_samples, self.merge_pairs, self.merge_heights, self.stats = n, pairs, heights, stats
        self.components = components

    def labels(self) -> np.ndarray:
        """Labels of shape (n_samples,), 0..k-1 in order of first appearance (as one machine)."""
        p = self.merge_pairs
        return union_find_labels(self.n_samples, p[:, 0].copy(), p[:, 1].copy(), p.shape[0])

    def to_dask_dataframe(self, npartitions: int = 1):
        """The labels as a ``dask.dataframe`` with columns ``index`` and ``cluster``."""
        import dask.dataframe as dd
        import pandas as pd

        df = pd.DataFrame({"index": np.arange(self.n_samples), "cluster": self.labels()})
        return dd.from_pandas(df, npartitions=int(npartitions))

    def write(self, path: str | Path) -> Path:
        """Write the labels to ``path``: .npy (the array), .csv or .parquet (index, cluster)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in (".npy", ".csv", ".parquet"):
            raise ConfigError(f"{p.name}: labels are written as .npy, .csv or .parquet")
        from ..utils.io import atomic_path

        labels = self.labels()
        with atomic_path(p) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as f:
                    np.save(f, labels)
            else:
                import pandas as pd

                df = pd.DataFrame({"index": np.arange(self.n_samples), "cluster": labels})
                df.to_csv(tmp, index=False) if suffix == ".csv" else df.to_parquet(tmp, index=False)
        return p


def _progress(hook, step: str, futures: list) -> list:
    """Wait for ``futures``, reporting each completion to ``hook``; return their results."""
    from distributed import as_completed, wait

    if hook is None:
        wait(futures)
    else:
        hook(step, completed=0, total=len(futures))
        for i, _ in enumerate(as_completed(futures), 1):
            hook(step, completed=i, total=len(futures))
    bad = [f for f in futures if f.status == "error"]
    if bad:
        bad[0].result()  # re-raises the worker's exception here
    return futures


def dask_threshold_hac(
    X: Any,
    threshold: float,
    *,
    linkage: str = "complete",
    distance: str = "sqeuclidean",
    client=None,
    block_rows: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    batch_points: int = 4096,
    agg_rows: int = 50_000,
    memory_limit: float | None = None,
    seed: int = 0,
    dtype: str | None = None,
    hook: Callable[..., None] | None = None,
) -> DaskThresholdResult:
    """Exact threshold HAC of ``X`` on the Dask cluster behind ``client``.

    Parameters
    ----------
    X : ndarray, dask.array.Array, or path to a .npy (memory-mapped) or .parquet file/folder
        Shape (n_samples, n_features); real numbers (float16 is computed in float32).
    threshold : float
        Cut height in units of ``distance`` (``<=`` joins).
    linkage : {"complete", "average", "single"}
    distance : {"sqeuclidean", "euclidean", "cosine"}
    client : distributed.Client
    block_rows : int, optional
        Points per block (coarse cell): the unit of parallel work and of worker memory. Default:
        125,000, or n / 24 when that is more (blocks cut clusters into fragments, and the
        fragment table goes to every worker; on a large cluster set it so that each worker
        gets a few blocks).
    chunk_rows : int
        Rows per chunk when kfree cuts the input (numpy arrays, .npy files).
    agg_rows : int
        Points per exact-agglomeration task (whole components; a larger one is a task alone).
    batch_points : int
        Small components are agglomerated together in batches of about this many points.
    memory_limit : float, optional
        GiB per exact agglomeration task (see ``ThresholdAgglomerative``).
    dtype : {None, "float32", "float64"}
        Round the rows to this precision as they are read (``None``: X's own).
    hook : callable, optional
        ``hook(step, completed=, total=)`` progress callback (called on the driver).
    """
    if block_rows is not None and (not float(block_rows) >= 2 or int(block_rows) != block_rows):
        raise ConfigError(f"block_rows={block_rows!r} must be an integer >= 2")
    if not float(chunk_rows) >= 1 or int(chunk_rows) != chunk_rows:
        raise ConfigError(f"chunk_rows={chunk_rows!r} must be an integer >= 1")
    check_rows_dtype(dtype)
    import time

    t_start = time.perf_counter()
    times: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        t = time.perf_counter()
        times[name] = t - t0
        log.info("dask threshold HAC: %s %.1f s", name, t - t0)
        return t

    src = _source(X, client, int(chunk_rows), dtype)
    n, d = src.n, src.d
    if n == 0:
        raise DataError(f"{src.what} has 0 rows; at least 1 is needed")
    if block_rows is None:
        block_rows = max(BLOCK_ROWS, -(-n // MAX_BLOCKS))
    n_blocks = max(1, -(-n // int(block_rows)))
    offsets = []  # row offsets follow the chunk order
    t0 = time.perf_counter()
    sample_total = min(n, max(20_000, 256 * n_blocks, min(100_000, n // 20)))
    sizes = client.gather([client.submit(lambda r: np.asarray(r).shape[0], f, pure=False)
                           for f in src.chunks])
    off = 0
    for s_ in sizes:
        offsets.append(off)
        off += int(s_)
    stats = [client.submit(_chunk_stats, f, o, distance,
                           max(1, math.ceil(sample_total * int(s_) / max(n, 1))), seed + i,
                           pure=False)
             for i, (f, o, s_) in enumerate(zip(src.chunks, offsets, sizes, strict=True))]
    _progress(hook, "read and check chunks", stats)
    st = [s for s in client.gather(stats) if s is not None]
    lo = np.min([s[0] for s in st], axis=0)
    hi = np.max([s[1] for s in st], axis=0)
    sample = np.concatenate([s[3] for s in st])
    centre = None if distance == "cosine" else grid_centre(lo, hi)
    S32 = _prepare(sample, centre, distance)
    t0 = lap("read", t0)

    # blocks: the sample's τ-components (about one per cluster), whole ones per block
    thr_sq = to_sq(threshold, distance)
    route = _sample_blocks(S32, thr_sq, n_blocks, seed) if n_blocks > 1 else None
    route_f = client.scatter(route, broadcast=True) if route is not None else None
    routed = [client.submit(_route_chunk, f, o, centre, route_f, n_blocks, thr_sq, distance,
                            pure=False) for f, o in zip(src.chunks, offsets, strict=True)]
    _progress(hook, "route rows to blocks", routed)
    mx = max(client.gather([client.submit(operator.getitem, r, 1, pure=False) for r in routed]))
    thr_c = widened_cut(thr_sq, mx, d)
    parts = [client.submit(operator.getitem, r, 0, pure=False) for r in routed]
    blocks = []
    for b in range(n_blocks):
        pieces = [client.submit(operator.getitem, p, b, pure=False) for p in parts]
        blocks.append(client.submit(_build_block, centre, distance, thr_c, seed + 7919 * b,
                                    *pieces, pure=False))
    del routed, parts, stats
    src.chunks.clear()
    summ = [client.submit(_block_summary, blk, SHELL, pure=False) for blk in blocks]
    _progress(hook, "cells per block", summ)
    summaries = client.gather(summ)
    t0 = lap("blocks", t0)

    # global cell table (cells numbered block by block) and component offsets
    ncells = np.array([0 if s is None else s["centres"].shape[0] for s in summaries])
    cell_off = np.r_[0, np.cumsum(ncells)].astype(np.int64)
    ncomp = np.array([0 if s is None else s["n_comp"] for s in summaries])
    comp_off = np.r_[0, np.cumsum(ncomp)].astype(np.int64)
    live = [s for s in summaries if s is not None]
    if cell_off[-1] > SHELL_BIG_TABLE:  # a smaller shell table to broadcast to every worker
        for sm in live:
            h = SHELL // 2
            more = sm["shell_n"] > h
            sm["rest_rb"] = np.where(more, sm["shell_rb"][:, h], sm["rest_rb"])
            sm["shell_n"] = np.minimum(sm["shell_n"], h)
            for key in ("shell_rows", "shell_rb", "shell_comp"):
                sm[key] = np.ascontiguousarray(sm[key][:, :h])
    glob = dict(
        centres=np.concatenate([s["centres"] for s in live]),
        radii=np.concatenate([s["radii"] for s in live]),
        shell_rows=np.concatenate([s["shell_rows"] for s in live]),
        shell_rb=np.concatenate([s["shell_rb"] for s in live]),
        shell_comp=np.concatenate([comp_off[b] + s["shell_comp"]
                                   for b, s in enumerate(summaries) if s is not None]),
        shell_n=np.concatenate([s["shell_n"] for s in live]).astype(np.int64),
        rest_rb=np.concatenate([s["rest_rb"] for s in live]),
        whole=np.concatenate([s["whole"] for s in live]),
        block_centres=np.stack([np.zeros(d, np.float32) if s is None else s["centre"]
                                for s in summaries]),
        block_radii=np.array([-np.inf if s is None else s["radius"] for s in summaries]),
    )
    fsizes = np.concatenate([s["cell_sizes"] for s in live])
    fblock = np.repeat(np.arange(n_blocks), ncells)
    vid, vcen, vrad, vf_ptr, vf_ids = _virtual_cells(glob["centres"], glob["radii"], fsizes,
                                                     fblock, math.sqrt(thr_c))
    glob.update(vid=vid, vcentres=vcen, vradii=vrad, vf_ptr=vf_ptr, vf_ids=vf_ids)
    glob_f = client.scatter(glob, broadcast=True)
    queries = [client.submit(_query_block, blk, b, int(comp_off[b]), cell_off, glob_f, thr_c,
                             n_blocks, pure=False) for b, blk in enumerate(blocks)]
    # a join per (source, target) block, ready as soon as its source's candidates are, and run
    # before any further candidate task (a higher priority; by default Dask runs tasks in the
    # order submitted, so every source's shipped rows waited for the last source): the rows a
    # source ships are freed once its joins ran
    first = dict(pure=False, priority=1)
    # the small part of each candidate task's result: its union pairs and counts
    small = [client.submit(operator.itemgetter(0, 2), q, **first) for q in queries]
    joins = []
    for q in queries:
        bu = client.submit(operator.getitem, q, 1, **first)
        for t, blk in enumerate(blocks):
            wt = glob["whole"][cell_off[t] : cell_off[t + 1]]
            joins.append(client.submit(_join_block, blk, int(comp_off[t]), thr_c, wt, centre,
                                       distance, client.submit(operator.getitem, bu, t, **first),
                                       **first))
        del bu
    del queries
    _progress(hook, "cell candidates", small)
    got = client.gather(small)
    counts = [g[1] for g in got]
    pairs = [g[0] for g in got]
    t0 = lap("candidates", t0)
    _progress(hook, "cell joins", joins)
    pairs += client.gather(joins)
    del small, joins, glob_f
    t0 = lap("joins", t0)

    # components: union-find over the blocks' intra-cell components
    total = int(comp_off[-1])
    E = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    from .linkage_core import connected_components

    root = connected_components(total, E[:, 0].astype(np.int64), E[:, 1].astype(np.int64))
    n_roots = int(root.max()) + 1
    # each component goes to the block that holds most of its points
    cnt_blk = np.concatenate([np.full(ncomp[b], b) for b in range(n_blocks)]).astype(np.int64)
    cnt_n = np.concatenate([s["comp_sizes"] for s in live]).astype(np.int64)
    key = root * n_blocks + cnt_blk
    uk, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv.ravel(), weights=cnt_n)
    r_of, b_of = uk // n_blocks, uk % n_blocks
    o = np.lexsort((-w, r_of))
    home = np.empty(n_roots, dtype=np.int64)
    first = np.r_[True, r_of[o][1:] != r_of[o][:-1]]
    home[r_of[o][first]] = b_of[o][first]
    comp_sizes_root = np.bincount(root, weights=cnt_n, minlength=n_roots)
    # agglomeration groups of whole components, about agg_rows points each, by home block (so
    # most rows stay where they are)
    ro = np.lexsort((np.arange(n_roots), home))
    cs = np.cumsum(comp_sizes_root[ro])
    blk_start = np.searchsorted(home[ro], np.arange(n_blocks))
    base = np.r_[0.0, cs][blk_start][np.searchsorted(blk_start, np.arange(n_roots), side="right")
                                     - 1]
    raw = home[ro] * (n // max(1, int(agg_rows)) + 2) + ((cs - 1 - base) // max(1, int(agg_rows)))
    _, gid = np.unique(raw, return_inverse=True)
    group = np.empty(n_roots, dtype=np.int64)
    group[ro] = gid.ravel()
    n_groups = int(group.max()) + 1
    group_f = client.scatter(group, broadcast=True)
    routes = [client.submit(_route_home, blk, root[comp_off[b] : comp_off[b + 1]], group_f,
                            n_groups, pure=False) for b, blk in enumerate(blocks)]
    aggs = []
    for t in range(n_groups):
        pieces = [client.submit(operator.getitem, r, t, pure=False) for r in routes]
        aggs.append(client.submit(_agglomerate, float(threshold), linkage, distance, memory_limit,
                                  int(batch_points), *pieces, pure=False))
    _progress(hook, "exact agglomeration", aggs)
    res = client.gather(aggs)
    # every point's τ-component (of the slightly wider float32 graph): kept with the result, so
    # a cluster state (ClusterState.from_fit) need not find the components again on one machine
    comps = np.full(n, -1, dtype=np.int64)
    for idx, r in client.gather([client.submit(_point_components, blk,
                                               root[comp_off[b] : comp_off[b + 1]], pure=False)
                                 for b, blk in enumerate(blocks)]):
        comps[idx] = r
    if (comps < 0).any():  # every row is in one block; if not, a state finds them itself
        log.warning("dask threshold HAC: %d rows without a component; not kept",
                    int((comps < 0).sum()))
        comps = None
    del routes, aggs, blocks
    t0 = lap("agglomerate", t0)
    P = np.concatenate([r[0] for r in res]).astype(np.int64)
    H = np.concatenate([r[1] for r in res])
    order = np.argsort(H, kind="stable")
    stats_out = dict(
        n_samples=n, n_features=d, n_blocks=n_blocks, n_cells=int(cell_off[-1]),
        n_virtual_cells=int(vcen.shape[0]),
        n_components=n_roots, largest_component=int(comp_sizes_root.max()),
        candidates=int(sum(c[0] for c in counts)), shipped=int(sum(c[1] for c in counts)),
        times=times, wall=time.perf_counter() - t_start,
    )
    return DaskThresholdResult(n, P[order], H[order], stats_out, components=comps)


def fit_dask(est, X, must_link, cannot_link, hook):
    """``ThresholdAgglomerative.fit`` with ``backend="dask"`` (parameters already validated)."""
    if est.n_clusters is not None:
        raise ConfigError(f"backend='dask' cuts at a threshold; n_clusters={est.n_clusters!r} needs "
                          "the full dense tree: use backend='local' or set n_clusters=None")
    if must_link is not None or cannot_link is not None:
        raise ConfigError("backend='dask' does not take must_link/cannot_link constraints; use "
                          "backend='local'")
    import_distributed()
    with dask_client(est.scheduler, est.n_workers) as client:
        res = dask_threshold_hac(X, est.threshold_.value, linkage=est.linkage,
                                 distance=est.distance_, client=client,
                                 memory_limit=est.memory_limit, dtype=est.dtype, hook=hook)
    n = res.n_samples
    est.n_features_in_ = int(res.stats.get("n_features", 0)) or None
    est.linkage_matrix_ = None
    est.n_edges_ = None
    est.algorithm_ = "dask"
    est.merge_pairs_ = res.merge_pairs
    est.merge_heights_ = res.merge_heights
    est.dask_stats_ = res.stats
    est._groups = np.arange(n)
    est._n_forced = 0
    est._tree_top = est.threshold_.value
    est.labels_ = res.labels()
    est.n_clusters_ = int(est.labels_.max()) + 1
    est._coarse_components = res.components  # reused by ClusterState.from_fit
    return est
