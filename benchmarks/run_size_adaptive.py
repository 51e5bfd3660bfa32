"""An experiment: cuts calibrated on validation identities cut down to the batch's cluster size.

Usage (from the repository root; about 10 minutes on 2 cores)::

    OMP_NUM_THREADS=1 python -m benchmarks.run_size_adaptive            # runs, writes the table
    python -m benchmarks.run_size_adaptive --report                     # only rebuild the table

Why: a calibrated cut (Ward's merge height most, complete linkage's diameter less) depends on how
many rows each identity has, and kfree calibrates it on the validation identities. When the rows
to cluster hold identities of another size, the cut transfers badly: a sklearn-user trial's
Banking77 run without ``X_val`` (validation intents of ~130 training rows, unseen intents of 40)
delivered NMI 0.727 against 0.846 with validation rows drawn like the batch. kfree's answer today
is a size check that swaps Ward for the complete-linkage cut (``results/benchmarks/ward_size.md``).

The idea measured here: calibrate each cut on the validation identities cut down to ``s`` rows
each, for a grid of ``s`` (a *size curve* ``h(s)``, the median over 5 draws), and find the batch's
``s`` as a fixed point: cut the batch at ``h(s)``, take its rows per cluster as the next ``s``,
starting from the validation identities' size, until the number of clusters repeats. Two
variants: Ward at its own fixed point; and Ward at the fixed point of the complete-linkage
curve (a diameter depends less on sizes, so its estimate of ``s`` is steadier). Everything else
is as in ``run_ward_size`` (same splits, seeds, training, and the learner's Ward candidate made
the chosen rule); the size curves use the validation rows in the learner's chosen features (the
library's raw-feature cuts also use the training identities; this does not). Results:
``results/benchmarks/size_adaptive.json`` and ``size_adaptive.md``.

Over these 60 cells neither variant beat kfree's size check of the time (mean NMI −0.041 and
−0.005), so the library uses "Ward at complete's s" only where it was measured to gain: for
identities held out of the training data (``fit`` without ``X_val``), whose size says nothing of
a batch's (``run_held_out_size``: +0.053 over its 51 cells), and, with validation rows given, for
batches whose identities look under half their size (``run_ward_size``). Its curve is calibrated
on the rows the rule was (for the raw features, the training identities too), not on the
validation rows alone as here. The fixed point helps where the batch's identities are much smaller than the
validation ones and there are many of them (CelebA 5 rows against 21: 0.930 → 0.972; Banking77 20
against 80, read at complete linkage's fixed point: 0.749 → 0.827), but it also settles on merged
pairs of identities (a cluster of two 40-row intents looks like an 80-row identity at that
height: Banking77 40 against 80, 0.811 → 0.794), and with 2 validation digits the curve itself
is unreliable (down to −0.54).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from benchmarks.run_ward_size import SEEDS, _per_identity, grid_cells, grid_main, ward_learner
from kfree.evaluate.calibrate import merge_tree

#: the class sizes of the size curve (rows per identity)
GRID = (2, 3, 5, 8, 12, 20, 30, 45, 70, 100, 150, 250)


def size_curve(Z: np.ndarray, y: np.ndarray, linkage: str) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, heights)``: the cut giving the number of identities of ``y`` when each is cut
    down to ``s`` rows (median over 5 seeded draws), for the sizes of GRID up to the largest
    identity."""
    from kfree.evaluate.calibrate import cut_height

    k = int(np.unique(y).shape[0])
    top = int(np.unique(y, return_counts=True)[1].max())
    sizes = [s for s in GRID if s < top] + [top]
    heights = []
    for s in sizes:
        hs = []
        for rep in range(5):
            idx = _per_identity(np.arange(y.shape[0]), y, s, np.random.default_rng(rep))
            hs.append(cut_height(merge_tree(Z[idx], linkage)[:, 2], k))
        heights.append(float(np.median(hs)))
    return np.asarray(sizes, dtype=np.float64), np.maximum.accumulate(np.asarray(heights))


def fixed_point(tree: np.ndarray, n: int, curve: tuple[np.ndarray, np.ndarray], s0: float) -> tuple[float, np.ndarray]:
    """``(s, labels)``: the batch's rows per cluster at which its tree, cut at ``h(s)``, finds
    clusters of ``s`` rows, from ``s0`` on; stops when the number of clusters repeats (30 steps
    at most)."""
    from scipy.cluster.hierarchy import fcluster

    sizes, heights = curve
    s, seen = float(s0), set()
    while True:
        h = float(np.interp(np.log(s), np.log(sizes), heights))
        labels = fcluster(tree, h, criterion="distance")
        k = int(labels.max())
        if k in seen or len(seen) >= 30:
            return s, labels
        seen.add(k)
        s = n / k


def run_set(name: str, seed: int, val_per: int | None, batch_sizes: tuple[int | None, ...]) -> list[dict[str, Any]]:
    from kfree.metrics import nmi

    t0 = time.perf_counter()
    X, y, va, te, rng, learner = ward_learner(name, seed, val_per)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_cal = learner.selection_["val_rows_per_identity"]
        Zv = learner.transform(X[va])
        ward_curve, complete_curve = size_curve(Zv, y[va], "ward"), size_curve(Zv, y[va], "complete")
        cells = []
        for per in batch_sizes:
            te_s = _per_identity(te, y, per, rng)
            Z = learner.transform(X[te_s])
            n = te_s.shape[0]
            lk = learner.cluster(X[te_s])
            lw = learner.rule_.cluster(Z)
            wt, ct = merge_tree(Z, "ward"), merge_tree(Z, "complete")
            s_w, l_w = fixed_point(wt, n, ward_curve, m_cal)
            s_c, l_c = fixed_point(ct, n, complete_curve, m_cal)
            from scipy.cluster.hierarchy import fcluster

            l_wc = fcluster(wt, float(np.interp(np.log(s_c), np.log(ward_curve[0]), ward_curve[1])), "distance")
            l_oracle = fcluster(wt, float(np.interp(np.log(n / np.unique(y[te_s]).shape[0]), np.log(ward_curve[0]),
                                                    ward_curve[1])), "distance")
            k_true = int(np.unique(y[te_s]).shape[0])
            cells.append({
                "set": name, "seed": seed, "val_per": "all" if val_per is None else val_per,
                "val_rows_per_identity": m_cal, "rows_per_identity": "all" if per is None else per, "rows": n,
                "K": k_true, "true_rows_per_identity": n / k_true, "features": learner.rule_.features,
                "kfree_clusters": int(lk.max()) + 1, "kfree_nmi": nmi(y[te_s], lk),
                "ward_clusters": int(lw.max()) + 1, "ward_nmi": nmi(y[te_s], lw),
                "adaptive_ward_s": s_w, "adaptive_ward_clusters": int(l_w.max()), "adaptive_ward_nmi": nmi(y[te_s], l_w),
                "adaptive_complete_s": s_c, "adaptive_complete_nmi": nmi(y[te_s], l_c),
                "ward_at_complete_s_clusters": int(l_wc.max()), "ward_at_complete_s_nmi": nmi(y[te_s], l_wc),
                "oracle_ward_nmi": nmi(y[te_s], l_oracle),
            })
    for c in cells:
        c["wall_s"] = round(time.perf_counter() - t0, 1)
    return cells


def report(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Cuts calibrated on validation identities cut down to the batch's size (an experiment)",
        "",
        "Written by `benchmarks/run_size_adaptive.py` (its docstring says what runs, why, and why the library "
        "does not use it). Command:",
        "",
        f"    {meta['command']}",
        "",
        f"Seeds {', '.join(map(str, meta['seeds']))}; wall time {meta['wall_s']:.0f} s; commit {meta.get('commit')}; "
        "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Means over seeds; NMI on the unseen identities. *kfree*: `learner.cluster` with its Ward candidate as the "
        "chosen rule (its size check may swap in the complete-linkage cut), as in `ward_size.md`. *Ward*: the "
        "Ward cut calibrated on the validation identities as they are. *adaptive Ward*: Ward at the fixed point of "
        "its own size curve (its rows per cluster *s* in brackets); *Ward at complete's s*: Ward's curve read at "
        "the fixed point of the complete-linkage curve; *oracle*: Ward's curve read at the true rows per identity.",
        "",
        "| set | rows per identity: batch (validation) | K | kfree | Ward | adaptive Ward (s) | "
        "Ward at complete's s (s) | oracle |",
        "|---|---|---|---|---|---|---|---|",
    ]

    for set_name, _, _, _, mean in grid_cells(cells):
        lines.append(
            f"| {set_name} | {mean('true_rows_per_identity'):.0f} ({mean('val_rows_per_identity'):.0f}) | "
            f"{mean('K'):.0f} | {mean('kfree_nmi'):.3f} | {mean('ward_nmi'):.3f} | "
            f"{mean('adaptive_ward_nmi'):.3f} ({mean('adaptive_ward_s'):.0f}) | "
            f"{mean('ward_at_complete_s_nmi'):.3f} ({mean('adaptive_complete_s'):.0f}) | {mean('oracle_ward_nmi'):.3f} |")
    for key in ("adaptive_ward_nmi", "ward_at_complete_s_nmi"):
        d = [c[key] - c["kfree_nmi"] for c in cells]
        lines.append(f"\nOver all {len(cells)} cells, `{key}` minus kfree's: mean {np.mean(d):+.4f}; "
                     f"{sum(x > 1e-12 for x in d)} higher, {sum(x < -1e-12 for x in d)} lower; worst {min(d):+.3f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    def meta() -> dict[str, Any]:
        from benchmarks._provenance import commit

        return {"command": "OMP_NUM_THREADS=1 python -m benchmarks.run_size_adaptive", "seeds": list(SEEDS),
                "commit": commit()}

    grid_main("size_adaptive", run_set, report, meta)


if __name__ == "__main__":
    main()
