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


def test_the_first_fit_in_a_fresh_process_leaves_the_generators_alone():
    """The first fit imports the training stack, whose import drew from Python's generator."""
    import subprocess
    import sys

    code = ("import random\nrandom.seed(1)\nbefore = random.getstate()\n"
            "from kfree import ClusterLearner, TrainConfig\nfrom kfree.data.synthetic import sphere_blobs\n"
            "X, y = sphere_blobs(6, 10, 8, spread=0.3, seed=0)\n"
            "ClusterLearner(TrainConfig(epochs=1, p=4, k=4)).fit(X, y)\n"
            "assert random.getstate() == before\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
