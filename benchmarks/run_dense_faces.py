"""Exact threshold HAC where many pairs lie within the cut: face descriptors, as a photo library has them.

Usage (from the repository root; needs ``../shared/data/faces_celeba``; about 3 minutes)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces
    python -m benchmarks.run_dense_faces --report        # only rebuild the table

The scale figures of ``run_cluster`` / ``run_scale_out`` are for clusters that sit apart, where
the pairs within the cut τ grow like n. Face descriptors of many people are not like that: at a
face model's cut a sizeable share of *all* pairs is within τ (people look alike), and exact
complete linkage must hold every one of those pairs. This benchmark measures how far that goes
on this machine.

Data: the 6,279 CelebA dlib descriptors (299 people), each repeated with N(0, 0.01²) noise per
dimension (a noise vector's norm is ≈ 0.11; two photos of one person are ≈ 0.4 apart) up to n
rows. τ is the raw complete-linkage cut that gives the 299 people on the original rows (the
validation-matched cut, as ``kfree train`` calibrates one). Each n runs in its own process (peak
memory ``ru_maxrss``) with kfree's default memory limit (half the machine's memory); a run the
limit refuses says so (the refusal is decided from an estimate of the τ-edges, before they are
built). Results: ``results/benchmarks/dense_faces.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run_unseen import SHARED, celeba_faces, versions

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
SIZES = (10_000, 20_000, 40_000, 100_000)
FACES = SHARED / "faces_celeba" / "celeba_dlib128.npz"


def cut() -> float:
    """The complete-linkage height that gives the true number of people on the original rows."""
    import fastcluster

    from kfree.evaluate.calibrate import cut_height

    X, y = celeba_faces()
    Z = fastcluster.linkage(X.astype(np.float64), method="complete", metric="sqeuclidean")
    return float(cut_height(Z[:, 2], int(np.unique(y).shape[0])))


def rows(n: int) -> np.ndarray:
    X, _ = celeba_faces()
    rng = np.random.default_rng(0)
    idx = np.resize(np.arange(X.shape[0]), n)
    return (X[idx] + rng.normal(0, 0.01, (n, X.shape[1]))).astype(np.float32)


def child(n: int, tau: float, out: str) -> None:
    from kfree.cluster import ThresholdAgglomerative
    from kfree.exceptions import ResourceError

    X = rows(n)
    ThresholdAgglomerative(tau).fit(X[:300])  # warm-up: JIT, imports
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        est = ThresholdAgglomerative(tau).fit(X)
        res = {"status": "ok", "clusters": int(est.n_clusters_), "tau_edges": int(getattr(est, "n_edges_", 0))}
    except ResourceError as e:
        res = {"status": "refused", "reason": str(e)}
    res.update(wall_s=time.perf_counter() - t0,
               peak_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, base_gib=base / 2**20)
    Path(out).write_text(json.dumps(res))


def run() -> dict:
    tau = cut()
    from scipy.spatial.distance import pdist

    # (small: a child's ru_maxrss starts from this process's peak, which it inherits at fork)
    share = float((pdist(rows(3000).astype(np.float64), "sqeuclidean") <= tau).mean())
    out_rows = []
    for n in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "r.json")
            p = subprocess.run([sys.executable, "-m", "benchmarks.run_dense_faces", "--child", str(n), repr(tau), f],
                               cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
            rec = json.loads(Path(f).read_text()) if os.path.exists(f) else {
                "status": "failed", "reason": (p.stderr.strip().splitlines() or ["?"])[-1][:200]}
        rec["n"] = n
        out_rows.append(rec)
        print(n, {k: v for k, v in rec.items() if k != "reason"}, flush=True)
    return {"tau": tau, "share_within_tau": share, "rows": out_rows, "versions": versions(),
            "command": "OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces",
            "memory_limit_gib": __import__("kfree.cluster.threshold_hac", fromlist=["x"]).default_memory_limit_gb()}


def report(rec: dict) -> str:
    lines = ["# Exact threshold HAC on face descriptors (many pairs within the cut)", "",
             "Written by `benchmarks/run_dense_faces.py` (its docstring says what runs). Command:", "",
             f"    {rec['command']}", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in rec["versions"].items()) + ".", "",
             f"CelebA dlib descriptors repeated with small noise; complete linkage at τ = {rec['tau']:.4f} "
             f"(sqeuclidean), the cut that gives the 299 people on the original rows: "
             f"{100 * rec['share_within_tau']:.1f} % of all pairs are within τ. Memory limit "
             f"{rec['memory_limit_gib']:.1f} GiB (kfree's default: half the machine's memory).", "",
             "| rows | result | wall (s) | peak memory (GiB) |", "|---|---|---|---|"]
    for r in rec["rows"]:
        what = (f"{r['clusters']:,} clusters, {r['tau_edges']:,} τ-edges" if r["status"] == "ok" else
                f"{r['status']}: {r['reason'].split(';')[0].split(' (~')[0]}")
        lines.append(f"| {r['n']:,} | {what} | {r['wall_s']:.1f} | {r['peak_gib']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the JSON")
    args = ap.parse_args()
    path = OUT / "dense_faces.json"
    if not args.report:
        if not FACES.exists():
            raise SystemExit(f"needs {FACES}")
        path.write_text(json.dumps(run(), indent=1) + "\n")
    rec = json.loads(path.read_text())
    (OUT / "dense_faces.md").write_text(report(rec))
    print(report(rec))


if __name__ == "__main__":
    main()
