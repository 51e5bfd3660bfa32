"""A Ward cut on batches whose identities hold far fewer or far more rows than validation's.

Usage (from the repository root; about 5 minutes on 2 cores)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_ward_size            # runs, writes the table
    python -m benchmarks.run_ward_size --report                     # only rebuild the table

A Ward merge height grows with the sizes of the clusters it merges, so a Ward cut calibrated on
validation identities of ``m`` rows each over-merges a batch of much smaller identities and
over-splits one of much larger identities. ``ClusterLearner.cluster`` then uses the best
validated complete-linkage cut instead (``kfree.learner.WARD_MIN_SIZE_RATIO`` /
``WARD_MAX_SIZE_RATIO``, on the rows per cluster that cut finds), unless that cut finds about
what it found on the validation rows (``WARD_LIKE_VALIDATION``); a model with a size curve
reads its Ward cut at the batch's size first, where that size looks under half the validation
identities' (``ClusterLearner._ward_at_batch_size``). This benchmark measures,
on real data, the NMI of the Ward cut, of the complete-linkage cut and of what kfree delivers
as the batch's rows per identity move away from the validation identities':

- Banking77 (shipped, MiniLM): 36 seen intents, 14 validation intents cut to 20 (and, a second
  model, 80) rows each, 27 unseen intents at 20, 40, 80 and all (~160) rows each;
- CelebA dlib descriptors (``$KFREE_SHARED_DATA`` or ``../shared/data``; the run stops when absent): 176 seen, 44 validation
  identities cut to 5 (or all ~21) rows each, 79 unseen at 5, 10 and all (~21) rows each;
- scikit-learn digits: digits 0–5 seen (2 of them for validation, cut to 20 rows each, or all
  ~180), digits 6–9 unseen at 20, 60 and all (~180) rows each.

The learner is trained briefly (8 epochs, linkage ``auto``) and its Ward candidate is made the
chosen rule, so that every cell measures the size check; seeds 0–2. Results:
``results/benchmarks/ward_size.json`` and ``ward_size.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run_unseen import celeba_faces, versions

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks"
SEEDS = (0, 1, 2)
#: set -> [(validation rows per identity, unseen rows per identity)]; None = all
SIZES: dict[str, list[tuple[int | None, tuple[int | None, ...]]]] = {
    "banking77": [(20, (20, 40, 80, None)), (80, (20, 40, 80, None))],
    "celeba": [(5, (5, 10, None)), (None, (5, 10, None))],
    "digits": [(20, (20, 60, None)), (None, (20, 60, None))],
}


def load_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a set these size benchmarks use: ``banking77`` and ``att_faces`` (shipped),
    ``celeba`` (staged), ``digits`` (scikit-learn's), float32 features and int labels."""
    if name in ("banking77", "att_faces"):
        from kfree.data.builtin import load_builtin

        ds = load_builtin(name, with_images=False)
        return ds.X, ds.y
    if name == "celeba":
        return celeba_faces()
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64)


def _split(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, train, validation, unseen)`` row indices of one set and seed."""
    from kfree.data.splits import split_identities

    X, y = load_arrays(name)
    if name == "banking77":
        sp = split_identities(y, 36, 14, 27, seed=seed)
        return X, y, sp.train_idx, sp.val_idx, sp.test_idx
    if name == "celeba":
        sp = split_identities(y, 176, 44, 79, seed=seed)
        return X, y, sp.train_idx, sp.val_idx, sp.test_idx
    val = np.random.default_rng(seed).choice(6, 2, replace=False)
    return (X, y, np.flatnonzero((y < 6) & ~np.isin(y, val)), np.flatnonzero(np.isin(y, val)),
            np.flatnonzero(y >= 6))


def _per_identity(idx: np.ndarray, y: np.ndarray, per: int | None, rng: np.random.Generator) -> np.ndarray:
    if per is None:
        return idx
    out = []
    for c in np.unique(y[idx]):
        rows = idx[y[idx] == c]
        out.append(rows if rows.shape[0] <= per else np.sort(rng.choice(rows, per, replace=False)))
    return np.concatenate(out)


def ward_learner(name: str, seed: int, val_per: int | None) -> tuple[Any, ...]:
    """``(X, y, validation rows, unseen rows, rng, learner)`` of one set, seed and validation size:
    the learner trained briefly on the split, its Ward candidate made the chosen rule (every cell
    of this benchmark and of ``run_size_adaptive`` measures a Ward rule); ``rng``'s next draws pick
    the batches."""
    from kfree import ClusterLearner, TrainConfig

    X, y, tr, va, te = _split(name, seed)
    rng = np.random.default_rng(seed)
    va = _per_identity(va, y, val_per, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learner = ClusterLearner(TrainConfig(epochs=8, seed=seed), linkage="auto").fit(
            X[tr], y[tr], X_val=X[va], y_val=y[va])
    learner.rule_ = learner._ward_rule()
    return X, y, va, te, rng, learner


def run_set(name: str, seed: int, val_per: int | None, sizes: tuple[int | None, ...]) -> list[dict[str, Any]]:
    from kfree.exceptions import ClusterSizeWarning
    from kfree.metrics import nmi

    t0 = time.perf_counter()
    X, y, _, te, rng, learner = ward_learner(name, seed, val_per)
    m_cal = learner.selection_["val_rows_per_identity"]
    m_ref = learner.selection_["val_complete_rows_per_cluster"]
    ward, complete = learner.rule_, learner.state_rule()
    cells = []
    for per in sizes:
        te_s = _per_identity(te, y, per, rng)
        Z = learner.transform(X[te_s])
        lw, lc = ward.cluster(Z), complete.cluster(Z)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ClusterSizeWarning)
            lk = learner.cluster(X[te_s])
        replaced = any(getattr(w.message, "replaced", False) for w in caught)
        k_true = int(np.unique(y[te_s]).shape[0])
        m_new = te_s.shape[0] / (int(lc.max()) + 1)
        from kfree.learner import WARD_MAX_SIZE_RATIO, WARD_MIN_SIZE_RATIO

        # the check before 2026-12-02, without the exception for a batch drawn like the validation rows
        before = "ward" if WARD_MIN_SIZE_RATIO <= m_new / m_cal < WARD_MAX_SIZE_RATIO else "complete"
        cells.append({
            "set": name, "seed": seed, "val_rows_per_identity": m_cal, "val_complete_rows_per_cluster": m_ref,
            "val_per": "all" if val_per is None else val_per,
            "rows_per_identity": "all" if per is None else per, "rows": int(te_s.shape[0]), "K": k_true,
            "true_ratio": te_s.shape[0] / k_true / m_cal,
            "estimated_ratio": m_new / m_cal, "like_validation_ratio": m_new / m_ref,
            "features": ward.features, "ward_clusters": int(lw.max()) + 1, "ward_nmi": nmi(y[te_s], lw),
            "complete_clusters": int(lc.max()) + 1, "complete_nmi": nmi(y[te_s], lc),
            "kfree_clusters": int(lk.max()) + 1, "kfree_nmi": nmi(y[te_s], lk),
            "kfree_used": "complete" if replaced else "ward",
            "before_used": before, "before_nmi": nmi(y[te_s], lc if before == "complete" else lw),
        })
    for c in cells:
        c["wall_s"] = round(time.perf_counter() - t0, 1)
    return cells


def grid_cells(cells: list[dict[str, Any]]):
    """``(set, validation rows per identity, batch rows per identity, cells, mean)`` for each cell
    of the grid in :data:`SIZES`' order, ``mean(key)`` the mean of ``key`` over its seeds (this
    table's and ``run_size_adaptive``'s)."""
    def order(v: str) -> int:
        return 10**9 if v == "all" else int(v)

    keys = sorted({(c["set"], str(c.get("val_per", "")), str(c["rows_per_identity"])) for c in cells},
                  key=lambda k: (list(SIZES).index(k[0]), order(k[1]) if k[1] else 0, order(k[2])))
    for set_name, val_per, per in keys:
        g = [c for c in cells if c["set"] == set_name and str(c.get("val_per", "")) == val_per
             and str(c["rows_per_identity"]) == per]

        def mean(key: str, group: list[dict[str, Any]] = g) -> float:
            return float(np.mean([c[key] for c in group]))

        yield set_name, val_per, per, g, mean


def grid_main(name: str, run_set: Any, report: Any, meta: Any) -> None:
    """Run ``run_set`` over the grid and seeds, keep the cells in ``results/benchmarks/NAME.json``
    with ``meta()`` (or, with ``--report``, only read them) and write ``report``'s table to
    ``NAME.md``: this benchmark's and ``run_size_adaptive``'s command line."""
    ap = argparse.ArgumentParser(description=(sys.modules[run_set.__module__].__doc__ or "").splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only rebuild the table from the JSON")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    if not args.report:
        t0 = time.perf_counter()
        cells = [c for set_name, runs in SIZES.items() for val_per, sizes in runs for seed in SEEDS
                 for c in run_set(set_name, seed, val_per, sizes)]
        path.write_text(json.dumps({"meta": {**meta(), "wall_s": time.perf_counter() - t0, "versions": versions()},
                                    "cells": cells}, indent=1) + "\n")
    rec = json.loads(path.read_text())
    table = report(rec["cells"], rec["meta"])
    (OUT / f"{name}.md").write_text(table)
    print(table)


def report(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# A Ward cut on identities smaller or larger than validation's",
        "",
        "Written by `benchmarks/run_ward_size.py` (its docstring says what runs). Command:",
        "",
        f"    {meta['command']}",
        "",
        f"Seeds {', '.join(map(str, meta['seeds']))}; wall time {meta['wall_s']:.0f} s; versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Means over seeds. *true ratio*: the batch's rows per identity over the validation identities'. "
        "*estimated*: the rows per cluster of the complete-linkage cut on the batch over the validation "
        "identities' rows; *(like validation)*: the same over what that cut found on the validation rows. kfree "
        f"uses the complete-linkage cut when the estimate is below {meta['min_ratio']:g} or at least "
        f"{meta['max_ratio']:g} (`WARD_MIN_SIZE_RATIO`, `WARD_MAX_SIZE_RATIO`), unless the like-validation ratio "
        f"lies within {meta.get('like_validation', 1.1):g}× of 1 (`WARD_LIKE_VALIDATION`: the batch is drawn like "
        "the validation rows; added 2026-12-02, when a research trial's validation rows themselves failed the "
        "check), else the Ward cut; a model with a size curve (a Ward cut calibrated on 8 or more identities, "
        "`SIZE_CURVE_MIN_IDENTITIES`; from 2026-12-03) first reads its Ward cut at the batch's size where the "
        "curve's estimate of it is under that first ratio (`held_out_size.md`). *before*: without the "
        "like-validation exception or the curve.",
        "",
        "| set | rows per identity: batch (validation) | true ratio | estimated ratio (like validation) | K | "
        "Ward: clusters / NMI | complete: clusters / NMI | kfree: NMI (complete used, of seeds) | "
        "before: NMI (complete used) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    for set_name, _, per, g, mean in grid_cells(cells):
        lines.append(
            f"| {set_name} | {per} ({mean('val_rows_per_identity'):.0f}) | {mean('true_ratio'):.1f} | "
            f"{mean('estimated_ratio'):.2f} ({mean('like_validation_ratio'):.2f}) | {mean('K'):.0f} | "
            f"{mean('ward_clusters'):.1f} / {mean('ward_nmi'):.3f} | "
            f"{mean('complete_clusters'):.1f} / {mean('complete_nmi'):.3f} | {mean('kfree_nmi'):.3f} "
            f"({sum(c['kfree_used'] == 'complete' for c in g)} of {len(g)}) | {mean('before_nmi'):.3f} "
            f"({sum(c['before_used'] == 'complete' for c in g)}) |")
    wins = [(c["kfree_nmi"] - c["before_nmi"]) for c in cells]
    lines += ["", f"Over all {len(cells)} cells, kfree's NMI now minus before: mean {np.mean(wins):+.4f}; "
              f"{sum(w > 1e-12 for w in wins)} higher, {sum(w < -1e-12 for w in wins)} lower."]
    return "\n".join(lines) + "\n"


def main() -> None:
    def meta() -> dict[str, Any]:
        from kfree.learner import WARD_LIKE_VALIDATION, WARD_MAX_SIZE_RATIO, WARD_MIN_SIZE_RATIO

        return {"command": "OMP_NUM_THREADS=1 python -m benchmarks.run_ward_size", "seeds": list(SEEDS),
                "like_validation": WARD_LIKE_VALIDATION, "min_ratio": WARD_MIN_SIZE_RATIO,
                "max_ratio": WARD_MAX_SIZE_RATIO}

    grid_main("ward_size", run_set, report, meta)


if __name__ == "__main__":
    main()
