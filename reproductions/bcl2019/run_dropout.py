"""Extra (not the protocol): every head with dropout 0.3, no fine-tuning, no X-/G-means.

    OMP_NUM_THREADS=1 python reproductions/bcl2019/run_dropout.py

Why: in the protocol run BCL's 4b over-clusters unseen identities (the head overfits the 170
training identities and b shrinks); a probe (validation 'tracks' of the 20 validation identities,
BCL only) predicted 11 / 22 / 31 clusters at epochs 5 / 10 / 15 with dropout 0.3 against 60–101
without. Written to results/bcl2019/variants/dropout0.3.
"""
import logging
import sys

from kfree_reproductions.bcl2019.experiment import Bcl2019Config, run_bcl2019
from kfree_reproductions.bcl2019.report import write_report

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("kfree.train").setLevel(logging.WARNING)
logging.getLogger("kfree.data").setLevel(logging.WARNING)
out = "results/bcl2019/variants/dropout0.3"
# eval_every_steps=None: selection after every epoch, as these variants were run (before step-wise
# selection became the protocol)
run_bcl2019(Bcl2019Config(dropout=0.3, eval_every_steps=None, kmeans_variants=False, finetune=False), out, resume=True)
write_report(out, att=False)  # AT&T montages only for the protocol heads
