"""Add the average-linkage-started multicut (``multicut_avg_kl``) to every finished Protocol B cell.

Usage (repository root; safe to stop and rerun, cells that have it are skipped)::

    OMP_NUM_THREADS=1 nice -n 10 python reproductions/icpr2020/add_avg_multicut.py

See :func:`kfree_reproductions.icpr2020.protocol_b.multicut_average_linkage_start` for why.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from kfree.embed.encode import encode
from kfree_reproductions.icpr2020.features import load_cifar10_features
from kfree_reproductions.icpr2020.protocol_b import (
    add_average_linkage_multicut,
    default_cache_dir,
    load_cells,
    make_head,
)

OUT = Path("results/icpr2020/protocol_b")
log = logging.getLogger("add_avg_multicut")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    X_train = y_train = None
    while True:
        todo = [r for r in load_cells(OUT) if "multicut_avg_kl" not in r]
        if not todo:
            break
        r = todo[0]
        Z_train = None
        if r["cell"]["loss"] == "l1":
            if X_train is None:
                X_train, y_train = load_cifar10_features("train")
            head = make_head(X_train.shape[1], tuple(r["config"]["dims"]), X_train)
            head.load_state_dict(torch.load(default_cache_dir() / "checkpoints" / f"{r['name']}.head.pt"))
            Z_train = encode(head, X_train)
        t = time.perf_counter()
        rec = add_average_linkage_multicut(r, OUT, Z_train=Z_train, y_train=y_train if Z_train is not None else None)
        m, a = rec["multicut"], rec["multicut_avg_kl"]
        log.info("%s: GAEC+KLj ACC %.4f obj %.4g | avg-HAC+KLj ACC %.4f obj %.4g (%d clusters) in %.0f s",
                     r["name"], m["acc"], m["objective"], a["acc"], a["objective"], a["n_clusters"],
                     time.perf_counter() - t)


if __name__ == "__main__":
    main()
