"""Training runs compared between one process and ``torchrun`` processes (tests/train/test_distributed.py).

Run as a script under torchrun it trains every case in one process group and saves, per rank,
each case's history and final weights to ``OUT_DIR/rank<r>.pt``, then runs ``kfree train`` on
``OUT_DIR/d.npz`` (the CLI under torchrun: rank 0 alone reports and writes ``two.kfree``). The
test imports :func:`run_cases` and :func:`cli_train` to do the same in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from kfree import registry
from kfree.config import TrainConfig
from kfree.data.synthetic import sphere_blobs
from kfree.embed.models import MLPEmbedder
from kfree.train.trainer import train_embedding

#: name -> (loss, loss params, config changes, with validation?)
#: - per-step losses (one batch per epoch, so each history row is one step) for a loss with a
#:   learned parameter (BCL's b), one with class weights (softmax) and a triplet loss, on a batch
#:   of 5x3 = 15 rows that 2 processes split 8 + 7;
#: - validation every step with early stopping and best-step selection (BCL).
CASES: dict[str, tuple[str, dict, dict, bool]] = {
    "bcl": ("bcl", {}, {"p": 5, "k": 3, "batches_per_epoch": 1, "epochs": 25}, False),
    "softmax": ("softmax", {}, {"p": 4, "k": 4, "batches_per_epoch": 1, "epochs": 15}, False),
    "triplet": ("triplet", {}, {"p": 4, "k": 3, "batches_per_epoch": 1, "epochs": 15}, False),
    "bcl-val": ("bcl", {}, {"p": 4, "k": 4, "batches_per_epoch": 4, "epochs": 10, "eval_every_steps": 2,
                            "patience": 5, "lr": 3e-2}, True),
    "bcl-resumed": ("bcl", {}, {"p": 4, "k": 3, "batches_per_epoch": 2, "epochs": 6, "eval_every_steps": 1}, True),
}


def score_on(X_val: np.ndarray, y_val: np.ndarray):
    """A ``score_fn`` for :func:`train_embedding`: validation as ``ClusterLearner`` does it (every
    candidate rule of the embedding scored on the held-out identities; the best one's score)."""
    from kfree.embed.encode import encode
    from kfree.evaluate.selection import ValidationSet, best_rule

    vset = ValidationSet(y_val, linkages=("complete",))

    def score(model: torch.nn.Module, loss) -> dict:
        best = best_rule(vset.rules(encode(model, X_val), features="model", learned=loss.implied_threshold()))
        return {"val_nmi": best.val_nmi, "val_clusters": best.val_clusters, "val_true": best.val_true,
                "val_gap": best.extra["val_gap"]}

    return score


def fit_learner() -> dict:
    """What a ClusterLearner fit (validation, rule selection against the raw features) ends with."""
    from kfree.learner import ClusterLearner

    X, y = sphere_blobs(10, 8, 12, spread=0.4, seed=4)
    learner = ClusterLearner(TrainConfig(dims=(8,), epochs=3, p=4, k=3, eval_every_steps=2, seed=0)).fit(X, y)
    return {"summary": learner.summary(), "threshold": learner.threshold_.value,
            "history": [row["loss"] for row in learner.history_], "best_step": learner.best_step_,
            "distributed": learner.provenance_.get("distributed"),
            "labels": learner.cluster(X).tolist(),
            "model": {k: v.detach().clone() for k, v in learner.model_.state_dict().items()}}


class Chunked(torch.nn.Module):
    """``inner`` applied to the contiguous row slices that ``chunks`` ranks embed, concatenated:
    one process doing the arithmetic of ``chunks`` DDP processes (same matmul shapes and sums)."""

    def __init__(self, inner: torch.nn.Module, chunks: int) -> None:
        super().__init__()
        self.inner, self.chunks = inner, chunks
        self.out_dim = inner.out_dim  # what the trainer sizes softmax class weights by

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kfree.train.distributed import row_counts

        return torch.cat([self.inner(c) for c in x.split(row_counts(x.shape[0], self.chunks))])  # (n, d)


def run_cases(ckpt_dir: Path, chunks: int = 1) -> dict[str, dict]:
    """Train every case from the same seeds; return its history and final model/loss weights.

    ``chunks > 1`` embeds each batch in that many row slices (:class:`Chunked`), in one process.

    The last case ("bcl-resumed") trains 3 epochs with a checkpoint in ``ckpt_dir``, then resumes
    it to 6 epochs."""
    torch.set_num_threads(1)
    X, y = sphere_blobs(10, 8, 12, spread=0.4, seed=0)  # (80, 12), 10 identities
    Xv, yv = sphere_blobs(4, 6, 12, spread=0.6, seed=1)  # "bcl-val": best at step 2, stops at step 12
    out: dict[str, dict] = {}
    for name, (loss_name, params, changes, val) in CASES.items():
        torch.manual_seed(0)
        model = MLPEmbedder(12, (16, 8))
        loss = registry.get("loss", loss_name, **params)
        cfg = TrainConfig(loss=loss_name, dims=(16, 8), lr=1e-2, seed=3).replace(**changes)
        kw = {"score_fn": score_on(Xv, yv)} if val else {}
        net = Chunked(model, chunks) if chunks > 1 else model
        if name == "bcl-resumed":
            kw["checkpoint_path"] = ckpt_dir / "ckpt.pt"
            train_embedding(net, loss, X, y, cfg.replace(epochs=3), **kw)
        result = train_embedding(net, loss, X, y, cfg, **kw)
        out[name] = {
            "history": result.history, "steps": result.steps, "best_step": result.best_step,
            "stopped_early": result.stopped_early,
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "loss": {k: v.detach().clone() for k, v in loss.state_dict().items()},
        }
    return out


def one_step_gradients() -> dict[str, dict]:
    """Loss and gradients of one backward pass on a 15-row batch (2 processes: 8 + 7 rows each).

    Checked directly because Adam, being invariant to the scale of the gradient, would hide a
    gradient off by the number of processes from the loss curves.
    """
    from kfree.train.distributed import DataParallel

    torch.set_num_threads(1)
    X, y = sphere_blobs(5, 4, 12, spread=0.4, seed=2)
    out: dict[str, dict] = {}
    for loss_name in ("bcl", "softmax"):
        torch.manual_seed(0)
        model = MLPEmbedder(12, (16, 8))
        loss = registry.get("loss", loss_name)
        loss.on_num_classes(5, model.out_dim)
        par = DataParallel(model, loss)
        rows = torch.as_tensor(X[:15])  # (15, 12)
        value = loss(par.net(rows), par.labels(torch.as_tensor(y[:15], dtype=torch.long)))
        value.backward()
        out[loss_name] = {"value": float(value.detach()),
                          "model": {n: p.grad.clone() for n, p in model.named_parameters()},
                          "loss": {n: p.grad.clone() for n, p in loss.named_parameters() if p.grad is not None}}
    return out


def rank0_error() -> dict[str, str]:
    """What each rank raises when validation (which only rank 0 runs) fails."""
    torch.manual_seed(0)
    X, y = sphere_blobs(4, 4, 12, seed=5)

    def failing(model, loss):
        raise ValueError("validation broke")

    try:
        train_embedding(MLPEmbedder(12, (8,)), registry.get("loss", "bcl"), X, y,
                        TrainConfig(epochs=2, p=2, k=2, eval_every_steps=1), score_fn=failing)
    except Exception as e:
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": "none", "message": ""}


#: ``kfree train`` options of the CLI case (the data: ``OUT_DIR/d.npz`` from :func:`cli_data`)
CLI_ARGS = ["--epochs", "4", "--p", "5", "--k", "3", "--dims", "16", "--eval-every-steps", "3",
            "--no-progress", "--seed", "1"]


def cli_data(out_dir: Path) -> Path:
    X, y = sphere_blobs(12, 8, dim=12, spread=0.3, seed=0)
    np.savez(out_dir / "d.npz", X=X, y=y)
    return out_dir / "d.npz"


def cli_train(data: Path, out: Path) -> int:
    """``kfree train DATA --out OUT CLI_ARGS`` in this process, as the console script runs it
    (under torchrun its fit joins the process group an earlier session of the process started, or
    starts it); the exit code."""
    from kfree.cli.app import app

    try:
        app(["train", str(data), "--out", str(out), *CLI_ARGS], prog_name="kfree")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main(out_dir: str) -> None:
    from kfree.train.distributed import session

    with session() as ctx:  # one group for every case: train_embedding uses it as it is
        results = run_cases(Path(out_dir))
        results["_gradients"] = one_step_gradients()
        results["_learner"] = fit_learner()
        results["_error"] = rank0_error()
        results["_world"] = {"rank": ctx.rank, "world_size": ctx.world_size, "backend": ctx.backend}
    torch.save(results, Path(out_dir) / f"rank{ctx.rank}.pt")
    # then the command line in the same process: a second session, which must reuse the group
    # the first one started (starting a default group twice in a process hangs in torch)
    code = cli_train(Path(out_dir) / "d.npz", Path(out_dir) / "two.kfree")
    import gc

    gc.freeze()  # as the kfree command does at exit: no last collections over torch's objects
    sys.exit(code)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1])
