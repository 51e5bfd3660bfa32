"""Thread oversubscription benchmark: one small training, with and without kfree's thread limit.

Usage (from the repository root)::

    python -m benchmarks.run_threads              # up to 3 repetitions within a 4-minute budget
    python -m benchmarks.run_threads --reps 5 --budget-s 600

The training is fixed: ``ClusterLearner(TrainConfig(epochs=10, seed=0))`` on the shipped AT&T faces
(400 dlib descriptors, 40 people; :func:`kfree.data.builtin.load_builtin`). Each run is a fresh
subprocess (thread pools start cold, as in ``kfree train``) under one of three settings:

- ``library defaults``: nothing limited (torch, OpenBLAS, OpenMP and numba each take every core);
- ``kfree limit``: the thread scope ``kfree train``/``cluster``/``demo`` run their work in
  (:func:`kfree.utils.threads.limit_threads`: torch 1 thread, BLAS/OpenMP/numba the default
  budget);
- ``all 1 thread``: ``limit_threads(1)``, the same as ``OMP_NUM_THREADS=1``.

Each setting runs alone, then beside a CPU-bound neighbour: a subprocess multiplying 400×400
matrices with numpy in a loop, with numpy's default threads, as another user's job would. The
table gives the median, min and max of the training's wall time and each setting's median as a
multiple of the ``kfree limit`` median of the same condition (ratios, not absolute claims: the
machine is shared and the absolute numbers move with whatever else runs). The learned threshold
of every run is recorded to show the results are identical. Results go to
``results/benchmarks/threads.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
SETTINGS = {"none": "library defaults", "kfree": "kfree limit", "one": "all 1 thread"}
CONDITIONS = {"alone": "alone", "busy": "beside a numpy matmul loop"}

NEIGHBOUR = """
import time, numpy as np
a = np.random.default_rng(0).random((400, 400))
while True:
    a = a @ a
    a /= np.abs(a).max()
"""


def _worker(setting: str, epochs: int) -> None:
    """Run the training once in this process and print one JSON line."""
    import contextlib

    import torch

    from kfree.config import TrainConfig
    from kfree.data.builtin import load_builtin
    from kfree.learner import ClusterLearner
    from kfree.utils.threads import limit_threads

    ds = load_builtin("att_faces", with_images=False)
    from kfree.cli.console import _limit_threads  # what `kfree train` / `cluster` / `demo` use

    scope = {"none": contextlib.nullcontext(None), "kfree": _limit_threads(torch=True), "one": limit_threads(1)}[setting]
    with scope as limits:
        t0 = time.perf_counter()
        learner = ClusterLearner(TrainConfig(epochs=epochs, seed=0)).fit(ds.X, ds.y)
        wall = time.perf_counter() - t0
        torch_threads = torch.get_num_threads()
    print(json.dumps({"wall_s": wall, "threshold": learner.threshold_.value, "torch_threads": torch_threads,
                      "limits": None if limits is None else limits.__dict__}))


def _run_once(setting: str, epochs: int, timeout: float) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "KFREE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "benchmarks.run_threads", "--worker", setting, "--epochs", str(epochs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=Path(__file__).resolve().parents[1], check=False)
    except subprocess.TimeoutExpired:
        return {"wall_s": None, "error": f"over {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"wall_s": None, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
    if not walls:
        return {"median_s": None, "min_s": None, "max_s": None}
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per setting and condition")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60.0, help="cap per training run (s)")
    ap.add_argument("--budget-s", type=float, default=240.0,
                    help="start no further repetition that would end after this many seconds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.epochs)
        return

    from kfree.utils.threads import available_cores

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    runs: dict[str, dict[str, list[dict]]] = {c: {s: [] for s in SETTINGS} for c in CONDITIONS}
    reps_done = 0
    for rep in range(args.reps):
        t_rep = time.perf_counter()
        for cond in CONDITIONS:  # both conditions every repetition: drifts in the load hit both
            neighbour = None
            if cond == "busy":
                neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
                time.sleep(1.0)
            try:
                for setting in SETTINGS:  # interleaved, so drifts in the load hit every setting
                    r = _run_once(setting, args.epochs, args.timeout)
                    runs[cond][setting].append(r)
                    print(f"{cond:5s} {setting:5s} rep {rep + 1}: "
                          + (f"{r['wall_s']:.2f} s" if r.get("wall_s") is not None else r["error"]), flush=True)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
        reps_done += 1
        elapsed, last = time.perf_counter() - t_start, time.perf_counter() - t_rep
        if rep + 1 < args.reps and elapsed + last > args.budget_s:
            print(f"stopping after {reps_done} repetitions: another would pass the {args.budget_s:.0f} s budget",
                  flush=True)
            break
    cells = {c: {s: {"runs": runs[c][s], **_summary(runs[c][s])} for s in SETTINGS} for c in CONDITIONS}

    thresholds = sorted({round(r["threshold"], 9) for c in cells.values() for s in c.values()
                         for r in s["runs"] if "threshold" in r})
    rows = []
    for cond, label in CONDITIONS.items():
        ref = cells[cond]["kfree"]["median_s"]
        for setting, name in SETTINGS.items():
            c = cells[cond][setting]
            ratio = c["median_s"] / ref if c["median_s"] is not None and ref else None
            c["ratio_to_kfree_limit"] = ratio
            rows.append((label, name, c, ratio))
    record = {
        "benchmark": "threads", "started_utc": started, "epochs": args.epochs, "reps": reps_done,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "training": f"ClusterLearner(TrainConfig(epochs={args.epochs}, seed=0)) on att_faces (400 x 128, 40 people)",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "available_cores": available_cores(),
                    "loadavg_before": load_before},
        "identical_results": len(thresholds) == 1, "thresholds": thresholds, "cells": cells,
    }
    lines = [
        "# Thread oversubscription: one small training with and without kfree's limit",
        "",
        f"`python -m benchmarks.run_threads --reps {args.reps} --epochs {args.epochs}` ({started}; "
        f"{reps_done} repetitions; "
        f"{available_cores()} physical cores available, load average before {load_before[0]:.2f}; "
        "a shared machine, so read the ratios, not the seconds).",
        "",
        f"Training: {record['training']}, wall time of `fit`, each run a fresh process. "
        "Neighbour: a numpy 400×400 matmul loop with numpy's default threads.",
        "",
        "| condition | setting | median s | min s | max s | × kfree limit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    fmt = lambda v: "—" if v is None else f"{v:.2f}"
    for label, name, c, ratio in rows:
        lines.append(f"| {label} | {name} | {fmt(c['median_s'])} | {fmt(c['min_s'])} | {fmt(c['max_s'])} | "
                     f"{'—' if ratio is None else f'{ratio:.2f}×'} |")
    lines += [
        "",
        f"Identical results in every run: {'yes' if record['identical_results'] else 'NO'} "
        f"(learned threshold {', '.join(f'{t:.6f}' for t in thresholds)}).",
        "",
        "Settings: *library defaults* = nothing limited; *kfree limit* = "
        "the CLI's scope, `limit_threads(torch_threads=1, numba=True)` (torch 1 thread, "
        "BLAS/OpenMP/numba the budget); *all 1 thread* = `limit_threads(1)` (= `OMP_NUM_THREADS=1`). "
        "*alone* means no neighbour started by the benchmark; other users' jobs may still run "
        "(see the load average).",
        "",
    ]
    from kfree.utils.io import write_json, write_text

    write_json(args.out / "threads.json", record)
    write_text(args.out / "threads.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
