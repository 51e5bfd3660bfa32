"""The methods compared in the BCL 2019 reproduction: one trained head per loss, plus raw descriptors.

Every learned method is the *same* MLP over the 128-d dlib descriptors, trained on the same
CelebA training identities with the same schedule, batch composition (P×K) and seed; only the
loss differs. Each method carries the threshold it clusters at:

- ``bcl``: ``4b`` (learned; no validation data involved);
- ``triplet`` (FaceNet / ICPR L1), ``prototypical``, ``contrastive``, ``softmax``: the cut that
  gives the true number of *validation* identities (the paper's protocol), and, for Table 5, the
  cut that gives the true number of *training* identities;
- ``raw``: no training; the validation-matched cut on the raw descriptors. dlib's descriptors
  were themselves trained with a pairwise margin, so this row is strong; a learned head has to
  beat it to count.

Trained heads are saved with :meth:`BallClusterLearner.save` so a rerun (``resume``) loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate.calibrate import threshold_for_n_clusters
from ..exceptions import ConfigError
from ..threshold import Threshold

log = logging.getLogger(__name__)

#: method name -> (registered loss, loss parameters)
METHOD_LOSSES: dict[str, tuple[str, dict[str, Any]]] = {
    "bcl": ("bcl", {}),
    "triplet": ("triplet-l1", {}),
    "prototypical": ("prototypical", {}),
    "contrastive": ("contrastive", {}),
    "softmax": ("softmax", {}),
}
#: every method name, raw descriptors first (the order of the tables)
METHODS: tuple[str, ...] = ("raw", "bcl", "triplet", "prototypical", "contrastive", "softmax")
#: paper-style row labels
LABELS: dict[str, str] = {
    "raw": "Raw dlib descriptors (val. τ)",
    "bcl": "BCL (τ = 4b)",
    "triplet": "Triplet (val. τ)",
    "prototypical": "Prototypical (val. τ)",
    "contrastive": "Contrastive (val. τ)",
    "softmax": "Softmax base (val. τ)",
}


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate method names; raises :class:`ConfigError` listing the valid ones."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {bad}; choose from {list(METHODS)}")
    if not methods:
        raise ConfigError(f"give at least one method; choose from {list(METHODS)}")
    return tuple(methods)


@dataclass
class FittedMethod:
    """A method ready to embed test data and cut it.

    Attributes
    ----------
    name : str
    threshold : Threshold
        The operating threshold (4b for BCL, validation-matched otherwise), sqeuclidean.
    train_threshold : Threshold or None
        Threshold matched to the number of training identities (Table 5); None for BCL.
    learner : BallClusterLearner or None
        The trained head (None for ``raw``).
    """

    name: str
    threshold: Threshold
    train_threshold: Threshold | None
    learner: Any = None

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Features of ``X`` (n, 128) in this method's space, ndarray of shape (n, d)."""
        if self.learner is None:
            return np.asarray(X, dtype=np.float32)
        return self.learner.transform(X)


def pair_tracks(
    X: np.ndarray, y: np.ndarray, images_per_track: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Group each identity's images into "tracks" of ``images_per_track`` and average them.

    Validation and training thresholds are matched on data shaped like the test episodes (a
    track = mean of 2 distinct images): averaging shrinks within-identity distances, so a cut
    matched on single images would be too loose for tracks. A leftover image forms its own track.

    Returns
    -------
    X_tracks : ndarray of shape (n_tracks, d), y_tracks : ndarray of shape (n_tracks,)
    """
    if images_per_track == 1:
        return np.asarray(X, np.float32), np.asarray(y)
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for s in range(0, idx.size, images_per_track):
            rows.append(np.asarray(X[idx[s : s + images_per_track]], np.float64).mean(0))
            labels.append(c)
    return np.asarray(rows, np.float32), np.asarray(labels)


def _train_threshold(Z_train: np.ndarray, y_train: np.ndarray) -> Threshold:
    t = threshold_for_n_clusters(Z_train, int(np.unique(y_train).shape[0]))
    return Threshold(t.value, t.distance, t.source.replace("validation", "training"))


def fit_method(
    name: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    train_kw: dict[str, Any],
    seed: int,
    model_dir: Path | None = None,
    resume: bool = False,
    images_per_track: int = 2,
    hook: Callable[..., None] | None = None,
) -> FittedMethod:
    """Train (or load) one method's head and fix its thresholds.

    Parameters
    ----------
    name : one of :data:`METHODS`
    X_train, y_train : training descriptors (n, 128) and identity labels
    X_val, y_val : validation descriptors and labels (other identities)
    train_kw : BallClusterLearner keyword arguments shared by every method (dims, epochs, p, k, …)
    images_per_track : thresholds (and model selection) are matched on validation / training
        "tracks" of this many images (see :func:`pair_tracks`), like the test episodes
    model_dir : where ``<name>_seed<seed>.pt`` is saved (and loaded from when ``resume``)
    """
    from ..learner import BallClusterLearner

    check_methods([name])
    Xv_t, yv_t = pair_tracks(X_val, y_val, images_per_track, seed)
    Xtr_t, ytr_t = pair_tracks(X_train, y_train, images_per_track, seed)
    if name == "raw":
        thr = threshold_for_n_clusters(Xv_t, int(np.unique(yv_t).shape[0]))
        return FittedMethod("raw", thr, _train_threshold(Xtr_t, ytr_t))
    path = None if model_dir is None else Path(model_dir) / f"{name}_seed{seed}.pt"
    if resume and path is not None and path.exists():
        learner = BallClusterLearner.load(path)
        log.info("loaded %s from %s", name, path)
    else:
        loss, params = METHOD_LOSSES[name]
        learner = BallClusterLearner(loss, loss_params=dict(params), seed=seed, **train_kw)
        learner.fit(X_train, y_train, X_val=Xv_t, y_val=yv_t, hook=hook)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            learner.save(path)
    thr = learner.threshold_.to("sqeuclidean")
    train_thr = None if name == "bcl" else _train_threshold(learner.transform(Xtr_t), ytr_t)
    return FittedMethod(name, thr, train_thr, learner)
