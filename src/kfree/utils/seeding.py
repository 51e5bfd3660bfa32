"""Seeding happens here, once, so seeded runs are reproducible bit for bit on CPU.

Library calls use :func:`seeded`, which restores the global generators afterwards, so calling
``fit`` never changes the random state of the program around it; experiment scripts that own the
whole process may call :func:`seed_everything`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (if imported) torch; return a NumPy generator for local use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.Generator]:
    """Run the block as :func:`seed_everything` would, then put the global generators back.

    Inside, Python's, NumPy's and torch's (CPU and, when initialised, CUDA) global generators are
    seeded with ``seed``, so results equal a run after ``seed_everything(seed)``; on exit, normal or
    not, they are restored to the states they had on entry.
    """
    import torch

    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield seed_everything(seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
