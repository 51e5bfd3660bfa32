"""Rewrite every committed table and figure from the committed records (no training, no clustering
of new data), so a reviewer can check that the results follow from the records and that a code
change preserved them: run it, then ``git status results/`` should show nothing.

Usage (repository root, reproductions installed)::

    OMP_NUM_THREADS=1 nice -n 10 python reproductions/regenerate.py [--only bcl2019,icpr2020,unseen]

- BCL 2019: ``write_report`` on ``results/bcl2019`` (seed tables, seed means, figures, AT&T
  montages from the saved heads) and on each variant folder under ``results/bcl2019/variants/``;
- ICPR 2020: ``reproductions/icpr2020/make_report.py`` (Protocol B table 1 and figures, Protocol A
  report and figures);
- unseen classes: ``python -m benchmarks.run_unseen --report`` (and the variants table).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("bcl2019", "icpr2020", "unseen")


def _bcl2019() -> None:
    from kfree_reproductions.bcl2019.report import write_report

    write_report("results/bcl2019")
    for variant in sorted(Path("results/bcl2019/variants").iterdir()):
        if variant.is_dir():  # (each gets a README of its own: report.variant_head)
            write_report(variant, att=False)


def _icpr2020() -> None:
    subprocess.run([sys.executable, "reproductions/icpr2020/make_report.py"], check=True)


def _unseen() -> None:
    subprocess.run([sys.executable, "-m", "benchmarks.run_unseen", "--report"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    todo = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(todo) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    for part in todo:
        t0 = time.perf_counter()
        {"bcl2019": _bcl2019, "icpr2020": _icpr2020, "unseen": _unseen}[part]()
        logging.getLogger("regenerate").info("%s rewritten in %.0f s", part, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
