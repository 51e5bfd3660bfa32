"""Thread budgets: set for a scope, restored after it, split so torch × BLAS stays within it."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from kfree.exceptions import ConfigError
from kfree.utils import threads as th
from kfree.utils.threads import available_cores, limit_threads, thread_budget


def _blas() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_budget_comes_from_argument_then_environment_then_cores(monkeypatch):
    monkeypatch.delenv("KFREE_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget() == available_cores() >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")  # one count per nesting level: the first counts
    assert thread_budget() == 3
    monkeypatch.setenv("KFREE_NUM_THREADS", "2")
    assert thread_budget() == 2 and thread_budget(5) == 5
    monkeypatch.setenv("KFREE_NUM_THREADS", "lots")
    with pytest.raises(ConfigError, match="KFREE_NUM_THREADS='lots' must be a whole number"):
        thread_budget()
    with pytest.raises(ConfigError, match="threads=0 must be a whole number >= 1"):
        thread_budget(0)


def test_cores_respect_affinity_hyperthreads_and_cgroup_quota(monkeypatch):
    monkeypatch.setattr(th, "_affinity", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(th, "_physical", lambda cpus: len(cpus) // 2)  # two hyper-threads per core
    monkeypatch.setattr(th, "_cgroup_quota", lambda: None)
    assert available_cores() == 2
    monkeypatch.setattr(th, "_cgroup_quota", lambda: 1)
    assert available_cores() == 1


def test_limits_apply_inside_and_are_restored_after_also_on_error(monkeypatch):
    monkeypatch.delenv("KFREE_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    blas_before = _blas()
    with limit_threads(4) as lim:
        assert (lim.budget, lim.torch, lim.blas, lim.openmp) == (4, 4, 1, 4)  # torch x BLAS <= budget
        assert torch.get_num_threads() == 4 and _blas() == {1}
    assert torch.get_num_threads() == 2 and _blas() == blas_before
    with pytest.raises(RuntimeError), limit_threads(3, torch_threads=1) as lim:
        assert (lim.torch, lim.blas) == (1, 3)
        assert torch.get_num_threads() == 1 and _blas() == {3}
        raise RuntimeError("work failed")
    assert torch.get_num_threads() == 2 and _blas() == blas_before
    with limit_threads(2, torch_threads=8) as lim:  # capped at the budget
        assert lim.torch == 2 and lim.blas == 1
    with pytest.raises(ConfigError, match="torch_threads=0"), limit_threads(2, torch_threads=0):
        pass
    torch.set_num_threads(1)  # the test suite's setting (conftest)


def test_numba_threads_are_limited_when_numba_is_loaded():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with limit_threads(1) as lim:
        assert lim.numba == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_overlapping_one_blas_thread_blocks_restore_the_limit_the_first_found():
    """A web-service trial: parallel fits each set BLAS to one thread and restored what they saw,
    so a block begun inside another restored 1 thread, and the process kept it."""
    import threading
    import time

    from threadpoolctl import threadpool_info

    from kfree.utils.blas import one_blas_thread

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    inside: list[list[int]] = []

    def block(delay: float) -> None:
        time.sleep(delay)
        with one_blas_thread():
            inside.append(blas())
            time.sleep(0.2 - delay)  # the first in leaves first: the others are still in

    threads = [threading.Thread(target=block, args=(d,)) for d in (0.0, 0.05, 0.1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside and all(all(n == 1 for n in b) for b in inside)
    assert blas() == before
