"""Regenerate results/bcl2019 (repo root, venv active):

    OMP_NUM_THREADS=1 python reproductions/bcl2019/run.py [--only 2img|1img] [--no-resume]

Runs the protocol (2 images per track, with constraint fine-tuning) and the 1-image-per-track
variant, then writes the tables and figures. Resumable: finished cells and trained heads are
reused, so rerunning after an interruption continues where it stopped.
Equivalent CLI: ``kfree experiment bcl2019 --finetune`` and ``kfree experiment bcl2019
--images-per-track 1 --finetune`` followed by ``kfree experiment bcl2019-report``.
"""
import argparse
import logging
import sys

from kfree.experiments import Bcl2019Config, run_bcl2019

ap = argparse.ArgumentParser()
ap.add_argument("--only", choices=["2img", "1img", "report"], default=None)
ap.add_argument("--no-resume", action="store_true")
ap.add_argument("--out", default="results/bcl2019")
ap.add_argument("--no-finetune-1img", action="store_true",
                help="skip constraint fine-tuning in the 1-image variant (it has cannot-links only)")
a = ap.parse_args()
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("kfree.train").setLevel(logging.WARNING)
logging.getLogger("kfree.data").setLevel(logging.WARNING)
for ipt in (2, 1):
    if a.only in (None, f"{ipt}img"):
        ft = not (ipt == 1 and a.no_finetune_1img)
        run_bcl2019(Bcl2019Config(images_per_track=ipt, finetune=ft), a.out, resume=not a.no_resume)
from kfree.experiments.bcl2019_report import write_report

write_report(a.out)
