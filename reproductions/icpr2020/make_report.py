"""Regenerate results/icpr2020/table1.md and the figures from the finished Protocol B cells.

Usage (repository root)::

    OMP_NUM_THREADS=1 nice -n 10 python reproductions/icpr2020/make_report.py [--no-tsne]

Reads ``results/icpr2020/protocol_b/cells/*.json`` (written by ``run_b.py`` or
``kfree experiment icpr2020``) and the cached test embeddings they point to; writes
``results/icpr2020/table1.md`` (generated part between the markers) and PNGs in
``results/icpr2020/figures/``. The Protocol A runs in ``results/icpr2020/protocol_a/`` (or
``--protocol-a DIR``) give ``results/icpr2020/protocol_a.md`` and the ``protocol_a_*`` figures.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kfree.utils.io import write_text
from kfree_reproductions.icpr2020.protocol_b import load_cells
from kfree_reproductions.icpr2020.report import (
    aggregate,
    cells_markdown,
    check_findings,
    findings_markdown,
    summary_markdown,
    table1_markdown,
    targets_markdown,
    write_figures,
)

RESULTS = Path("results/icpr2020")
BEGIN, END = "<!-- generated: begin -->", "<!-- generated: end -->"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--no-tsne", action="store_true")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--protocol-a", default=str(RESULTS / "protocol_a"),
                   help="folder holding Protocol A run folders (default: the committed GPU runs)")
    p.add_argument("--only", choices=("A", "B"), default=None, help="regenerate one protocol's report only")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.only != "A":
        protocol_b(a)
    if a.only != "B":
        protocol_a(a)


def protocol_b(a: argparse.Namespace) -> None:
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
        *variants_markdown(),
    ])
    _write_generated(RESULTS / "table1.md", gen, "ICPR 2020 reproduction")
    if not a.no_figures:
        write_figures(records, RESULTS / "figures", tsne_cell=None if a.no_tsne else "l3_p00_n00_s0")


def variants_markdown() -> list[str]:
    """Protocol B on other frozen features (``protocol_b_<backbones>/``, e.g. Lite0 + Lite2)."""
    out = []
    for folder in sorted(RESULTS.glob("protocol_b_*")):
        records = load_cells(folder)
        if not records:
            continue
        agg = aggregate(records)
        backbone = records[0]["config"].get("backbone", folder.name)
        seeds = sorted({r["cell"]["seed"] for r in records})
        out.append(f"### Protocol B on `{backbone}` features ({len(records)} cells, seeds "
                   f"{', '.join(map(str, seeds))}; `{folder.as_posix()}`), no noise, ACC %\n\n"
                   + summary_markdown(agg) + "\n\nIssue targets on these features:\n\n" + targets_markdown(agg))
    return out


def protocol_a(a: argparse.Namespace) -> None:
    from kfree_reproductions.icpr2020 import report_a as A

    pa = Path(a.protocol_a)
    if not (pa.is_dir() and any(pa.iterdir())):
        logging.getLogger("make_report").info("no Protocol A runs in %s", pa)
        return
    runs = A.load_runs(pa)
    _write_generated(RESULTS / "protocol_a.md", A.report_markdown(runs), "ICPR 2020 reproduction, Protocol A")
    if not a.no_figures:
        A.write_figures_a(runs, RESULTS / "figures", tsne=not a.no_tsne)


def _write_generated(path: Path, generated: str, title: str) -> None:
    """Replace the part of ``path`` between the markers; the hand-written text around it stays."""
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# {title}\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    write_text(path, f"{head}{BEGIN}\n{generated}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
