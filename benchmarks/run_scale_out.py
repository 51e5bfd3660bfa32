"""Out-of-core and scale-out benchmark: exact threshold HAC on Dask from a memory-mapped .npy.

Usage (from the repository root)::

    python -m benchmarks.run_scale_out --sizes 1000000 --workers 1,2 --check-local
    python -m benchmarks.run_scale_out --sizes 3000000,10000000 --workers 2
    python -m benchmarks.run_scale_out --report          # table, model and plot from the JSON

Data (seeded, written chunk by chunk into ``<data-dir>/scale_out_<n>.npy``, float16, never
committed): unit-norm 64-d embeddings ``x = normalise(c + N(0, r²/64 · I))`` with r = 0.3 and the
cut at d² = 0.6, as family (b) of ``run_cluster.py``, rows in random order. Cluster sizes:
Zipf(1.1), capped at 5,000, with K = min(n / 30, 33,333) clusters — at 1M exactly family (b)'s
sizes; above 1M the number of clusters stays at 33,333 and clusters grow (mean 300 at 10M).
Why: the exact cell pass costs about n × K / 2 distance evaluations, so with K ∝ n (family (b)
as defined) 10M points would cost ~100× the 1M pass — out of reach of this 2-core machine in
the time available — while a fixed set of identities with more samples each (more photos or
utterances per known person) scales linearly; the cap keeps every cluster's exact agglomeration
(dense, s² / 2 pairs) small.

Each run clusters the memmap with ``dask_threshold_hac`` on a fresh ``LocalCluster`` of N
single-threaded worker processes, with progress on stderr, and records wall time, per-stage
times, the summed compute time of all Dask tasks (task stream) and the peak RSS of all processes
together (driver + nanny + workers, sampled every 0.5 s with psutil). ``--check-local`` also runs
the single-machine path (``ThresholdAgglomerative(backend="local")``, in a subprocess) on the same
values as float32 and compares the partitions. Results are merged into
``results/benchmarks/scale_out.json`` (a finished (n, N) pair is skipped unless ``--force``: an
interrupted campaign resumes), and ``--report`` writes ``scale_out.md`` and ``scale_out.png``
with the model ``T(N) = S + W / N`` fitted on the measured 1- and 2-worker runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._provenance import commit

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
R, TAU, DIM, CAP, K_MAX = 0.3, 0.6, 64, 5000, 33_333
CHUNK = 250_000


def n_clusters(n: int) -> int:
    return max(1, min(n // 30, K_MAX))


def generate(path: Path, n: int, seed: int = 0) -> np.ndarray:
    """Write the data set to ``path`` (float16 memmap) chunk by chunk; return the true labels."""
    from benchmarks.run_cluster import zipf_sizes

    rng = np.random.default_rng(seed)
    k = n_clusters(n)
    sizes = zipf_sizes(n, k, 1.1, CAP, rng)
    centres = rng.standard_normal((k, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), sizes)
    rng.shuffle(y)
    done = path.with_suffix(".done")
    if path.exists() and done.exists() and json.loads(done.read_text()) == {"n": n, "seed": seed}:
        return y
    done.unlink(missing_ok=True)
    M = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, DIM))
    for i, a in enumerate(range(0, n, CHUNK)):
        b = min(n, a + CHUNK)
        g = np.random.default_rng([seed, i])
        X = centres[y[a:b]] + g.standard_normal((b - a, DIM)) * (R / np.sqrt(DIM))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        M[a:b] = X.astype(np.float16)
    M.flush()
    del M
    done.write_text(json.dumps({"n": n, "seed": seed}))
    return y


class PeakRSS:
    """Peak of the summed RSS of this process and all its descendants (sampled)."""

    def __init__(self, every: float = 0.5) -> None:
        import psutil

        self.proc, self.every, self.peak, self.cpu = psutil.Process(), every, 0, {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                c = p.cpu_times()
                self.cpu[p.pid] = c.user + c.system
            except psutil.Error:
                pass
        return total

    @property
    def cpu_s(self) -> float:
        """CPU seconds of all the processes seen (last sample each), less those at the start."""
        return sum(self.cpu.values()) - self.cpu0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self):
        self.base = self._sample()
        self.cpu0 = sum(self.cpu.values())
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def hook(step, completed, total):
    if completed in (0, total) or completed % max(1, total // 10) == 0:
        print(f"  [{time.strftime('%H:%M:%S')}] {step}: {completed}/{total}", file=sys.stderr,
              flush=True)


def run_dask(path: Path, workers: int) -> tuple[dict, np.ndarray]:
    from distributed import Client, LocalCluster, get_task_stream

    from kfree.cluster.distributed import dask_threshold_hac

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=0)
        client = Client(cluster)
        client.run(_warm)  # numba kernels and imports, once per worker, outside the timing
        _warm()
        start = time.perf_counter() - t0
        rss._sample()
        rss.cpu0 = sum(rss.cpu.values())  # CPU from here on: the clustering only
        with get_task_stream(client=client) as ts:
            t1, c1 = time.perf_counter(), time.process_time()
            res = dask_threshold_hac(str(path), TAU, client=client, hook=hook)
            labels = res.labels()
            wall, drv_cpu = time.perf_counter() - t1, time.process_time() - c1
        rss._sample()
        cpu = rss.cpu_s
        per: dict[str, list[float]] = {}
        for t in ts.data:
            dt = sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
            per.setdefault(_prefix(t["key"]), []).append(dt)
        busy = sum(sum(v) for v in per.values())
        tasks = {k: dict(count=len(v), sum_s=float(np.sum(v)), max_s=float(np.max(v)))
                 for k, v in per.items()}
        client.close()
        cluster.close()
    out = dict(res.stats, wall_s=wall, cluster_start_s=start, task_compute_s=busy, cpu_s=cpu,
               tasks=tasks,
               driver_cpu_s=drv_cpu, peak_rss_gib=rss.peak / 2**30, n_clusters=int(labels.max()) + 1)
    out.pop("wall")
    return out, labels


def _prefix(key) -> str:
    """The function name of a Dask task key (``_query_block-<hash>`` -> ``_query_block``)."""
    k = key[0] if isinstance(key, tuple) else str(key)
    return k.split("-", 1)[0]


def _warm() -> None:
    from kfree.cluster import ThresholdAgglomerative

    X = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    ThresholdAgglomerative(4.0, algorithm="sparse").fit(X)


def local_child(path: str, out: str) -> None:
    import resource

    from kfree.cluster import ThresholdAgglomerative

    X = np.load(path, mmap_mode="r").astype(np.float32)
    _warm()
    t0 = time.perf_counter()
    lab = ThresholdAgglomerative(TAU).fit(X).labels_
    wall = time.perf_counter() - t0
    np.savez(out, labels=lab, wall=wall,
             peak_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_local(path: Path) -> tuple[dict, np.ndarray]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.npz")
        subprocess.run([sys.executable, "-m", "benchmarks.run_scale_out", "--local-child",
                        str(path), out], check=True, cwd=Path(__file__).resolve().parents[1])
        z = np.load(out)
        return dict(wall_s=float(z["wall"]), peak_rss_gib=float(z["peak_kb"]) / 2**20), z["labels"]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return pairs.shape[0] == np.unique(a).shape[0] == np.unique(b).shape[0]


def load() -> dict:
    f = RESULTS / "scale_out.json"
    return json.loads(f.read_text()) if f.exists() else {"runs": {}, "local": {}}


def save(res: dict) -> None:
    """Merge ``res`` into the JSON on disk (another campaign may have written it meanwhile)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    disk = load()
    for key in ("runs", "local"):
        disk[key].update(res[key])
        res[key] = disk[key]
    (RESULTS / "scale_out.json").write_text(json.dumps(res, indent=1, sort_keys=True))


#: Dask task kinds (function names) per stage; stages are separated by barriers on the driver.
#: A renamed task keeps its old name here too: the stored runs recorded it (``_build_block_from``
#: is ``_build_block`` before 5523dc4)
STAGES = {
    "read": ("_load_npy_rows", "_chunk_stats", "lambda"), "route": ("_route_chunk",),
    "blocks": ("_build_block", "_build_block_from", "_block_summary"), "candidates": ("_query_block",),
    "joins": ("_join_block",), "agglomerate": ("_route_home", "_agglomerate"),
}
NS = (1, 2, 4, 8, 16, 32)
STAGE_ORDER = ("read", "blocks", "candidates", "joins", "agglomerate")


def wall_fit(res: dict) -> dict:
    """T(N) = S + W / N per size through the measured N = 1 and N = 2 walls (two points, two
    unknowns; on a shared machine the walls include waiting for the CPU)."""
    out = {}
    for n in sorted({r["n_samples"] for r in res["runs"].values()}):
        t = {r["workers"]: r["wall_s"] for r in res["runs"].values() if r["n_samples"] == n}
        if 1 in t and 2 in t:
            W = 2 * (t[1] - t[2])
            out[str(n)] = dict(S=t[1] - W, W=W)
    return out


def task_model(r: dict) -> dict:
    """T(N) from one run's measured costs, as if every worker had a core of its own.

    Serial part S: the driver's CPU seconds (sampling, k-means of the blocks, the component
    union-find, the labels; the in-process scheduler). Parallel part per stage: the tasks'
    compute times scaled to CPU seconds (worker CPU / summed task time: the share of a core the
    tasks got here), run on N workers: ``max(longest task, total / N)``. Stages are summed
    (each ends at a barrier). With only worker and driver CPU totals (older runs): S + W / N.
    """
    S = r["driver_cpu_s"]
    W = r["cpu_s"] - S
    if "tasks" not in r:
        return {N: S + W / N for N in NS} | {"S": S, "W": W, "kind": "CPU totals"}
    share = min(1.0, W / max(r["task_compute_s"], 1e-9))
    out = {"S": S, "W": W, "share": share, "kind": "per-task costs"}
    for N in NS:
        t = S
        for kinds in STAGES.values():
            tot = sum(r["tasks"][k]["sum_s"] for k in kinds if k in r["tasks"]) * share
            mx = max([r["tasks"][k]["max_s"] for k in kinds if k in r["tasks"]] or [0.0]) * share
            t += max(mx, tot / N)
        out[N] = t
    return out


def report(res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(res["runs"].values(), key=lambda r: (r["n_samples"], r["workers"]))
    fit = wall_fit(res)
    lines = [
        "# Exact threshold HAC on Dask, out of core (`benchmarks/run_scale_out.py`)",
        "",
        f"Machine: {res.get('machine', '?')}. Data: float16 memmap, 64-d unit-norm, r = 0.3, cut "
        f"d² = {TAU}, K = min(n/30, 33,333) clusters (Zipf 1.1, cap 5,000). Every number in the "
        "first table is measured: wall = the clustering call (cluster start-up and numba warm-up "
        "excluded), CPU = CPU seconds of the driver and all worker processes during it, tasks = "
        "summed wall time inside all Dask tasks, load avg = the machine's 1-minute load when the "
        "run started (2 cores, shared with other users; runs niced), peak RSS = sampled sum over "
        "the driver and all worker processes.",
        "",
        "| n | workers | wall (s) | CPU (s) | tasks (s) | load avg | peak RSS (GiB) | blocks | "
        "cells (virtual) | components | candidates | shipped | clusters | stages, wall (s) |",
        "| --- " * 14 + "|",
    ]
    for r in runs:
        st = ", ".join(f"{k} {r['times'][k]:.0f}" for k in STAGE_ORDER if k in r["times"])
        lines.append(
            f"| {r['n_samples']:,} | {r['workers']} | {r['wall_s']:.1f} | "
            f"{r.get('cpu_s', float('nan')):.0f} | {r['task_compute_s']:.1f} | "
            f"{r['load_avg']:.1f} | {r['peak_rss_gib']:.2f} | {r['n_blocks']} | "
            f"{r['n_cells']:,} ({r.get('n_virtual_cells', r['n_cells']):,}) | "
            f"{r['n_components']:,} | {r['candidates']:,} | "
            f"{r['shipped']:,} | {r['n_clusters']:,} | {st} |")
    if res["local"]:
        lines += ["", "Single-machine path on the same values (float32), same machine:", "",
                  "| n | local wall (s) | local peak RSS (GiB) | same partition as dask | "
                  "NMI vs truth |", "| --- | --- | --- | --- | --- |"]
        for n, r in sorted(res["local"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {int(n):,} | {r['wall_s']:.1f} | {r['peak_rss_gib']:.2f} | "
                         f"{r['same_partition']} | {r.get('nmi', float('nan')):.4f} |")
    if fit:
        lines += ["", "Two-point fit T(N) = S + W / N through the measured 1- and 2-worker walls "
                  "(S: serial part, W: parallel work; the walls include waiting for the shared "
                  "CPUs). N > 2 **extrapolated**:", "",
                  "| n | S (s) | W (s) | " + " | ".join(f"N={k}" for k in NS) + " |",
                  "| --- " * (3 + len(NS)) + "|"]
        for n, m in fit.items():
            lines.append(f"| {int(n):,} | {m['S']:.1f} | {m['W']:.1f} | " + " | ".join(
                f"{m['S'] + m['W'] / k:.1f}" for k in NS) + " |")
    lines += ["", "Model from the measured costs of each run (`task_model`: serial = driver CPU s; "
              "per stage max(longest task, total / N) in CPU s, every worker on a core of its "
              "own). Only the run's own N is measured (its wall is in the first table); every "
              "other column is **extrapolated**:", "",
              "| n | run's N | model from | S (s) | W (s) | " + " | ".join(f"N={k}" for k in NS)
              + " |", "| --- " * (5 + len(NS)) + "|"]
    for r in runs:
        m = task_model(r)
        lines.append(f"| {r['n_samples']:,} | {r['workers']} | {m['kind']} | {m['S']:.0f} | "
                     f"{m['W']:.0f} | " + " | ".join(f"{m[k]:.0f}" for k in NS) + " |")
    lines += ["", *res.get("notes", [])]
    (RESULTS / "scale_out.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in sorted({r["n_samples"] for r in runs}):
        pts = [(r["workers"], r["wall_s"]) for r in runs if r["n_samples"] == n]
        ax.plot(*zip(*sorted(pts), strict=True), "o-", label=f"n={n:,} measured")
        last = [r for r in runs if r["n_samples"] == n][-1]
        m = task_model(last)
        ax.plot(NS, [m[k] for k in NS], "--", alpha=0.6,
                label=f"n={n:,} model ({m['kind']}, {last['workers']}-worker run)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(NS, [str(k) for k in NS])  # worker counts as numbers, not powers of two
    ax.set_yscale("log")
    ax.set_xlabel("Dask workers (1 thread each)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Exact threshold HAC on Dask (dashed: model; N > 2 extrapolated)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "scale_out.png", dpi=120)


def main() -> None:
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--data-dir", default="/tmp/kfree_scale_out")
    ap.add_argument("--check-local", action="store_true",
                    help="also run the single-machine path and compare the partitions")
    ap.add_argument("--force", action="store_true", help="rerun finished (n, workers) pairs")
    ap.add_argument("--report", action="store_true", help="only write the table and the plot")
    ap.add_argument("--results", default=str(RESULTS), help="where the JSON, table and plot go")
    ap.add_argument("--local-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    RESULTS = Path(a.results)
    if a.local_child:
        local_child(*a.local_child)
        return
    res = load()
    res["machine"] = (f"{platform.node() and 'project machine'}, {os.cpu_count()} CPU cores, "
                      f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    if not a.report:
        from sklearn.metrics import normalized_mutual_info_score as nmi

        Path(a.data_dir).mkdir(parents=True, exist_ok=True)
        for n in [int(s) for s in a.sizes.split(",")]:
            path = Path(a.data_dir) / f"scale_out_{n}.npy"
            t0 = time.perf_counter()
            y = generate(path, n)
            print(f"n={n:,}: data {path} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            labels = None
            for w in [int(s) for s in a.workers.split(",")]:
                key = f"{n}/{w}"
                if key in res["runs"] and not a.force:
                    print(f"  {key}: done already (--force to rerun)", file=sys.stderr)
                    continue
                print(f"  {key}: started {time.strftime('%H:%M:%S')}, load "
                      f"{os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
                r, labels = run_dask(path, w)
                # the labels stay beside the data (never committed) for later checks
                np.save(path.with_name(f"{path.stem}.labels_{w}.npy"), labels)
                r.update(workers=w, load_avg=os.getloadavg()[0],
                         date=time.strftime("%Y-%m-%d %H:%M"), commit=commit(),
                         nmi=float(nmi(y, labels)))
                res["runs"][key] = r
                save(res)
                print(json.dumps(r), file=sys.stderr, flush=True)
            if a.check_local and (str(n) not in res["local"] or a.force):
                if labels is None:
                    _, labels = run_dask(path, 2)
                loc, ll = run_local(path)
                loc.update(same_partition=bool(same_partition(labels, ll)),
                           identical_labels=bool(np.array_equal(labels, ll)),
                           nmi=float(nmi(y, ll)), n_clusters=int(ll.max()) + 1)
                res["local"][str(n)] = loc
                save(res)
                print(json.dumps(loc), file=sys.stderr, flush=True)
    report(res)


if __name__ == "__main__":
    main()
