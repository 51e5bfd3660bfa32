"""Tables, findings and figures of the ICPR 2020 reproduction, from the cell records.

:func:`aggregate` turns Protocol B cell records (one per loss × noise × seed) into mean ± std
over seeds; :func:`table1_markdown` writes Table I in the paper's layout (rows = wrong
positives 20/10/5/0 %, columns = wrong negatives random/7/5/2/0 % per loss, multicut on top,
k-means below) with the paper's number beside each of ours; :func:`check_findings` judges the
paper's qualitative claims (data: ``claims.toml``) over seeds, each with a stated test; :func:`write_figures` draws the
figures of :mod:`kfree_reproductions.icpr2020.plots` from the cached embeddings.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kfree.utils.io import file_sha256
from kfree_reproductions.icpr2020.paper import NEG_COLS, PAPER_ACC, POS_ROWS

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("multicut", "kmeans")
Key = tuple[str, str, float, float | str]  # (method, loss, wrong positives, wrong negatives)


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over ``rows``; NaN where a row lacks it (JSON null or absent)."""
    return float(np.mean([np.nan if x.get(key) is None else x[key] for x in rows]))


def _neg(v: Any) -> float | str:
    return v if v == "random" else float(v)


def aggregate(records: Sequence[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """``{(method, loss, pos, neg): {"acc": mean %, "std", "n", "seeds", "n_clusters", "nmi", ...}}``.

    ``method`` is also ``"multicut_gaec"`` (GAEC without KLj). ACC and NMI in %; std is the
    sample standard deviation over seeds (0 for one seed).
    """
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        c = r["cell"]
        for method in (*METHODS, "multicut_gaec", "multicut_avg_kl"):
            if method in r:
                groups[(method, c["loss"], float(c["wrong_positives"]), _neg(c["wrong_negatives"]))].append(
                    {**r[method], "seed": c["seed"], "train_s": r.get("train_s")})
    out: dict[Key, dict[str, Any]] = {}
    for key, rows in groups.items():
        acc = np.array([100 * x["acc"] for x in rows])
        out[key] = {
            "acc": float(acc.mean()), "std": float(acc.std(ddof=1)) if acc.shape[0] > 1 else 0.0,
            "n": int(acc.shape[0]), "seeds": sorted(int(x["seed"]) for x in rows),
            "nmi": float(np.mean([100 * x["nmi"] for x in rows])),
            "n_clusters": float(np.mean([x["n_clusters"] for x in rows])),
            "n_small": _mean(rows, "n_small_clusters_lt10"),
            "wall_s": _mean(rows, "wall_s"),
            "objective": _mean(rows, "objective"),
            "train_s": _mean(rows, "train_s"),
            # per seed, for the claims' tests (kfree_reproductions.claims)
            "by_seed": {"acc": {int(x["seed"]): float(100 * x["acc"]) for x in rows},
                        "objective": {int(x["seed"]): float(x["objective"]) for x in rows if "objective" in x}},
        }
    return out


def _pct(v: float | str) -> str:
    return "random" if v == "random" else f"{round(float(v) * 100)} %"


TITLES = {"multicut": "Minimum cost multicuts, GAEC + KLj (no K)",
          "kmeans": "k-means clustering (k = 10)",
          "multicut_avg_kl": "Minimum cost multicuts, same costs, searched from average-linkage HAC + KLj "
                             "(no K; ours, paper's multicut numbers beside)"}


def table1_markdown(agg: dict[Key, dict[str, Any]], *, losses: Sequence[str] = ("l1", "l2", "l3"),
                    methods: Sequence[str] = METHODS) -> str:
    """Table I, paper layout: each cell ``ours ± std (paper)``; ``—`` where a cell did not run.

    Our numbers are mean ACC (%) over the seeds that ran (the ``n`` of each cell is listed in the
    cell files and in :func:`cells_markdown`).
    """
    lines = []
    for method in methods:
        title = TITLES.get(method, method)
        ref = "kmeans" if method == "kmeans" else "multicut"
        lines.append(f"**{title}** — ACC % ours (paper)\n")
        for loss in losses:
            lines.append(f"*Triplet Loss ({loss[1]})*\n")
            lines.append("| wrong positives \\ negatives | " + " | ".join(_pct(n) for n in NEG_COLS) + " |")
            lines.append("|---|" + "---|" * len(NEG_COLS))
            for pos in POS_ROWS:
                cells = []
                for neg in NEG_COLS:
                    paper = PAPER_ACC[ref][loss][(pos, neg)]
                    a = agg.get((method, loss, pos, neg))
                    if a is None:
                        cells.append(f"— ({paper:.2f})")
                    else:
                        sd = f" ± {a['std']:.2f}" if a["n"] > 1 else ""
                        bold = "**" if pos == 0.0 and neg == 0.0 else ""
                        cells.append(f"{bold}{a['acc']:.2f}{sd}{bold} ({paper:.2f})")
                lines.append(f"| {_pct(pos)} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def summary_markdown(agg: dict[Key, dict[str, Any]], *, pos: float = 0.0, neg: float | str = 0.0) -> str:
    """One noise cell (default: no noise) as Fig. 3: per loss, ACC and #clusters of each method."""
    lines = [("| loss | multicut GAEC + KLj | multicut avg-linkage start + KLj (ours) | paper multicut | "
              "k-means (k = 10) | paper k-means |"), "|---|---|---|---|---|---|"]
    for loss in ("l1", "l2", "l3"):
        def cell(method: str, loss: str = loss) -> str:
            a = agg.get((method, loss, pos, neg))
            if a is None:
                return "—"
            sd = f" ± {a['std']:.2f}" if a["n"] > 1 else ""
            k = f", {a['n_clusters']:.0f} clusters" if method != "kmeans" else ""
            return f"{a['acc']:.2f}{sd}{k}"
        lines.append(f"| {loss.upper()} | {cell('multicut')} | {cell('multicut_avg_kl')} | "
                     f"{PAPER_ACC['multicut'][loss][(pos, neg)]:.2f} | {cell('kmeans')} | "
                     f"{PAPER_ACC['kmeans'][loss][(pos, neg)]:.2f} |")
    return "\n".join(lines)


def cells_markdown(agg: dict[Key, dict[str, Any]]) -> str:
    """Every measured cell: ACC, NMI, #clusters, small clusters, seeds, wall times."""
    lines = [("| method | loss | wrong pos. | wrong neg. | ACC % | paper ACC % | NMI % | #clusters | "
              "clusters < 10 items | seeds | clustering s | head training s |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate((*METHODS, "multicut_gaec", "multicut_avg_kl"))}
    keys = sorted(agg, key=lambda k: (order[k[0]], k[1], -k[2], str(k[3])))
    for key in keys:
        method, loss, pos, neg = key
        a = agg[key]
        paper = PAPER_ACC["kmeans" if method == "kmeans" else "multicut"].get(loss, {}).get((pos, neg))
        ps = f"{paper:.2f}" if paper is not None else ""
        sd = f" ± {a['std']:.2f}" if a["n"] > 1 else ""
        ws = "" if not np.isfinite(a["wall_s"]) else f"{a['wall_s']:.0f}"
        ts = "" if not np.isfinite(a["train_s"]) else f"{a['train_s']:.0f}"
        lines.append(f"| {method} | {loss.upper()} | {_pct(pos)} | {_pct(neg)} | {a['acc']:.2f}{sd} | {ps} | "
                     f"{a['nmi']:.2f} | {a['n_clusters']:.1f} | {a['n_small']:.1f} | "
                     f"{','.join(map(str, a['seeds']))} | {ws} | {ts} |")
    return "\n".join(lines)


def _get(agg: dict[Key, dict[str, Any]], method: str, loss: str, pos: float, neg: float | str) -> float | None:
    a = agg.get((method, loss, pos, neg))
    return None if a is None else a["acc"]


#: the paper's claims as data (kfree_reproductions.claims explains the kinds and tests)
CLAIMS = Path(__file__).with_name("claims.toml")


def check_findings(agg: dict[Key, dict[str, Any]], *, alpha: float = 0.05) -> list[dict[str, Any]]:
    """The paper's qualitative claims (:data:`CLAIMS`), each judged over seeds by a stated test.

    Returns rows ``{"claim", "verdict", "test", "evidence"}``; the verdict is ``holds``,
    ``contradicted``, ``not shown`` or ``not measured``.
    """
    from kfree_reproductions.claims import evaluate_claims, load_claims

    def look(sel: dict[str, Any]) -> dict[int, float] | None:
        a = agg.get((sel["method"], sel["loss"], float(sel["pos"]), _neg(sel["neg"])))
        if a is None:
            return None
        return a["by_seed"].get(sel.get("metric", "acc")) or None

    cells = [{"loss": k[1], "pos": k[2], "neg": k[3]} for k in sorted(agg, key=str) if k[0] == "multicut"]
    return [{"claim": v.claim, "verdict": v.verdict, "test": v.test, "evidence": v.evidence}
            for v in evaluate_claims(load_claims(CLAIMS), look, cells=cells, alpha=alpha)]


def findings_markdown(rows: list[dict[str, Any]], *, alpha: float = 0.05) -> str:
    from kfree_reproductions.claims import Verdict, verdicts_markdown

    return verdicts_markdown([Verdict(r["claim"], r["verdict"], r["test"], r["evidence"]) for r in rows], alpha=alpha)


def targets_markdown(agg: dict[Key, dict[str, Any]]) -> str:
    """The issue's targets for Protocol B (L3 multicut ≥ 85 %, k-means ≥ 81.7 %, no noise)."""
    mc, km = _get(agg, "multicut", "l3", 0.0, 0.0), _get(agg, "kmeans", "l3", 0.0, 0.0)
    avg = _get(agg, "multicut_avg_kl", "l3", 0.0, 0.0)
    out = []
    for name, v, goal in (("L3 multicut ACC, no noise", mc, 85.0),
                          ("L3 multicut ACC from the average-linkage start, no noise", avg, 85.0),
                          ("L3 k-means ACC, no noise", km, 81.7)):
        if v is None:
            out.append(f"- {name}: not measured (target ≥ {goal} %)")
        else:
            out.append(f"- {name}: {v:.2f} % — target ≥ {goal} % **{'met' if v >= goal else 'not met'}**")
    return "\n".join(out)


# ------------------------------------------------------------------------------ figures
def _embedding_file(record: dict[str, Any]) -> Path | None:
    """The cached test embedding a cell record points to, or ``None`` (logged) when it is missing
    or, for records that carry its hash, has been replaced since (figures of another run's
    embedding must not pass for this cell's)."""
    p = Path(record.get("embedding", ""))
    if not p.is_file():
        log.info("no cached embedding for %s (%s); skipping its figures", record["name"], p)
        return None
    sha = record.get("embedding_sha256")
    if sha and file_sha256(p) != sha:
        log.warning("the cached embedding of %s (%s) is not the one its record was made with (another "
                    "SHA-256); skipping its figures: run the cell again to draw them", record["name"], p)
        return None
    return p


def write_figures(
    records: Sequence[dict[str, Any]],
    fig_dir: str | os.PathLike[str],
    *,
    tsne_cell: str | None = "l3_p00_n00_s0",
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Fig. 5 (ACC vs noise), Fig. 6 (t-SNE), Fig. 4 (intra/inter) and pair histograms as PNG.

    Figures 4, 6 and the histograms read the no-noise cells' cached test embeddings
    (``record["embedding"]``); cells whose embedding file is missing are skipped with a log line.
    """
    from kfree_reproductions.icpr2020 import plots as P

    if class_names is None:
        from kfree_reproductions.icpr2020.cifar import CIFAR10_CLASSES

        class_names = list(CIFAR10_CLASSES)
    fig_dir = Path(fig_dir)
    agg = aggregate(records)
    written = [P.plot_acc_vs_noise({k: (v["acc"], v["std"]) for k, v in agg.items()}, PAPER_ACC,
                                   fig_dir / "acc_vs_noise.png",
                                   title="ACC vs label noise (solid: ours, Protocol B; dashed: paper)")]
    clean = {r["cell"]["loss"]: r for r in records
             if r["cell"]["seed"] == seed and float(r["cell"]["wrong_positives"]) == 0.0
             and r["cell"]["wrong_negatives"] == 0.0}
    embs = {}
    for loss, r in sorted(clean.items()):
        if _embedding_file(r) is not None:
            embs[loss] = (np.load(r["embedding"]), r)
    if embs:
        thr = {v: float(r["multicut"]["threshold"]) for v, (_, r) in embs.items()}
        stats = {v: P.intra_inter_distances(e["Z_test"], e["y_test"], seed=seed) for v, (e, _) in embs.items()}
        written.append(P.plot_intra_inter(stats, fig_dir / "intra_inter_distances.png", class_names=class_names,
                                          thresholds=thr))
        pairs = {v: P.pair_distances(e["Z_test"], e["y_test"], seed=seed) for v, (e, _) in embs.items()}
        lab = {v: (thr[v], "logistic 0.5 crossing" if v == "l1" else "τ = √((α+β)/2)") for v in embs}
        written.append(P.plot_pair_histograms(pairs, fig_dir / "pair_distance_histograms.png", thresholds=lab))
    if tsne_cell is not None:
        match = [r for r in records if r["name"] == tsne_cell and _embedding_file(r) is not None]
        if match:
            r = match[0]
            e = np.load(r["embedding"])
            # t-SNE of 10k points takes minutes: cached beside the embedding, named by its hash when
            # the record has one (so it is never the t-SNE of another run's embedding)
            sha = r.get("embedding_sha256")
            cached = Path(r["embedding"]).with_suffix(f".{sha[:12]}.tsne.npy" if sha else ".tsne.npy")
            if cached.is_file():
                Y2 = np.load(cached)
            else:
                Y2 = P.tsne_2d(e["Z_test"], seed=seed)
                np.save(cached, Y2)
            solvers = (("multicut", "GAEC + KLj", ""), ("multicut_avg_kl", "average-linkage start + KLj", "_avg_kl"))
            for key, solver, suffix in solvers:
                if key not in e.files or key not in r:
                    continue
                written.append(P.plot_tsne(
                    Y2, e[key], fig_dir / f"tsne_{tsne_cell}{suffix}.png", acc=r[key]["acc"],
                    labels_true=e["y_test"], class_names=class_names,
                    title=f"t-SNE of the test embedding, Triplet Loss ({r['cell']['loss'][1]}), multicut "
                          f"({solver}; 10 largest clusters coloured)"))
    return written
