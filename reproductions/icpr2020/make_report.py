"""Regenerate results/icpr2020/table1.md and the figures from the finished Protocol B cells.

Usage (repository root)::

    OMP_NUM_THREADS=1 nice -n 10 python reproductions/icpr2020/make_report.py [--no-tsne]

Reads ``results/icpr2020/protocol_b/cells/*.json`` (written by ``run_b.py`` or
``kfree experiment icpr2020``) and the cached test embeddings they point to; writes
``results/icpr2020/table1.md`` (generated part between the markers) and PNGs in
``results/icpr2020/figures/``. Protocol A runs under ``--protocol-a DIR`` add their ACC-vs-epoch curve.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kfree.experiments.icpr2020 import load_cells
from kfree.experiments.icpr2020_paper import PAPER_ACC
from kfree.experiments.icpr2020_report import (
    aggregate,
    cells_markdown,
    check_findings,
    findings_markdown,
    summary_markdown,
    table1_markdown,
    targets_markdown,
    write_figures,
)
from kfree.utils.io import write_text

RESULTS = Path("results/icpr2020")
BEGIN, END = "<!-- generated: begin -->", "<!-- generated: end -->"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--no-tsne", action="store_true")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--protocol-a", default=None, help="folder holding Protocol A run folders")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    records = load_cells(RESULTS / "protocol_b")
    agg = aggregate(records)
    gen = "\n\n".join([
        f"Cells finished: {len(records)} (of 300 in the full grid).",
        "### No noise (the paper's Fig. 3), ACC %\n\n" + summary_markdown(agg),
        "### Table I — ours (paper)\n\n" + table1_markdown(agg),
        "### Table I, multicut searched from average-linkage HAC (same costs as above) — ours (paper's multicut)\n\n"
        + table1_markdown(agg, methods=("multicut_avg_kl",)),
        "### Issue targets (Protocol B)\n\n" + targets_markdown(agg),
        "### The paper's findings, checked on the cells that ran\n\n" + findings_markdown(check_findings(agg)),
        "### Every measured cell (incl. GAEC alone, without KLj)\n\n" + cells_markdown(agg),
    ])
    path = RESULTS / "table1.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# ICPR 2020 reproduction\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    write_text(path, f"{head}{BEGIN}\n{gen}\n{END}{tail}")
    if not a.no_figures:
        write_figures(records, RESULTS / "figures", tsne_cell=None if a.no_tsne else "l3_p00_n00_s0")
    if a.protocol_a:
        from kfree.experiments.icpr2020_protocol_a import load_epochs
        from kfree.report.icpr_plots import plot_acc_vs_epoch

        runs = {d.name.split("_")[0]: load_epochs(d) for d in sorted(Path(a.protocol_a).iterdir()) if d.is_dir()}
        plot_acc_vs_epoch(runs, RESULTS / "figures" / "protocol_a_acc_vs_epoch.png",
                          paper={m: {v: PAPER_ACC[m][v][(0.0, 0.0)] for v in ("l1", "l2", "l3")}
                                 for m in ("multicut", "kmeans")})


if __name__ == "__main__":
    main()
