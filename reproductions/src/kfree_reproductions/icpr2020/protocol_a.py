"""Protocol A of the ICPR 2020 reproduction: AlexNet-BN trained end to end on CIFAR-10 images.

The paper's own setup: AlexNet with batch-norm (:class:`~kfree_reproductions.icpr2020.alexnet.AlexNetBN`, last two
fully-connected layers 64 and 32, unit-norm output), Adam lr 1e-3, 100 epochs, batches of 100
triplets from :class:`~kfree.data.samplers.TripletSampler` (optionally with label noise), triplet
L1/L2/L3 with α = 0.8, β = 0.4. After every epoch the test images are embedded and clustered
exactly as in Protocol B (:func:`~.icpr2020.evaluate_embedding`: multicut without K, k-means with
K = 10), so the result is an ACC-vs-epoch curve.

On a CPU one epoch takes hours, so the run is built to be stopped: after every epoch a checkpoint
(``<out>/checkpoint.pt``, written and read by :mod:`kfree.utils.checkpoint`: tensors and plain
data, loaded without unpickling code) holds the model, the optimiser, the sampler's generator and
queue, and the torch RNG states, and ``<out>/epochs/epoch_XXX.json`` holds that epoch's scores.
Run the same call again and it continues from the last finished epoch with the same data order,
bit for bit on CPU; a checkpoint of another training setup (:data:`RESUME_KEYS`) is refused with
one line. Within an epoch the checkpoint is refreshed every ``checkpoint_every_s`` seconds (with
the batch reached and the running loss), so an epoch too can span sessions. On a GPU
(``device="auto"`` picks CUDA when present) the same call runs all 100 epochs.

On a GPU an epoch trains faster than the 10,000 test embeddings are clustered on the CPU (two
multicut searches on the complete graph and k-means), so the evaluation would dominate.
There the test embedding of each evaluated epoch is written to ``<out>/embeddings/epoch_XXX.npz``
and clustered by ``eval_workers`` background processes while training goes on; the epoch's JSON
appears when its clustering is done. A run stopped with embeddings still waiting clusters them
when it is resumed, so no evaluated epoch is lost.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from kfree.exceptions import ConfigError
from kfree_reproductions.icpr2020.protocol_b import (
    LOSSES,
    environment,
    evaluate_embedding,
    parse_noise,
    triplet_loss,
    write_json_atomic,
)
from kfree_reproductions.records import refuse_changed

log = logging.getLogger(__name__)

Hook = Callable[..., None]


@dataclass(frozen=True)
class ProtocolAConfig:
    """One Protocol A training run.

    Parameters
    ----------
    loss : {"l1", "l2", "l3"}
    wrong_positives, wrong_negatives : label noise of the triplet sampler (``"random"`` allowed
        for negatives).
    seed : int
    epochs : int
        Paper: 100.
    batch_size : int
        Triplets per batch (100; a batch holds 300 images).
    epoch_images : int, optional
        Images per epoch (default: the training-set size, 50,000 on CIFAR-10, i.e. every image
        seen once on average as anchor, positive or negative: 167 batches of 100 triplets).
        The paper says only "100 epochs with a batch size of 100"; an epoch of as many images
        as the training set is the usual reading and the one the issue budgets (epoch times are
        in ``results/icpr2020/protocol_a.md``). Protocol
        B's heads instead take every image once as an *anchor* per epoch (3× the images),
        which costs nothing there.
    lr, alpha, beta : paper: 1e-3, 0.8, 0.4.
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` takes CUDA when available.
    n_train, n_test : int, optional
        Use only the first ``n`` images of a split (smoke tests; None = all).
    calibration_images : int
        Training images embedded each epoch for L1's logistic regression (embedding all 50,000
        costs more than the epoch's clustering on a CPU).
    kl : bool
        Kernighan–Lin after GAEC in the multicut.
    eval_every : int
        Evaluate every this many epochs (and after the last).
    eval_first : int
        Also evaluate after each of the first this many epochs (where the curve moves most), so
        ``eval_first=20, eval_every=5`` gives epochs 1..20, 25, 30, ....
    eval_workers : int, optional
        Processes clustering evaluated epochs in the background while training goes on (see the
        module docstring). ``None``: 0 on CPU (clustering would take the cores that train) and
        ``min(4, cores - 1)`` on CUDA.
    average_start : bool
        Also search each multicut from average-linkage HAC (key ``"multicut_avg_kl"``), as
        Protocol B does: on these embeddings it finds a lower objective than GAEC's start.
    keep_embeddings : bool
        Keep every evaluated epoch's test embedding (1.3 MB each); by default only the last
        epoch's stays, for figures.
    threads : int, optional
        torch CPU threads (None leaves torch's default).
    widths : 5 ints
        Convolution widths of AlexNet-BN (default DeepCluster's 96, 256, 384, 384, 256; smaller
        ones only for smoke tests).
    checkpoint_every_s : float
        Also checkpoint within an epoch after this many seconds of training (0: after every
        batch). An epoch of 167 batches takes 15–60 minutes on 2 CPU cores; a process ended mid-epoch
        loses at most this much work, and the resumed run is still bit-identical.
    """

    loss: str = "l3"
    wrong_positives: float = 0.0
    wrong_negatives: float | str = 0.0
    seed: int = 0
    epochs: int = 100
    batch_size: int = 100
    epoch_images: int | None = None
    lr: float = 1e-3
    alpha: float = 0.8
    beta: float = 0.4
    device: str = "auto"
    n_train: int | None = None
    n_test: int | None = None
    calibration_images: int = 5000
    kl: bool = True
    eval_every: int = 1
    eval_first: int = 0
    eval_workers: int | None = None
    average_start: bool = True
    keep_embeddings: bool = False
    threads: int | None = None
    widths: tuple[int, ...] = (96, 256, 384, 384, 256)
    checkpoint_every_s: float = 600.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} must be one of {LOSSES}")
        object.__setattr__(self, "wrong_positives", parse_noise(self.wrong_positives))
        object.__setattr__(self, "wrong_negatives", parse_noise(self.wrong_negatives))
        if self.wrong_positives == "random":
            raise ConfigError("wrong_positives must be a fraction; 'random' applies to negatives only")
        if self.epoch_images is not None and self.epoch_images < 1:
            raise ConfigError(f"epoch_images={self.epoch_images} must be >= 1 (or None)")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ConfigError(f"epochs={self.epochs}, batch_size={self.batch_size} and eval_every="
                              f"{self.eval_every} must be >= 1")
        if self.eval_first < 0 or (self.eval_workers is not None and self.eval_workers < 0):
            raise ConfigError(f"eval_first={self.eval_first} and eval_workers={self.eval_workers} "
                              "must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device={self.device!r} must be 'auto', 'cpu' or 'cuda'")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and v < 20:
                raise ConfigError(f"{name}={v} must be >= 20 (or None for the whole split)")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def evaluates(self, epoch: int) -> bool:
        """Whether the model after ``epoch`` (1-based) is clustered and scored."""
        return epoch <= self.eval_first or epoch % self.eval_every == 0 or epoch == self.epochs


#: what a checkpoint's training state depends on; the rest (epochs, the evaluation schedule and
#: its clustering settings, workers, device, threads) may change between sessions of one run
RESUME_KEYS = ("loss", "wrong_positives", "wrong_negatives", "seed", "batch_size", "epoch_images", "lr",
               "alpha", "beta", "n_train", "widths")


#: fields that say how long, how often or where a run goes, not what it computes: a run folder may
#: be continued with other values of these (every other field must match its config.json)
RUN_SHAPE_KEYS = ("epochs", "eval_every", "eval_first", "eval_workers", "threads", "device",
                  "checkpoint_every_s", "keep_embeddings")


def pending_epochs(cfg: ProtocolAConfig, out: str | os.PathLike[str]) -> list[str]:
    """The epochs :func:`run_protocol_a` would still train in ``out`` (a run folder made under
    another configuration raises, as the run would)."""
    out = Path(out)
    if (out / "config.json").is_file():
        recorded = json.loads((out / "config.json").read_text(encoding="utf-8")).get("config")
        refuse_changed(out / "config.json", recorded, asdict(cfg), ignore=RUN_SHAPE_KEYS)
    done = max((int(r["epoch"]) for r in load_epochs(out)), default=0) if out.is_dir() else 0
    return [] if done >= cfg.epochs else [f"epochs {done + 1}-{cfg.epochs}"]


def _resume_config(cfg: ProtocolAConfig, X_train: np.ndarray) -> dict[str, Any]:
    """The part of the configuration a checkpoint must match to be resumed exactly."""
    d = asdict(cfg)
    out = {k: d[k] for k in RESUME_KEYS}
    out["train_images"] = [int(v) for v in X_train.shape]  # (n, H, W, 3)
    return out


def resolve_device(name: str) -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch sees no GPU; use device='auto' or 'cpu'")
    return name


def _embed_images(model, images: np.ndarray, device: str, batch: int = 500) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, images.shape[0], batch):
            x = model.preprocess(torch.as_tensor(images[i:i + batch]).to(device))
            out.append(model(x).float().cpu().numpy())
    model.train()
    return np.concatenate(out)


def run_protocol_a(
    cfg: ProtocolAConfig,
    out: str | os.PathLike[str],
    *,
    images: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    hook: Hook | None = None,
) -> list[dict[str, Any]]:
    """Train AlexNet-BN with one triplet loss, evaluating after every epoch; resumable.

    Parameters
    ----------
    out : run folder (checkpoint, ``epochs/epoch_XXX.json``, ``config.json``).
    images : ``(X_train, y_train, X_test, y_test)`` uint8 ``(n, 32, 32, 3)`` images and labels;
        default: the CIFAR-10 loader's (:func:`kfree_reproductions.icpr2020.cifar.load_cifar10`).
    resume : continue from ``<out>/checkpoint.pt`` when it exists; ``False`` starts over and
        first removes what an earlier run left in ``out`` (checkpoint, epoch records, pending
        embeddings), which would otherwise be read back as this run's epochs.
    stop_after : stop after this many epochs in total this call (to spread a CPU run over
        sessions); ``None`` runs to ``cfg.epochs``.
    hook : ``hook("epoch", completed=e, total=cfg.epochs, **scores)`` after every epoch and
        ``hook("batch", completed=b, total=batches)`` within one.

    Returns the per-epoch records written so far, in epoch order.
    """
    import torch

    from kfree.data.samplers import TripletSampler
    from kfree.train.step import Batch, train_steps
    from kfree.utils.checkpoint import load_checkpoint, save_checkpoint
    from kfree.utils.seeding import seed_everything
    from kfree_reproductions.icpr2020.alexnet import AlexNetBN

    out = Path(out)
    if not resume:
        _clear_run(out)
    elif out.is_dir():
        # a finished run (a committed run folder) is reused as the dry run says, not trained again over its
        # records (found by a reproducibility review: the committed H200 runs were restarted on a CPU);
        # pending_epochs refuses a folder made under another configuration first
        if not pending_epochs(cfg, out):
            return load_epochs(out)
        if (done := load_epochs(out)) and not (out / "checkpoint.pt").is_file():
            raise ConfigError(f"{out} holds the records of epochs 1-{done[-1]['epoch']} but no checkpoint.pt to "
                              "continue from (checkpoints are not committed): training from epoch 1 would write "
                              "over them; rerun with --no-resume (Python: resume=False) to train the run again, "
                              "or give another folder")
    (out / "epochs").mkdir(parents=True, exist_ok=True)
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    if images is None:
        from kfree_reproductions.icpr2020.cifar import load_cifar10

        X_train, y_train = load_cifar10(split="train")
        X_test, y_test = load_cifar10(split="test")
    else:
        X_train, y_train, X_test, y_test = images
    if cfg.n_train is not None:
        X_train, y_train = X_train[:cfg.n_train], y_train[:cfg.n_train]
    if cfg.n_test is not None:
        X_test, y_test = X_test[:cfg.n_test], y_test[:cfg.n_test]
    y_train = np.asarray(y_train)
    seed_everything(cfg.seed)
    model = AlexNetBN(widths=cfg.widths, image_size=int(X_train.shape[1])).to(device)
    loss = triplet_loss(cfg.loss, cfg.alpha, cfg.beta)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    epoch_images = cfg.epoch_images or int(X_train.shape[0])
    sampler = TripletSampler(y_train, cfg.batch_size, wrong_positives=float(cfg.wrong_positives),
                             wrong_negatives=cfg.wrong_negatives, seed=cfg.seed,
                             batches_per_epoch=max(1, -(-epoch_images // (3 * cfg.batch_size))))
    ckpt = out / "checkpoint.pt"
    start = 0
    partial = None
    resume_cfg = _resume_config(cfg, X_train)
    if resume and ckpt.is_file():
        # tensors and plain data only (never unpickles code); refused if the training setup changed
        state = load_checkpoint(ckpt, expect_config=resume_cfg, map_location=device, allow_legacy=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if device == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start = int(state["epoch"])
        partial = state.get("partial")  # present when the run stopped inside epoch start + 1
        log.info("resumed %s at epoch %d%s", out, start,
                 f", batch {partial['batch']}" if partial else "")
    if resume and (out / "config.json").is_file():
        # the evaluated epochs on disk were made under the recorded configuration: keep adding to
        # them only under the same one (more epochs or another schedule are fine)
        recorded = json.loads((out / "config.json").read_text(encoding="utf-8")).get("config")
        refuse_changed(out / "config.json", recorded, asdict(cfg), ignore=RUN_SHAPE_KEYS)
    write_json_atomic(out / "config.json", {"config": asdict(cfg), "device": device, "environment": environment(),
                                            "n_train": int(X_train.shape[0]), "n_test": int(X_test.shape[0])})
    n_classes = int(np.unique(y_train).shape[0])
    calib = np.random.default_rng(cfg.seed).permutation(X_train.shape[0])[:cfg.calibration_images]
    last = cfg.epochs if stop_after is None else min(cfg.epochs, int(stop_after))
    # uint8 (n, H, W, 3), converted batch by batch; on a GPU the whole set (150 MB) lives there
    Xt = torch.as_tensor(X_train).to(device)

    def save(epoch_done: int, partial_state: dict | None) -> None:
        save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "sampler": sampler.get_state(), "torch_rng": torch.get_rng_state(),
                               "cuda_rng": torch.cuda.get_rng_state_all() if device == "cuda" else None,
                               "epoch": epoch_done, "partial": partial_state, "run_config": asdict(cfg)},
                        config=resume_cfg)

    def train_epoch(epoch: int, partial: dict | None) -> dict[str, Any]:
        """One pass of ``len(sampler)`` batches (from ``partial``'s batch when resuming inside it)."""
        t0 = time.perf_counter()
        model.train()
        b0, total, count, before_s = 0, 0.0, 0, 0.0
        if partial is not None:  # continue the interrupted epoch where its checkpoint left it
            b0, total, count, before_s = (partial["batch"], partial["total"], partial["count"],
                                          partial["train_s"])
        last_save = time.perf_counter()

        def batches():
            for _ in range(b0, len(sampler)):
                idx = sampler.sample(cfg.batch_size).reshape(-1)  # as iterating the sampler does
                x = model.preprocess(Xt[torch.as_tensor(idx).to(device)])  # (3*batch, 3, H, W)
                # rows are (anchor, positive, negative) triplets: the loss reads no labels
                yield Batch(x, (torch.zeros(x.shape[0], dtype=torch.long, device=device),))

        def on_step(i: int, value: float) -> None:
            nonlocal total, count, last_save
            b = b0 + i - 1
            total += value
            count += 1
            if b + 1 < len(sampler) and time.perf_counter() - last_save >= cfg.checkpoint_every_s:
                save(epoch, {"batch": b + 1, "total": total, "count": count,
                             "train_s": before_s + time.perf_counter() - t0})
                last_save = time.perf_counter()
            if hook is not None:
                hook("batch", completed=b + 1, total=len(sampler))

        train_steps(model, loss, opt, batches(), on_step=on_step)
        train_s = before_s + time.perf_counter() - t0
        return {"epoch": epoch + 1, "loss": total / max(count, 1), "train_s": round(train_s, 1), "device": device}

    workers = cfg.eval_workers
    if workers is None:
        workers = 0 if device == "cpu" else max(1, min(4, (os.cpu_count() or 2) - 1))
    with _Evaluator(workers) as evaluator:
        # embeddings left by a stopped run (epochs the checkpoint covers) are clustered first
        for pending in sorted((out / "embeddings").glob("epoch_*.npz")):
            epoch_done = int(pending.stem.split("_")[1])
            if epoch_done <= start and not _epoch_json(out, epoch_done).is_file():
                evaluator.submit(pending)
        for epoch in range(start, last):
            row = train_epoch(epoch, partial)
            partial = None
            if cfg.evaluates(epoch + 1):
                t1 = time.perf_counter()
                Z_test = _embed_images(model, X_test, device)
                Z_cal = _embed_images(model, X_train[calib], device) if cfg.loss == "l1" else None
                row["embed_s"] = round(time.perf_counter() - t1, 1)
                pending = _pending_path(out, epoch + 1)
                _write_pending(pending, row, cfg, Z_test, np.asarray(y_test), Z_cal,
                               y_train[calib] if Z_cal is not None else None, n_classes)
                save(epoch + 1, None)
                evaluator.submit(pending)
            else:
                row["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                write_json_atomic(_epoch_json(out, epoch + 1), row)
                save(epoch + 1, None)
            log.info("epoch %d/%d trained: loss %.4f", epoch + 1, cfg.epochs, row["loss"])
            if hook is not None:
                hook("epoch", completed=epoch + 1, total=cfg.epochs, loss=row["loss"])
    return load_epochs(out)


def _clear_run(out: Path) -> None:
    """Remove a run folder's checkpoint, epoch records and pending embeddings (a run started
    over must not read them back as its own)."""
    import shutil

    (out / "checkpoint.pt").unlink(missing_ok=True)
    for sub in ("epochs", "embeddings"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for kept in out.glob("embedding_epoch*.npz"):  # a committed run folder's last embedding
        kept.unlink()


def load_epochs(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch records of a Protocol A run folder, in epoch order."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((Path(out) / "epochs").glob("epoch_*.json"))]


def _epoch_json(out: Path, epoch: int) -> Path:
    return out / "epochs" / f"epoch_{epoch:03d}.json"


def _pending_path(out: Path, epoch: int) -> Path:
    return out / "embeddings" / f"epoch_{epoch:03d}.npz"


def _write_pending(path: Path, row: dict[str, Any], cfg: ProtocolAConfig, Z_test: np.ndarray,
                   y_test: np.ndarray, Z_cal: np.ndarray | None, y_cal: np.ndarray | None,
                   n_classes: int) -> None:
    """Save what clustering one epoch needs, so that it can happen in another process or later."""
    from kfree.utils.io import atomic_path

    job = {"row": row, "loss": cfg.loss, "alpha": cfg.alpha, "beta": cfg.beta, "kl": cfg.kl,
           "average_start": cfg.average_start, "seed": cfg.seed, "n_classes": n_classes,
           "keep": bool(cfg.keep_embeddings or row["epoch"] == cfg.epochs)}
    arrays = {"Z_test": Z_test, "y_test": y_test}
    if Z_cal is not None:
        arrays.update(Z_cal=Z_cal, y_cal=y_cal)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, job=np.array(json.dumps(job)), **arrays)


def evaluate_pending(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Cluster one saved epoch embedding and write that epoch's JSON; returns the record.

    The embedding file is removed afterwards unless it is the run's last epoch (kept for figures)
    or ``keep_embeddings`` was set. Writing the JSON is atomic, so a process ended midway leaves
    the embedding in place and the next resume clusters it again.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as d:
        job = json.loads(str(d["job"]))
        Z_test, y_test = d["Z_test"], d["y_test"]
        Z_cal = d["Z_cal"] if "Z_cal" in d.files else None
        y_cal = d["y_cal"] if "y_cal" in d.files else None
    row = job["row"]
    t = time.perf_counter()
    metrics, _ = evaluate_embedding(Z_test, y_test, job["loss"], Z_train=Z_cal, y_train=y_cal,
                                    alpha=job["alpha"], beta=job["beta"], kl=job["kl"],
                                    n_classes=job["n_classes"], seed=job["seed"],
                                    average_start=job["average_start"])
    row.update(metrics)
    row["eval_s"] = round(row.pop("embed_s", 0.0) + time.perf_counter() - t, 1)
    row["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(_epoch_json(path.parent.parent, int(row["epoch"])), row)
    if not job["keep"]:
        path.unlink()
    return row


def _log_scores(row: dict[str, Any]) -> None:
    extra = (f", avg-start multicut ACC {row['multicut_avg_kl']['acc']:.4f}"
             if "multicut_avg_kl" in row else "")
    log.info("epoch %d: multicut ACC %.4f (%d clusters)%s, k-means ACC %.4f", row["epoch"],
             row["multicut"]["acc"], row["multicut"]["n_clusters"], extra, row["kmeans"]["acc"])


def _log_finished(fut: Future) -> None:
    if not fut.cancelled() and fut.exception() is None:
        _log_scores(fut.result())


def _init_worker() -> None:
    # one core per worker: several clusterings run side by side next to the training process
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class _Evaluator:
    """Clusters saved epoch embeddings in this process (``workers=0``) or in a process pool.

    Used as a context manager: leaving it normally waits for every submitted epoch and re-raises
    a worker's error; leaving it by an exception drops the queued ones (their embeddings stay
    on disk for the next resume).
    """

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[Future] = []

    def __enter__(self) -> Self:
        if self.workers > 0:
            import multiprocessing

            # spawn, not fork: the parent may hold a CUDA context
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker)
        return self

    def submit(self, job: Path) -> None:
        if self.pool is None:
            _log_scores(evaluate_pending(job))
            return
        fut = self.pool.submit(evaluate_pending, str(job))
        fut.add_done_callback(_log_finished)
        self.futures.append(fut)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pool is None:
            return
        if exc_type is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            return
        try:
            for fut in self.futures:
                fut.result()
        finally:
            self.pool.shutdown(wait=True)
