"""One thread budget for torch, BLAS, OpenMP and numba, set for a scope and restored after it.

Why
---
A kfree process holds up to four thread pools: torch's intra-op pool, the BLAS behind numpy
(OpenBLAS here), OpenMP runtimes (torch's own libgomp, scikit-learn's, faiss's) and numba's
workers. Each sizes itself to *every* core it can see, and each busy-waits for a while after a
parallel call. On an idle machine that costs little; on a shared one (other jobs, or a numpy
loop beside the training) the pools of this process and the neighbours' all spin on the same
cores, and a tiny-batch training loop, which synchronises its pool hundreds of times a second,
stalls: the same short ``kfree train`` run varied by more than an order of magnitude in wall
time with identical results, and ``OMP_NUM_THREADS=1`` was never slower
(``benchmarks/run_threads.py`` measures it; the numbers are in ``results/benchmarks/threads.md``).

:func:`limit_threads` caps all four at one budget (:func:`thread_budget`) and splits it so
torch's threads × BLAS threads never exceed it (torch intra-op threads can call into BLAS, and
idle BLAS threads spin beside torch's). With a numpy loop beside the training, torch with as
many threads as cores was many times slower than with one, and alone one thread was as fast
(``results/benchmarks/threads.md``). So the CLI gives torch 1 thread for its MLP heads on feature vectors (batches of a few hundred rows
gain nothing from more) and the budget to BLAS, OpenMP and numba, which do the clustering.

Example
-------
>>> from kfree.utils.threads import limit_threads
>>> with limit_threads(torch_threads=1):   # an MLP head: torch 1 thread, BLAS/numba the budget
...     learner.fit(X, y)
>>> with limit_threads(1):                  # one thread everywhere (like OMP_NUM_THREADS=1)
...     labels = ThresholdAgglomerative(threshold=1.0).fit(X).labels_
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError

log = logging.getLogger(__name__)

ENV_VARS = ("KFREE_NUM_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class ThreadLimits:
    """The thread counts in force inside a :func:`limit_threads` scope (None: not set)."""

    budget: int
    torch: int | None
    blas: int
    openmp: int
    numba: int | None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return set(range(os.cpu_count() or 1))


def _physical(cpus: set[int]) -> int:
    """Physical cores among ``cpus`` (hyper-thread siblings counted once), from sysfs."""
    cores = set()
    for c in cpus:
        f = Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list")
        try:
            cores.add(f.read_text().strip())
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def _cgroup_quota() -> int | None:
    """CPUs granted by a cgroup v2 ``cpu.max`` quota (rounded up), or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """Physical cores this process may use (affinity, hyper-threads, cgroup quota); >= 1."""
    n = _physical(_affinity())
    quota = _cgroup_quota()
    return max(1, min(n, quota) if quota is not None else n)


def _parse(value: str, source: str) -> int:
    text = value.split(",")[0].strip()  # OMP_NUM_THREADS may list one count per nesting level
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"{source}={value!r} must be a whole number of threads >= 1") from None
    if n < 1:
        raise ConfigError(f"{source}={value!r} must be a whole number of threads >= 1")
    return n


def thread_budget(threads: int | None = None) -> int:
    """Threads to use: ``threads``, else ``$KFREE_NUM_THREADS``, ``$OMP_NUM_THREADS``, else the cores."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads={threads!r} must be a whole number >= 1 (or None for the default)")
        return threads
    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return _parse(value, var)
    return available_cores()


@contextlib.contextmanager
def limit_threads(
    threads: int | None = None,
    *,
    torch_threads: int | None = None,
    torch: bool | None = None,
    numba: bool | None = None,
) -> Iterator[ThreadLimits]:
    """Limit torch, BLAS, OpenMP and numba threads for the block; restore them afterwards.

    Parameters
    ----------
    threads : int, optional
        The budget ``n`` (>= 1); default :func:`thread_budget` (``$KFREE_NUM_THREADS``,
        ``$OMP_NUM_THREADS`` or the physical cores this process may use).
    torch_threads : int, optional
        torch's intra-op threads (default ``n``; capped at ``n``). BLAS gets
        ``n // torch_threads`` so that torch × BLAS <= n; OpenMP and numba get ``n``.
    torch, numba : bool, optional
        Set that library's threads even if it is not imported yet (imports it). Default: only
        when already imported (so a scope that never uses it does not pay for the import).
    """
    n = thread_budget(threads)
    if torch_threads is not None and (isinstance(torch_threads, bool) or not isinstance(torch_threads, int)
                                      or torch_threads < 1):
        raise ConfigError(f"torch_threads={torch_threads!r} must be a whole number >= 1 (or None)")
    torch_n = n if torch_threads is None else min(torch_threads, n)
    blas_n = max(1, n // torch_n)
    from threadpoolctl import threadpool_limits

    tmod = None
    if torch or (torch is None and "torch" in sys.modules):
        import torch as tmod
    nmod = sys.modules.get("numba")
    if nmod is None and numba:
        import numba as nmod
    with contextlib.ExitStack() as stack:
        # numba's OpenMP layer and torch may share one libgomp, and threadpoolctl's OpenMP limit
        # reaches torch's too: torch is set last on entry and restored last on exit
        if tmod is not None:
            stack.callback(tmod.set_num_threads, tmod.get_num_threads())
        stack.enter_context(threadpool_limits(limits={"blas": blas_n, "openmp": n}))
        numba_n = None
        if nmod is not None:
            numba_n = min(n, int(nmod.config.NUMBA_NUM_THREADS))
            stack.callback(nmod.set_num_threads, nmod.get_num_threads())
            nmod.set_num_threads(numba_n)
        if tmod is not None:
            tmod.set_num_threads(torch_n)
        # an OpenMP-threaded BLAS (faiss bundles one) follows omp_set_num_threads, which torch
        # and numba may just have called on a shared libgomp: the BLAS limit gets the last word
        stack.enter_context(threadpool_limits(limits={"blas": blas_n}))
        limits = ThreadLimits(budget=n, torch=torch_n if tmod is not None else None, blas=blas_n,
                              openmp=n, numba=numba_n)
        log.debug("thread limits: %s", limits)
        yield limits
