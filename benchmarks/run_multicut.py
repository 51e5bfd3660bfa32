"""Multicut benchmark: GAEC and GAEC+KLj on complete graphs, and against exact ILP optima.

Usage (from the repository root)::

    python -m benchmarks.run_multicut scale --sizes 2000,5000,10000
    python -m benchmarks.run_multicut exact --sizes 30,40 --instances 3

``scale``: the complete graph of n points (the CIFAR-10 test set has 10,000), 32-d unit
vectors from 10 overlapping classes (``x = normalise(c + N(0, r²/32 · I))``, r = 1.0), edge
costs from a threshold at d² = 1.0 (``(tau − d)/T``, p clipped at 1e-6). Reports wall/CPU time
of the cost matrix, GAEC and KLj, the objectives of GAEC alone and GAEC+KLj, #clusters and NMI.

``exact``: planted partitions and i.i.d. Gaussian costs on complete graphs, and Gaussian costs
on sparse random graphs, 30–60 nodes, solved with :func:`kfree.cluster.multicut_exact.exact_multicut`
(HiGHS, cycle inequalities as cutting planes); reports each heuristic's gap to the ILP.
Complete graphs with Gaussian costs are hard for the MIP (time-limited; the table says whether
the optimum was proven).

Results: ``results/benchmarks/multicut_{scale,exact}.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks._provenance import run_provenance

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def overlapping_classes(n: int, k: int = 10, dim: int = 32, r: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((k, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    X = c[y] + rng.standard_normal((n, dim)) * (r / np.sqrt(dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def scale(sizes, tau: float, seed: int) -> list[dict]:
    from kfree.cluster import MulticutClustering
    from kfree.cluster import multicut_core as mc
    from kfree.metrics import nmi

    MulticutClustering(tau).fit(overlapping_classes(300, seed=seed)[0])  # compile
    rows = []
    for n in sizes:
        X, y = overlapping_classes(n, seed=seed)
        m = MulticutClustering(tau)
        t0, c0 = time.perf_counter(), time.process_time()
        C = m._costs_from_embeddings(X)
        t1, c1 = time.perf_counter(), time.process_time()
        W = C.copy()
        gl, _ = mc.gaec_dense(W)
        del W
        t2, c2 = time.perf_counter(), time.process_time()
        lab, rounds = mc.kernighan_lin_joins(C, gl, 100, 1e-7)
        t3, c3 = time.perf_counter(), time.process_time()
        row = {
            "n": n, "tau_sqeuclidean": tau,
            "costs_wall_s": t1 - t0, "costs_cpu_s": c1 - c0,
            "gaec_wall_s": t2 - t1, "gaec_cpu_s": c2 - c1,
            "klj_wall_s": t3 - t2, "klj_cpu_s": c3 - c2, "klj_rounds": int(rounds),
            "total_wall_s": t3 - t0, "total_cpu_s": c3 - c0,
            "gaec_objective": float(mc.multicut_objective(C, gl)),
            "objective": float(mc.multicut_objective(C, lab)),
            "gaec_clusters": int(gl.max()) + 1, "clusters": int(lab.max()) + 1,
            "gaec_nmi": float(nmi(y, gl)), "nmi": float(nmi(y, lab)),
        }
        del C
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def exact(sizes, instances: int, seed: int, time_limit: float) -> list[dict]:
    from kfree.cluster import MulticutClustering
    from kfree.cluster.multicut_exact import exact_multicut
    from kfree.data.synthetic import random_connected_graph

    def complete(C):
        iu = np.triu_indices(C.shape[0], 1)
        return np.stack(iu, 1), C[iu]

    def gaussian(rng, n):
        C = np.triu(rng.standard_normal((n, n)), 1)
        return complete(C + C.T)

    def planted(rng, n):
        t = rng.integers(0, 4, n)
        C = np.where(t[:, None] == t[None, :], 1.0, -1.0) + 1.5 * rng.standard_normal((n, n))
        C = np.triu(C, 1)
        return complete(C + C.T)

    def sparse_gaussian(rng, n):
        E = random_connected_graph(n, 6, rng)
        return E, rng.standard_normal(len(E))

    families = (("planted", planted), ("gaussian", gaussian), ("sparse-gaussian", sparse_gaussian))
    out = []
    rng = np.random.default_rng(seed)
    for n in sizes:
        for fam, gen in families:
            for i in range(instances):
                E, c = gen(rng, n)
                row = {"family": fam, "n": n, "instance": i, "edges": len(E)}
                for name, kw in (("klj", {"n_restarts": 0}), ("restarts", {})):
                    t0 = time.perf_counter()
                    m = MulticutClustering(cut_probability=(1.0, 0.0), **kw).fit_graph(E, c, n)
                    row[name] = m.objective_
                    row[name + "_s"] = time.perf_counter() - t0
                    row["gaec"] = m.gaec_objective_
                    row["n_restarts"] = m.n_restarts_
                t0 = time.perf_counter()
                opt, _, optimal = exact_multicut(E, c, n, time_limit=time_limit)
                row.update(ilp=opt, ilp_optimal=optimal, ilp_s=time.perf_counter() - t0)
                for name in ("gaec", "klj", "restarts"):
                    row[name + "_gap"] = (row[name] - opt) / abs(opt) if opt else 0.0
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["scale", "exact"])
    ap.add_argument("--sizes", default=None)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=300.0, help="per ILP solve (exact mode)")
    a = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.mode == "scale":
        sizes = [int(s) for s in (a.sizes or "2000,5000,10000").split(",")]
        rows = scale(sizes, a.tau, a.seed)
        lines = [
            "# Multicut (GAEC + KLj) on complete graphs",
            "",
            f"10 overlapping classes in 32-d (r = 1.0), costs from d² threshold {a.tau}. Wall s "
            "(CPU s) on a shared 2-core machine under load.",
            "",
            "| n | edges | costs | GAEC | KLj (rounds) | total | GAEC objective | GAEC+KLj objective "
            "| #clusters GAEC → KLj | NMI GAEC → KLj |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            lines.append(
                f"| {r['n']} | {r['n'] * (r['n'] - 1) // 2:,} | {r['costs_wall_s']:.1f} ({r['costs_cpu_s']:.1f}) "
                f"| {r['gaec_wall_s']:.1f} ({r['gaec_cpu_s']:.1f}) | {r['klj_wall_s']:.1f} "
                f"({r['klj_cpu_s']:.1f}) ({r['klj_rounds']}) | {r['total_wall_s']:.1f} "
                f"({r['total_cpu_s']:.1f}) | {r['gaec_objective']:.6g} | {r['objective']:.6g} | "
                f"{r['gaec_clusters']} → {r['clusters']} | {r['gaec_nmi']:.4f} → {r['nmi']:.4f} |"
            )
    else:
        sizes = [int(s) for s in (a.sizes or "30,40,60").split(",")]
        rows = exact(sizes, a.instances, a.seed, a.time_limit)
        lines = [
            "# Multicut heuristics vs exact ILP (HiGHS, cycle inequalities as cutting planes)",
            "",
            "Objectives (lower is better) of GAEC, GAEC + KLj, and GAEC + KLj with the default "
            "restarts (`n_restarts='auto'`), against the ILP. Families: planted partitions "
            "(4 groups, ±1 + N(0, 1.5²)) and i.i.d. N(0, 1) costs on complete graphs, and N(0, 1) "
            "costs on random graphs of mean degree 6. Where the ILP hit its time limit "
            f"({a.time_limit:.0f} s) the 'ILP' column is only its best multicut, not a proven "
            "optimum (complete graphs with Gaussian costs: neither HiGHS nor OR-tools CP-SAT "
            "closes the gap at 30 nodes in minutes here). Command: `python -m "
            f"benchmarks.run_multicut exact --sizes {a.sizes or '30,40,60'} --instances {a.instances} "
            f"--time-limit {a.time_limit:g}`.",
            "",
            "| family | n | inst | GAEC | GAEC+KLj | + restarts | ILP | proven | gap KLj | gap restarts | heuristic s | ILP s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            lines.append(
                f"| {r['family']} | {r['n']} | {r['instance']} | {r['gaec']:.4f} | {r['klj']:.4f} "
                f"| {r['restarts']:.4f} | {r['ilp']:.4f} | {'yes' if r['ilp_optimal'] else 'no'} "
                f"| {100 * r['klj_gap']:.2f} % | {100 * r['restarts_gap']:.2f} % "
                f"| {r['restarts_s']:.2f} | {r['ilp_s']:.1f} |"
            )
    run = run_provenance("run_multicut")  # (each row keeps it: a benchmark audit found none)
    for r in rows:
        r["run"] = run
    lines += ["", f"Run: {run['date']}, commit {run['commit']}: `{run['command']}`; {run['versions']}. One seed, "
              "one repetition."]
    (RESULTS / f"multicut_{a.mode}.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / f"multicut_{a.mode}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
