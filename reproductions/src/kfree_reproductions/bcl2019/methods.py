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

Trained heads are saved with :meth:`kfree.learner.ClusterLearner.save` so a rerun (``resume``) loads them;
beside each head ``<name>_seed<seed>.json`` records what it was trained with (loss, schedule,
seed, track size and a fingerprint of the training / validation data). A saved head is reused
only when that record matches the current request exactly; otherwise it is retrained (and the
reason logged), so a changed protocol never silently evaluates old heads.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfree.evaluate.calibrate import threshold_for_n_clusters
from kfree.exceptions import ConfigError
from kfree.threshold import Threshold

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
    learner : ClusterLearner or None
        The trained head (None for ``raw``).
    validation : dict or None
        ``{"nmi", "wcp", "n_clusters", "n_true", "threshold"}``: HAC (complete linkage) at
        ``threshold`` on the validation identities' tracks (see :func:`validation_score`).
    loaded : bool
        The head was loaded from ``model_dir`` rather than trained by this call.
    """

    name: str
    threshold: Threshold
    train_threshold: Threshold | None
    learner: Any = None
    validation: dict[str, Any] | None = None
    loaded: bool = False

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


def validation_score(Z_val: np.ndarray, y_val: np.ndarray, threshold: Threshold) -> dict[str, Any]:
    """HAC (complete linkage, squared Euclidean) of validation tracks at a method's own cut.

    For the validation-matched methods (and ``raw``) the cut gives the true number of validation
    identities by construction, so this is the NMI at the right count; for BCL it is the NMI at
    4b of the step that selection kept (the score it was chosen on, so optimistic).
    """
    from kfree.cluster.threshold_hac import ThresholdAgglomerative
    from kfree.metrics.clustering import nmi, wcp

    Z = np.asarray(Z_val, dtype=np.float64)
    thr = threshold.to("sqeuclidean").value
    lab = ThresholdAgglomerative(threshold=thr, linkage="complete", distance="sqeuclidean").fit(Z).labels_
    return {"nmi": float(nmi(y_val, lab)), "wcp": float(wcp(y_val, lab)),
            "n_clusters": int(np.unique(lab).shape[0]), "n_true": int(np.unique(y_val).shape[0]),
            "threshold": float(thr)}


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def head_request(name: str, *, train_kw: dict[str, Any], seed: int, images_per_track: int) -> dict[str, Any]:
    """What a head is trained with, the data aside (see :func:`head_record`)."""
    loss, params = METHOD_LOSSES[name]
    rec = {"method": name, "loss": loss, "loss_params": params, "train_kw": train_kw, "seed": int(seed),
           "images_per_track": int(images_per_track)}
    return json.loads(json.dumps(rec))  # tuples -> lists, as stored


def head_record(name: str, *, train_kw: dict[str, Any], seed: int, images_per_track: int,
                X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
    """What a head is trained with; stored beside it and compared before a saved head is reused."""
    rec = head_request(name, train_kw=train_kw, seed=seed, images_per_track=images_per_track)
    rec["data"] = {"train": _fingerprint(np.asarray(X_train, np.float32), np.asarray(y_train)),
                   "val": _fingerprint(np.asarray(X_val, np.float32), np.asarray(y_val))}
    return rec


def record_path(model_path: Path) -> Path:
    """The JSON record beside a saved head (``bcl_seed0.pt`` -> ``bcl_seed0.json``)."""
    return Path(model_path).with_suffix(".json")


def record_mismatch(path: Path, record: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> str | None:
    """Why the head at ``path`` may not be reused for ``record`` (None: it may); keys in ``ignore``
    are not compared (a dry run checks the request without loading the data)."""
    rp = record_path(path)
    if not rp.exists():
        return f"no training record {rp.name} beside it (trained before records were kept)"
    try:
        stored = json.loads(rp.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable training record {rp.name} ({type(e).__name__})"
    diff = []
    for key in sorted((set(stored) | set(record)) - set(ignore)):
        a, b = stored.get(key), record.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diff += [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diff.append(f"{key}: {a!r} -> {b!r}")
    return "; ".join(diff) if diff else None


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
    train_kw : flat learner options (ClusterLearner.from_params) shared by every method (dims, epochs, p, k, …)
    images_per_track : thresholds (and model selection) are matched on validation / training
        "tracks" of this many images (see :func:`pair_tracks`), like the test episodes
    model_dir : where ``<name>_seed<seed>.pt`` (and its training record ``.json``) is saved; with
        ``resume`` a saved head is loaded only if its record matches this request, else retrained
    """
    from kfree.learner import ClusterLearner

    check_methods([name])
    Xv_t, yv_t = pair_tracks(X_val, y_val, images_per_track, seed)
    Xtr_t, ytr_t = pair_tracks(X_train, y_train, images_per_track, seed)
    if name == "raw":
        thr = threshold_for_n_clusters(Xv_t, int(np.unique(yv_t).shape[0]))
        return FittedMethod("raw", thr, _train_threshold(Xtr_t, ytr_t), validation=validation_score(Xv_t, yv_t, thr))
    path = None if model_dir is None else Path(model_dir) / f"{name}_seed{seed}.pt"
    record = head_record(name, train_kw=train_kw, seed=seed, images_per_track=images_per_track,
                         X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val)
    learner, loaded = None, False
    if resume and path is not None and path.exists():
        why = record_mismatch(path, record)
        if why is None:
            learner, loaded = ClusterLearner.load(path), True
            log.info("loaded %s from %s", name, path)
        else:
            log.warning("not reusing %s (%s); retraining", path, why)
    if learner is None:
        loss, params = METHOD_LOSSES[name]
        learner = ClusterLearner.from_params(loss=loss, loss_params=dict(params), seed=seed, **train_kw)
        learner.fit(X_train, y_train, X_val=Xv_t, y_val=yv_t, hook=hook)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            learner.save(path)
            record_path(path).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    thr = learner.threshold_.to("sqeuclidean")
    train_thr = None if name == "bcl" else _train_threshold(learner.transform(Xtr_t), ytr_t)
    return FittedMethod(name, thr, train_thr, learner, validation=validation_score(learner.transform(Xv_t), yv_t, thr),
                        loaded=loaded)
