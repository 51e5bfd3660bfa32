"""Reproduce the ICPR 2020 triplet-loss clustering study on CIFAR-10 (Protocol B: frozen features).

The paper (Ho, Keuper, Pfreundt, Keuper) trains AlexNet-BN with triplet losses L1/L2/L3 under
label noise and clusters the 10,000 test images with a minimum cost multicut (no K) and with
k-means (K = 10). Training that CNN 300 times is days of CPU, so Protocol B keeps every part of
the study but the backbone: a frozen ImageNet EfficientNet-Lite0 gives 1280-d features once
(:mod:`kfree_reproductions.icpr2020.features`), and a small trainable head ``1280 → 64 → 32`` (L2-normalised, the
paper's last two layers) is trained per cell with the paper's optimiser (Adam, lr 1e-3), batches
of 100 triplets drawn by :class:`~kfree.data.samplers.TripletSampler` with the cell's label noise,
and α = 0.8, β = 0.4.

Evaluation of one cell (:func:`evaluate_embedding`):

- **multicut** on the complete graph of the 10,000 test embeddings (GAEC + KLj): for L2/L3 the
  costs come from the implied threshold ``τ = √((α+β)/2)`` (Euclidean) alone; for L1, which
  implies none, from a logistic regression ``p(different | d)`` fitted on labelled pairs of
  *training* embeddings (:class:`~kfree.evaluate.calibrate.LogisticCalibration`);
- **k-means** with k = 10 (``k_source="oracle"``);
- ACC (Hungarian), NMI and #clusters of both, GAEC-alone numbers, and the wall time of each step.

A cell is ``(loss, wrong positives, wrong negatives, seed)``; each one writes one JSON file
(``<out>/cells/<cell>.json``) and keeps its test embedding and labels in the cache
(``<cache>/embeddings/<cell>.npz``) for the figures. :func:`run_protocol_b` skips cells whose
JSON exists, and the head's training checkpoints every epoch, so a killed run loses at most one
epoch. Protocol A (the CNN itself) is in :mod:`.protocol_a`; tables and figures in
:mod:`.report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from kfree.exceptions import ConfigError, DataError
from kfree.utils.io import atomic_path, file_sha256
from kfree_reproductions.records import refuse_changed

log = logging.getLogger(__name__)

Hook = Callable[..., None]

LOSSES: tuple[str, ...] = ("l1", "l2", "l3")
NOISE_POS: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20)
NOISE_NEG: tuple[float | str, ...] = (0.0, 0.02, 0.05, 0.07, "random")


def parse_noise(value: float | str) -> float | str:
    """``"random"`` or a fraction in [0, 1); also reads percentages such as ``"5%"``."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "random":
            return "random"
        try:
            f = float(v[:-1]) / 100.0 if v.endswith("%") else float(v)
        except ValueError:
            raise ConfigError(f"noise {value!r} must be a fraction such as 0.05, a percentage such as 5%, "
                              "or 'random'") from None
    else:
        f = float(value)
    if not 0.0 <= f < 1.0:
        raise ConfigError(f"noise {value!r} must be a fraction in [0, 1) (e.g. 0.05 or 5%) or 'random'")
    return round(f, 6)


def noise_tag(value: float | str) -> str:
    """File-name tag of a noise level: ``"random"`` or the percentage, ``0.05 → "05"``."""
    return "random" if value == "random" else f"{round(float(value) * 100):02d}"


def default_cache_dir() -> Path:
    """``$KFREE_CACHE/icpr2020`` or ``~/.cache/kfree/icpr2020``: checkpoints and embeddings."""
    base = os.environ.get("KFREE_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "kfree") / "icpr2020"


@dataclass(frozen=True)
class Cell:
    """One Table I cell for one seed."""

    loss: str
    wrong_positives: float
    wrong_negatives: float | str
    seed: int

    @property
    def name(self) -> str:
        """``"l3_p05_nrandom_s0"``: loss, % wrong positives, % wrong negatives, seed."""
        return (f"{self.loss}_p{noise_tag(self.wrong_positives)}_n{noise_tag(self.wrong_negatives)}"
                f"_s{self.seed}")


DEFAULT_BACKBONE = "efficientnet-lite0"


@dataclass(frozen=True)
class ProtocolBConfig:
    """What :func:`run_protocol_b` trains and evaluates.

    Parameters
    ----------
    losses : triplet variants among ``("l1", "l2", "l3")``.
    noise_pos, noise_neg : noise levels (fractions; negatives may be ``"random"``); the grid is
        their product.
    seeds : seeds (each seeds the head's initialisation, the triplet sampler, the logistic
        calibration's pair draw and k-means).
    epochs : passes over the 50,000 training anchors (measured: k-means ACC of an L3 head on
        EfficientNet-Lite0 features goes 77.4 → 79.2 → 79.4 → 79.6 % after 1, 3, 6, 10 epochs,
        so 10 is near convergence; the paper's CNN had 100).
    dims : head sizes after the 1280-d features (paper's last two layers: 64, 32).
    lr, batch_size : Adam learning rate and triplets per batch (paper: 1e-3, 100).
    alpha, beta : triplet margins (paper: 0.8, 0.4).
    kl : run Kernighan–Lin with joins after GAEC (the paper's solver; costs ≈ 3/4 of the time).
    calibration_pairs : labelled training pairs for L1's logistic regression (half same-class).
    kmeans_n_init : k-means++ restarts.
    feature_size : input size of the cached EfficientNet features (see :mod:`kfree_reproductions.icpr2020.features`).
    order : ``"cells"`` runs cell after cell in grid order; ``"noise-free-first"`` runs the
        no-noise cells of every loss and seed first.
    average_start : also search each cell's multicut from average-linkage HAC + KLj (same costs;
        see :func:`multicut_average_linkage_start`; it adds a second multicut search per cell).
    backbone : the frozen feature extractor, or several joined by ``"+"`` whose features are
        concatenated (``"efficientnet-lite0+efficientnet-lite2"``: 2560-d; supervised MLP ceiling
        84.0 %, 84.6 % with Lite1 too, against ≈ 81.4 % for any one of them; see
        ``results/icpr2020/backbone_check.md``).
        Each needs its features cached (``python -m kfree_reproductions.icpr2020.features --backbone NAME``).
    """

    losses: tuple[str, ...] = LOSSES
    noise_pos: tuple[float, ...] = NOISE_POS
    noise_neg: tuple[float | str, ...] = NOISE_NEG
    seeds: tuple[int, ...] = (0,)
    epochs: int = 10
    dims: tuple[int, ...] = (64, 32)
    lr: float = 1e-3
    batch_size: int = 100
    alpha: float = 0.8
    beta: float = 0.4
    kl: bool = True
    calibration_pairs: int = 200_000
    kmeans_n_init: int = 10
    feature_size: int = 128
    order: str = "noise-free-first"
    average_start: bool = True
    backbone: str = DEFAULT_BACKBONE

    def __post_init__(self) -> None:
        from kfree_reproductions.icpr2020.features import BACKBONES

        parts = self.backbones
        if not parts or any(b not in BACKBONES for b in parts) or len(set(parts)) != len(parts):
            raise ConfigError(f"backbone={self.backbone!r}: one or more distinct names of {tuple(BACKBONES)} "
                              "joined by '+'")
        object.__setattr__(self, "backbone", "+".join(parts))  # one spelling per feature set
        bad = [v for v in self.losses if v not in LOSSES]
        if bad or not self.losses:
            raise ConfigError(f"losses={self.losses!r}: choose one or more of {LOSSES}")
        object.__setattr__(self, "noise_pos", tuple(parse_noise(v) for v in self.noise_pos))
        object.__setattr__(self, "noise_neg", tuple(parse_noise(v) for v in self.noise_neg))
        if any(v == "random" for v in self.noise_pos):
            raise ConfigError("noise_pos must be fractions; 'random' applies to negatives only")
        if not self.noise_pos or not self.noise_neg or not self.seeds:
            raise ConfigError("noise_pos, noise_neg and seeds each need at least one value")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs={self.epochs} and batch_size={self.batch_size} must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if not 0 < self.beta < self.alpha:
            raise ConfigError(f"need 0 < beta={self.beta} < alpha={self.alpha} (paper: 0.4, 0.8)")
        if self.order not in ("cells", "noise-free-first"):
            raise ConfigError(f"order={self.order!r} must be 'cells' or 'noise-free-first'")
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def backbones(self) -> tuple[str, ...]:
        return tuple(b.strip() for b in self.backbone.split("+") if b.strip())

    @property
    def tag(self) -> str:
        """Prefix of this backbone's cached checkpoints and embeddings ("" for the default, so the
        caches of earlier runs keep their names): ``"lite0+lite2_"``."""
        from kfree_reproductions.icpr2020.features import BACKBONES

        return "" if self.backbone == DEFAULT_BACKBONE else "+".join(BACKBONES[b] for b in self.backbones) + "_"

    def cells(self) -> list[Cell]:
        """The grid, in run order."""
        grid = [Cell(loss, p, n, s) for s in self.seeds for p in self.noise_pos for n in self.noise_neg
                for loss in self.losses]
        if self.order == "noise-free-first":
            grid.sort(key=lambda c: not (c.wrong_positives == 0.0 and c.wrong_negatives == 0.0))
        return grid


# --------------------------------------------------------------------------- training
def make_head(in_dim: int, dims: Sequence[int], X_train: np.ndarray):
    """The embedding head: standardised features → ``dims`` with ReLU between, unit-norm output."""
    import torch

    from kfree.embed.models import MLPEmbedder

    head = MLPEmbedder(in_dim, tuple(dims))
    head.set_standardization(torch.as_tensor(X_train.mean(0), dtype=torch.float32),
                             torch.as_tensor(X_train.std(0), dtype=torch.float32))
    return head


def triplet_loss(variant: str, alpha: float, beta: float):
    """``TripletLoss`` reading explicit ``(a, p, n)`` rows, so sampled label noise reaches it."""
    from kfree.losses.triplet import TripletLoss

    return TripletLoss(variant=variant, alpha=alpha, beta=beta, mining="given")


def train_head(
    cfg: ProtocolBConfig,
    cell: Cell,
    X_train: np.ndarray,
    y_train: np.ndarray,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    hook: Hook | None = None,
):
    """Train one cell's head on ``X_train`` (n, in_dim) with noisy triplets; return (head, loss, history).

    The checkpoint (written after every epoch, removed by the caller once the cell is done)
    carries model, optimiser, sampler and RNG state, so a stopped run resumes exactly.
    """
    from kfree.config import TrainConfig
    from kfree.train.trainer import train_embedding
    from kfree.utils.seeding import seed_everything

    seed_everything(cell.seed)
    head = make_head(X_train.shape[1], cfg.dims, X_train)
    loss = triplet_loss(cell.loss, cfg.alpha, cfg.beta)
    tcfg = TrainConfig(loss="triplet", dims=cfg.dims, epochs=cfg.epochs, lr=cfg.lr, weight_decay=0.0,
                       sampler="triplets", triplets_per_batch=cfg.batch_size,
                       wrong_positives=float(cell.wrong_positives), wrong_negatives=cell.wrong_negatives,
                       select_best=False, eval_every_steps=None, patience=None, seed=cell.seed)
    result = train_embedding(head, loss, X_train, y_train, tcfg, hook=hook, checkpoint_path=checkpoint_path)
    return head, loss, result


# --------------------------------------------------------------------------- evaluation
def _scores(y: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from kfree.metrics import clustering_accuracy, nmi

    sizes = np.bincount(np.unique(labels, return_inverse=True)[1])
    return {"acc": clustering_accuracy(y, labels), "nmi": nmi(y, labels), "n_clusters": int(sizes.shape[0]),
            "n_small_clusters_lt10": int((sizes < 10).sum()), "largest_cluster": int(sizes.max())}


def multicut_for(
    variant: str,
    *,
    alpha: float = 0.8,
    beta: float = 0.4,
    Z_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    calibration_pairs: int = 200_000,
    kl: bool = True,
    seed: int = 0,
):
    """The multicut estimator of a loss: τ-costs for L2/L3, logistic-regression costs for L1.

    Returns ``(estimator, info)`` where ``info`` records how the costs were made.
    """
    from kfree.cluster.multicut import MulticutClustering

    if variant == "l1":
        if Z_train is None or y_train is None:
            raise DataError("triplet L1 implies no threshold: pass labelled training embeddings "
                            "(Z_train, y_train) for its logistic regression")
        from kfree.evaluate.calibrate import LogisticCalibration

        cal = LogisticCalibration.fit_embeddings(Z_train, y_train, distance="euclidean",
                                                 max_pairs=calibration_pairs, seed=seed)
        est = MulticutClustering(cut_probability=(cal.coef, cal.intercept), distance="euclidean", kl=kl)
        return est, {"costs": "logistic regression on training pair distances", **cal.to_dict(),
                     "threshold": cal.threshold().value}
    loss = triplet_loss(variant, alpha, beta)
    thr = loss.implied_threshold()
    est = MulticutClustering(thr, kl=kl)
    return est, {"costs": "implied threshold (tau - d) / (tau / 10), p clipped at 1e-6",
                 "threshold": thr.value, "distance": thr.distance, "source": thr.source}


def evaluate_embedding(
    Z_test: np.ndarray,
    y_test: np.ndarray,
    variant: str,
    *,
    Z_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    alpha: float = 0.8,
    beta: float = 0.4,
    calibration_pairs: int = 200_000,
    kl: bool = True,
    kmeans_n_init: int = 10,
    n_classes: int = 10,
    seed: int = 0,
    average_start: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Multicut (no K) and k-means (K = ``n_classes``) of the test embedding, scored.

    With ``average_start`` the same multicut problem is also searched from average-linkage HAC
    (:func:`multicut_average_linkage_start`, key ``"multicut_avg_kl"``).

    Returns ``(metrics, labels)``: metrics per method (ACC in [0, 1], NMI, #clusters, times) and
    the label arrays ``{"multicut", "multicut_gaec", "kmeans"[, "multicut_avg_kl"]}`` for figures.
    """
    from kfree.cluster.kmeans import KMeansClustering

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    est, info = multicut_for(variant, alpha=alpha, beta=beta, Z_train=Z_train, y_train=y_train,
                             calibration_pairs=calibration_pairs, kl=kl, seed=seed)
    t1 = time.perf_counter()
    est.fit(Z_test)
    t2 = time.perf_counter()
    out["multicut"] = {**_scores(y_test, est.labels_), "objective": est.objective_,
                       "kl_rounds": est.n_kl_rounds_, "wall_s": round(t2 - t1, 2),
                       "calibration_s": round(t1 - t0, 2), **info}
    out["multicut_gaec"] = {**_scores(y_test, est.gaec_labels_), "objective": est.gaec_objective_}
    t3 = time.perf_counter()
    km = KMeansClustering(n_classes, n_init=kmeans_n_init, seed=seed, k_source="oracle").fit(Z_test)
    out["kmeans"] = {**_scores(y_test, km.labels_), "k_source": "oracle",
                     "wall_s": round(time.perf_counter() - t3, 2)}
    labels = {"multicut": est.labels_.astype(np.int32), "multicut_gaec": est.gaec_labels_.astype(np.int32),
              "kmeans": km.labels_.astype(np.int32)}
    if average_start:
        out["multicut_avg_kl"], labels["multicut_avg_kl"] = multicut_average_linkage_start(
            Z_test, y_test, est, info["threshold"])
    return out, labels


def multicut_average_linkage_start(
    Z_test: np.ndarray,
    y_test: np.ndarray,
    estimator,
    threshold: float,
    *,
    max_rounds: int = 100,
) -> tuple[dict[str, Any], np.ndarray]:
    """The same multicut problem, searched from average-linkage HAC at the 0.5 crossing, then KLj.

    Why: with logistic cut probabilities the edge cost ``log((1−p)/p)`` is *linear* in the
    distance, ``c(d) = s·(t − d)`` (up to the clip), so joining two clusters lowers the multicut
    objective exactly when their *mean* cross distance is below ``t`` — the merge rule of
    average-linkage HAC cut at ``t``. GAEC instead merges the pair with the largest *summed*
    cost, which favours joining big clusters early. Starting KLj from the average-linkage
    partition is still K-free, and is scored on the same cost matrix as GAEC + KLj, so the two
    ``objective`` values compare directly (lower is better).

    ``estimator`` is the :class:`~kfree.cluster.multicut.MulticutClustering` of
    :func:`multicut_for` (its cost matrix is rebuilt here); ``threshold`` is the Euclidean 0.5
    crossing (τ, or L1's logistic ``−intercept/coef``).
    """
    from kfree.cluster.threshold_hac import ThresholdAgglomerative

    t0 = time.perf_counter()
    hac = ThresholdAgglomerative(float(threshold), distance="euclidean", linkage="average").fit(Z_test)
    t1 = time.perf_counter()
    start = np.asarray(hac.labels_, dtype=np.int64)
    est = clone(estimator).set_params(n_restarts=0, max_rounds=int(max_rounds))
    est.fit(Z_test, init_labels=start)  # the same cost matrix as the estimator's own fit
    labels = np.asarray(est.labels_, dtype=np.int64)
    out = {**_scores(y_test, labels), "objective": float(est.objective_),
           "start_objective": float(est.init_objective_), "start": _scores(y_test, start),
           "kl_rounds": int(est.n_kl_rounds_), "hac_s": round(t1 - t0, 2),
           "wall_s": round(time.perf_counter() - t0, 2),
           "solver": "average-linkage HAC at the 0.5 crossing, then KLj"}
    return out, labels.astype(np.int32)


def add_average_linkage_multicut(
    record: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    Z_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
) -> dict[str, Any]:
    """Add ``record["multicut_avg_kl"]`` to a finished cell from its cached embedding; rewrite its JSON.

    L1 cells need the training embedding (``Z_train, y_train``) to refit the same logistic model
    (same seed and pairs, so the same costs as the cell's own multicut).
    """
    cell = Cell(record["cell"]["loss"], float(record["cell"]["wrong_positives"]),
                record["cell"]["wrong_negatives"], int(record["cell"]["seed"]))
    cfg = record["config"]
    e = np.load(record["embedding"])
    est, info = multicut_for(cell.loss, alpha=cfg["alpha"], beta=cfg["beta"], Z_train=Z_train, y_train=y_train,
                             calibration_pairs=cfg["calibration_pairs"], kl=cfg["kl"], seed=cell.seed)
    res, labels = multicut_average_linkage_start(e["Z_test"], e["y_test"], est, info["threshold"])
    record = {**record, "multicut_avg_kl": res}
    write_json_atomic(cell_path(out, cell), record)
    arrays = {k: e[k] for k in e.files}
    from kfree.utils.io import atomic_path

    with atomic_path(record["embedding"]) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays, multicut_avg_kl=labels)
    return record


# --------------------------------------------------------------------------- runner
def environment() -> dict[str, str]:
    """Library versions and machine, written into every cell."""
    import numba
    import sklearn
    import torch

    from kfree import __version__

    return {"kfree": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "sklearn": str(sklearn.__version__), "numba": str(numba.__version__),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON at ``path`` all at once (a killed run never leaves half a file)."""
    from kfree.utils.io import write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, obj)


@dataclass
class ProtocolBData:
    """Features and labels of both splits (float32 features of shape (n, d))."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: dict[str, Any] = field(default_factory=dict)


def load_protocol_b_data(cfg: ProtocolBConfig, *, cache_dir: str | os.PathLike[str] | None = None) -> ProtocolBData:
    """The cached CIFAR-10 features of ``cfg.backbone`` (several: concatenated, each as float32).

    Raises with the extraction command when a backbone's features are missing.
    """
    from kfree_reproductions.icpr2020.features import cifar10_feature_dir, load_cifar10_features

    parts, sources = {"train": [], "test": []}, []
    labels = {}
    for backbone in cfg.backbones:
        for split in ("train", "test"):
            X, y = load_cifar10_features(split, backbone=backbone, size=cfg.feature_size, cache_dir=cache_dir)
            parts[split].append(np.asarray(X, dtype=np.float32))
            if split in labels and not np.array_equal(labels[split], y):
                raise DataError(f"the cached {split} labels of {backbone} differ from those of {cfg.backbones[0]}; "
                                "re-extract its features")
            labels[split] = y
        folder, meta = cifar10_feature_dir(backbone=backbone, size=cfg.feature_size, cache_dir=cache_dir)
        sources.append({"features": folder.name, "backbone": meta["backbone"], "size": meta["size"],
                        "normalization": meta["normalization"], "dtype": meta["dtype"], "images": meta["source"]})
    join = (lambda xs: xs[0]) if len(cfg.backbones) == 1 else (lambda xs: np.concatenate(xs, axis=1))
    source = sources[0] if len(sources) == 1 else {"backbone": cfg.backbone, "parts": sources}
    return ProtocolBData(join(parts["train"]), labels["train"], join(parts["test"]), labels["test"], source=source)


def default_protocol_b_out(cfg: ProtocolBConfig) -> Path:
    """``results/icpr2020/protocol_b`` for the default backbone, ``…/protocol_b_lite0+lite2`` etc."""
    return Path("results/icpr2020") / ("protocol_b" + (f"_{cfg.tag[:-1]}" if cfg.tag else ""))


def cell_path(out: str | os.PathLike[str], cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.name}.json"


def expected_wrong_negative_rate(y: np.ndarray, wrong_negatives: float | str) -> float:
    """The wrong-negative rate a cell's triplets should show: the requested fraction, or for
    ``"random"`` the chance that a uniform non-anchor sample shares the anchor's identity,
    ``mean((n_c − 1)/(n − 1))`` over the anchors (every sample of an identity with at least two,
    as :class:`~kfree.data.samplers.TripletSampler` visits them); ≈ 1/k for k balanced classes."""
    if wrong_negatives != "random":
        return float(wrong_negatives)
    _, inv, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
    c = counts[inv[np.flatnonzero(counts[inv] >= 2)]]
    return float(np.mean((c - 1) / (inv.shape[0] - 1)))


def cell_key(cfg: ProtocolBConfig, cell: Cell) -> str:
    """12 hex digits naming what a cell computes: its configuration (run order aside) and grid point.

    The cell's cached checkpoint, head and embedding carry it in their names, so a run under other
    margins, epochs or feature size never resumes from them or overwrites them (the trainer's own
    check sees only the training schedule, not the loss's margins).
    """
    spec = {k: v for k, v in _cell_config(cfg).items() if k != "order"}
    blob = json.dumps({"config": spec, "cell": asdict(cell)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_cell(
    cfg: ProtocolBConfig,
    cell: Cell,
    data: ProtocolBData,
    out: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    hook: Hook | None = None,
) -> dict[str, Any]:
    """Train, embed, cluster and score one cell; write its JSON (and its embedding to the cache).

    ``resume=False`` removes a checkpoint this cell's configuration left (a stopped run's) first.
    """
    import torch

    from kfree.embed.encode import encode

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = f"{cfg.tag}{cell.name}_{cell_key(cfg, cell)}"
    ckpt = cache / "checkpoints" / f"{stem}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        ckpt.unlink(missing_ok=True)
    t0 = time.perf_counter()
    head, _, result = train_head(cfg, cell, data.X_train, data.y_train, checkpoint_path=ckpt, hook=hook)
    train_s = time.perf_counter() - t0
    Z_test = encode(head, data.X_test)
    Z_train = encode(head, data.X_train) if cell.loss == "l1" else None
    metrics, labels = evaluate_embedding(
        Z_test, data.y_test, cell.loss, Z_train=Z_train, y_train=data.y_train if Z_train is not None else None,
        alpha=cfg.alpha, beta=cfg.beta, calibration_pairs=cfg.calibration_pairs, kl=cfg.kl,
        kmeans_n_init=cfg.kmeans_n_init, n_classes=int(np.unique(data.y_train).shape[0]), seed=cell.seed,
        average_start=cfg.average_start)
    emb_path = cache / "embeddings" / f"{stem}.npz"
    emb_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(emb_path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, Z_test=Z_test.astype(np.float32), y_test=data.y_test, **labels)
    torch.save(head.state_dict(), cache / "checkpoints" / f"{stem}.head.pt")
    record = {
        "cell": asdict(cell), "name": cell.name,
        "config": _cell_config(cfg),
        "data": data.source, "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
        "expected_wrong_negative_rate": expected_wrong_negative_rate(data.y_train, cell.wrong_negatives),
        "history": [{k: float(v) for k, v in row.items()} for row in result.history],
        "train_s": round(train_s, 1), "train_s_note": "this run only (a resumed run counts its own epochs)",
        **metrics,
        "embedding": str(emb_path), "embedding_sha256": file_sha256(emb_path), "environment": environment(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(cell_path(out, cell), record)
    ckpt.unlink(missing_ok=True)
    log.info("%s: multicut ACC %.4f (%d clusters, %.0f s), k-means ACC %.4f; train %.0f s",
             cell.name, metrics["multicut"]["acc"], metrics["multicut"]["n_clusters"],
             metrics["multicut"]["wall_s"], metrics["kmeans"]["acc"], train_s)
    return record


#: fields added after the first cells were written, with the value those cells were made under
_B_BEFORE_FIELD = {"backbone": DEFAULT_BACKBONE, "average_start": True}


def _cell_config(cfg: ProtocolBConfig) -> dict[str, Any]:
    """What a cell record stores of the configuration (the grid's axes are in the cell itself)."""
    return {k: v for k, v in asdict(cfg).items() if k not in ("losses", "noise_pos", "noise_neg", "seeds")}


def run_protocol_b(
    cfg: ProtocolBConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    data: ProtocolBData | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cells: Iterable[Cell] | None = None,
    hook: Hook | None = None,
) -> list[dict[str, Any]]:
    """Run the grid cell by cell; return every cell's record (finished ones read back if ``resume``).

    ``hook("cells", completed=i, total=n)`` after each cell; the head's epochs report as
    ``hook("train", ...)``. With ``resume=False`` existing cells are recomputed and overwritten.
    """
    todo = list(cells) if cells is not None else cfg.cells()
    # finished cells first: the features are loaded only for cells left to compute, so a run over the
    # committed cells reuses them on a machine without the cached features (found by a reproducibility
    # review: it stopped for want of ~47 minutes of feature extraction it did not need)
    done = [finished_cell(cfg, cell, out) if resume else None for cell in todo]
    if data is None and any(rec is None for rec in done):
        data = load_protocol_b_data(cfg)
    records = []
    for i, (cell, rec) in enumerate(zip(todo, done)):
        records.append(rec if rec is not None else
                       run_cell(cfg, cell, data, out, cache_dir=cache_dir, resume=resume, hook=hook))
        if hook is not None:
            hook("cells", completed=i + 1, total=len(todo))
    return records


def finished_cell(cfg: ProtocolBConfig, cell: Cell, out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``cell``'s record in ``out`` when it is finished, else ``None``; a record made under another
    configuration raises (the one resume policy: never reuse a cell of other settings)."""
    path = cell_path(out, cell)
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    refuse_changed(path, rec.get("config"), _cell_config(cfg), before_field=_B_BEFORE_FIELD, ignore=("order",))
    return rec


def pending_cells(cfg: ProtocolBConfig, out: str | os.PathLike[str]) -> list[str]:
    """The cells :func:`run_protocol_b` would compute (a finished cell of another configuration
    raises, as the run would)."""
    return [cell.name for cell in cfg.cells() if finished_cell(cfg, cell, out) is None]


def load_cells(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every finished cell record under ``<out>/cells``."""
    folder = Path(out) / "cells"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
