"""Protocol B of the ICPR 2020 reproduction: run grid cells in priority order, resumably.

Usage (from the repository root; several workers may run at once, each claims the next free cell)::

    OMP_NUM_THREADS=1 nice -n 10 python reproductions/icpr2020/run_b.py --seeds 0 [--epochs 10]

``--backbone efficientnet-lite0+efficientnet-lite2`` trains the heads on both backbones' features
concatenated (cells in ``results/icpr2020/protocol_b_lite0+lite2/``).
Cells finished earlier (``results/icpr2020/protocol_b/cells/<cell>.json``) are skipped when made
under the same configuration (one made under another is refused with a message); a killed
worker loses at most one epoch of its current cell (per-epoch checkpoints in the cache).
Priority: the no-noise cells of every loss, then the Fig. 5 lines (positive noise alone,
negative noise alone), then the rest of Table I.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from kfree_reproductions.icpr2020.protocol_b import (
    LOSSES,
    Cell,
    ProtocolBConfig,
    cell_key,
    default_cache_dir,
    default_protocol_b_out,
    finished_cell,
    load_protocol_b_data,
    run_cell,
)

#: (wrong positives, wrong negatives) in the order they are run
PRIORITY: list[tuple[float, float | str]] = [
    (0.0, 0.0),
    (0.20, 0.0), (0.0, "random"), (0.10, 0.0), (0.0, 0.07), (0.05, 0.0), (0.0, 0.05), (0.0, 0.02),
    (0.20, "random"), (0.10, 0.07), (0.05, 0.05),
    (0.20, 0.07), (0.20, 0.05), (0.20, 0.02), (0.10, "random"), (0.10, 0.05), (0.10, 0.02),
    (0.05, "random"), (0.05, 0.07), (0.05, 0.02),
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(path: Path) -> bool:
    """Create ``path`` holding our pid unless a live worker holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            if _alive(int(path.read_text() or 0)):
                return False
        except ValueError:
            pass
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--only-noise-free", action="store_true")
    p.add_argument("--backbone", default="efficientnet-lite0",
                   help="frozen features; several joined by '+' are concatenated (efficientnet-lite0+efficientnet-lite2)")
    p.add_argument("--out", default=None, help="default results/icpr2020/protocol_b[_<backbones>]")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    cfg = ProtocolBConfig(epochs=a.epochs, seeds=tuple(int(s) for s in a.seeds.split(",")),
                          losses=tuple(a.losses.split(",")), backbone=a.backbone)
    out = Path(a.out) if a.out else default_protocol_b_out(cfg)
    data = load_protocol_b_data(cfg)
    claims = default_cache_dir() / "claims"
    order = PRIORITY[:1] if a.only_noise_free else PRIORITY
    for seed in cfg.seeds:
        for pos, neg in order:
            for loss in cfg.losses:
                cell = Cell(loss, pos, neg, seed)
                # a finished cell of another configuration is refused, as run_protocol_b refuses it
                if finished_cell(cfg, cell, out) is not None:
                    continue
                lock = claims / f"{cfg.tag}{cell.name}_{cell_key(cfg, cell)}.claim"
                if not claim(lock):
                    continue
                try:
                    if finished_cell(cfg, cell, out) is None:
                        run_cell(cfg, cell, data, out)
                finally:
                    lock.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
