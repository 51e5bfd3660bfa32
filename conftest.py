"""Shared fixtures and markers.

Tests marked ``shared_data`` use ``../shared/data`` (the staged real data sets); they are skipped
when it is absent so the core suite passes anywhere, and run in CI where it exists.

Every thread pool starts at one thread (torch below; BLAS and OpenMP through the environment,
read when their libraries load, so it is set before numpy is imported). The suite runs one
pytest-xdist worker per core on tiny arrays: a pool per worker sized to every core only spins
beside the other worker.
Code paths that run several threads are tested with explicit thread counts (e.g.
``tests/cluster/test_threshold_hac.py::test_point_to_cell_pass_on_several_threads``). The
variables are set only where the caller has not set them.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # after the thread variables above
import pytest

REPO = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("KFREE_SHARED_DATA", REPO.parent / "shared" / "data"))


#: the longest tests (seconds of subprocesses each), run first: pytest-xdist's worksteal hands
#: each worker a contiguous share of the list and steals from the end of a share, so with these
#: first the run ends on short tests rather than on one worker finishing a long one alone. Only
#: tests without module-scoped fixtures (moving one out of its module would set those up twice).
SLOW_FIRST = (
    "tests/train/test_distributed.py::test_two_processes_train_like_one",
    "tests/utils/test_seeding.py::test_importing_kfree_and_the_first_fit_leave_the_process_state_alone",
    "reproductions/tests/test_icpr2020.py::test_protocol_a_background_evaluation_matches_inline_and_survives_a_stop",
    "tests/cli/test_cli_fuzz.py::test_cluster_any_file_gives_output_or_one_line",
    "tests/data/test_io_fuzz.py::test_any_file_reads_cleanly_or_fails_with_one_line",
    "tests/test_demo.py::test_cli_demo_prints_table_and_path",
    "tests/test_demo.py::test_demo_run_directory",
    "reproductions/tests/test_cifar.py::test_shared_copy_counts",
)


def pytest_collection_modifyitems(config, items):
    rank = {nodeid: i for i, nodeid in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))  # stable: the rest keep their order
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs shared data at {SHARED_DATA}")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """Everything imported by now (torch, sklearn, the test modules: ~400k objects) stays alive for
    the whole run: moved out of the cyclic collector's generations, it is no longer traversed by
    every full collection (~0.3 s each, ~10 per worker). Objects the tests create are collected as
    before."""
    gc.freeze()


def pytest_unconfigure(config):
    """Likewise at the end: the interpreter's last collections at exit (finalizing torch's modules
    takes ~1.5 s per worker) skip what is left; atexit handlers and weakref finalizers still run."""
    gc.freeze()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny tensors: one torch thread avoids oversubscription (a thread per core beside the
    other worker's) and keeps timings independent of the core count."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cli_built_once():
    """typer's CliRunner converts the Typer app into its click command tree on every ``invoke``
    (longer, for kfree's, than most of the commands the tests run take). The tree is built once
    per app and rebuilt only when commands are added."""
    import weakref

    import typer.testing

    build = getattr(typer.testing, "_get_command", None)
    if build is None:  # a typer that builds it elsewhere: the tests run as they are, only slower
        yield
        return
    built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get_command(app):
        shape = (len(app.registered_commands), len(app.registered_groups), app.registered_callback)
        if app not in built or built[app][0] != shape:
            built[app] = (shape, build(app))
        return built[app][1]

    typer.testing._get_command = get_command
    yield
    typer.testing._get_command = build


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def own_units_method(monkeypatch):
    """A clusterer registered (for this test only) as ``_test-own-units``: it declares "threshold"
    but not "distance", so it cuts in units of its own (Euclidean), as CONTRIBUTING.md describes;
    returns its class."""
    from kfree import registry
    from kfree.distances import resolve_cut

    monkeypatch.setitem(registry._REGISTRY, "cluster", dict(registry._entries("cluster")))

    @registry.register("cluster", "_test-own-units")
    class OwnUnits:
        capabilities = frozenset({"threshold"})

        def __init__(self, threshold=1.0):
            self.threshold = threshold

        def fit(self, X, y=None):
            self.threshold_ = resolve_cut(self.threshold, "euclidean")
            self.labels_ = np.zeros(len(X), dtype=np.int64)
            return self

    return OwnUnits

