"""Unseen-class benchmark: does what kfree learns on seen classes cluster unseen ones?

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_unseen                 # all sets, 5 seeds, resumes
    python -m benchmarks.run_unseen --sets att_faces,digits --seeds 0,1 --losses bcl
    python -m benchmarks.run_unseen --report                          # only rebuild the table

Every data set is split by *class*: seen classes (training + validation) and unseen test
classes, differently for every seed. Rows:

- every loss, trained with ``ClusterLearner``'s defaults (what ``kfree train`` does), as
  delivered (``kfree`` = the rule chosen on the validation classes: the model at its own
  threshold, a recalibrated cut, or the raw features) and the model alone at its own threshold
  (complete linkage at 4b / √((α+β)/2), or at the validation-matched cut for losses that imply
  none) — the paper-style row;
- raw features with a validation-calibrated complete-linkage cut and a Ward cut;
- raw features + HDBSCAN (no K);
- raw features + k-means *given* the true K (an oracle a no-K method must approach).

Sets: AT&T faces (shipped; dlib 128-d; 24/6 seen, 10 unseen people), CelebA dlib descriptors
(``$KFREE_SHARED_DATA`` or ``../shared/data``: the run stops when absent; 176/44 seen — the 20 % that ``kfree train`` holds out —, 79 unseen), Banking77
(shipped; MiniLM 384-d; 36/14 seen intents, 27 unseen; validation and test use the official test
utterances), scikit-learn digits (64 pixels; digits 0–5 seen — 2 of them, by seed, for
validation — and 6–9 unseen), synthetic blobs (32-d sphere blobs, spread 1.0, 20 items each; 64/16 seen, 25 unseen).

Each (set, seed, method) is a JSON cell under ``results/unseen/cells/``; a rerun skips the
cells that exist (delete them to recompute). ``results/unseen/table.md`` has means over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "unseen"
#: the staged data (``$KFREE_SHARED_DATA``, as the tests and reproductions read it, else ``../shared/data``)
SHARED = Path(os.environ.get("KFREE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = ("att_faces", "celeba", "banking77", "digits", "blobs")
LOSSES = ("bcl", "triplet-l1", "triplet-l2", "triplet-l3", "prototypical", "contrastive", "softmax",
          "norm-softmax")
BASELINES = ("raw-complete", "raw-ward", "raw-hdbscan", "raw-kmeans-K")
#: losses whose own threshold follows from the loss (the others calibrate one on validation)
IMPLIED = ("bcl", "triplet-l2", "triplet-l3")
#: training settings per set that are not the defaults (Banking77: the demo's schedule)
SET_TRAIN: dict[str, dict[str, Any]] = {
    "banking77": {"epochs": 40, "batches_per_epoch": 8, "p": 16, "k": 8, "lr": 3e-4},
}


def celeba_faces() -> tuple[np.ndarray, np.ndarray]:
    """The CelebA dlib descriptors and identity labels of :data:`SHARED`. Absent, the run stops,
    saying where it looked: skipped without a word, a run from a clone elsewhere rewrote the
    committed tables without CelebA's rows (a benchmark audit)."""
    path = SHARED / "faces_celeba" / "celeba_dlib128.npz"
    if not path.exists():
        raise SystemExit(f"the CelebA descriptors are not at {path}: set KFREE_SHARED_DATA to the folder of the "
                         "staged data sets, or leave celeba out of --sets")
    with np.load(path, allow_pickle=False) as z:
        return z["embeddings"].astype(np.float32), z["labels"].astype(np.int64)


def load_set(name: str, seed: int) -> dict[str, np.ndarray]:
    """Train / validation / unseen-test arrays of ``name`` for ``seed``."""
    from kfree.data.builtin import load_builtin
    from kfree.data.splits import split_identities

    if name == "att_faces":
        ds = load_builtin("att_faces", with_images=False)
        sp = split_identities(ds.y, 24, 6, 10, seed=seed)
        X, y, tr, va, te = ds.X, ds.y, sp.train_idx, sp.val_idx, sp.test_idx
    elif name == "celeba":
        X, y = celeba_faces()
        sp = split_identities(y, 176, 44, 79, seed=seed)  # kfree train holds out 20 % of the 220 seen
        tr, va, te = sp.train_idx, sp.val_idx, sp.test_idx
    elif name == "banking77":
        ds = load_builtin("banking77", with_images=False)
        sp = split_identities(ds.y, 36, 14, 27, seed=seed)
        X, y, tr = ds.X, ds.y, sp.train_idx
        va = sp.val_idx[ds.split[sp.val_idx] == "test"]
        te = sp.test_idx[ds.split[sp.test_idx] == "test"]
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = d.data.astype(np.float32), d.target.astype(np.int64)
        val_digits = np.random.default_rng(seed).choice(6, 2, replace=False)
        tr = np.flatnonzero((y < 6) & ~np.isin(y, val_digits))
        va = np.flatnonzero(np.isin(y, val_digits))
        te = np.flatnonzero(y >= 6)
    elif name == "blobs":
        from kfree.data.synthetic import sphere_blobs

        X, y = sphere_blobs(105, 20, 32, spread=1.0, seed=1000 + seed)
        sp = split_identities(y, 64, 16, 25, seed=seed)
        tr, va, te = sp.train_idx, sp.val_idx, sp.test_idx
    else:
        raise SystemExit(f"unknown set {name!r}; choose from {SETS}")
    return {"X_tr": X[tr], "y_tr": y[tr], "X_val": X[va], "y_val": y[va], "X_te": X[te], "y_te": y[te]}


def _metrics(y: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from kfree.metrics import evaluate_clustering

    m = evaluate_clustering(y, labels)
    return {k: m[k] for k in ("n_true", "n_clusters", "nmi", "wcp", "ari")}


def run_loss(data: dict[str, np.ndarray], loss: str, seed: int, set_name: str,
             params: dict[str, Any] | None = None) -> dict[str, Any]:
    from kfree.cluster.threshold_hac import ThresholdAgglomerative
    from kfree.learner import ClusterLearner

    t0 = time.perf_counter()
    learner = ClusterLearner.from_params(loss=loss, seed=seed, **{**SET_TRAIN.get(set_name, {}), **(params or {})})
    learner.fit(data["X_tr"], data["y_tr"], X_val=data["X_val"], y_val=data["y_val"])
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    delivered = learner.cluster(data["X_te"])
    cluster_s = time.perf_counter() - t1
    # the model alone at its own threshold (the paper-style operating point)
    own = learner.loss_.implied_threshold()
    model_rules = [c for c in learner.selection_["candidates"] if c["features"] == "model"]
    if own is None:
        cal = [c for c in model_rules if c["linkage"] == "complete"]
        from kfree.threshold import Threshold

        own = Threshold.from_dict(cal[0]["threshold"])
    Z = learner.embed(data["X_te"])
    own_labels = ThresholdAgglomerative(own.value, distance=own.distance).fit(Z).labels_
    rule = learner.rule_
    # the audit of the choice: the raw features' best rule (the one the model had to beat) on the
    # unseen identities, where the delivered rule is scored too
    from kfree.evaluate.selection import ClusterRule, best_rule

    raw_cands = [ClusterRule.from_dict(c) for c in learner.selection_["candidates"] if c["features"] == "raw"]
    raw_rule = best_rule(raw_cands) if raw_cands else None
    audit = {} if raw_rule is None else {"raw_rule": {
        **_metrics(data["y_te"], raw_rule.cluster(np.asarray(data["X_te"], dtype=np.float32))),
        "linkage": raw_rule.linkage, "threshold": raw_rule.threshold.value}}
    return {
        "kfree": {**_metrics(data["y_te"], delivered), "time_s": round(fit_s + cluster_s, 2)},
        "model_own": {**_metrics(data["y_te"], own_labels), "threshold": own.value, "distance": own.distance},
        **audit,
        "chosen": {"features": rule.features, "linkage": rule.linkage, "mode": rule.mode,
                   "val_nmi": rule.val_nmi, "step": learner.best_step_},
        "steps": learner.provenance_["steps"], "fit_s": round(fit_s, 2),
        "candidates": learner.selection_["candidates"],
    }


def run_paper(data: dict[str, np.ndarray], loss: str, seed: int, set_name: str) -> dict[str, Any] | None:
    """The paper-style operating point of a loss that implies a threshold (BCL's ``4b``, triplet
    L2/L3's ``√((α+β)/2)``): a model trained as ``run_loss`` trains it, but whose step is chosen
    by its own threshold alone (complete linkage, no recalibrated cut, no raw features), scored at
    that threshold on the unseen identities. ``None`` for losses that imply no threshold.

    Why a fit of its own: ``run_loss``'s kept step is the one whose *best* rule clustered the
    validation identities best, often an early step (even step 0, where ``b`` is still its
    initial value) chosen for a recalibrated cut; the loss's own threshold at that step says
    little about the loss's own threshold."""
    from kfree.cluster.threshold_hac import ThresholdAgglomerative
    from kfree.learner import ClusterLearner

    if loss not in IMPLIED:
        return None
    learner = ClusterLearner.from_params(loss=loss, seed=seed, threshold_mode="learned", compare_raw=False,
                                         linkage="complete", **SET_TRAIN.get(set_name, {}))
    learner.fit(data["X_tr"], data["y_tr"], X_val=data["X_val"], y_val=data["y_val"])
    own = learner.loss_.implied_threshold()
    labels = ThresholdAgglomerative(own.value, distance=own.distance).fit(learner.embed(data["X_te"])).labels_
    return {**_metrics(data["y_te"], labels), "threshold": own.value, "distance": own.distance,
            "step": learner.best_step_, "steps": learner.provenance_["steps"]}


def _write_cell(path: Path, rec: dict[str, Any]) -> None:
    """A cell, written whole or not at all (a stopped run leaves no half-written cell to resume from)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1, default=float))
    tmp.replace(path)


def _timed_paper(data: dict[str, np.ndarray], loss: str, seed: int, set_name: str) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    return {**run_paper(data, loss, seed, set_name), "wall_s": round(time.perf_counter() - t0, 2)}


def add_paper_rows(sets, seeds, losses) -> None:
    """Add ``model_paper`` (:func:`run_paper`) to the finished default cells that lack it: the
    cells' other fields stay as they are (resumable, like ``run``)."""
    for set_name in sets:
        for seed in seeds:
            data = None
            for loss in losses:
                path = RESULTS / "cells" / f"{set_name}_seed{seed}_{loss}.json"
                if loss not in IMPLIED or not path.exists():
                    continue
                rec = json.loads(path.read_text())
                if "model_paper" in rec:
                    continue
                if data is None:
                    data = load_set(set_name, seed)
                rec["model_paper"] = _timed_paper(data, loss, seed, set_name)
                _write_cell(path, rec)
                p = rec["model_paper"]
                print(f"{set_name:10s} seed {seed} {loss:14s} paper-style: {p['n_clusters']:4d}/{p['n_true']:<4d} "
                      f"NMI {p['nmi']:.3f}  step {p['step']}  {p['wall_s']:.1f}s", flush=True)


def run_baseline(data: dict[str, np.ndarray], name: str, seed: int) -> dict[str, Any]:
    from kfree.cluster.kmeans import KMeansClustering
    from kfree.evaluate.selection import ValidationSet

    t0 = time.perf_counter()
    X_te = data["X_te"]
    if name in ("raw-complete", "raw-ward"):
        lk = name.split("-")[1]
        vset = ValidationSet(data["y_val"], linkages=(lk,), seed=seed)
        rule = vset.rules(data["X_val"], features="raw", modes=("recalibrated",))[0]
        labels = rule.cluster(X_te)
        extra = {"threshold": rule.threshold.value}
    elif name == "raw-hdbscan":
        from kfree.cluster.external_hdbscan import HDBSCANBaseline

        labels = HDBSCANBaseline().fit(X_te).labels_
        extra = {}
    elif name == "raw-kmeans-K":
        k = int(np.unique(data["y_te"]).shape[0])
        labels = KMeansClustering(k, seed=seed).fit(X_te).labels_
        extra = {"k": k}
    else:
        raise SystemExit(f"unknown baseline {name!r}")
    return {"kfree": {**_metrics(data["y_te"], labels), "time_s": round(time.perf_counter() - t0, 3), **extra}}


def versions() -> dict[str, str]:
    import sklearn
    import torch

    import kfree

    return {"kfree": kfree.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "python": platform.python_version(),
            "torch_threads": str(torch.get_num_threads())}


def run(sets, seeds, methods, variant: str = "", params: dict[str, Any] | None = None) -> None:
    import torch

    cells = RESULTS / "cells" if not variant else RESULTS / "variants" / variant
    cells.mkdir(parents=True, exist_ok=True)
    for set_name in sets:
        for seed in seeds:
            data = None
            for method in methods:
                path = cells / f"{set_name}_seed{seed}_{method}.json"
                if path.exists():
                    continue
                if data is None:
                    data = load_set(set_name, seed)
                torch.manual_seed(seed)
                t0 = time.perf_counter()
                rec = (run_baseline(data, method, seed) if method in BASELINES
                       else run_loss(data, method, seed, set_name, params))
                if method in IMPLIED and not variant:
                    rec["model_paper"] = _timed_paper(data, method, seed, set_name)
                rec.update({"set": set_name, "seed": seed, "method": method, "wall_s": round(time.perf_counter() - t0, 2),
                            "variant": variant, "params": params or {},
                            "versions": versions(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
                _write_cell(path, rec)
                k = rec["kfree"]
                print(f"{set_name:10s} seed {seed} {method:14s} {k['n_clusters']:4d}/{k['n_true']:<4d} "
                      f"NMI {k['nmi']:.3f}  {rec['wall_s']:.1f}s", flush=True)


def audit_report(recs: list[dict[str, Any]]) -> list[str]:
    """The choice checked on the unseen identities: where a model won validation, how its
    delivered clustering compares with the raw features' best rule (the one it had to beat)."""
    lines = ["## The choice, checked on the unseen identities", "",
             "Per set, over every loss and seed: the delivered NMI against the raw features' best rule on "
             "validation (the rule a model must beat), both on the unseen test identities. Where the raw "
             "features were chosen the two are the same clustering.", "",
             "| set | cells | model chosen | of those: below raw on test (mean loss) | above raw (mean gain) | "
             "equal | delivered NMI | raw rule NMI |", "|---|---|---|---|---|---|---|---|"]
    for set_name in SETS:
        rs = [r for r in recs if r["set"] == set_name and "raw_rule" in r]
        if not rs:
            continue
        d = np.array([r["kfree"]["nmi"] - r["raw_rule"]["nmi"] for r in rs])
        model = np.array([r["chosen"]["features"] == "model" for r in rs])
        dm = d[model]
        below, above = dm[dm < -1e-9], dm[dm > 1e-9]
        lines.append(f"| {set_name} | {len(rs)} | {int(model.sum())} | {below.size} "
                     f"({(-below.mean() if below.size else 0):.4f}) | {above.size} "
                     f"({(above.mean() if above.size else 0):.4f}) | {int(dm.size - below.size - above.size)} | "
                     f"{np.mean([r['kfree']['nmi'] for r in rs]):.4f} | "
                     f"{np.mean([r['raw_rule']['nmi'] for r in rs]):.4f} |")
    return lines + [""]


def _load_cells() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / "cells").glob("*.json"))]


def report() -> str:
    recs = _load_cells()
    if not recs:
        return "no cells yet"
    lines = ["# Unseen-class benchmark (measured)", "",
             "Command: `OMP_NUM_THREADS=1 python -m benchmarks.run_unseen` (resumable; cells in `cells/`). "
             f"Versions: {json.dumps(recs[0]['versions'])}.", "",
             "Rows per set: every loss as **delivered** by kfree (the rule chosen on validation classes: "
             "`chosen` says how often the raw features, and which linkage/threshold, won); the **model "
             "at its own threshold, kept step** (complete linkage at 4b / √((α+β)/2), or the validation-matched "
             "cut for losses that imply none, at the step kfree kept — the step whose best rule clustered the "
             "validation classes best, often an early one, even step 0 with b at its initial value); for the "
             "losses that imply a threshold (BCL, triplet L2/L3) the **model alone, stopped by its own "
             "threshold** — the paper-style operating point: the same training, the step chosen by how the "
             "loss's own threshold clusters the validation classes, no recalibrated cut, no raw features "
             "(`run_paper`, a fit of its own); then raw-feature baselines. Means over the seeds listed; "
             "|Δ#| = mean |#clusters − true|; time = fit + cluster (s).", ""]
    by_set: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_set.setdefault(r["set"], []).append(r)
    summary: dict[str, dict[str, Any]] = {}
    for set_name in SETS:
        rs = by_set.get(set_name)
        if not rs:
            continue
        seeds = sorted({r["seed"] for r in rs})
        lines += [f"## {set_name} (seeds {', '.join(map(str, seeds))})", "",
                  "| method | n | #clusters (true) | \\|Δ#\\| | NMI | WCP | ARI | time (s) | chosen |",
                  "|---|---|---|---|---|---|---|---|---|"]
        order = [m for m in (*LOSSES, *BASELINES) if any(r["method"] == m for r in rs)]
        for m in order:
            mr = [r for r in rs if r["method"] == m]
            variants = [("kfree", m if m in BASELINES else f"{m} (kfree, delivered)")]
            if m not in BASELINES:
                variants.append(("model_own", f"{m} (model at own threshold, kept step)"))
            if any("model_paper" in r for r in mr):
                variants.append(("model_paper", f"{m} (model alone, stopped by its own threshold)"))
            for key, label in variants:
                v = [r[key] for r in mr if key in r]
                row = {s: float(np.mean([x[s] for x in v])) for s in ("n_clusters", "n_true", "nmi", "wcp", "ari")}
                gap = float(np.mean([abs(x["n_clusters"] - x["n_true"]) for x in v]))
                t = np.mean([x.get("time_s", np.nan) for x in v]) if key == "kfree" else float("nan")
                chosen = ""
                if key == "kfree" and m not in BASELINES:
                    c = [r["chosen"] for r in mr]
                    n_raw = sum(x["features"] == "raw" for x in c)
                    kinds: dict[str, int] = {}
                    for x in c:
                        kk = f"{x['features']}/{x['linkage']}/{'own' if x['mode'] == 'learned' else 'recal'}"
                        kinds[kk] = kinds.get(kk, 0) + 1
                    chosen = f"raw {n_raw}/{len(c)}; " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))
                lines.append(f"| {label} | {len(v)} | {row['n_clusters']:.1f} ({row['n_true']:.0f}) | {gap:.1f} | "
                             f"{row['nmi']:.3f} | {row['wcp']:.3f} | {row['ari']:.3f} | "
                             f"{'' if np.isnan(t) else f'{t:.1f}'} | {chosen} |")
                summary.setdefault(set_name, {})[label] = {**row, "gap": gap, "n": len(v),
                                                           "per_seed_clusters": [x["n_clusters"] for x in v],
                                                           "per_seed_nmi": [x["nmi"] for x in v]}
        lines.append("")
    if any("raw_rule" in r for r in recs):
        lines += audit_report(recs)
    text = "\n".join(lines)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    return text


def _mean_nmi(groups: dict, which: int, key: str) -> float:
    """Mean over (set, loss) groups of the mean NMI of side ``which`` (0 variant, 1 defaults)."""
    return float(np.mean([np.mean([pair[which][key]["nmi"] for pair in g]) for g in groups.values()]))


def variants_report() -> str:
    """Regularisation variants (``--variant``) side by side with the defaults, per set and loss:
    mean NMI and |Δ#| as delivered and of the model alone at its own threshold."""
    base = {(r["set"], r["method"], r["seed"]): r for r in _load_cells() if r["method"] in LOSSES}
    vdir = RESULTS / "variants"
    if not vdir.exists():
        return ""
    lines = ["# Regularisation variants on unseen classes (measured)", "",
             "Each variant changes the learner's defaults as listed (`python -m benchmarks.run_unseen --variant NAME "
             "--params JSON`); cells in `variants/NAME/`. Means over the seeds both the variant and the defaults "
             "ran; NMI as delivered (the rule chosen on validation) / of the model alone at its own threshold.", "",
             r"| variant | params | set | loss | seeds | delivered NMI | delivered \|Δ#\| | model-own NMI | "
             r"model-own \|Δ#\| | raw chosen |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for vd in sorted(p for p in vdir.iterdir() if p.is_dir()):
        recs = [json.loads(p.read_text()) for p in sorted(vd.glob("*.json"))]
        for key in sorted({(r["set"], r["method"]) for r in recs}):
            for name, group in (("defaults", [base.get((key[0], key[1], r["seed"])) for r in recs
                                              if (r["set"], r["method"]) == key]),
                                (vd.name, [r for r in recs if (r["set"], r["method"]) == key])):
                group = [g for g in group if g is not None]
                if not group:
                    continue
                d = [g["kfree"] for g in group]
                o = [g["model_own"] for g in group]
                rows.append(f"| {name} | {json.dumps(group[0].get('params', {})) if name != 'defaults' else ''} | "
                            f"{key[0]} | {key[1]} | {len(group)} | {np.mean([x['nmi'] for x in d]):.3f} | "
                            f"{np.mean([abs(x['n_clusters'] - x['n_true']) for x in d]):.1f} | "
                            f"{np.mean([x['nmi'] for x in o]):.3f} | "
                            f"{np.mean([abs(x['n_clusters'] - x['n_true']) for x in o]):.1f} | "
                            f"{sum(g['chosen']['features'] == 'raw' for g in group)}/{len(group)} |")
    # one line per variant: means over every (set, loss) it ran, next to the defaults on the same cells
    summary = ["", "## Summary: mean over every (set, loss) a variant ran, 3 seeds each", "",
               "| variant | delivered NMI | defaults, same cells | model-own NMI | defaults, same cells |",
               "|---|---|---|---|---|"]
    for vd in sorted(p for p in vdir.iterdir() if p.is_dir()):
        recs = [json.loads(p.read_text()) for p in sorted(vd.glob("*.json"))]
        pairs = [(r, base.get((r["set"], r["method"], r["seed"]))) for r in recs]
        pairs = [(r, b) for r, b in pairs if b is not None]
        if not pairs:
            continue
        groups: dict[tuple[str, str], list] = {}
        for r, b in pairs:
            groups.setdefault((r["set"], r["method"]), []).append((r, b))

        m = {(which, key): _mean_nmi(groups, which, key) for which in (0, 1) for key in ("kfree", "model_own")}
        summary.append(f"| {vd.name} | {m[0, 'kfree']:.3f} | {m[1, 'kfree']:.3f} | "
                       f"{m[0, 'model_own']:.3f} | {m[1, 'model_own']:.3f} |")
    return "\n".join(lines + rows + summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--losses", default=",".join(LOSSES), help="losses to train ('' for none)")
    ap.add_argument("--baselines", default=",".join(BASELINES))
    ap.add_argument("--report", action="store_true", help="only rebuild table.md from the cells")
    ap.add_argument("--variant", default="", help="name of a regularisation variant (cells in variants/NAME/)")
    ap.add_argument("--params", default="{}", help="JSON of learner parameters the variant changes")
    ap.add_argument("--paper-rows", action="store_true",
                    help="only add the paper-style row (run_paper) to finished cells that lack it")
    a = ap.parse_args()
    if a.paper_rows:
        add_paper_rows([s for s in a.sets.split(",") if s], [int(s) for s in a.seeds.split(",")],
                       [m for m in a.losses.split(",") if m])
    elif not a.report:
        t0 = time.perf_counter()
        methods = [m for m in a.baselines.split(",") + a.losses.split(",") if m]
        params = json.loads(a.params)
        if params and not a.variant:
            raise SystemExit("--params needs --variant NAME (the defaults' cells must not mix with a variant's)")
        run([s for s in a.sets.split(",") if s], [int(s) for s in a.seeds.split(",")],
            [m for m in methods if not (a.variant and m in BASELINES)], a.variant, params)
        print(f"run took {time.perf_counter() - t0:.0f} s")
    vtext = variants_report()
    if vtext:
        (RESULTS / "variants.md").write_text(vtext + "\n")
    text = report()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
