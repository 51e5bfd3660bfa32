"""One process vs ``torchrun`` data parallelism: the same training, its loss curve and step time.

Usage (from the repository root)::

    python -m benchmarks.run_ddp                 # 2 head sizes, 60 steps each
    python -m benchmarks.run_ddp --steps 200 --nproc 2

Each head size trains BCL for ``--steps`` steps (one P×K = 32×4 batch per epoch, no validation)
three ways, each in fresh processes: one process with 1 torch thread, one process with ``nproc``
torch threads (the same cores, used by intra-op threads instead of processes), and ``nproc``
processes of 1 thread each under ``torchrun --standalone`` (gloo). It records the per-step loss
curves, the largest relative difference of the torchrun curve from the 1-process curve (and, as
the yardstick for rounding, that of the 2-thread curve: other blocking, same arithmetic), and the
median step time (steps after the first 5). Results go to ``results/benchmarks/ddp.json``; the
absolute times move with whatever else runs on the machine, the loss difference does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
#: name -> (input dim, MLP layer sizes, identities, samples per identity)
HEADS = {"small (128 -> 256,64)": (128, (256, 64), 64, 16), "large (512 -> 1024,512,128)": (512, (1024, 512, 128), 64, 16)}


def _worker(head: str, steps: int, threads: int, out: Path, chunks: int = 1) -> None:
    import torch
    from torch import nn

    from kfree import registry
    from kfree.config import TrainConfig
    from kfree.data.synthetic import sphere_blobs
    from kfree.embed.models import MLPEmbedder
    from kfree.train.distributed import session
    from kfree.train.trainer import train_embedding

    torch.set_num_threads(threads)
    in_dim, dims, n_ids, per_id = HEADS[head]
    X, y = sphere_blobs(n_ids, per_id, in_dim, spread=0.4, seed=0)
    cfg = TrainConfig(loss="bcl", dims=dims, epochs=steps, p=32, k=4, batches_per_epoch=1, lr=1e-3, seed=0)
    stamps: list[float] = []
    with session() as ctx:
        torch.manual_seed(0)
        model: nn.Module = MLPEmbedder(in_dim, dims)
        if chunks > 1:
            model = _chunked(model, chunks)
        t0 = time.perf_counter()
        result = train_embedding(model, registry.get("loss", "bcl"), X, y, cfg,
                                 hook=lambda *a, **k: stamps.append(time.perf_counter()))
    if ctx.is_main:
        times = [b - a for a, b in zip([t0, *stamps[:-1]], stamps)]  # one step per epoch
        out.write_text(json.dumps({"losses": [row["loss"] for row in result.history], "step_s": times,
                                   "world_size": ctx.world_size}))


def _run(head: str, steps: int, threads: int, nproc: int, tmp: Path, chunks: int = 1) -> dict:
    out = tmp / f"{abs(hash((head, threads, nproc, chunks)))}.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    worker = [str(Path(__file__).resolve()), "--worker", head, "--steps", str(steps), "--threads", str(threads),
              "--out", str(out), "--chunks", str(chunks)]
    if nproc == 1:
        cmd = [sys.executable, *worker]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *worker]
    subprocess.run(cmd, check=True, env=env)
    data = json.loads(out.read_text())
    data["median_step_ms"] = 1e3 * statistics.median(data["step_s"][5:])
    return data


def _chunked(model, chunks: int):
    """``model`` applied to the rows in the contiguous slices ``chunks`` ranks would embed."""
    import torch
    from torch import nn

    from kfree.train.distributed import row_counts

    class Chunked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.inner(c) for c in x.split(row_counts(x.shape[0], chunks))])  # (n, d)

    return Chunked()


def _max_rel(a: list[float], b: list[float]) -> float:
    return max(abs(y - x) / max(abs(x), 1e-12) for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--chunks", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        _worker(args.worker, args.steps, args.threads, args.out, args.chunks)
        return
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for head in HEADS:
            one = _run(head, args.steps, 1, 1, Path(d))
            threaded = _run(head, args.steps, args.nproc, 1, Path(d))
            ddp = _run(head, args.steps, 1, args.nproc, Path(d))
            chunked = _run(head, args.steps, 1, 1, Path(d), chunks=args.nproc)
            row = {"head": head, "steps": args.steps, "nproc": args.nproc,
                   # the control: one process with more threads only rounds differently
                   "max_rel_loss_diff_ddp": _max_rel(one["losses"], ddp["losses"]),
                   f"max_rel_loss_diff_{args.nproc}threads": _max_rel(one["losses"], threaded["losses"]),
                   # one process embedding the batch in the slices the ranks embed: DDP's arithmetic
                   "max_rel_loss_diff_ddp_vs_1proc_chunked": _max_rel(chunked["losses"], ddp["losses"]),
                   "max_rel_loss_diff_1proc_chunked": _max_rel(one["losses"], chunked["losses"]),
                   "rel_loss_diff_ddp_per_step": [_max_rel([a], [b]) for a, b in zip(one["losses"], ddp["losses"])],
                   "step_ms_1proc_1thread": round(one["median_step_ms"], 2),
                   f"step_ms_1proc_{args.nproc}threads": round(threaded["median_step_ms"], 2),
                   f"step_ms_{args.nproc}proc_1thread": round(ddp["median_step_ms"], 2)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("per_step")}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    (RESULTS / "ddp.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
