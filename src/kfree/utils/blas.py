"""One BLAS thread for a block, shared by the blocks of several threads (no torch here: the
clustering code uses it, and never imports torch)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: the one BLAS limit of :func:`one_blas_thread` blocks that overlap (threadpoolctl's limits are
#: process-wide): how many blocks are in, and the limiter the first one set
_BLAS_ONE = {"count": 0, "limiter": None}
_BLAS_LOCK = threading.Lock()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS at one thread while any such block runs (kfree's own thread pools do the parallel
    work), restored when the last one ends.

    BLAS limits are process-wide. Blocks of several threads at once each saved and restored the
    limit on their own, so one that began inside another restored 1 thread, and the whole process
    kept 1 BLAS thread after parallel fits (a web-service trial). Here the first block sets the
    limit and the last one restores what was there before it."""
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK:
        if _BLAS_ONE["count"] == 0:
            _BLAS_ONE["limiter"] = threadpool_limits(1, user_api="blas")
        _BLAS_ONE["count"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_ONE["count"] -= 1
            if _BLAS_ONE["count"] == 0:
                _BLAS_ONE["limiter"].restore_original_limits()
                _BLAS_ONE["limiter"] = None
