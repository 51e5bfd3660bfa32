"""Reproduce the BCL (ICCV 2019) face-clustering evaluation on real descriptors and real episodes.

One call, :func:`run_bcl2019`, does the whole experiment and can be stopped and resumed:

1. split the CelebA dlib descriptors by identity (170 train / 20 validation / 109 test);
2. train one MLP head per loss on the training identities (same MLP, schedule, P×K batches and
   seed for every loss; see :mod:`.methods`) and fix each method's threshold;
3. build the 12 test episodes and the two per-series combined sets from the test identities
   (:func:`kfree_reproductions.bcl2019.episodes.build_episodes`);
4. per set: HAC (complete linkage, squared Euclidean) at every method's threshold and at the
   training-matched threshold (Table 5), X-means / G-means on the raw and BCL features
   (Table 2), k-means and HAC at the true K (Table 4), and the NMI/WCP curves over every cut;
5. optionally fine-tune BCL / triplet / prototypical on each set's constraints (Table 1).

Each set's results go to one JSON "cell" (``cells/<variant>/seed<seed>/<set>.json``); with
``resume=True`` existing cells (written by the same configuration) and saved heads (whose training
record matches, see :func:`~.methods.fit_method`) are reused, so a killed run loses at
most one cell. Every cell and ``run.json`` also carry each method's validation score (HAC at its
own cut on the validation identities' tracks), which the report compares with the raw row's.
:mod:`.report` turns the cells into the tables and figures.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfree.exceptions import ConfigError
from kfree_reproductions.bcl2019.finetune import FinetuneConfig
from kfree_reproductions.bcl2019.methods import METHODS, FittedMethod, check_methods
from kfree_reproductions.records import config_differences

log = logging.getLogger(__name__)

#: the sets evaluated, in table order
SETS: tuple[str, ...] = (
    "bbt_s01e01", "bbt_s01e02", "bbt_s01e03", "bbt_s01e04", "bbt_s01e05", "bbt_s01e06",
    "buffy_s05e01", "buffy_s05e02", "buffy_s05e03", "buffy_s05e04", "buffy_s05e05", "buffy_s05e06",
    "bbt_all", "buffy_all",
)
#: methods that are fine-tuned (the supplement's BCL-FT, TRI-FT, PRO-FT)
FINETUNED: tuple[str, ...] = ("bcl", "triplet", "prototypical")
#: methods X-means / G-means run on ("base" = the raw descriptors, as the paper's base CNN)
KMEANS_VARIANT_FEATURES: tuple[str, ...] = ("raw", "bcl")
#: methods evaluated with K known (Table 4)
K_KNOWN: tuple[str, ...] = ("raw", "triplet", "prototypical", "bcl")


def xmeans_k_max(set_name: str) -> int:
    """The paper's X-means bound: 40 (BBT episode), 80 (Buffy episode), 150 (6 episodes)."""
    if set_name.endswith("_all"):
        return 150
    return 40 if set_name.startswith("bbt") else 80


@dataclass(frozen=True)
class Bcl2019Config:
    """What :func:`run_bcl2019` runs.

    Parameters
    ----------
    sets : tuple of str
        Episodes / combined sets (see :data:`SETS`).
    methods : tuple of str
        Methods (see :data:`~.methods.METHODS`); ``raw`` is cheap and always useful.
    seed : int
        Seeds the identity split, the episodes and training. Fine-tuning has its own seed,
        ``ft.seed`` (0 in every committed run, whatever ``seed``).
    dims, epochs, p, k, batches_per_epoch, lr, eval_every, dropout : training schedule shared by every
        loss (dropout between hidden layers; 0 in the protocol run, 0.3 in the regularised variant).
    eval_every_steps : int or None
        Validate every this many optimisation steps and keep the best step (the protocol since
        step-wise selection fixed BCL's operating point, findings §7: 8); ``None`` validates every
        ``eval_every`` epochs (the protocol of the first tables). Every head is the paper's MLP
        at its own threshold (4b, or the validation-matched cut), never swapped for the raw
        features: ``raw`` is its own row.
    images_per_track : int
        2 (the protocol) or 1 (harder variant: one still image per track; no must-links).
    finetune : bool
        Also fine-tune :data:`FINETUNED` methods on every set's constraints.
    kmeans_variants : bool
        Run X-means / G-means (Table 2; the slowest part after training).
    curve_factor : float
        Curves are kept for cuts with ``k <= curve_factor × #characters``.
    data_root : str, optional
        Shared data folder (default: kfree's lookup).
    """

    sets: tuple[str, ...] = SETS
    methods: tuple[str, ...] = METHODS
    seed: int = 0
    dims: tuple[int, ...] = (256, 128, 64, 64)
    epochs: int = 30
    p: int = 16
    k: int = 4
    batches_per_epoch: int | None = None
    lr: float = 1e-3
    eval_every: int = 5
    eval_every_steps: int | None = 8
    dropout: float = 0.0
    images_per_track: int = 2
    finetune: bool = False
    ft: FinetuneConfig = field(default_factory=FinetuneConfig)
    kmeans_variants: bool = True
    curve_factor: float = 3.0
    data_root: str | None = None

    def __post_init__(self) -> None:
        check_methods(self.methods)
        bad = [s for s in self.sets if s not in SETS]
        if bad:
            raise ConfigError(f"unknown set(s) {bad}; choose from {list(SETS)}")
        if not self.sets:
            raise ConfigError(f"give at least one set; choose from {list(SETS)}")
        if self.images_per_track not in (1, 2):
            raise ConfigError(f"images_per_track={self.images_per_track} must be 1 or 2")
        if self.curve_factor <= 0:
            raise ConfigError(f"curve_factor={self.curve_factor} must be > 0")
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))

    @property
    def variant(self) -> str:
        """Cell folder name: ``"2img"`` or ``"1img"``."""
        return f"{self.images_per_track}img"

    def train_kw(self) -> dict[str, Any]:
        return {"dims": self.dims, "epochs": self.epochs, "p": self.p, "k": self.k,
                "batches_per_epoch": self.batches_per_epoch, "lr": self.lr, "eval_every": self.eval_every,
                "eval_every_steps": self.eval_every_steps, "patience": None, "dropout": self.dropout,
                "head": "mlp", "linkage": "complete", "threshold_mode": "learned", "compare_raw": False}


# ------------------------------------------------------------------------------ evaluation
def _scores(y: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
    from kfree.metrics.clustering import nmi, wcp

    return {"n_clusters": int(np.unique(labels).shape[0]), "nmi": float(nmi(y, labels)), "wcp": float(wcp(y, labels))}


def evaluate_features(
    Z: np.ndarray,
    y: np.ndarray,
    threshold: float,
    *,
    train_threshold: float | None = None,
    k_known: bool = False,
    curve_k_max: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Cluster one set's features every way a table needs.

    Parameters
    ----------
    Z : ndarray of shape (n, d), the set's features in a method's space.
    y : ndarray of shape (n,), ground-truth identities (scoring only).
    threshold : float, squared-Euclidean cut (the method's operating point).
    train_threshold : float, optional, the training-matched cut (Table 5).
    k_known : also k-means and HAC at the true K (Table 4).
    curve_k_max : keep NMI/WCP for every cut with ``k <= curve_k_max`` (default: all).

    Returns
    -------
    dict with ``"op"`` (scores at ``threshold``), optionally ``"train"``, ``"kmeans"``, ``"hac_k"``,
    and ``"curve"`` (``k``, ``nmi``, ``wcp`` lists, decreasing k).
    """
    from kfree.cluster.curves import score_curve
    from kfree.cluster.kmeans import KMeansClustering
    from kfree.cluster.threshold_hac import ThresholdAgglomerative
    from kfree.metrics.clustering import nmi, wcp

    Z = np.asarray(Z, dtype=np.float64)
    # the whole dendrogram once (cut at a height above every distance), then cuts without refitting
    top = float(((Z.max(0) - Z.min(0)) ** 2).sum()) + 1.0
    tree = ThresholdAgglomerative(threshold=top, linkage="complete", distance="sqeuclidean",
                                  algorithm="dense").fit(Z)
    out: dict[str, Any] = {"threshold": float(threshold), "op": _scores(y, tree.labels_at(threshold))}
    if train_threshold is not None:
        out["train"] = _scores(y, tree.labels_at(train_threshold))
        out["train_threshold"] = float(train_threshold)
    n_true = int(np.unique(y).shape[0])
    if k_known:
        out["hac_k"] = _scores(y, tree.labels_at_k(n_true))
        km = KMeansClustering(n_clusters=n_true, n_init=10, seed=seed).fit(Z)
        out["kmeans"] = _scores(y, km.labels_)
    ks = range(1, Z.shape[0] + 1) if curve_k_max is None else range(1, min(Z.shape[0], curve_k_max) + 1)
    cur = score_curve(tree, {"nmi": lambda lab: nmi(y, lab), "wcp": lambda lab: wcp(y, lab)}, ks)
    out["curve"] = {name: v.tolist() for name, v in cur.items()}
    return out


def kmeans_variants(Z: np.ndarray, y: np.ndarray, set_name: str, *, seed: int = 0) -> dict[str, Any]:
    """X-means (Pelleg & Moore's BIC, the paper's K_max for this set) and G-means (Anderson–Darling) on ``Z``."""
    from kfree.cluster.gmeans import GMeans
    from kfree.cluster.xmeans import XMeans

    Z = np.asarray(Z, dtype=np.float64)
    t0 = time.perf_counter()
    xm = XMeans(k_max=xmeans_k_max(set_name), seed=seed).fit(Z)
    t1 = time.perf_counter()
    gm = GMeans(seed=seed).fit(Z)
    t2 = time.perf_counter()
    return {"xmeans": {**_scores(y, xm.labels_), "k_max": xmeans_k_max(set_name), "time_s": round(t1 - t0, 2)},
            "gmeans": {**_scores(y, gm.labels_), "time_s": round(t2 - t1, 2)}}


def evaluate_set(
    episode,
    methods: dict[str, FittedMethod],
    cfg: Bcl2019Config,
    *,
    hook: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """All un-fine-tuned results of one set (one cell)."""
    from kfree_reproductions.bcl2019.finetune import finetune_on_episode

    t0 = time.perf_counter()
    y = episode.y
    n_ch = int(np.unique(y).shape[0])
    cell: dict[str, Any] = {
        "set": episode.name, "n_tracks": episode.n_tracks, "n_tracks_real": episode.n_tracks_real,
        "n_characters": n_ch, "n_must_link": int(episode.must_link.shape[0]),
        "n_cannot_link": int(episode.cannot_link.shape[0]), "methods": {}, "kmeans_variants": {}, "finetune": {},
    }
    k_max = int(np.ceil(cfg.curve_factor * n_ch)) + 1
    for name, m in methods.items():
        Z = m.embed(episode.X)
        cell["methods"][name] = evaluate_features(
            Z, y, m.threshold.value,
            train_threshold=None if m.train_threshold is None else m.train_threshold.value,
            k_known=name in K_KNOWN, curve_k_max=k_max, seed=cfg.seed,
        )
        if cfg.kmeans_variants and name in KMEANS_VARIANT_FEATURES:
            cell["kmeans_variants"][name] = kmeans_variants(Z, y, episode.name, seed=cfg.seed)
    if cfg.finetune:
        for name in FINETUNED:
            if name not in methods:
                continue
            t1 = time.perf_counter()
            ft = finetune_on_episode(methods[name], episode, cfg.ft)
            res = evaluate_features(ft.embed(episode.X), y, ft.threshold.value, curve_k_max=k_max, seed=cfg.seed)
            res["finetune_log"] = ft.learner.history_[-1]
            res["time_s"] = round(time.perf_counter() - t1, 2)
            cell["finetune"][name] = res
    cell["time_s"] = round(time.perf_counter() - t0, 2)
    return cell


# ---------------------------------------------------------------------------------- runner
def _environment() -> dict[str, str]:
    import sklearn
    import torch

    from kfree import __version__

    return {"kfree": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "sklearn": str(sklearn.__version__), "python": platform.python_version()}


def _atomic_json(path: Path, obj: Any) -> None:
    from kfree.utils.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True))


#: value a config field had, in effect, before it existed (cells written then lack it); a field
#: missing here falls back to the default it was introduced with. ``eval_every_steps`` was added
#: with default 8, but cells without it were selected every ``eval_every`` epochs (``None``).
_BEFORE_FIELD: dict[str, Any] = {"eval_every_steps": None, "dropout": 0.0}


def _same_config(stored: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Whether a stored cell was written by this configuration (a field added since counts as the
    value that reproduces the behaviour before it existed, see :data:`_BEFORE_FIELD`)."""
    if stored is None:
        return False
    before = asdict(Bcl2019Config())
    before.update(_BEFORE_FIELD)
    return not config_differences(stored, current, before_field=before)


def refuse_other_configs(cfg: Bcl2019Config, out: str | Path) -> None:
    """Refuse, naming them, saved heads and cells of this variant and seed in ``out`` that were
    made under another configuration, as every experiment's resume policy refuses them
    (:mod:`kfree_reproductions.records`). A resumed run trained such heads again and recomputed
    such cells over the committed ones, and the report then mixed the two configurations (found
    by a reproducibility review: a 2-epoch, 2-method run replaced committed seed-0 results). Heads
    and cells not saved yet are no conflict: the run makes them."""
    from kfree_reproductions.bcl2019.methods import METHOD_LOSSES, head_request, record_mismatch

    out = Path(out)
    stale = []
    for name in cfg.methods:
        path = out / "models" / cfg.variant / f"{name}_seed{cfg.seed}.pt"
        if name in METHOD_LOSSES and path.is_file():
            request = head_request(name, train_kw=cfg.train_kw(), seed=cfg.seed, images_per_track=cfg.images_per_track)
            if (why := record_mismatch(path, request, ignore=("data",))) is not None:
                stale.append(f"head {path.relative_to(out)}: {why}")
    before = asdict(Bcl2019Config())
    before.update(_BEFORE_FIELD)
    for name in cfg.sets:
        path = cell_path(out, cfg, name)
        if path.is_file():
            cell = json.loads(path.read_text(encoding="utf-8"))
            diffs = config_differences(cell.get("config"), asdict(cfg), before_field=before)
            if set(cell.get("methods", {})) != set(cfg.methods):
                diffs.append(f"methods: recorded {sorted(cell.get('methods', {}))}, asked {sorted(cfg.methods)}")
            if diffs:
                stale.append(f"cell {path.relative_to(out)}: {'; '.join(diffs[:3])}")
    if stale:
        raise ConfigError(f"{out} holds results of variant {cfg.variant!r}, seed {cfg.seed} made under another "
                          f"configuration ({len(stale)}; first: {stale[0]}); write to another folder (the "
                          "experiment file's out), or recompute them there (CLI: --no-resume; Python: resume=False)")


def heads_to_train(cfg: Bcl2019Config, out: str | Path) -> list[str]:
    """The learned methods whose saved head :func:`run_bcl2019` would not reuse: none saved, or one
    saved for another training request (the data's fingerprint is left to the run, which reads it)."""
    from kfree_reproductions.bcl2019.methods import METHOD_LOSSES, head_request, record_mismatch

    folder = Path(out) / "models" / cfg.variant
    todo = []
    for name in cfg.methods:
        if name not in METHOD_LOSSES:
            continue
        path = folder / f"{name}_seed{cfg.seed}.pt"
        request = head_request(name, train_kw=cfg.train_kw(), seed=cfg.seed, images_per_track=cfg.images_per_track)
        if not path.is_file() or record_mismatch(path, request, ignore=("data",)) is not None:
            todo.append(name)
    return todo


def pending_cells(cfg: Bcl2019Config, out: str | Path) -> list[str]:
    """The sets :func:`run_bcl2019` would (re)compute: no cell yet, or every set when a head is
    trained (the run recomputes every cell then). Heads and cells made under another
    configuration are refused, as the run refuses them."""
    refuse_other_configs(cfg, out)
    if heads_to_train(cfg, out):
        return list(cfg.sets)
    todo = []
    for name in cfg.sets:
        path = cell_path(Path(out), cfg, name)
        if not path.is_file():
            todo.append(name)
            continue
        cell = json.loads(path.read_text(encoding="utf-8"))
        if not (_same_config(cell.get("config"), asdict(cfg)) and set(cell["methods"]) == set(cfg.methods)):
            todo.append(name)
    return todo


def cell_path(out: Path, cfg: Bcl2019Config, set_name: str) -> Path:
    """Where a set's results are written: ``<out>/cells/<variant>[-ft]/seed<seed>/<set>.json``."""
    tag = cfg.variant + ("-ft" if cfg.finetune else "")
    return Path(out) / "cells" / tag / f"seed{cfg.seed}" / f"{set_name}.json"


def fit_methods(cfg: Bcl2019Config, faces, split, *, model_dir: Path | None, resume: bool,
                hook: Callable[..., None] | None = None) -> tuple[dict[str, FittedMethod], dict[str, float]]:
    """Train (or load) every method of ``cfg``; returns the methods and their wall times (s)."""
    from kfree_reproductions.bcl2019.methods import fit_method

    X, y = faces.embeddings, faces.labels
    Xtr, ytr = X[split.train_idx], y[split.train_idx]
    Xva, yva = X[split.val_idx], y[split.val_idx]
    methods: dict[str, FittedMethod] = {}
    times: dict[str, float] = {}
    for i, name in enumerate(cfg.methods):
        t0 = time.perf_counter()
        methods[name] = fit_method(name, Xtr, ytr, Xva, yva, train_kw=cfg.train_kw(), seed=cfg.seed,
                                   model_dir=model_dir, resume=resume,
                                   images_per_track=cfg.images_per_track)
        times[name] = round(time.perf_counter() - t0, 2)
        log.info("method %s ready in %.1f s (threshold %s)", name, times[name], methods[name].threshold)
        if hook is not None:
            hook("train heads", completed=i + 1, total=len(cfg.methods))
    return methods, times


def run_bcl2019(
    cfg: Bcl2019Config,
    out: str | Path,
    *,
    resume: bool = True,
    hook: Callable[..., None] | None = None,
    faces=None,
    split=None,
    episodes: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the experiment; write one JSON cell per set and ``run.json``; return the cells.

    Parameters
    ----------
    cfg : what to run
    out : output folder (``results/bcl2019`` for the committed run); heads go to ``out/models``
    resume : reuse saved heads and finished cells (a head only if its training record matches, a
        cell only if it was written by the same configuration and no head was retrained)
    hook : ``hook(step, completed=, total=)`` after every trained head (step ``"train heads"``) and
        every set (``"test sets"``)
    faces, split, episodes : optional pre-built inputs (FaceDescriptors, IdentitySplit, dict of
        Episode); default: the shared CelebA descriptors, ``split_faces(seed)`` and
        ``build_episodes`` on the shared TV structures. Tests pass small synthetic ones.

    Returns
    -------
    dict set name -> cell (see :func:`evaluate_set`)
    """
    from kfree.utils.seeding import seed_everything
    from kfree_reproductions.bcl2019.episodes import build_episodes
    from kfree_reproductions.bcl2019.faces import load_celeba_faces, split_faces

    out = Path(out)
    if resume:
        refuse_other_configs(cfg, out)
    t_start = time.perf_counter()
    faces = load_celeba_faces(cfg.data_root) if faces is None else faces
    split = split_faces(faces, seed=cfg.seed) if split is None else split
    cfg_dict = asdict(cfg)
    seed_everything(cfg.seed)
    methods, train_times = fit_methods(cfg, faces, split, model_dir=out / "models" / cfg.variant, resume=resume,
                                       hook=hook)
    if episodes is None:
        episodes = build_episodes(cfg.data_root, seed=cfg.seed, faces=faces, split=split,
                                  images_per_track=cfg.images_per_track)
    missing = [s for s in cfg.sets if s not in episodes]
    if missing:
        raise ConfigError(f"no episode built for set(s) {missing}; built: {sorted(episodes)}")
    cells: dict[str, dict[str, Any]] = {}
    reused: list[str] = []
    # a head trained by this call (none saved, or its training record did not match) invalidates
    # every stored cell, which was computed with the head it replaced
    trained = sorted(m for m, f in methods.items() if f.learner is not None and not f.loaded)
    if resume and trained:
        log.info("heads trained in this call (%s): stored cells are recomputed", ", ".join(trained))
    for i, name in enumerate(cfg.sets):
        path = cell_path(out, cfg, name)
        if resume and not trained and path.exists():
            cell = json.loads(path.read_text())
            if _same_config(cell.get("config"), cfg_dict) and set(cell["methods"]) == set(cfg.methods):
                cells[name] = cell
                reused.append(name)
                log.info("reused cell %s", path)
                if hook is not None:
                    hook("test sets", completed=i + 1, total=len(cfg.sets))
                continue
        cell = evaluate_set(episodes[name], methods, cfg)
        cell["config"] = cfg_dict
        cell["environment"] = _environment()
        cell["thresholds"] = {m: {"op": f.threshold.to_dict(),
                                  "train": None if f.train_threshold is None else f.train_threshold.to_dict()}
                              for m, f in methods.items()}
        cell["validation"] = {m: f.validation for m, f in methods.items()}
        _atomic_json(path, cell)
        cells[name] = cell
        log.info("set %s done in %.1f s", name, cell["time_s"])
        if hook is not None:
            hook("test sets", completed=i + 1, total=len(cfg.sets))
    timing: dict[str, Any] = {"train_time_s": train_times, "wall_time_s": round(time.perf_counter() - t_start, 1),
                              "heads_loaded": sorted(m for m, f in methods.items() if f.loaded), "cells_reused": reused}
    run_path = path.parent / "run.json"
    if run_path.exists() and len(reused) == len(cfg.sets) and all(f.loaded or f.learner is None for f in methods.values()):
        old = json.loads(run_path.read_text())
        if _same_config(old.get("config"), cfg_dict) and "wall_time_s" in old:
            # nothing was computed: keep the timing of the run that computed it
            timing = {k: old[k] for k in ("train_time_s", "wall_time_s", "heads_loaded", "cells_reused") if k in old}
    _atomic_json(run_path, {
        "config": cfg_dict, "environment": _environment(), **timing,
        "thresholds": {m: f.threshold.to_dict() for m, f in methods.items()},
        "validation": {m: f.validation for m, f in methods.items()},
        "best_step": {m: getattr(f.learner, "best_step_", None) for m, f in methods.items() if f.learner is not None},
        "bcl_b": None if "bcl" not in methods else float(methods["bcl"].learner.loss_.radius_sq().detach()),
    })
    return cells


def load_cells(out: str | Path, variant: str, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Read the cells written by :func:`run_bcl2019` for a variant tag (``"2img"``, ``"2img-ft"``, …)."""
    folder = Path(out) / "cells" / variant / f"seed{seed}"
    cells = {}
    for name in SETS:
        p = folder / f"{name}.json"
        if p.exists():
            cells[name] = json.loads(p.read_text())
    return cells
