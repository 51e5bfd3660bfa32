"""Train an embedding network with a metric-learning loss on P×K batches.

One loop for every loss: the loss sees ``(embeddings, labels)`` and returns a scalar. Batches
come from P×K sampling, or (``sampler="triplets"``) from explicit noisy triplets for
``TripletLoss(mining="given")``; :func:`make_sampler` checks the pairing. Validation is the
``score_fn`` the caller passes (``ClusterLearner`` scores every candidate clustering rule on its
held-out identities, :meth:`kfree.evaluate.selection.ValidationSet.rules`); the loop keeps no
scorer of its own, which could judge a step otherwise than the estimator judges the result.
Steps are compared by :func:`~kfree.evaluate.selection.score_key`, and with ``select_best`` the
best one's weights are kept.

Checkpointing (``checkpoint_path``) stores model, loss, optimiser, sampler and RNG state after
every epoch through :mod:`kfree.utils.checkpoint` (atomic; read with ``weights_only=True``, so a
checkpoint never runs code), so a run that is stopped resumes exactly where it was. A checkpoint
written under another configuration (any field but ``epochs``) is refused with one line.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..data.samplers import PKSampler, TripletSampler
from ..evaluate.selection import score_key
from ..exceptions import CheckpointError, ConfigError, DataError
from ..losses.base import EmbeddingLoss
from ..threshold import Threshold
from ..utils.checkpoint import load_checkpoint, save_checkpoint
from .distributed import DataParallel, in_session
from .step import Batch, train_steps

log = logging.getLogger(__name__)

Hook = Callable[..., None]


@dataclass
class TrainResult:
    """History of a training run: per-epoch loss, validation scores and the chosen epoch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_step: int | None = None
    steps: int = 0
    stopped_early: bool = False


def _optimizer(model: nn.Module, loss: EmbeddingLoss, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr,
               "weight_decay": cfg.weight_decay}]
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "lr": cfg.lr * loss.param_lr_scale, "weight_decay": 0.0})
    return torch.optim.Adam(groups)


def make_sampler(y_int: np.ndarray, loss: EmbeddingLoss, cfg: TrainConfig) -> PKSampler | TripletSampler:
    """The batch sampler ``cfg`` asks for, checked against the batch layout the loss reads.

    A loss that reads batches as ``(anchor, positive, negative)`` rows (``batch_layout ==
    "triplets"``, i.e. ``TripletLoss(mining="given")``) needs ``sampler="triplets"``, and vice
    versa: mixing them would silently train on meaningless triplets.
    """
    layout = getattr(loss, "batch_layout", "labels")
    if cfg.sampler == "triplets":
        if layout != "triplets":
            raise ConfigError(
                f"sampler='triplets' yields (anchor, positive, negative) rows, which loss {loss.name!r} does not "
                "read; use a triplet loss (triplet-l1, triplet-l2, triplet-l3: ClusterLearner and kfree train read "
                "their rows so themselves, train_embedding with loss_params={'mining': 'given'}), or sampler='pk'"
            )
        per_batch = cfg.triplets_per_batch or max(1, -(-cfg.p * cfg.k // 3))
        return TripletSampler(y_int, per_batch, wrong_positives=cfg.wrong_positives,
                              wrong_negatives=cfg.wrong_negatives, batches_per_epoch=cfg.batches_per_epoch,
                              seed=cfg.seed)
    if layout != "labels":
        raise ConfigError(f"loss {loss.name!r} reads batches laid out as {layout!r}; set sampler='triplets'")
    need = getattr(loss, "min_samples_per_class", 1)
    if cfg.k < need:
        raise ConfigError(
            f"k={cfg.k} samples per identity, but loss {loss.name!r} needs k >= {need}: with fewer, a "
            "batch holds no same-identity pair and the loss has nothing to pull together"
        )
    return PKSampler(y_int, cfg.p, cfg.k, batches_per_epoch=cfg.batches_per_epoch, seed=cfg.seed)


def _score_key(scores: dict[str, Any]) -> tuple[float, float]:
    """:func:`~kfree.evaluate.selection.score_key` of one ``score_fn`` result: its ``val_gap``,
    else ``|val_clusters − val_true|``, else no tie-break."""
    if "val_gap" in scores:
        gap = scores["val_gap"]
    else:
        gap = abs(scores["val_clusters"] - scores["val_true"]) if "val_true" in scores else 0.0
    return score_key(scores["val_nmi"], gap)


ScoreFn = Callable[[nn.Module, EmbeddingLoss], dict[str, Any]]


def _run_setup(model: nn.Module, loss: EmbeddingLoss, Xt: torch.Tensor, yt: torch.Tensor) -> dict[str, Any]:
    """What a checkpoint's state was trained on and with: the data (shape and a SHA-256 of the
    values and labels), the loss and its settings, the head's layers (names and shapes)."""
    import hashlib

    h = hashlib.sha256(memoryview(Xt.numpy()).cast("B"))  # the tensors' own bytes, not a copy
    h.update(memoryview(yt.numpy()).cast("B"))
    return {"rows": int(Xt.shape[0]), "features": int(Xt.shape[1]), "identities": int(yt.max()) + 1,
            "data_sha256": h.hexdigest(), "loss": {"name": type(loss).__name__, **loss.settings()},
            "head": {k: list(v.shape) for k, v in model.state_dict().items()}}


def _describe(saved: dict[str, Any], now: dict[str, Any], keys: list[str]) -> str:
    """How a checkpoint's run differs from this one, in words."""
    words = []
    for k in keys:
        if k in ("rows", "features", "identities"):
            words.append(f"{saved[k]} {k}, this run {now[k]}")
        elif k == "data_sha256":
            if not any(saved[s] != now[s] for s in ("rows", "features", "identities")):
                words.append("other data of the same shape")
        elif k == "loss":
            words.append(f"loss {saved[k]}, this run {now[k]}")
        else:
            words.append("another head (other layers)")
    return "; ".join(dict.fromkeys(words))


@in_session
def train_embedding(
    model: nn.Module,
    loss: EmbeddingLoss,
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    *,
    hook: Hook | None = None,
    checkpoint_path: str | Path | None = None,
    score_fn: ScoreFn | None = None,
) -> TrainResult:
    """Train ``model`` in place; return the history.

    Parameters
    ----------
    X : ndarray of shape (n, in_dim), float32 features.
    y : ndarray of shape (n,), identity labels (any hashable values).
    hook : called as ``hook(step, completed=epoch, total=cfg.epochs, loss=..., **scores)``.
    checkpoint_path : if given, save after each epoch and resume from it when it exists.
    score_fn : ``score_fn(model, loss) -> dict`` with at least ``val_nmi`` (and ideally
        ``val_gap``, or ``val_clusters``/``val_true``, for the tie-break); without it there is no
        validation, and the last step's weights are returned.

    With ``cfg.eval_every_steps`` the model is validated every that many optimisation steps and
    once before the first (step 0: what the untrained head does), each validation is a row of the
    history, and the best row's weights are kept (``cfg.select_best``): NMI first, then
    ``|#clusters − #classes|``, a tie going to the later step. ``cfg.patience`` stops training
    after that many validations without a better score.

    Under ``torchrun`` (several processes) every process trains the same model on its slice of
    each batch and the loss sees the whole batch, so the history and weights are those of one
    process (see :mod:`kfree.train.distributed`); only rank 0 validates, checkpoints and calls
    ``hook``, and every process returns the same weights and history.
    """
    _, y_int = np.unique(np.asarray(y), return_inverse=True)
    n_classes = int(y_int.max()) + 1
    if n_classes < max(2, loss.min_classes_per_batch):
        raise DataError(f"training needs at least 2 identities, got {n_classes}")
    loss.on_num_classes(n_classes, getattr(model, "out_dim", 0))
    implied = loss.implied_threshold()
    if implied is not None and not isinstance(implied, Threshold):  # a new loss's slip, said before training
        raise ConfigError(f"loss {loss.name!r}: implied_threshold() returned {type(implied).__name__} {implied!r}; "
                          "return a kfree.threshold.Threshold(value, distance, source), or None when the loss "
                          "implies no cut")
    sampler = make_sampler(y_int, loss, cfg)
    opt = _optimizer(model, loss, cfg)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.as_tensor(y_int, dtype=torch.long)
    result = TrainResult()
    start_epoch, step, since_best = 0, 0, 0
    best_state: dict[str, Any] | None = None
    best_key: tuple[float, float] | None = None
    stopped = False
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    # everything the saved state depends on; a longer run (more epochs) may resume a shorter one
    resume_config = {k: v for k, v in cfg.to_dict().items() if k != "epochs"}
    par = DataParallel(model, loss)  # one process: the plain loop; under torchrun: DDP
    state = par.on_main(lambda: load_checkpoint(ckpt, expect_config=resume_config)  # weights_only: never runs code
                        if ckpt is not None and ckpt.exists() else None)
    # what the run trains, checked on resume (the config says how to train, not on what data,
    # with which loss settings or which head): another run must not continue this one's state
    data = [int(Xt.shape[0]), int(Xt.shape[1]), n_classes]
    setup = None if ckpt is None else _run_setup(model, loss, Xt, yt)
    if state is not None:
        saved = state.get("setup")
        if saved is None and state.get("data") is not None:  # a checkpoint of an earlier kfree
            saved = {"rows": state["data"][0], "features": state["data"][1], "identities": state["data"][2]}
        diff = [] if saved is None else [k for k in saved if saved[k] != setup.get(k)]
        if diff:
            raise CheckpointError(
                f"{ckpt} was written by another run ({_describe(saved, setup, diff)}): give another checkpoint "
                "path, or delete that checkpoint to start this run over")
        if int(state["epoch"]) > cfg.epochs:
            raise CheckpointError(f"{ckpt} holds {int(state['epoch'])} epochs, more than this run's epochs="
                                  f"{cfg.epochs}: run with epochs >= {int(state['epoch'])}, or give another "
                                  "checkpoint path")
        model.load_state_dict(state["model"])
        loss.load_state_dict(state["loss"])
        opt.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        # fields a checkpoint of an older kfree may still carry (best_score, wall_time_s) are dropped
        known = {f.name for f in dataclasses.fields(TrainResult)}
        result = TrainResult(**{k: v for k, v in state["result"].items() if k in known})
        best_state = state.get("best_state")
        start_epoch = int(state["epoch"])
        step, since_best = int(state.get("step", 0)), int(state.get("since_best", 0))
        best_key = None if state.get("best_key") is None else tuple(state["best_key"])
        stopped = bool(state.get("stopped", False))  # a run that stopped early is finished
        log.info("resumed from %s at epoch %d", ckpt, start_epoch)
    has_val = score_fn is not None
    stepwise = has_val and cfg.eval_every_steps is not None
    log.info("training %s: %s", loss.name, sampler.describe())

    def validate(row: dict[str, Any]) -> None:
        nonlocal best_key, best_state, since_best
        scores = par.on_main(score_fn, model, loss)  # rank 0 scores; every rank keeps the same books
        row.update(scores)
        key = _score_key(scores)
        improved = best_key is None or key > best_key
        since_best = 0 if improved else since_best + 1  # a tie is no improvement: patience runs on
        if improved or key >= best_key:  # (patience needs the best score with or without select_best)
            best_key = key
            if cfg.select_best:
                result.best_epoch = row["epoch"]
                result.best_step = row.get("step")
                best_state = {"model": copy.deepcopy(model.state_dict()),
                              "loss": copy.deepcopy(loss.state_dict())}

    def thr_row(row: dict[str, Any]) -> dict[str, Any]:
        thr = loss.implied_threshold()
        if thr is not None:
            row["threshold"] = thr.value
        return row

    if stepwise and step == 0 and not result.history:
        row0 = thr_row({"epoch": 0, "step": 0, "loss": float("nan")})
        validate(row0)
        result.history.append(row0)
    def batches():
        for idx in sampler:
            ib = torch.as_tensor(idx)
            yield Batch(Xt[ib], (par.labels(yt[ib]),))

    total, count = 0.0, 0  # the running loss of the current epoch
    for epoch in range(start_epoch, start_epoch if stopped else cfg.epochs):
        total, count = 0.0, 0

        def on_step(_: int, value: float, epoch: int = epoch) -> bool:
            nonlocal total, count, step, stopped
            total += value
            count += 1
            step += 1
            if stepwise and step % cfg.eval_every_steps == 0:
                row = thr_row({"epoch": epoch + 1, "step": step, "loss": total / max(count, 1)})
                validate(row)
                result.history.append(row)
                model.train()
                if cfg.patience is not None and since_best >= cfg.patience:
                    stopped = True
            return stopped

        # par.net: the model, or under torchrun the DDP model that embeds this rank's slice of the
        # rows and returns the whole batch's embeddings (gathered with gradient) for the loss
        train_steps(par.net, loss, opt, batches(), on_step=on_step)
        last = epoch + 1 == cfg.epochs
        if not stepwise:
            row = thr_row({"epoch": epoch + 1, "loss": total / max(count, 1)})
            if has_val and ((epoch + 1) % cfg.eval_every == 0 or last):
                validate(row)
                if cfg.patience is not None and since_best >= cfg.patience:
                    stopped = True
            result.history.append(row)
        if hook is not None and par.ctx.is_main:
            shown = result.history[-1] if result.history else {}
            # the latest validation scores with the rule they are of (a contributor trial read a
            # recalibrated cut's NMI beside the loss's own threshold as that threshold's), and this
            # epoch's own mean loss (the latest row's was that of an earlier epoch, or NaN before the
            # first: a notebook trial)
            scores = {k: v for k, v in shown.items()
                      if k not in ("epoch", "step") and (isinstance(v, (int, float)) or k == "val_rule")}
            if count:
                scores["loss"] = total / count
            hook("train", completed=epoch + 1, total=cfg.epochs, stopped_early=stopped, steps=step, **scores)
        if ckpt is not None and par.ctx.is_main:
            save_checkpoint(ckpt, {"model": model.state_dict(), "loss": loss.state_dict(),
                                   "optimizer": opt.state_dict(), "sampler": sampler.get_state(),
                                   "torch_rng": torch.get_rng_state(), "result": result, "best_state": best_state,
                                   "epoch": epoch + 1, "step": step, "since_best": since_best,
                                   "best_key": None if best_key is None else list(best_key),
                                   "stopped": stopped, "data": data, "setup": setup},
                            config=resume_config)
        if stopped:
            log.info("early stop after %d steps: no better validation score in %d validations", step, cfg.patience)
            break
    last_row = result.history[-1] if result.history else {}
    if stepwise and not stopped and step > 0 and last_row.get("step") != step:
        # the last steps since the previous validation are validated too: the final weights are a
        # candidate (a short run, under eval_every_steps steps, could otherwise only keep step 0)
        row = thr_row({"epoch": cfg.epochs, "step": step, "loss": total / count if count else float("nan")})
        validate(row)
        result.history.append(row)
    result.stopped_early = stopped
    result.steps = step
    if cfg.select_best and best_state is not None:
        model.load_state_dict(best_state["model"])
        loss.load_state_dict(best_state["loss"])
    par.broadcast_state(model)  # every rank returns rank 0's weights, bit for bit
    par.broadcast_state(loss)
    if result.best_epoch is None:
        result.best_epoch = cfg.epochs
    model.eval()
    return result
