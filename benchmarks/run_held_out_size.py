"""A Ward cut calibrated on identities held out of the training data, on batches of another size.

Usage (from the repository root; about 10 minutes on 2 cores)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_held_out_size            # runs (resumes), writes the table
    OMP_NUM_THREADS=1 python -m benchmarks.run_held_out_size --fresh    # starts over
    python -m benchmarks.run_held_out_size --report                     # only rebuild the table

``ClusterLearner.fit`` without ``X_val`` (``kfree train`` without ``--validation``) holds out
identities of the training data and calibrates its cuts on them, so the cuts are calibrated on
identities of the training data's size. A batch to cluster often holds far fewer rows per
identity (a day of tickets, one episode's faces), and a Ward merge height, which grows with the
sizes of the clusters it merges, then merges identities. Such a model keeps a size curve (the
cuts calibrated on the held-out identities cut down to 2, 3, 5, … rows each) and reads its Ward
cut at the batch's rows per identity (``kfree.evaluate.calibrate.SizeCurve``,
``ClusterLearner._ward_at_batch_size``). This benchmark measures that on the default path:

- Banking77 (shipped, MiniLM): 50 seen intents (10 held out by ``fit``, ~175 rows each), 27 unseen
  intents at 20, 40, 80 and all rows each; and, as in a ticket trial, 14 seen intents (3 held out:
  a curve only where the raw features are chosen, calibrated on all 14), the 27 unseen at 20, 40
  and all rows each;
- AT&T faces (shipped, dlib descriptors): 30 seen people (6 held out, 10 photos each), 10 unseen
  at 2, 3, 5 and all 10 photos each;
- CelebA dlib descriptors (``$KFREE_SHARED_DATA`` or ``../shared/data``; skipped when absent):
  220 seen identities (44 held out, ~21 rows), 79 unseen at 5, 10 and all rows each;
- scikit-learn digits: 0–5 seen at random (2 held out: too few for a curve, so nothing changes),
  the other 4 unseen at 20, 60 and all rows each.

The learner is trained briefly (8 epochs, linkage ``auto``), seeds 0–2, with the rule ``fit``
chose. *before*: the same model with its size curve dropped (the size check of
``results/benchmarks/ward_size.md`` alone); *Ward*: the chosen cut as calibrated; *oracle*: the
curve read at the true rows per identity. Cells are kept in ``held_out_size.json`` as each set
and seed is done, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.run_unseen import celeba_faces, versions
from benchmarks.run_ward_size import OUT, SEEDS, _per_identity, load_arrays

#: set -> (seen identities, unseen identities, unseen rows per identity; None = all)
SETS: dict[str, tuple[int, int, tuple[int | None, ...]]] = {
    "banking77": (50, 27, (20, 40, 80, None)),
    "banking77-14": (14, 27, (20, 40, None)),
    "att_faces": (30, 10, (2, 3, 5, None)),
    "celeba": (220, 79, (5, 10, None)),
    "digits": (6, 4, (20, 60, None)),
}
NAME = "held_out_size"


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    return load_arrays(name.split("-")[0])  # (banking77-14: Banking77, fewer seen intents)


def run_set(name: str, seed: int) -> list[dict[str, Any]]:
    from scipy.cluster.hierarchy import fcluster

    from kfree import ClusterLearner, TrainConfig
    from kfree.data.splits import split_identities
    from kfree.evaluate.calibrate import SizeCurve, merge_tree
    from kfree.metrics import nmi

    t0 = time.perf_counter()
    n_seen, n_unseen, sizes = SETS[name]
    X, y = _data(name)
    sp = split_identities(y, n_seen, n_unseen, seed=seed)
    seen, unseen = sp.train_idx, sp.val_idx
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learner = ClusterLearner(TrainConfig(epochs=8, seed=seed), linkage="auto").fit(X[seen], y[seen])
        curve = learner.selection_.get("size_curve")
        old = copy.copy(learner)  # the same model, its size curve dropped
        old.selection_ = {k: v for k, v in learner.selection_.items() if k != "size_curve"}
        cells = []
        for per in sizes:
            b = _per_identity(unseen, y, per, rng)
            k_true = int(np.unique(y[b]).shape[0])
            now, rule = learner.cluster(X[b], return_rule=True)
            was = old.cluster(X[b])
            Z = learner.transform(X[b])
            ward = learner.rule_.cluster(Z) if learner.rule_.linkage == "ward" else None
            oracle = None
            if curve is not None:
                c = SizeCurve.from_dict(curve)
                oracle = fcluster(merge_tree(Z, "ward"), c.height("ward", b.shape[0] / k_true), "distance")
            cells.append({
                "set": name, "seed": seed, "rows_per_identity": "all" if per is None else per,
                "rows": int(b.shape[0]), "K": k_true, "chosen": learner.rule_.name,
                "val_identities": learner.provenance_["n_val_identities"],
                "val_rows_per_identity": learner.selection_.get("val_rows_per_identity"),
                "size_curve": curve is not None, "rule_used": rule.name,
                "now_clusters": int(now.max()) + 1, "now_nmi": nmi(y[b], now),
                "before_clusters": int(was.max()) + 1, "before_nmi": nmi(y[b], was),
                "ward_nmi": None if ward is None else nmi(y[b], ward),
                "oracle_nmi": None if oracle is None else nmi(y[b], oracle),
            })
    for c in cells:
        c["wall_s"] = round(time.perf_counter() - t0, 1)
    return cells


def report(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    lines = [
        "# A Ward cut calibrated on held-out training identities, on batches of another size",
        "",
        "Written by `benchmarks/run_held_out_size.py` (its docstring says what runs). Command:",
        "",
        f"    {meta['command']}",
        "",
        f"Seeds {', '.join(map(str, meta['seeds']))}; wall time {meta['wall_s']:.0f} s; commit {meta['commit']}; "
        "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Means over seeds; NMI on the unseen identities. `fit` without `X_val` held out the validation "
        "identities (their rows per identity in brackets). *now*: `learner.cluster`, which reads the Ward cut "
        "at the batch's size on the model's size curve (when it has one: a chosen Ward cut calibrated on 8 or "
        "more identities, `SIZE_CURVE_MIN_IDENTITIES`: the raw features' are calibrated on the training and "
        "held-out identities, a model's on the held-out ones); *before*: the same model without its curve; *Ward*: the chosen Ward cut as "
        "calibrated (– when the chosen rule is not Ward); *oracle*: the curve read at the true rows per "
        "identity.",
        "",
        "| set | rows per identity: batch (held out) | K | curve (of seeds) | now: clusters / NMI | "
        "before: clusters / NMI | Ward | oracle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {s: i for i, s in enumerate(SETS)}
    keys = sorted({(c["set"], str(c["rows_per_identity"])) for c in cells},
                  key=lambda k: (order[k[0]], 10**9 if k[1] == "all" else int(k[1])))
    for set_name, per in keys:
        g = [c for c in cells if c["set"] == set_name and str(c["rows_per_identity"]) == per]

        def mean(key: str, group: list[dict[str, Any]] = g) -> float | None:
            vals = [c[key] for c in group if c[key] is not None]
            return float(np.mean(vals)) if vals else None

        lines.append(
            f"| {set_name} | {mean('rows') / mean('K'):.0f} ({mean('val_rows_per_identity'):.0f}) | {mean('K'):.0f} "
            f"| {sum(c['size_curve'] for c in g)} of {len(g)} | {mean('now_clusters'):.1f} / {fmt(mean('now_nmi'))} "
            f"| {mean('before_clusters'):.1f} / {fmt(mean('before_nmi'))} | {fmt(mean('ward_nmi'))} "
            f"| {fmt(mean('oracle_nmi'))} |")
    d = [c["now_nmi"] - c["before_nmi"] for c in cells]
    lines += ["", f"Over all {len(cells)} cells, NMI now minus before: mean {np.mean(d):+.4f}; "
              f"{sum(x > 1e-12 for x in d)} higher, {sum(x < -1e-12 for x in d)} lower; "
              f"worst {min(d):+.3f}, best {max(d):+.3f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from benchmarks._provenance import commit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the JSON")
    ap.add_argument("--fresh", action="store_true", help="start over: an earlier run's cells are replaced")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{NAME}.json"
    rec = json.loads(path.read_text()) if path.exists() and not args.fresh else {"meta": {}, "cells": []}
    made_at = commit()  # before this run writes its own file (which makes the checkout dirty)
    if not args.report:
        done = {(c["set"], c["seed"]) for c in rec["cells"]}
        for set_name in SETS:
            for seed in SEEDS:
                if (set_name, seed) in done:
                    continue
                if set_name == "celeba":
                    try:
                        celeba_faces()
                    except SystemExit as e:
                        print(f"celeba skipped: {e}")
                        break
                rec["cells"] += run_set(set_name, seed)
                rec["meta"] = {"command": "OMP_NUM_THREADS=1 python -m benchmarks.run_held_out_size",
                               "seeds": list(SEEDS), "commit": made_at, "versions": versions(),
                               "wall_s": sum(c["wall_s"] for c in {(c["set"], c["seed"]): c
                                                                   for c in rec["cells"]}.values())}
                path.write_text(json.dumps(rec, indent=1) + "\n")  # a stopped run resumes from here
    table = report(rec["cells"], rec["meta"])
    (OUT / f"{NAME}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
