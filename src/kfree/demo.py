"""The demo: learn where clusters end on seen identities, cluster unseen ones with no K.

1. Load a shipped data set (AT&T faces or Banking77 intents).
2. Split *identities* into train / validation / test (seeded), so test identities are unseen.
3. Train a BCL head on the training identities; the validation identities pick the best step
   and the clustering rule (4b, a recalibrated cut, or the raw features if nothing learned wins).
4. Cluster the unseen test identities with that rule, no K.
5. Show, beside what kfree delivers, the learned model at its own ``4b`` and the honest
   baseline: the raw features clustered at the complete-linkage threshold that gives the true
   number of clusters on the validation identities.
6. Write a run directory (config, metrics, model, assignments, montage, index.html).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cluster.threshold_hac import ThresholdAgglomerative
from .data.builtin import ALIASES, load_builtin
from .data.splits import split_identities
from .evaluate.calibrate import threshold_for_n_clusters
from .exceptions import ConfigError, OutputError
from .metrics import evaluate_clustering


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does, with per-data-set defaults (see :func:`demo_config`)."""

    dataset: str = "att_faces"
    n_train: int = 24
    n_val: int = 6
    n_test: int = 10
    test_split_only: bool = False  # Banking77: cluster (and validate on) only the official test utterances
    epochs: int = 100
    p: int = 12
    k: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dims: tuple[int, ...] | None = None
    batches_per_epoch: int | None = None
    loss_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self.train_config()  # checked here, before the demo prints or loads anything

    def train_config(self):
        """The BCL training this demo runs (a :class:`~kfree.config.TrainConfig`, validated)."""
        from .config import TrainConfig

        return TrainConfig(loss="bcl", loss_params=dict(self.loss_params), dims=self.dims, epochs=self.epochs,
                           lr=self.lr, weight_decay=self.weight_decay, p=self.p, k=self.k,
                           batches_per_epoch=self.batches_per_epoch, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dims"] = None if self.dims is None else list(self.dims)
        return d


DEFAULTS: dict[str, dict[str, Any]] = {
    "att_faces": {},
    # 50 seen intents (36 train + 14 validation), 27 unseen. 14 validation intents, drawn like the
    # test set (official test utterances, ~40 per intent), make the choice of rule less noisy than
    # 8 did (measured: results/unseen/). Text heads overfit the seen intents within a few hundred
    # steps, so the radius h gets a larger learning rate than the net (radius_lr_scale).
    "banking77": {"n_train": 36, "n_val": 14, "n_test": 27, "test_split_only": True, "epochs": 40,
                  "batches_per_epoch": 8, "p": 16, "k": 8, "lr": 3e-4,
                  "loss_params": {"radius_lr_scale": 30.0}},
}


def demo_config(dataset: str = "att_faces", **overrides: Any) -> DemoConfig:
    """The default demo configuration of ``dataset``, with non-None ``overrides`` applied."""
    key = ALIASES.get(dataset, dataset)
    if key not in DEFAULTS:
        raise ConfigError(f"unknown demo data set {dataset!r}; choose one of {sorted(DEFAULTS)}")
    values = {**DEFAULTS[key], **{k: v for k, v in overrides.items() if v is not None}}
    return DemoConfig(dataset=key, **values)


@dataclass
class DemoResult:
    """What ``kfree demo`` prints: the table's rows, the run directory, the learned b, the time,
    the rule chosen on the validation identities (:meth:`ClusterLearner.summary`)."""

    rows: list[dict[str, Any]]
    run_dir: Path | None  # None: nothing written (write=False)
    b: float
    wall_time_s: float
    summary: str = ""


def _default_run_dir(dataset: str) -> Path:
    """``kfree-runs/demo-<dataset>-<time>``, a new folder (two demos started within one second
    each get their own: the second wrote into the first's)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("kfree-runs") / f"demo-{dataset}-{stamp}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir()  # atomic: the folder is this run's
            return path
        except FileExistsError:
            continue
    raise OutputError(f"{base.parent} already holds 999 demo folders named {base.name}*; choose --out")


def run_demo(cfg: DemoConfig, *, out_dir: str | Path | None = None, hook=None, write: bool = True) -> DemoResult:
    """Run the demo end to end and (optionally) write its run directory."""
    from .learner import ClusterLearner

    t0 = time.perf_counter()
    ds = load_builtin(cfg.dataset, with_images=write)
    sp = split_identities(ds.y, cfg.n_train, cfg.n_val, cfg.n_test, seed=cfg.seed)
    test_idx, val_idx = sp.test_idx, sp.val_idx
    if cfg.test_split_only and ds.split is not None:
        test_idx = test_idx[ds.split[test_idx] == "test"]
        val_idx = val_idx[ds.split[val_idx] == "test"]
    X_tr, y_tr = ds.X[sp.train_idx], ds.y[sp.train_idx]
    X_val, y_val = ds.X[val_idx], ds.y[val_idx]
    X_te, y_te = ds.X[test_idx], ds.y[test_idx]

    learner = ClusterLearner(cfg.train_config())
    learner.fit(X_tr, y_tr, X_val=X_val, y_val=y_val, hook=hook)
    t_cluster = time.perf_counter()
    pred = learner.cluster(X_te)
    rule = learner.rule_
    # the model at step 0 is the head as it started (here: the input, normalised), not a learned one
    what = "raw" if learner.uses_raw_ else ("BCL at step 0" if learner.best_step_ == 0 else "BCL")
    kfree_row = {"method": f"kfree: {what}, {rule.linkage} at "
                           f"{'4b' if rule.mode == 'learned' else 'val. cut'} (no K)",
                 **evaluate_clustering(y_te, pred), "threshold": learner.threshold_.value,
                 "wall_s": round(time.perf_counter() - t0, 2)}
    kfree_row["cluster_s"] = round(time.perf_counter() - t_cluster, 3)
    four_b = learner.loss_.implied_threshold()
    own_pred = ThresholdAgglomerative(four_b.value, distance=four_b.distance).fit(learner.embed(X_te)).labels_
    # its 4b is b at the kept step: at step 0 that is b's initial value, not a learned radius
    at = {None: "last step", 0: "step 0, b as initialised"}.get(learner.best_step_, f"step {learner.best_step_}")
    own_row = {"method": f"BCL model, complete at its own 4b ({at})", **evaluate_clustering(y_te, own_pred),
               "threshold": four_b.value}

    t1 = time.perf_counter()
    base_thr = threshold_for_n_clusters(X_val, len(np.unique(y_val)), distance="sqeuclidean")
    base_pred = ThresholdAgglomerative(base_thr.value, distance="sqeuclidean").fit(X_te).labels_
    base_row = {"method": "raw, val.-matched HAC",
                **evaluate_clustering(y_te, base_pred), "threshold": base_thr.value,
                "wall_s": round(time.perf_counter() - t1, 2)}
    rows = [kfree_row, own_row, base_row]
    b = four_b.value / 4.0
    run_dir = Path(out_dir) if out_dir is not None else (_default_run_dir(cfg.dataset) if write else None)
    if write:
        from .utils.io import atomic_dir

        # written whole or not at all: with --force over an older run, an interrupt left new and
        # old files side by side
        with atomic_dir(run_dir) as tmp:
            _write_run(tmp, cfg, ds, learner, rows, test_idx, pred, base_pred, y_te, b)
    return DemoResult(rows=rows, run_dir=run_dir, b=b, wall_time_s=time.perf_counter() - t0,
                      summary=learner.summary())


def _write_run(run_dir, cfg, ds, learner, rows, test_idx, pred, base_pred, y_te, b) -> None:
    from .evaluate.compare import write_predictions
    from .report.html import shown_note, text_clusters_html, write_run_index
    from .report.montage import cluster_montage
    from .report.validation import plot_learner_validation
    from .utils.io import write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", {"demo": cfg.to_dict(), "provenance": learner.provenance_})
    write_json(run_dir / "metrics.json", {"rows": rows, "b": b, "tau": 4 * b, "history": learner.history_})
    learner.save(run_dir / "model.kfree")
    write_predictions(run_dir / "assignments.csv", pred, test_idx, y_te, baseline_cluster=base_pred,
                      text=None if ds.texts is None else ds.texts[test_idx])
    files = ["config.json", "metrics.json", "model.kfree", "assignments.csv"]
    if plot_learner_validation(learner, run_dir / "validation.png",
                               title=f"{cfg.dataset}: validation on held-out identities") is not None:
        files.append("validation.png")
    montage = None
    extra = ""
    if ds.images is not None:
        cluster_montage(ds.images[test_idx], pred, run_dir / "montage.png", labels_true=y_te, seed=cfg.seed,
                        title=f"kfree clusters of {len(np.unique(y_te))} unseen people ({rows[0]['method']})",
                        credit="Images: AT&T Laboratories Cambridge (ORL face database)")
        montage = "montage.png"
        files.append(montage)
    if ds.texts is not None:
        extra = "<h2>Predicted clusters (examples)</h2>" + text_clusters_html(
            ds.texts[test_idx], pred, ds.label_names, y_te, seed=cfg.seed)
    if "validation.png" in files:
        extra += ("<h2>Validation curve</h2><p class='muted'>NMI on the held-out validation identities at every "
                  "validated step; the step whose model was kept is marked, and the rule chosen is in the title.</p><img src='validation.png' alt='validation curve'>")
    r = rows[0]
    summary = (f"{len(np.unique(y_te))} unseen identities, {len(y_te)} items: {r['n_clusters']} clusters "
               f"predicted with no K given (NMI {r['nmi']:.3f}). Learned b = {b:.4f} (4b = {4 * b:.4f}). "
               f"Chosen on the validation identities: {learner.summary()}.")
    write_run_index(run_dir / "index.html", title=f"kfree demo — {cfg.dataset}", summary=summary, rows=rows,
                    montage=montage, montage_note=shown_note(pred, 40, "A row"), extra_html=extra, config=cfg.to_dict(), files=files, credit=ds.credit)
