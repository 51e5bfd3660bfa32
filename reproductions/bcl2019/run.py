"""Regenerate results/bcl2019 (repo root, venv active):

    OMP_NUM_THREADS=1 python reproductions/bcl2019/run.py [--seeds 0,1,2,3,4] [--seeds-1img 0,1,2] [--only 2img|1img|report] [--no-resume]

Runs the protocol (2 images per track, step-wise validation selection every 8 optimisation steps,
constraint fine-tuning, X-/G-means) for every seed in ``--seeds`` (each seed draws its own identity
split, episodes and heads), the 1-image-per-track variant (``--seeds-1img``, default seeds 0, 1, 2),
then writes the per-seed tables (seed 0 at the top level) and the seed-means table. Resumable:
finished cells and trained heads (whose training record matches) are reused, so rerunning after an
interruption continues where it stopped.
Equivalent CLI: ``kfree experiment bcl2019 --finetune --seed S`` and ``kfree experiment bcl2019
--images-per-track 1 --finetune`` followed by ``kfree experiment bcl2019-report``.
"""
import argparse
import logging
import sys
import time

from kfree_reproductions.bcl2019.experiment import Bcl2019Config, run_bcl2019


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


ap = argparse.ArgumentParser()
ap.add_argument("--only", choices=["2img", "1img", "report"], default=None)
ap.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4], help="seeds of the protocol run, e.g. 0,1,2")
ap.add_argument("--seeds-1img", type=_seeds, default=[0, 1, 2], help="seeds of the 1-image variant ('' for none)")
ap.add_argument("--no-resume", action="store_true")
ap.add_argument("--out", default="results/bcl2019")
ap.add_argument("--no-finetune-1img", action="store_true",
                help="skip constraint fine-tuning in the 1-image variant (it has cannot-links only)")
a = ap.parse_args()
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("kfree.train").setLevel(logging.WARNING)
logging.getLogger("kfree.data").setLevel(logging.WARNING)
for ipt, seeds in ((2, a.seeds), (1, a.seeds_1img)):
    if a.only not in (None, f"{ipt}img"):
        continue
    ft = not (ipt == 1 and a.no_finetune_1img)
    for seed in seeds:
        t0 = time.perf_counter()
        run_bcl2019(Bcl2019Config(images_per_track=ipt, finetune=ft, seed=seed), a.out, resume=not a.no_resume)
        logging.getLogger("bcl2019").info("%d img/track, seed %d: done in %.0f s", ipt, seed, time.perf_counter() - t0)
from kfree_reproductions.bcl2019.report import write_report

write_report(a.out)
