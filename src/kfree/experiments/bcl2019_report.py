"""Turn the BCL 2019 cells into the paper-layout tables, curves, montages and the targets summary.

Reads what :func:`~.bcl2019.run_bcl2019` wrote (``<out>/cells/...``) and writes, into ``<out>``:
``table1_finetune.md``, ``table2_kmeans_variants.md``, ``table3_operating_points.md`` (the main
comparison, incl. the paper's base-CNN Table 3), ``table4_k_known.md``, ``table5_train_threshold.md``,
``extra_1img.md``, ``figures/curves_<set>.png``, ``figures/att_<method>.png`` and ``README.md``
(targets, measured). Only numbers present in the cells are written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from . import bcl2019_paper as paper
from .bcl2019 import SETS, load_cells
from .bcl2019_methods import LABELS, METHODS

log = logging.getLogger(__name__)

SHORT = {s: s.replace("bbt_s01", "BBT ").replace("buffy_s05", "BUF ").upper().replace("BBT_ALL", "BBT 6ep")
         .replace("BUFFY_ALL", "BUF 6ep") for s in SETS}


def _pick(out: Path, base: str, seed: int = 0) -> tuple[str, dict[str, Any]]:
    for tag in (base + "-ft", base):
        cells = load_cells(out, tag, seed)
        if cells:
            return tag, cells
    return base, {}


def _fmt(v: Any, metric: str) -> str:
    if v is None:
        return "–"
    if metric == "n_clusters":
        return str(int(v))
    return f"{100 * v:.2f}" if v <= 1.0 else f"{v:.2f}"


def _pfmt(v: Any, metric: str) -> str:
    if v is None:
        return "?"
    return str(int(v)) if metric == "n_clusters" else f"{v:.2f}"


class _Table:
    def __init__(self, sets: list[str]) -> None:
        self.sets = sets
        self.lines = ["| row | " + " | ".join(SHORT[s] for s in sets) + " |",
                      "| --- | " + " | ".join("---:" for _ in sets) + " |"]

    def row(self, label: str, cells: list[str]) -> None:
        self.lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def text(self) -> str:
        return "\n".join(self.lines)


def _get(cells, path: list[str]) -> list[Any]:
    out = []
    for s in SETS:
        c = cells.get(s)
        for p in path:
            if c is None:
                break
            c = c.get(p) if isinstance(c, dict) else None
        out.append(c)
    return out


def _nch(cells) -> list[Any]:
    return [cells[s]["n_characters"] if s in cells else None for s in SETS]


def _block(t: _Table, label: str, cells, path: list[str], paper_rows: dict[str, list] | None,
           metrics=("n_clusters", "nmi", "wcp")) -> None:
    idx = [SETS.index(s) for s in t.sets]
    for m in metrics:
        vals = _get(cells, path + [m])
        t.row(f"{label} {m.replace('n_clusters', '#Cl').upper().replace('#CL', '#Cl')}",
              [_fmt(vals[i], m) for i in idx])
        if paper_rows is not None and m in paper_rows:
            t.row("  ↳ paper", [_pfmt(paper_rows[m][i], m) for i in idx])


def _header(t: _Table, cells) -> None:
    idx = [SETS.index(s) for s in t.sets]
    n = _nch(cells)
    t.row("#Ch (ours = paper)", [str(n[i]) if n[i] is not None else "–" for i in idx])
    t.row("kept tracks (real)", [f"{cells[s]['n_tracks']} ({cells[s]['n_tracks_real']})" if s in cells else "–"
                                 for s in t.sets])


def _provenance(out: Path, tag: str) -> str:
    run = out / "cells" / tag / "seed0" / "run.json"
    if not run.exists():
        return f"(cells `{tag}`; run.json missing — run not finished)"
    r = json.loads(run.read_text())
    c = r["config"]
    env = r["environment"]
    return (f"Cells `cells/{tag}/seed0/`; config: seed {c['seed']}, MLP 128→{'→'.join(map(str, c['dims']))}, "
            f"{c['epochs']} epochs of P×K = {c['p']}×{c['k']} batches (best validation epoch kept), Adam lr {c['lr']}, "
            f"{c['images_per_track']} image(s) per track; fine-tuning {c['ft']['iterations']} it., lr {c['ft']['lr']}, "
            f"≤ {c['ft']['max_pairs']} pairs. BCL b = {r.get('bcl_b') or float('nan'):.4f} (τ = 4b = "
            f"{4 * (r.get('bcl_b') or float('nan')):.3f}). Wall time {r['wall_time_s']:.0f} s on 2 shared CPU cores "
            f"(training per head, s: {r['train_time_s']}). Versions: {env}.")


def _op_counts(cells, method: str, key: str = "methods", tol: float = 0.25) -> tuple[int, int]:
    ok = n = 0
    for s in SETS[:12]:
        c = cells.get(s)
        if c is None or method not in c[key]:
            continue
        n += 1
        k = c[key][method]["op"]["n_clusters"]
        ok += abs(k - c["n_characters"]) <= tol * c["n_characters"]
    return ok, n


def _beats(cells, method: str, ref: str = "raw", key: str = "methods", ref_key: str = "methods") -> tuple[int, int]:
    wins = n = 0
    for s in SETS[:12]:
        c = cells.get(s)
        if c is None or method not in c[key] or ref not in c[ref_key]:
            continue
        n += 1
        wins += c[key][method]["op"]["nmi"] > c[ref_key][ref]["op"]["nmi"]
    return wins, n


# ----------------------------------------------------------------------------------- tables
def table_operating_points(cells, sets: list[str], *, with_paper: bool = True) -> str:
    t = _Table(sets)
    _header(t, cells)
    for m in METHODS:
        if not any(m in cells[s]["methods"] for s in cells):
            continue
        pr = paper.TABLE3 if (with_paper and m == "raw") else None
        _block(t, LABELS[m], cells, ["methods", m, "op"], pr)
    return t.text()


def table_finetune(cells, sets: list[str], *, with_paper: bool = True) -> str:
    t = _Table(sets)
    _header(t, cells)
    for m in ("triplet", "prototypical", "bcl"):
        if not any(m in cells[s].get("finetune", {}) for s in cells):
            continue
        _block(t, LABELS[m].split(" (")[0] + " before FT", cells, ["methods", m, "op"], None)
        _block(t, LABELS[m].split(" (")[0] + "-FT", cells, ["finetune", m, "op"],
               paper.TABLE1[m] if with_paper else None)
        d = []
        for s in sets:
            c = cells.get(s)
            if c is None or m not in c.get("finetune", {}):
                d.append("–")
                continue
            d.append(f"{100 * (c['finetune'][m]['op']['nmi'] - c['methods'][m]['op']['nmi']):+.2f}")
        t.row(f"{LABELS[m].split(' (')[0]}-FT ΔNMI", d)
    return t.text()


def table_kmeans_variants(cells, sets: list[str]) -> str:
    t = _Table(sets)
    _header(t, cells)
    t.row("X-means K_max", [str(cells[s]["kmeans_variants"].get("raw", {}).get("xmeans", {}).get("k_max", "–"))
                            if s in cells else "–" for s in sets])
    for alg, name in (("xmeans", "X-means"), ("gmeans", "G-means")):
        for feat, fname in (("raw", "raw (base)"), ("bcl", "BCL")):
            _block(t, f"{name} on {fname}", cells, ["kmeans_variants", feat, alg], paper.TABLE2[(alg, feat)])
    return t.text()


def table_k_known(cells, sets: list[str]) -> str:
    t = _Table(sets)
    _header(t, cells)
    for m in ("raw", "triplet", "prototypical", "bcl"):
        if not any(m in cells[s]["methods"] for s in cells):
            continue
        for alg, an in (("kmeans", "KM"), ("hac_k", "HAC")):
            pr = None
            if m in paper.TABLE4:
                pr = {"nmi": paper.TABLE4[m][(alg, "nmi")], "wcp": paper.TABLE4[m][(alg, "wcp")]}
            _block(t, f"{LABELS[m].split(' (')[0]} {an}", cells, ["methods", m, alg], pr, metrics=("nmi", "wcp"))
    return t.text()


def table_train_threshold(cells, sets: list[str]) -> str:
    t = _Table(sets)
    _header(t, cells)
    for m in METHODS:
        if m == "bcl" or not any(m in cells[s]["methods"] for s in cells):
            continue
        name = LABELS[m].split(" (")[0]
        for key, lab in (("op", "val"), ("train", "train")):
            vals_k = _get(cells, ["methods", m, key, "n_clusters"])
            vals_n = _get(cells, ["methods", m, key, "nmi"])
            idx = [SETS.index(s) for s in sets]
            t.row(f"{name}, {lab} τ: #Cl (NMI)",
                  [f"{vals_k[i]} ({100 * vals_n[i]:.1f})" if vals_k[i] is not None else "–" for i in idx])
    idx = [SETS.index(s) for s in sets]
    t.row("paper, one legible train row: #Cl (NMI)",
          [f"{paper.TABLE5_TRAIN_ROW['n_clusters'][i]} ({paper.TABLE5_TRAIN_ROW['nmi'][i]})"
           if paper.TABLE5_TRAIN_ROW["n_clusters"][i] is not None else "?" for i in idx])
    return t.text()


# ---------------------------------------------------------------------------------- figures
def write_curves(cells, fig_dir: Path, tag: str) -> list[Path]:
    from ..report.curves import ScoreCurve, plot_score_curves

    paths = []
    for s, c in cells.items():
        curves = {}
        for m, r in c["methods"].items():
            op = r["op"]
            curves[LABELS[m]] = ScoreCurve(np.asarray(r["curve"]["k"]),
                                           {"nmi": np.asarray(r["curve"]["nmi"]), "wcp": np.asarray(r["curve"]["wcp"])},
                                           {"nmi": (op["n_clusters"], op["nmi"]), "wcp": (op["n_clusters"], op["wcp"])})
        k_max = max(int(max(r["curve"]["k"])) for r in c["methods"].values())
        paths.append(plot_score_curves(curves, fig_dir / f"curves_{tag}_{s}.png", n_true=c["n_characters"],
                                       title=f"{s} ({tag}): NMI / WCP vs #clusters; circles = operating points, "
                                             f"dashed = #characters", k_max=k_max))
    return paths


def write_att(out: Path, tag: str = "2img") -> str:
    """Cluster the 40 AT&T people with every trained head (at its own threshold) and draw montages."""
    from ..data.builtin import load_builtin
    from ..learner import BallClusterLearner
    from ..metrics.clustering import nmi, wcp
    from ..report.montage import cluster_montage
    from .bcl2019 import evaluate_features

    run = out / "cells" / (tag + "-ft") / "seed0" / "run.json"
    if not run.exists():
        run = out / "cells" / tag / "seed0" / "run.json"
    if not run.exists():
        return "(no run.json; AT&T montages not drawn)"
    thr = json.loads(run.read_text())["thresholds"]
    d = load_builtin("att_faces")
    lines = ["| method | threshold (sq. Eucl.) | #Cl (#people 40) | NMI | WCP |", "| --- | ---: | ---: | ---: | ---: |"]
    for m in METHODS:
        if m not in thr:
            continue
        if m == "raw":
            Z = d.X.astype(np.float32)
        else:
            p = out / "models" / tag / f"{m}_seed0.pt"
            if not p.exists():
                continue
            Z = BallClusterLearner.load(p).transform(d.X)
        res = evaluate_features(Z, d.y, thr[m]["value"], curve_k_max=1)
        from ..cluster.threshold_hac import ThresholdAgglomerative

        lab = ThresholdAgglomerative(threshold=thr[m]["value"], linkage="complete").fit(Z).labels_
        assert res["op"]["n_clusters"] == int(np.unique(lab).shape[0])
        cluster_montage(d.images, lab, out / "figures" / f"att_{m}.png", labels_true=d.y, per_row=6,
                        max_clusters=60, seed=0,
                        title=f"AT&T faces, {LABELS[m]}: {res['op']['n_clusters']} clusters for 40 people "
                              f"(NMI {100 * nmi(d.y, lab):.1f}, WCP {100 * wcp(d.y, lab):.1f})",
                        credit=d.credit)
        lines.append(f"| {LABELS[m]} | {thr[m]['value']:.3f} | {res['op']['n_clusters']} | "
                     f"{100 * res['op']['nmi']:.2f} | {100 * res['op']['wcp']:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- driver
def write_report(out: str | Path, *, att: bool = True) -> dict[str, Any]:
    """Write every table / figure the cells allow; returns the target checks as numbers.

    ``att=False`` skips the AT&T montages (they need heads trained on 128-d dlib descriptors).
    """
    from ..utils.io import write_text

    out = Path(out)
    tag2, c2 = _pick(out, "2img")
    tag1, c1 = _pick(out, "1img")
    fig = out / "figures"
    summary: dict[str, Any] = {}
    note = ("Layout as in the supplement: columns = episodes (BBT S1E1–6, BUFFY S5E1–6) and the per-series "
            "combined sets; the 12-episode column is left out (212 characters > 109 test identities). "
            "NMI and WCP in %. Rows marked ↳ paper are the supplement's numbers (real video tracks, "
            "VGGFace2 features) for orientation only; ours are CelebA dlib descriptors placed on the real "
            "track/co-occurrence structure (see episodes.md). '?' = illegible in the OCR'd supplement.\n")
    if c2:
        sets = [s for s in SETS if s in c2]
        write_text(out / "table3_operating_points.md",
                   "# Every method at its own operating point (protocol: 2 images per track), no fine-tuning\n\n"
                   "HAC, complete linkage, squared Euclidean, cut at each method's threshold: 4b for BCL, the cut "
                   "matching the 20 validation identities (validation 'tracks' of 2 images) for the others. The "
                   "raw-descriptor row is the analogue of the supplement's Table 3 (base CNN at the validation "
                   "threshold); the paper's Table 3 is shown under it.\n\n" + note + "\n"
                   + table_operating_points(c2, sets) + "\n\n" + _provenance(out, tag2) + "\n")
        write_text(out / "table2_kmeans_variants.md",
                   "# Table 2: X-means and G-means (K estimated), on raw (base) and BCL features\n\n" + note + "\n"
                   + table_kmeans_variants(c2, sets) + "\n\n" + _provenance(out, tag2) + "\n")
        write_text(out / "table4_k_known.md",
                   "# Table 4: K known (k-means with 10 restarts; HAC complete linkage cut at K)\n\n" + note + "\n"
                   + table_k_known(c2, sets) + "\n\n" + _provenance(out, tag2) + "\n")
        write_text(out / "table5_train_threshold.md",
                   "# Table 5: threshold matched on training vs validation identities, #Cl (NMI %)\n\n"
                   "The training-matched cut gives the true number of the 170 *training* identities on their "
                   "own 'tracks' (pairs of images) in each head's space; the validation cut the 20 validation "
                   "identities'.\n\n" + note + "\n" + table_train_threshold(c2, sets) + "\n\n"
                   + _provenance(out, tag2) + "\n")
        if any(c2[s].get("finetune") for s in c2):
            write_text(out / "table1_finetune.md",
                       "# Table 1: fine-tuning on each test set with must-link / cannot-link constraints\n\n"
                       "BCL-FT: pairwise constraint loss with b frozen (cut 4b); TRI-FT / PRO-FT: plain variant at "
                       "their validation τ. Must-links = the 2 images of a track, cannot-links = kept tracks that "
                       "overlap in time; lr 3e-4, 2,000 iterations, ≤ 1,000 pairs (our episodes have fewer), one "
                       "random image per track for the cannot-links. Labels are never used. 'before FT' rows are the "
                       "same heads without fine-tuning (Table 3 file).\n\n" + note + "\n"
                       + table_finetune(c2, sets) + "\n\n" + _provenance(out, tag2) + "\n")
        write_curves(c2, fig, "2img")
        summary["2img"] = {m: {"count_within_25pct": _op_counts(c2, m), "nmi_beats_raw": _beats(c2, m)}
                           for m in METHODS if any(m in c2[s]["methods"] for s in c2)}
        summary["2img_ft"] = {m: {"count_within_25pct": _op_counts(c2, m, "finetune"),
                                  "nmi_beats_unft": _beats(c2, m, m, "finetune", "methods"),
                                  "nmi_beats_raw": _beats(c2, m, "raw", "finetune", "methods")}
                              for m in ("bcl", "triplet", "prototypical")
                              if any(m in c2[s].get("finetune", {}) for s in c2)}
    if c1:
        sets = [s for s in SETS if s in c1]
        txt = ("# Extra: 1 image per track (harder; not the issue's protocol)\n\n"
               "Each kept track is a single CelebA image, so raw descriptors are far noisier (episodes.md: raw "
               "NMI 0.78–0.94 at the untuned 0.6 cut). Thresholds are matched on single validation images. There "
               "are no must-links (a track has one image), so fine-tuning uses cannot-links only.\n\n" + note
               + "\n## Operating points, no fine-tuning\n\n" + table_operating_points(c1, sets, with_paper=False))
        if any(c1[s].get("finetune") for s in c1):
            txt += "\n\n## Fine-tuning with cannot-links only\n\n" + table_finetune(c1, sets, with_paper=False)
        write_text(out / "extra_1img.md", txt + "\n\n" + _provenance(out, tag1) + "\n")
        write_curves(c1, fig, "1img")
        summary["1img"] = {m: {"count_within_25pct": _op_counts(c1, m), "nmi_beats_raw": _beats(c1, m)}
                           for m in METHODS if any(m in c1[s]["methods"] for s in c1)}
        summary["1img_ft"] = {m: {"count_within_25pct": _op_counts(c1, m, "finetune"),
                                  "nmi_beats_unft": _beats(c1, m, m, "finetune", "methods")}
                              for m in ("bcl", "triplet", "prototypical")
                              if any(m in c1[s].get("finetune", {}) for s in c1)}
    if c2 and att:
        summary["att"] = write_att(out, "2img")
        write_text(out / "att_faces.md", "# AT&T faces (40 people, 10 images each), heads trained on CelebA\n\n"
                   "Each head clusters the 400 AT&T dlib descriptors at its own threshold (the same as on the "
                   "episodes). Montages: figures/att_<method>.png (a row per cluster, 6 random members, green = "
                   "cluster's majority person, red = other).\n\n" + summary["att"] + "\n")
    write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    return summary
