"""Seeded library calls do not touch the caller's random state."""

from __future__ import annotations

import random

import numpy as np
import torch

from kfree.utils.seeding import seed_everything, seeded


def _draw():
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_seeded_block_equals_seed_everything_and_restores_the_state():
    seed_everything(123)
    inside_expected = _draw()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    with seeded(123):
        inside = _draw()
    after = _draw()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    assert inside == inside_expected
    assert after == _draw()  # as if the block had not run


def test_fit_leaves_the_global_generators_alone():
    from kfree.learner import ClusterLearner

    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(8, 6)), 10, axis=0) + 0.05 * rng.normal(size=(80, 6))
    y = np.repeat(np.arange(8), 10)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = _draw()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    a = ClusterLearner.from_params(epochs=1, seed=3).fit(X, y)
    assert _draw() == expected
    b = ClusterLearner.from_params(epochs=1, seed=3).fit(X, y)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_importing_kfree_and_the_first_fit_leave_the_process_state_alone():
    """In a fresh process (one process for both checks: starting one costs seconds): importing
    kfree never calls ``os.umask`` (which can only be read by setting it), and the first fit,
    which imports the training stack whose import drew from Python's generator, leaves the
    generator as it was."""
    import subprocess
    import sys

    code = ("import os, random, unittest.mock as m\nf = m.Mock(wraps=os.umask)\nos.umask = f\n"
            "random.seed(1)\nbefore = random.getstate()\n"
            "from kfree import ClusterLearner, TrainConfig\nfrom kfree.data.synthetic import sphere_blobs\n"
            "X, y = sphere_blobs(6, 10, 8, spread=0.3, seed=0)\n"
            "ClusterLearner(TrainConfig(epochs=1, p=4, k=4)).fit(X, y)\n"
            "assert random.getstate() == before, 'the first fit moved random'\n"
            # the command line too (rich draws from random at import: the CLI is a process of its own)
            "import kfree.utils.io, kfree.cli.app, kfree.learner\n"
            "assert f.call_count == 0, 'os.umask called at import'\n"
            # checked: skip the interpreter's collections at exit over torch's objects (~1.5 s)
            "import gc\ngc.freeze()\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
