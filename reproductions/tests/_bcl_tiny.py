"""Tiny synthetic BCL 2019 inputs shared by the reproduction's tests: real-shaped episodes
(EpisodeStructure intervals + labelled descriptors) small enough to run in a second."""

from __future__ import annotations

import types

import numpy as np

from kfree.data.splits import split_identities
from kfree_reproductions.bcl2019.episodes import EpisodeStructure, build_from_structures

D = 16


def blobs(n_ids: int, per_id: int, *, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_ids), per_id)
    X = centres[y] + spread * rng.normal(size=(y.size, D)) / np.sqrt(D)
    return X.astype(np.float32), y.astype(np.int64)


def structures():
    # two BBT-named episodes: character a/b co-occur, c alone, d only in e02
    e1 = [(1, "a", 0, 10), (2, "b", 5, 15), (3, "a", 20, 30), (4, "c", 25, 28), (5, "b", 40, 50),
          (6, "a", 45, 60), (7, "c", 70, 80)]
    e2 = [(1, "a", 0, 10), (2, "d", 0, 12), (3, "b", 20, 30), (4, "d", 25, 35), (5, "a", 50, 55)]

    def st(name, rows):
        ids, ch, s, e = zip(*rows)
        return EpisodeStructure.from_intervals(name, ids, ch, s, e, series="bbt")

    return [st("bbt_s01e01", e1), st("bbt_s01e02", e2)]


def tiny_inputs():
    """24 identities × 8 images: 12 train / 4 val / 8 test; two episodes + bbt_all."""
    X, y = blobs(24, 8, spread=0.25)
    split = split_identities(y, 12, 4, 8, seed=0)
    faces = types.SimpleNamespace(embeddings=X, labels=y)
    eps = build_from_structures(structures(), X, y, split.test_ids, seed=0,
                                groups={"bbt_all": ["bbt_s01e01", "bbt_s01e02"]})
    return faces, split, eps
