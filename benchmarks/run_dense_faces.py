"""Exact threshold HAC where many pairs lie within the cut: face descriptors, as a photo library has them.

Usage (from the repository root; needs ``../shared/data/faces_celeba``; about 3 minutes)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces
    OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces --assign   # only the assign part (~6 minutes)
    python -m benchmarks.run_dense_faces --report        # only rebuild the tables

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
built).

**Assign** (``--assign``, or part of a full run): what the README advises there, clustering a
part with ``kfree cluster --state`` and adding the rest with ``kfree assign``. A state of the
first 40,000 rows is made once (``kfree cluster rows.npy --threshold τ --state``, in a process of
its own), then batches of the next 1,000 to 30,000 rows are added to a fresh copy of it, each
run ``kfree assign`` in a process of its own (peak memory ``ru_maxrss``; ``base``: after loading
the state and the batch as the command does). Every new row has thousands of the state's rows
within τ, so the bounds leave most clusters as candidates of every row; the two modes check
those (row, cluster) candidates all at once (``_PAIRS_PER_PASS`` unbounded) or in passes of
about 2M pairs (kfree's default), and must give the same clusters.

Results: ``results/benchmarks/dense_faces.{json,md}``.
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
ASSIGN_STATE = 40_000
ASSIGN_BATCHES = (1_000, 3_000, 10_000, 30_000)
ASSIGN_MODES = {"all at once": 1 << 62, "passes (default)": None}
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


def assign_state(tau: float, folder: str) -> None:
    """``kfree cluster`` of the first ASSIGN_STATE rows into ``folder/s.kstate``, and the batch rows."""
    from kfree.cli.app import main as kfree

    X = rows(ASSIGN_STATE + max(ASSIGN_BATCHES))
    np.save(os.path.join(folder, "state_rows.npy"), X[:ASSIGN_STATE])
    np.save(os.path.join(folder, "batch_rows.npy"), X[ASSIGN_STATE:])
    _run_cli(kfree, ["cluster", os.path.join(folder, "state_rows.npy"), "--threshold", repr(tau),
                     "--out", os.path.join(folder, "c.csv"), "--state", os.path.join(folder, "s.kstate")])


def _run_cli(main, argv: list[str]) -> None:
    sys.argv = ["kfree", *argv]
    try:
        main()
    except SystemExit as e:
        if e.code:
            raise RuntimeError(f"kfree {' '.join(argv)} exited {e.code}") from None


def assign_child(folder: str, m: int, mode: str, out: str) -> None:
    """One ``kfree assign`` of ``m`` rows to a copy of the state, in this process."""
    import shutil

    from kfree.cli.app import main as kfree
    from kfree.cluster import incremental
    from kfree.distances import to_sq

    if ASSIGN_MODES[mode] is not None:
        incremental._PAIRS_PER_PASS = ASSIGN_MODES[mode]
    state_path = os.path.join(folder, f"s_{m}.kstate")
    shutil.copyfile(os.path.join(folder, "s.kstate"), state_path)
    batch = os.path.join(folder, f"b_{m}.npy")
    np.save(batch, np.load(os.path.join(folder, "batch_rows.npy"))[:m])
    state = incremental.ClusterState.load(state_path)  # what the command loads, and the candidates
    X = np.load(batch)
    P = state._prepared(X[:1000])
    alive = np.flatnonzero(state.sizes > 0)
    near = incremental._near(P, np.einsum("ij,ij->i", P, P), state, to_sq(state.threshold, state.distance), alive)
    per_row = sum(r[0].shape[0] for r in near) / P.shape[0]
    n_clusters = state.n_clusters
    del state, X, P
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    csv = os.path.join(folder, f"out_{m}.csv")
    t0 = time.perf_counter()
    _run_cli(kfree, ["assign", state_path, batch, "--out", csv, "--force"])
    wall = time.perf_counter() - t0
    labels = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=1, dtype=np.int64)
    os.remove(state_path)
    Path(out).write_text(json.dumps({
        "m": m, "mode": mode, "wall_s": wall, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "base_gib": base / 2**20, "candidates_per_row": per_row, "state_clusters": n_clusters,
        "labels_sha256": __import__("hashlib").sha256(labels.tobytes()).hexdigest()}))


def _child(args: list[str]) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "r.json")
        p = subprocess.run([sys.executable, "-m", "benchmarks.run_dense_faces", *args, f],
                           cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
        if os.path.exists(f):
            return json.loads(Path(f).read_text())
        print(p.stderr[-2000:], file=sys.stderr)
        return None


def run_assign(tau: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "benchmarks.run_dense_faces", "--assign-state", repr(tau), folder],
                           cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
        if p.returncode:
            raise SystemExit(f"kfree cluster --state failed: {p.stderr[-2000:]}")
        state_s = time.perf_counter() - t0
        runs = []
        for m in ASSIGN_BATCHES:
            for mode in ASSIGN_MODES:
                rec = _child(["--assign-child", folder, str(m), mode]) or {"m": m, "mode": mode, "status": "failed"}
                runs.append(rec)
                print(json.dumps(rec), flush=True)
    return {"state_rows": ASSIGN_STATE, "state_s": state_s, "runs": runs,
            "command": "OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces --assign"}


def run() -> dict:
    tau = cut()
    from scipy.spatial.distance import pdist

    # (small: a child's ru_maxrss starts from this process's peak, which it inherits at fork)
    share = float((pdist(rows(3000).astype(np.float64), "sqeuclidean") <= tau).mean())
    out_rows = []
    for n in SIZES:
        rec = _child(["--child", str(n), repr(tau)]) or {"status": "failed", "reason": "see stderr"}
        rec["n"] = n
        out_rows.append(rec)
        print(n, {k: v for k, v in rec.items() if k != "reason"}, flush=True)
    return {"tau": tau, "share_within_tau": share, "rows": out_rows, "versions": versions(),
            "command": "OMP_NUM_THREADS=1 python -m benchmarks.run_dense_faces",
            "memory_limit_gib": __import__("kfree.cluster.threshold_hac", fromlist=["x"]).default_memory_limit_gb(),
            "assign": run_assign(tau)}


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
    a = rec.get("assign")
    if a:
        runs = [r for r in a["runs"] if "wall_s" in r]
        same = all(len({r["labels_sha256"] for r in runs if r["m"] == m}) == 1 for m in ASSIGN_BATCHES)
        lines += ["", f"## Adding rows: `kfree assign` to a state of the first {a['state_rows']:,} rows", "",
                  f"Command: `{a['command']}`. The state took {a['state_s']:.0f} s to make (`kfree cluster "
                  f"--state`, {runs[0]['state_clusters'] if runs else '?'} clusters). Each run adds the next "
                  "rows to a fresh copy of it, in a process of its own; the (row, cluster) candidates the "
                  "bounds leave are checked all at once or in passes of about 2M pairs. "
                  f"Same clusters in both modes: **{same}**.", "",
                  "| new rows | candidate clusters per row | mode | wall (s) | peak memory (GiB) "
                  "| above the loaded state and batch (GiB) |", "|---|---|---|---|---|---|"]
        for r in a["runs"]:
            if "wall_s" not in r:
                lines.append(f"| {r['m']:,} | | {r['mode']} | failed | | |")
                continue
            lines.append(f"| {r['m']:,} | {r['candidates_per_row']:.0f} | {r['mode']} | {r['wall_s']:.1f} | "
                         f"{r['peak_gib']:.2f} | {r['peak_gib'] - r['base_gib']:.2f} |")
        b = rec.get("assign_before")
        if b:  # the same command at an earlier commit, kept for the comparison
            runs_b = [r for r in b["runs"] if "wall_s" in r and r["mode"] == "passes (default)"]
            same_b = all(r["labels_sha256"] == s["labels_sha256"] for r in runs_b for s in runs
                         if s["m"] == r["m"])
            lines += ["", f"The same command at commit {b['commit']} ({b['what']}), passes: "
                      + "; ".join(f"{r['m']:,} rows {r['wall_s']:.0f} s, {r['peak_gib']:.2f} GiB" for r in runs_b)
                      + f". Same clusters as above: **{same_b}**."]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--assign-state":
        assign_state(float(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--assign-child":
        assign_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only rebuild the tables from the JSON")
    ap.add_argument("--assign", action="store_true", help="run only the assign part (the rest is kept)")
    args = ap.parse_args()
    path = OUT / "dense_faces.json"
    if not args.report:
        if not FACES.exists():
            raise SystemExit(f"needs {FACES}")
        if args.assign:
            rec = json.loads(path.read_text())
            rec["assign"] = run_assign(rec["tau"])
        else:
            rec = run()
        path.write_text(json.dumps(rec, indent=1) + "\n")
    rec = json.loads(path.read_text())
    (OUT / "dense_faces.md").write_text(report(rec))
    print(report(rec))


if __name__ == "__main__":
    main()
