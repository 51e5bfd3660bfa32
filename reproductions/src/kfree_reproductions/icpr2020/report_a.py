"""Tables and figures of the ICPR 2020 Protocol A runs (AlexNet-BN trained on CIFAR-10 images).

A Protocol A run folder (:func:`~.protocol_a.run_protocol_a`) holds ``config.json`` and
one ``epochs/epoch_XXX.json`` per epoch, with scores on the evaluated epochs. This module reads a
folder of such runs (one per loss and seed), compares the last epoch with the paper's Table I
(no noise), tracks the curves over epochs, checks the paper's "L2/L3 ≥ L1 under multicut" at
every evaluated epoch and draws the ACC-vs-epoch curves and, from the kept last-epoch
embeddings, the same Fig. 4 / Fig. 6 / histogram figures as Protocol B.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kfree_reproductions.icpr2020.paper import PAPER_ACC

log = logging.getLogger(__name__)

#: The clusterings reported per epoch: key in the epoch record → column title.
METHODS_A: dict[str, str] = {"multicut": "multicut (GAEC + KLj)",
                             "multicut_avg_kl": "multicut (avg-linkage start + KLj)",
                             "kmeans": "k-means, k = 10"}


def load_runs(root: str | os.PathLike[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """``{(loss, seed): {"name", "config", "epochs": [records], "embedding": path or None}}``.

    Only runs without label noise are read (the paper reports Protocol A's no-noise cells).
    """
    from kfree_reproductions.icpr2020.protocol_a import load_epochs

    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for d in sorted(Path(root).iterdir()):
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            continue
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        c = meta["config"]
        if float(c["wrong_positives"]) != 0.0 or c["wrong_negatives"] not in (0, 0.0):
            continue
        epochs = load_epochs(d)
        runs[(c["loss"], int(c["seed"]))] = {"name": d.name, "config": meta, "epochs": epochs,
                                             "embedding": _last_embedding(d, epochs)}
    return runs


def _last_embedding(run: Path, epochs: list[dict[str, Any]]) -> Path | None:
    """The kept test embedding of the run's last evaluated epoch: the runner keeps it as
    ``embeddings/epoch_XXX.npz``; a committed run folder holds it as ``embedding_epochXXX.npz``."""
    def epoch(p: Path) -> int:
        return int(re.search(r"(\d+)\.npz$", p.name).group(1))

    done = {int(r["epoch"]) for r in epochs if "multicut" in r}
    # the runner's own file first: on a tie (the same epoch under both names) max keeps it
    files = [p for p in (*(run / "embeddings").glob("epoch_*.npz"), *run.glob("embedding_epoch*.npz"))
             if epoch(p) in done]
    return max(files, key=epoch, default=None)


def _evaluated(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in run["epochs"] if "multicut" in r]


def _by_loss(runs: dict[tuple[str, int], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (loss, _seed), run in sorted(runs.items()):
        out[loss].append(run)
    return dict(out)


def final_markdown(runs: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Last evaluated epoch per loss: ACC per seed, mean, #clusters, NMI, paper's 100-epoch ACC."""
    lines = ["| loss | epoch | seeds | " + " | ".join(f"{t} ACC % (paper)" for t in METHODS_A.values())
             + " | multicut #clusters | multicut NMI % | k-means NMI % |",
             "|---|---|---|" + "---|" * (len(METHODS_A) + 3)]
    for loss, rs in _by_loss(runs).items():
        last = [_evaluated(r)[-1] for r in rs if _evaluated(r)]
        if not last:
            continue
        cells = []
        for key in METHODS_A:
            accs = [100 * r[key]["acc"] for r in last if key in r]
            paper = PAPER_ACC.get("kmeans" if key == "kmeans" else "multicut", {}).get(loss, {}).get((0.0, 0.0))
            per = " / ".join(f"{a:.2f}" for a in accs)
            cells.append(f"**{np.mean(accs):.2f}** ({paper:.2f}) <br>seeds: {per}" if accs else "–")
        epochs = sorted({int(r["epoch"]) for r in last})
        lines.append(f"| {loss.upper()} | {'/'.join(map(str, epochs))} | {len(last)} | " + " | ".join(cells)
                     + f" | {np.mean([r['multicut']['n_clusters'] for r in last]):.1f}"
                     + f" | {100 * np.mean([r['multicut']['nmi'] for r in last]):.1f}"
                     + f" | {100 * np.mean([r['kmeans']['nmi'] for r in last]):.1f} |")
    return "\n".join(lines)


def curve_markdown(runs: dict[tuple[str, int], dict[str, Any]],
                   epochs: tuple[int, ...] = (1, 2, 5, 10, 15, 20, 30, 50, 75, 100)) -> str:
    """Mean ACC over seeds at selected epochs (and the last), one row per loss × clustering."""
    by = _by_loss(runs)
    have = sorted({int(r["epoch"]) for rs in by.values() for run in rs for r in _evaluated(run)})
    cols = sorted({e for e in epochs if e in have} | set(have[-1:]))
    lines = ["| loss | clustering | " + " | ".join(f"ep {e}" for e in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for loss, rs in by.items():
        for key, title in METHODS_A.items():
            vals = []
            for e in cols:
                accs = [100 * r[key]["acc"] for run in rs for r in _evaluated(run) if r["epoch"] == e and key in r]
                vals.append(f"{np.mean(accs):.1f}" if accs else "–")
            lines.append(f"| {loss.upper()} | {title} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def check_l2_l3_vs_l1(runs: dict[tuple[str, int], dict[str, Any]], method: str = "multicut") -> dict[str, Any]:
    """The paper's claim that L2 and L3 cluster at least as well as L1 under multicut.

    Compared per (seed, evaluated epoch) that all three losses reached. Returns, per challenger
    loss, how many of those points it was ≥ L1, and the comparison at the last common epoch
    (mean over seeds).
    """
    acc: dict[tuple[str, int, int], float] = {}
    for (loss, seed), run in runs.items():
        for r in _evaluated(run):
            if method in r:
                acc[(loss, seed, int(r["epoch"]))] = 100 * r[method]["acc"]
    points = sorted({(s, e) for (loss, s, e) in acc if loss == "l1"
                     and ("l2", s, e) in acc and ("l3", s, e) in acc})
    out: dict[str, Any] = {"method": method, "points": len(points)}
    if not points:
        return out
    last = max(e for _, e in points)
    seeds = sorted({s for s, e in points if e == last})
    out["last_epoch"], out["seeds"] = last, seeds
    for v in ("l1", "l2", "l3"):
        out[f"{v}_seeds"] = np.array([acc[(v, s, last)] for s in seeds])
        out[f"{v}_last"] = float(out[f"{v}_seeds"].mean())
    for v in ("l2", "l3"):
        out[f"{v}_ge_l1"] = sum(acc[(v, s, e)] >= acc[("l1", s, e)] for s, e in points)
    return out


def check_markdown(runs: dict[tuple[str, int], dict[str, Any]]) -> str:
    """The paper's "L2/L3 ≥ L1 under multicut", judged at the last epoch over the seeds as the
    Protocol B claims are (one-sided Welch's t, α = 0.05: "holds" only when both are shown,
    "contradicted" when L1 is shown above either), beside the counts over every evaluated epoch."""
    from ..claims import one_sided

    rows = ["| clustering | (seed, epoch) points | L2 ≥ L1 | L3 ≥ L1 | last epoch: L1 / L2 / L3 (mean over seeds) | "
            "at the last epoch: p (L2 > L1), p (L3 > L1) | verdict |",
            "|---|---|---|---|---|---|---|"]
    for method in ("multicut", "multicut_avg_kl"):
        c = check_l2_l3_vs_l1(runs, method)
        if not c["points"]:
            continue
        ps = [one_sided(c[f"{v}_seeds"], c["l1_seeds"]) for v in ("l2", "l3")]
        against = [one_sided(c["l1_seeds"], c[f"{v}_seeds"])[0] for v in ("l2", "l3")]
        verdict = ("contradicted" if min(against) < 0.05 else "holds" if max(p for p, _ in ps) < 0.05 else "not shown")
        rows.append(f"| {METHODS_A[method]} | {c['points']} | {c['l2_ge_l1']} | {c['l3_ge_l1']} | "
                    f"{c['l1_last']:.2f} / {c['l2_last']:.2f} / {c['l3_last']:.2f} (epoch {c['last_epoch']}, "
                    f"{len(c['seeds'])} seeds) | {ps[0][0]:.2f}, {ps[1][0]:.2f} ({ps[0][1]}) | {verdict} |")
    return "\n".join(rows)


def timing_markdown(runs: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Where each run trained, with what, and how long an epoch's training and clustering took."""
    lines = ["| run | device | torch | epochs | train s/epoch (median) | clustering s/evaluated epoch (median) | first → last epoch finished (UTC) |",
             "|---|---|---|---|---|---|---|"]
    for (_loss, _seed), run in sorted(runs.items()):
        env = run["config"].get("environment", {})
        dev = run["config"].get("device", "?")
        if env.get("gpu") and env.get("gpu") != "none" and dev == "cuda":
            dev = f"cuda ({env['gpu']})"
        rows = run["epochs"]
        ev = [r["eval_s"] for r in rows if "eval_s" in r]
        lines.append(f"| {run['name']} | {dev} | {env.get('torch', '?')} | {len(rows)} | "
                     f"{np.median([r['train_s'] for r in rows]):.1f} | "
                     f"{np.median(ev) if ev else float('nan'):.1f} | "
                     f"{rows[0].get('finished_utc', '?')} → {rows[-1].get('finished_utc', '?')} |")
    return "\n".join(lines)


def write_figures_a(runs: dict[tuple[str, int], dict[str, Any]], fig_dir: str | os.PathLike[str], *,
                    tsne: bool = True, seed: int = 0) -> list[Path]:
    """ACC vs epoch for all runs; from the kept last-epoch embeddings of ``seed``: intra/inter
    distances (Fig. 4), pair-distance histograms with the thresholds, t-SNE of L3 (Fig. 6)."""
    from kfree_reproductions.icpr2020 import plots as P
    from kfree_reproductions.icpr2020.cifar import CIFAR10_CLASSES
    from kfree_reproductions.icpr2020.protocol_b import evaluate_embedding

    fig_dir = Path(fig_dir)
    paper = {m: {v: PAPER_ACC[m][v][(0.0, 0.0)] for v in ("l1", "l2", "l3")} for m in ("multicut", "kmeans")}
    curves = {loss: [_evaluated(r) for r in rs] for loss, rs in _by_loss(runs).items()}
    written = [P.plot_acc_vs_epoch(curves, fig_dir / "protocol_a_acc_vs_epoch.png", paper=paper)]
    embs = {}
    for (loss, s), run in sorted(runs.items()):
        if s == seed and run["embedding"] is not None:
            embs[loss] = (np.load(run["embedding"]), _evaluated(run)[-1])
    if not embs:
        log.info("no kept Protocol A embeddings for seed %d; skipping the embedding figures", seed)
        return written
    names = list(CIFAR10_CLASSES)
    thr = {v: float(r["multicut"]["threshold"]) for v, (_, r) in embs.items()}
    stats = {v: P.intra_inter_distances(e["Z_test"], e["y_test"], seed=seed) for v, (e, _) in embs.items()}
    written.append(P.plot_intra_inter(stats, fig_dir / "protocol_a_intra_inter_distances.png",
                                      class_names=names, thresholds=thr))
    pairs = {v: P.pair_distances(e["Z_test"], e["y_test"], seed=seed) for v, (e, _) in embs.items()}
    lab = {v: (thr[v], "logistic 0.5 crossing" if v == "l1" else "τ = √((α+β)/2)") for v in embs}
    written.append(P.plot_pair_histograms(pairs, fig_dir / "protocol_a_pair_distance_histograms.png",
                                          thresholds=lab))
    if tsne and "l3" in embs:
        e, rec = embs["l3"]
        path = runs[("l3", seed)]["embedding"]
        cached = Path(path).with_suffix(".tsne.npy")  # t-SNE of 10k points: minutes on 2 cores
        if cached.is_file():
            Y2 = np.load(cached)
        else:
            Y2 = P.tsne_2d(e["Z_test"], seed=seed)
            np.save(cached, Y2)
        # the labels are not stored; clustering the same embedding again gives the recorded ones
        metrics, labels = evaluate_embedding(e["Z_test"], e["y_test"], "l3", average_start=True, seed=seed)
        for key, solver, suffix in (("multicut", "GAEC + KLj", ""), ("multicut_avg_kl", "avg-linkage start + KLj", "_avg_kl")):
            if metrics[key]["acc"] != rec[key]["acc"]:
                log.warning("re-clustering gave ACC %.4f, the run recorded %.4f (%s)",
                            metrics[key]["acc"], rec[key]["acc"], key)
            written.append(P.plot_tsne(
                Y2, labels[key], fig_dir / f"protocol_a_tsne_l3_s{seed}{suffix}.png", acc=metrics[key]["acc"],
                labels_true=e["y_test"], class_names=names,
                title=f"Protocol A (AlexNet-BN, epoch {rec['epoch']}), Triplet Loss (3), multicut {solver}"))
    return written


def report_markdown(runs: dict[tuple[str, int], dict[str, Any]]) -> str:
    """The generated part of ``results/icpr2020/protocol_a.md``."""
    return "\n\n".join([
        f"Runs: {len(runs)} ({', '.join(r['name'] for r in runs.values())}).",
        "### Last epoch vs the paper's Table I (no noise, 100 epochs), ACC %\n\n" + final_markdown(runs),
        "### ACC over epochs (mean over seeds), %\n\n" + curve_markdown(runs),
        "### The paper's \"L2/L3 ≥ L1 under multicut\", at every evaluated epoch\n\n" + check_markdown(runs),
        "### Where and how long\n\n" + timing_markdown(runs),
    ])
