"""Extra (not the protocol): step-wise validation selection, with and without dropout 0.3.

    OMP_NUM_THREADS=1 python reproductions/bcl2019/run_stepwise.py

Why: without fine-tuning BCL's 4b over-clusters unseen identities because the head overfits the
170 training identities and b keeps shrinking; on Banking77 the same mechanism was fixed by
selecting the model on validation every few optimisation steps instead of every 5 epochs.
Here: the protocol's number of optimisation steps (30 epochs × 56 batches ≈ 1,680 steps of
P×K = 16×4), cut into "epochs" of 8 batches (210 of them) with validation after each, so the
head is chosen among 210 candidates instead of 6. Every loss gets the same schedule; no
fine-tuning, no X-/G-means. Written to results/bcl2019/variants/stepwise{,_dropout0.3}.
"""
import logging
import sys

from kfree_reproductions.bcl2019.experiment import Bcl2019Config, run_bcl2019
from kfree_reproductions.bcl2019.report import write_report

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("kfree.train").setLevel(logging.WARNING)
logging.getLogger("kfree.data").setLevel(logging.WARNING)
for dropout, out in ((0.3, "results/bcl2019/variants/stepwise_dropout0.3"),
                     (0.0, "results/bcl2019/variants/stepwise")):
    # eval_every_steps=None: selection after every epoch, as these variants were run (before step-wise
    # selection became the protocol)
    cfg = Bcl2019Config(epochs=210, batches_per_epoch=8, eval_every=1, eval_every_steps=None, dropout=dropout,
                        kmeans_variants=False, finetune=False)
    run_bcl2019(cfg, out, resume=True)
    write_report(out, att=False)  # AT&T montages only for the protocol heads
