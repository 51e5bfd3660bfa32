"""Threshold clustering benchmark: kfree's exact threshold HAC vs reference implementations.

Usage (from the repository root)::

    python -m benchmarks.run_cluster --family a --sizes 2000,5000,10000,20000,40000
    python -m benchmarks.run_cluster --family b --sizes 100000,300000 --methods kfree,knn-cc

Data (seeded, generated here): ``x = normalise(c + N(0, r²/64 · I))`` with centres uniform on
the unit sphere in 64-d, K = n/30 clusters with Zipf(1.1) sizes.
(a) overlapping: r = 0.8, cut at d² = 1.4; (b) well separated: r = 0.3, sizes capped at 5,000,
cut at d² = 0.6.

Every method runs in its own subprocess (so its peak memory, ``ru_maxrss``, is its own) under a
wall-clock cap (default 120 s) and an address-space cap (default 16 GiB). A method that fails,
times out or runs out of memory at some n is not run at larger n and is marked "out of reach"
with the reason. Results go to ``results/benchmarks/cluster_family_<f>.{json,md}`` (merged with
earlier runs of other sizes/methods).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._provenance import run_provenance

FAMILIES = {
    "a": dict(r=0.8, tau=1.4, cap=None),
    "b": dict(r=0.3, tau=0.6, cap=5000),
}
METHODS = ("kfree", "scipy", "fastcluster", "sklearn", "hdbscan", "finch", "knn-cc")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def zipf_sizes(n: int, k: int, s: float, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """k cluster sizes summing to n, proportional to rank^-s, each >= 1 and <= cap."""
    w = 1.0 / np.arange(1, k + 1) ** s
    sizes = np.maximum(1, np.floor(n * w / w.sum())).astype(np.int64)
    if cap is not None:
        sizes = np.minimum(sizes, cap)
    # hand out the remainder to the clusters below the cap, smallest first (keeps the tail)
    rest = n - int(sizes.sum())
    order = np.argsort(sizes, kind="stable")
    i = 0
    while rest > 0:
        j = order[i % k]
        if cap is None or sizes[j] < cap:
            sizes[j] += 1
            rest -= 1
        i += 1
    rng.shuffle(sizes)
    return sizes


def make_family(family: str, n: int, seed: int = 0, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark data (float32 X of shape (n, 64), int labels)."""
    p = FAMILIES[family]
    rng = np.random.default_rng(seed)
    k = max(1, n // 30)
    sizes = zipf_sizes(n, k, 1.1, p["cap"], rng)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), sizes)
    X = centres[y] + rng.standard_normal((n, dim)) * (p["r"] / np.sqrt(dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y.astype(np.int64)


# ----------------------------------------------------------------------------- methods (child)
def run_method(method: str, X: np.ndarray, tau: float) -> np.ndarray:
    if method == "kfree":
        from kfree.cluster import ThresholdAgglomerative

        return ThresholdAgglomerative(tau, linkage="complete").fit(X).labels_
    if method == "scipy":
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import pdist

        Z = linkage(pdist(X.astype(np.float64), "sqeuclidean"), "complete")
        return fcluster(Z, tau, "distance")
    if method == "fastcluster":
        import fastcluster
        from scipy.cluster.hierarchy import fcluster

        from kfree.distances import condensed_distances_blocked

        Z = fastcluster.linkage(condensed_distances_blocked(X), "complete", preserve_input=False)
        return fcluster(Z, tau, "distance")
    if method == "sklearn":
        from sklearn.cluster import AgglomerativeClustering

        # complete linkage is invariant to the monotone map d -> sqrt(d)
        m = AgglomerativeClustering(
            n_clusters=None, distance_threshold=float(np.sqrt(tau)), linkage="complete"
        )
        return m.fit(X).labels_
    if method == "hdbscan":
        from kfree.cluster.external_hdbscan import HDBSCANBaseline

        return HDBSCANBaseline(5).fit(X).labels_
    if method == "finch":
        from kfree.cluster.external_finch import FINCHBaseline

        return FINCHBaseline("first").fit(X).labels_
    if method == "knn-cc":
        from kfree.cluster import KNNConnectedComponents

        return KNNConnectedComponents(tau, k=10, index="ivf", nprobe=8).fit(X).labels_
    raise SystemExit(f"unknown method {method}")


def child(method: str, family: str, n: int, seed: int, out: str) -> None:
    X, _ = make_family(family, n, seed)
    tau = FAMILIES[family]["tau"]
    if method in ("kfree", "knn-cc", "finch", "hdbscan"):
        run_method(method, make_family(family, 300, seed + 1)[0], tau)  # warm-up: JIT, imports
    if method == "kfree" and n >= 5000:  # and the sparse path's kernels, which 300 points (dense) never
        # compile: a fresh clone's first run timed numba's compilation (7.5 s at 5,000 points: an audit)
        run_method(method, make_family(family, 6000, seed + 1)[0], tau)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    labels = run_method(method, X, tau)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(out, labels=np.asarray(labels), wall=wall, cpu=cpu, peak_kb=peak, base_kb=base_rss)


# ----------------------------------------------------------------------------- parent
def run_one(method, family, n, seed, time_cap, mem_cap_gb, cpu_cap=False, wall_cap=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.npz")

        def limit():
            lim = int(mem_cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
            if cpu_cap:
                resource.setrlimit(resource.RLIMIT_CPU, (int(time_cap), int(time_cap) + 5))

        cmd = [sys.executable, "-m", "benchmarks.run_cluster", "--child", method, family, str(n),
               str(seed), out]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, timeout=wall_cap or time_cap, capture_output=True, text=True,
                               preexec_fn=limit, cwd=Path(__file__).resolve().parents[1], check=False)
        except subprocess.TimeoutExpired:
            return {"status": "out of reach", "reason": f"over {time_cap:.0f} s at n={n}"}
        if cpu_cap and p.returncode in (-24, -9, 152, 137):  # SIGXCPU / SIGKILL from RLIMIT_CPU
            return {"status": "out of reach", "reason": f"over {time_cap:.0f} CPU s at n={n}"}
        if p.returncode != 0 or not os.path.exists(out):
            err = (p.stderr or "").strip().splitlines()
            msg = err[-1] if err else f"exit code {p.returncode}"
            if "MemoryError" in (p.stderr or "") or "ResourceError" in (p.stderr or "") or "bad_alloc" in (p.stderr or ""):
                msg = f"over {mem_cap_gb:.0f} GiB at n={n} ({msg[:120]})"
            return {"status": "out of reach", "reason": msg[:200]}
        r = np.load(out)
        return {
            "status": "ok",
            "labels": r["labels"],
            "wall_s": float(r["wall"]),
            "cpu_s": float(r["cpu"]),
            "peak_gib": float(r["peak_kb"]) / 2**20,
            "total_s": time.perf_counter() - t0,
        }


def load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"rows": []}


def write_markdown(family: str, data: dict, path: Path) -> None:
    rows = data["rows"]
    sizes = sorted({r["n"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    p = FAMILIES[family]
    lines = [
        f"# Threshold clustering, family ({family}): r = {p['r']}, cut at d² = {p['tau']}"
        + (f", sizes capped at {p['cap']}" if p["cap"] else ""),
        "",
        "64-d unit vectors, K = n/30, Zipf(1.1) sizes. Cells: wall s / CPU s / peak GiB / "
        "#clusters / NMI (vs truth); `=scipy` when the labels equal scipy's partition. "
        "Machine: " + data.get("machine", "?") + "; load average before the run: "
        + data.get("load", "?") + ". CPU seconds are process time over all threads. "
        "Caps: " + data.get("caps", "?") + ". Where scipy is out of reach, kfree's labels are "
        "compared with fastcluster's (the same dendrogram): `=fastcluster`.",
        "",
        "| n | true K | " + " | ".join(methods) + " |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for n in sizes:
        cells = []
        true_k = next((r.get("true_k") for r in rows if r["n"] == n and r.get("true_k")), "")
        for m in methods:
            r = next((r for r in rows if r["n"] == n and r["method"] == m), None)
            if r is None:
                cells.append("")
            elif r["status"] != "ok":
                cells.append("out of reach: " + r["reason"])
            else:
                same = " =scipy" if r.get("equal_scipy") else (" ≠scipy" if r.get("equal_scipy") is False else "")
                if not same and r.get("equal_fastcluster") is not None and m != "fastcluster":
                    same = " =fastcluster" if r["equal_fastcluster"] else " ≠fastcluster"
                cells.append(
                    f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['peak_gib']:.2f} / "
                    f"{r['n_clusters']} / {r['nmi']:.4f}{same}"
                )
        lines.append(f"| {n} | {true_k} | " + " | ".join(cells) + " |")
    ratios = []
    for n in sizes:
        k = next((r for r in rows if r["n"] == n and r["method"] == "kfree" and r["status"] == "ok"), None)
        for ref in ("fastcluster", "scipy", "sklearn"):
            f = next((r for r in rows if r["n"] == n and r["method"] == ref and r["status"] == "ok"), None)
            if k and f:
                ratios.append(f"| {n} | {ref} | {f['wall_s'] / k['wall_s']:.1f}× | "
                              f"{f['peak_gib'] / k['peak_gib']:.1f}× |")
    if ratios:
        lines += ["", "kfree vs the exact reference implementations, rows of one table (reference / kfree; "
                  "see the runs below for which run measured which row):",
                  "", "| n | reference | wall time | peak memory |", "| --- | --- | --- | --- |", *ratios]
    runs: dict[str, list[str]] = {}
    for r in rows:  # (rows measured before rows kept their run: "not recorded")
        info = r.get("run")
        key = (f"{info['date']}, commit {info['commit']}: `{info['command']}`; {info['versions']}" if info
               else "not recorded (measured before rows kept their run)")
        runs.setdefault(key, []).append(f"{r['method']} {r['n']}")
    lines += ["", "Runs (one seed, one repetition each; the table merges rows of several):", ""]
    lines += [f"- {key} — " + ("every row" if len(runs) == 1 else ", ".join(cells)) for key, cells in runs.items()]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=sorted(FAMILIES), default="a")
    ap.add_argument("--sizes", default="2000,5000,10000")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-cap", type=float, default=120.0)
    ap.add_argument("--mem-cap-gb", type=float, default=16.0)
    ap.add_argument("--cpu-cap", action="store_true",
                    help="cap CPU seconds (RLIMIT_CPU) instead of wall seconds: fairer on a "
                    "shared, loaded machine; the wall cap becomes --wall-cap")
    ap.add_argument("--wall-cap", type=float, default=None)
    ap.add_argument("--kfree-time-cap", type=float, default=None,
                    help="time cap of kfree itself (its 1M target is 10 minutes)")
    ap.add_argument("--tag", default="", help="suffix of the results files (parallel runs)")
    ap.add_argument("--child", nargs=5, metavar=("METHOD", "FAMILY", "N", "SEED", "OUT"))
    a = ap.parse_args(argv)
    if a.child:
        method, family, n, seed, out = a.child
        child(method, family, int(n), int(seed), out)
        return
    from kfree.cluster.labels import first_seen_labels as _relabel
    from kfree.metrics import nmi

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"cluster_family_{a.family}" + (f"_{a.tag}" if a.tag else "")
    jpath = RESULTS / f"{stem}.json"
    data = load(jpath)
    data["machine"] = f"{platform.node() or 'host'}: {os.cpu_count()} CPUs, {platform.python_version()}"
    data["caps"] = (f"{a.time_cap:.0f} CPU s" if a.cpu_cap else f"{a.time_cap:.0f} s wall") + (
        f", {a.mem_cap_gb:.0f} GiB address space") + (
        f"; kfree {a.kfree_time_cap:.0f} s" if a.kfree_time_cap else "")
    data["load"] = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    sizes = [int(s) for s in a.sizes.split(",") if s]
    methods = [m for m in a.methods.split(",") if m]
    run_info = run_provenance("run_cluster")
    dead: dict[str, str] = {}
    for n in sizes:
        _, y = make_family(a.family, n, a.seed)
        labels_scipy = labels_fc = None
        results = {}
        for m in methods:
            if m in dead:
                res = {"status": "out of reach", "reason": dead[m]}
            else:
                cap = a.kfree_time_cap if (m == "kfree" and a.kfree_time_cap) else a.time_cap
                res = run_one(m, a.family, n, a.seed, cap, a.mem_cap_gb,
                              cpu_cap=a.cpu_cap, wall_cap=a.wall_cap)
                if res["status"] != "ok":
                    dead[m] = res["reason"]
            results[m] = res
            if m == "scipy" and res["status"] == "ok":
                labels_scipy = res["labels"]
            if m == "fastcluster" and res["status"] == "ok":
                labels_fc = res["labels"]
        for m, res in results.items():
            row = {"family": a.family, "n": n, "method": m, "seed": a.seed, "true_k": int(y.max()) + 1,
                   "status": res["status"], "run": run_info}
            if res["status"] == "ok":
                lab = res.pop("labels")
                row.update({k: v for k, v in res.items() if k != "status"})
                row["n_clusters"] = int(np.unique(lab).size)
                row["nmi"] = float(nmi(y, lab))
                if labels_scipy is not None:
                    row["equal_scipy"] = bool(np.array_equal(_relabel(labels_scipy), _relabel(lab)))
                if labels_fc is not None:
                    row["equal_fastcluster"] = bool(np.array_equal(_relabel(labels_fc), _relabel(lab)))
            else:
                row["reason"] = res["reason"]
            data["rows"] = [r for r in data["rows"] if not (r["n"] == n and r["method"] == m)]
            data["rows"].append(row)
            print(json.dumps(row), flush=True)
        jpath.write_text(json.dumps(data, indent=1))
        write_markdown(a.family, data, RESULTS / f"{stem}.md")


if __name__ == "__main__":
    main()
