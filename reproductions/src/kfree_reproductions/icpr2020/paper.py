"""The numbers of the ICPR 2020 triplet-loss study (Ho et al.), Table I, as data.

Read from the OCR'd paper text (``seeds/002_0997f5dba5ac41e5.txt``). The OCR lays each table
column out as a vertical stack of the four positive-noise rows (20 %, 10 %, 5 %, 0 %), so the
values below are transposed back into ``[positive noise][negative noise]``; the bold cells the
paper repeats in Fig. 3 (no noise: multicut 78.44 / 79.96 / 80.51, k-means 81.82 / 80.73 / 81.72)
and the best k-means cell (82.15: L3, 0 % positives, random negatives) check the reading.
Mean clustering accuracy (%) over five seeds, AlexNet-BN trained 100 epochs on CIFAR-10.
"""

from __future__ import annotations

POS_ROWS: tuple[float, ...] = (0.20, 0.10, 0.05, 0.0)  # the paper's row order
NEG_COLS: tuple[float | str, ...] = ("random", 0.07, 0.05, 0.02, 0.0)  # the paper's column order

# columns (random, 7 %, 5 %, 2 %, 0 %) of each row, rows in POS_ROWS order
_MULTICUT = {
    "l1": ((73.85, 73.64, 74.43, 76.28, 75.18), (77.90, 77.02, 76.93, 78.04, 77.87),
           (78.65, 76.73, 78.30, 77.73, 78.87), (78.14, 77.76, 78.31, 78.56, 78.44)),
    "l2": ((60.13, 65.61, 68.05, 67.26, 64.39), (74.23, 75.64, 75.23, 74.75, 75.48),
           (75.62, 76.27, 76.06, 75.80, 76.63), (77.07, 77.46, 77.47, 80.41, 79.96)),
    "l3": ((75.23, 74.39, 75.00, 72.80, 75.27), (77.10, 76.53, 76.47, 76.06, 76.29),
           (77.07, 78.94, 80.16, 77.44, 77.75), (80.25, 80.38, 80.65, 80.42, 80.51)),
}
_KMEANS = {
    "l1": ((79.83, 80.26, 80.29, 80.60, 80.55), (81.55, 80.95, 81.10, 81.53, 81.21),
           (81.62, 80.82, 81.27, 81.19, 81.68), (81.59, 81.33, 81.53, 81.51, 81.82)),
    "l2": ((71.71, 74.70, 74.86, 74.62, 74.61), (75.33, 75.80, 75.89, 75.54, 76.48),
           (76.79, 77.01, 76.14, 76.97, 76.93), (80.25, 80.80, 81.11, 81.39, 80.73)),
    "l3": ((79.66, 80.54, 77.83, 78.20, 80.53), (81.93, 81.78, 80.59, 80.45, 82.06),
           (82.07, 82.11, 81.98, 81.90, 82.08), (82.15, 82.14, 81.93, 81.64, 81.72)),
}


def _as_grid(table: dict[str, tuple[tuple[float, ...], ...]]) -> dict[str, dict[tuple[float, float | str], float]]:
    return {loss: {(pos, neg): rows[r][c] for r, pos in enumerate(POS_ROWS) for c, neg in enumerate(NEG_COLS)}
            for loss, rows in table.items()}


#: ``PAPER_ACC[method][loss][(wrong_positives, wrong_negatives)]`` → ACC in %, method in
#: {"multicut", "kmeans"}, loss in {"l1", "l2", "l3"}, noise as fractions or ``"random"``.
PAPER_ACC: dict[str, dict[str, dict[tuple[float, float | str], float]]] = {
    "multicut": _as_grid(_MULTICUT),
    "kmeans": _as_grid(_KMEANS),
}

#: Fig. 6: one L3 multicut run on the test set.
PAPER_TSNE_EXAMPLE = {"n_clusters": 44, "acc": 80.27, "small_clusters_lt10": "33-34"}


def paper_acc(method: str, loss: str, pos: float, neg: float | str) -> float:
    """The paper's mean ACC (%) of one Table I cell."""
    return PAPER_ACC[method][loss][(float(pos), neg if neg == "random" else float(neg))]
