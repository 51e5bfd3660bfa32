"""Streaming benchmark: ``assign`` to a cluster state vs a full recompute.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_stream                      # both parts
    python -m benchmarks.run_stream --scale-n 100000 --stream b:5000       # quicker

Data: ``benchmarks.run_cluster`` families (64-d unit vectors, K = n/30 Zipf(1.1) clusters; (b)
well separated, r = 0.3, sizes capped at 5,000, cut at d² = 0.6; (a) overlapping, r = 0.8, cut
at d² = 1.4), complete linkage; random floats, so no exact distance ties.

1. **Stream** (exactness), for each ``--stream`` entry ``FAMILY:N0`` (default family (b) from
   20,000 points and the overlapping family (a) from 5,000): ``N0`` points are clustered, then ``--batches`` random
   batches (sizes uniform in 1..2·``--batch-mean``, drawn from the same clusters) are added to
   two states, one with ``recluster_affected=True`` and one without. At every
   ``--checkpoint``-th batch and at the end, a full :class:`ThresholdAgglomerative` recompute of
   all points so far is compared with both: the recluster-affected partition must be equal;
   for the greedy one, the NMI between the two partitions and the #clusters difference.
2. **Scale** (speed): ``--scale-n`` points are clustered into a state (timed: the fit, and the
   exact τ-components the state adds), then batches of ``--scale-batch`` new points of the same
   clusters are assigned, ``--scale-reps`` without and then ``--scale-reps`` with
   ``recluster_affected`` (wall seconds per batch, per 1,000 points), and the state is saved
   and loaded once (seconds, file size).

Results go to ``results/benchmarks/stream.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run_cluster import FAMILIES, make_family

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def _versions() -> dict[str, str]:
    import scipy

    import kfree

    return {"kfree": kfree.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def stream(family: str, n0: int, batches: int, batch_mean: int, checkpoint: int, seed: int) -> dict:
    from kfree.cluster import ThresholdAgglomerative
    from kfree.cluster.incremental import ClusterState, assign
    from kfree.cluster.labels import first_seen_labels
    from kfree.metrics import nmi

    tau = FAMILIES[family]["tau"]
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 2 * batch_mean + 1, batches)
    total = n0 + int(sizes.sum())
    X, _ = make_family(family, total, seed)
    X = X[rng.permutation(total)]  # a random stream over the clusters
    t0 = time.perf_counter()
    exact = ClusterState.fit(X[:n0], tau)
    fit_s = time.perf_counter() - t0
    greedy = ClusterState.fit(X[:n0], tau)
    rows, pos = [], n0
    t_exact = t_greedy = 0.0
    for b, s in enumerate(sizes, start=1):
        Xb = X[pos : pos + s]
        pos += int(s)
        t = time.perf_counter()
        assign(exact, Xb, recluster_affected=True)
        t_exact += time.perf_counter() - t
        t = time.perf_counter()
        assign(greedy, Xb)
        t_greedy += time.perf_counter() - t
        if b % checkpoint == 0 or b == batches:
            t = time.perf_counter()
            ref = ThresholdAgglomerative(tau).fit(X[:pos]).labels_
            full_s = time.perf_counter() - t
            row = {
                "batch": b, "n_points": pos,
                "recluster_equal_full": bool(np.array_equal(first_seen_labels(exact.labels), ref)),
                "n_clusters_full": int(ref.max()) + 1,
                "n_clusters_recluster": exact.n_clusters,
                "n_clusters_greedy": greedy.n_clusters,
                "greedy_nmi_vs_full": float(nmi(ref, greedy.labels)),
                "greedy_clusters_minus_full": greedy.n_clusters - (int(ref.max()) + 1),
                "greedy_equal_full": bool(np.array_equal(first_seen_labels(greedy.labels), ref)),
                "full_recompute_s": round(full_s, 3),
                "assign_s_so_far": {"recluster": round(t_exact, 3), "greedy": round(t_greedy, 3)},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"family": family, "r": FAMILIES[family]["r"], "n0": n0, "batches": batches, "batch_sizes": "uniform 1.." + str(2 * batch_mean),
            "n_final": pos, "tau": tau, "fit_s": round(fit_s, 3), "checkpoints": rows,
            "all_equal": all(r["recluster_equal_full"] for r in rows)}


def scale(n: int, batch: int, reps: int, seed: int) -> dict:
    from kfree.cluster import ThresholdAgglomerative
    from kfree.cluster.incremental import ClusterState, assign

    tau = FAMILIES["b"]["tau"]
    extra = 2 * reps * batch
    X, _ = make_family("b", n + extra, seed)
    perm = np.random.default_rng(seed + 1).permutation(n + extra)
    X = X[perm]
    warm, _ = make_family("b", 3000, seed + 7)  # JIT compilation outside the timings
    ws = ClusterState.fit(warm[:2000], tau)
    assign(ws, warm[2000:2500])
    assign(ws, warm[2500:], recluster_affected=True)
    t0 = time.perf_counter()
    est = ThresholdAgglomerative(tau).fit(X[:n])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = ClusterState.from_fit(est, X[:n])
    state_s = time.perf_counter() - t0
    out = {"n": n, "batch": batch, "tau": tau, "fit_s": round(fit_s, 2), "from_fit_s": round(state_s, 2),
           "n_clusters": state.n_clusters, "n_components": state.n_components, "runs": []}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    pos = n
    for rec in (False, True):
        for r in range(reps):
            Xb = X[pos : pos + batch]
            pos += batch
            prev_next = state.next_label
            t = time.perf_counter()
            lab = assign(state, Xb, recluster_affected=rec)
            wall = time.perf_counter() - t
            info = dict(state.meta["last_assign"])
            run = {"recluster_affected": rec, "rep": r, "n_existing": pos - batch, "wall_s": round(wall, 3),
                   "s_per_1000": round(wall * 1000 / batch, 3),
                   "new_clusters": int(np.unique(lab[lab >= prev_next]).shape[0]), **info}
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.kstate"
        t = time.perf_counter()
        state.save(path)
        out["save_s"] = round(time.perf_counter() - t, 2)
        out["file_mib"] = round(path.stat().st_size / 2**20, 1)
        t = time.perf_counter()
        ClusterState.load(path)
        out["load_s"] = round(time.perf_counter() - t, 2)
    out["peak_gib"] = round(_peak_gib(), 2)
    for rec in (False, True):
        v = [r["s_per_1000"] for r in out["runs"] if r["recluster_affected"] == rec]
        out["median_s_per_1000_" + ("recluster" if rec else "greedy")] = float(np.median(v))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    return out


def write_md(data: dict, path: Path) -> None:
    L = ["# Incremental clustering: `assign` vs a full recompute", "",
         f"Command: `{data['command']}`  ",
         f"Date: {data['date']}; machine: {data['machine']}; load average before: {data['load']}  ",
         "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()), "",
         "Data: benchmarks.run_cluster families: 64-d unit vectors, K = n/30 Zipf(1.1) clusters; (a) "
         "overlapping, r = 0.8, cut at d² = 1.4; (b) well separated, r = 0.3, sizes capped at 5,000, cut at "
         "d² = 0.6; complete linkage; random floats, so no exact distance ties.", ""]
    for s in data.get("stream", {}).values():
        L += [f"## Stream, family ({s['family']}, r = {s['r']}): equality with a full recompute", "",
              f"{s['n0']} initial points, {s['batches']} batches of {s['batch_sizes']} new points "
              f"({s['n_final']} points at the end), cut at d² = {s['tau']}. `recluster` = "
              "`assign(..., recluster_affected=True)`; `greedy` = without. Labels compared as partitions with a "
              "full `ThresholdAgglomerative` fit of all points so far. All recluster checkpoints equal: "
              f"**{s['all_equal']}**.", "",
              "| batch | points | recluster = full | #clusters full | greedy #clusters − full | greedy NMI vs full "
              "| greedy = full | full recompute s | assign s so far (recluster / greedy) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in s["checkpoints"]:
            L.append(f"| {r['batch']} | {r['n_points']} | {r['recluster_equal_full']} | {r['n_clusters_full']} | "
                     f"{r['greedy_clusters_minus_full']:+d} | {r['greedy_nmi_vs_full']:.6f} | "
                     f"{r['greedy_equal_full']} | {r['full_recompute_s']:.2f} | "
                     f"{r['assign_s_so_far']['recluster']:.2f} / {r['assign_s_so_far']['greedy']:.2f} |")
        L.append("")
    c = data.get("scale")
    if c:
        L += [f"## Scale: {c['batch']} new points at {c['n']:,} existing", ""]
        pv = c.get("provenance")
        if pv and pv["command"] != data["command"]:
            L += [f"Command: `{pv['command']}`  ",
                  f"Date: {pv['date']}; machine: {pv['machine']}; load average before: {pv['load']}  ",
                  "Versions: " + ", ".join(f"{k} {v}" for k, v in pv["versions"].items()), ""]
        L += [
              f"Initial clustering: {c['fit_s']:.1f} s (`ThresholdAgglomerative`), then {c['from_fit_s']:.1f} s for "
              "`ClusterState.from_fit` (the exact τ-components and per-cluster bounds); "
              f"{c['n_clusters']} clusters, {c['n_components']} τ-components. State file {c['file_mib']} MiB: "
              f"save {c['save_s']} s, load {c['load_s']} s. Peak RSS {c['peak_gib']} GiB.", "",
              f"Median wall seconds per 1,000 new points: **{c['median_s_per_1000_greedy']:.3f}** without, "
              f"**{c['median_s_per_1000_recluster']:.3f}** with `recluster_affected` (one thread).", "",
              "| mode | rep | existing | wall s | s / 1,000 | components touched | points reclustered "
              "| existing points moved |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in c["runs"]:
            L.append(f"| {'recluster' if r['recluster_affected'] else 'greedy'} | {r['rep']} | {r['n_existing']} | "
                     f"{r['wall_s']:.3f} | {r['s_per_1000']:.3f} | {r['n_components_touched']} | "
                     f"{r['n_reclustered']} | {r['n_existing_moved']} |")
        L.append("")
    path.write_text("\n".join(L))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stream", default="b:20000,a:5000",
                    help="stream runs FAMILY:N0, comma-separated")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--batch-mean", type=int, default=100)
    ap.add_argument("--checkpoint", type=int, default=10)
    ap.add_argument("--scale-n", type=int, default=1_000_000)
    ap.add_argument("--scale-batch", type=int, default=1000)
    ap.add_argument("--scale-reps", type=int, default=5)
    ap.add_argument("--skip", choices=("stream", "scale"), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "stream"), help="results path without suffix")
    a = ap.parse_args(argv)
    data = {"command": "python -m benchmarks.run_stream " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.node() or 'host'}: {os.cpu_count()} CPUs, {platform.machine()}, "
                       f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            "load": " / ".join(f"{v:.2f}" for v in os.getloadavg()), "versions": _versions()}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.skip != "stream":
        data["stream"] = {}
        for item in a.stream.split(","):
            fam, n0 = item.split(":")
            data["stream"][fam] = stream(fam, int(n0), a.batches, a.batch_mean, a.checkpoint, a.seed)
            out.with_suffix(".json").write_text(json.dumps(data, indent=1))
        out.with_suffix(".json").write_text(json.dumps(data, indent=1))
        write_md(data, out.with_suffix(".md"))
    if a.skip != "scale":
        data["scale"] = scale(a.scale_n, a.scale_batch, a.scale_reps, a.seed)
        # the part's own provenance: a scale-only run (--skip stream --out ...) is merged into a
        # file whose stream part came from another run
        data["scale"]["provenance"] = {k: data[k] for k in ("command", "date", "machine", "load",
                                                            "versions")}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    write_md(data, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
