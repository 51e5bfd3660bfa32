"""NumPy distance helpers shared by clustering and calibration (no torch).

Squared Euclidean distances are computed with one GEMM (``|x|² + |y|² − 2 x·y``), clipped at 0,
which is what makes dense HAC on tens of thousands of points affordable (scipy's ``pdist`` is
several times slower). Cosine distance is ``1 − cos``; for unit vectors it equals ``d²/2``.
"""

from __future__ import annotations

import numpy as np

from .exceptions import ConfigError, DataError, DataTypeError
from .threshold import DISTANCES


def check_features(X, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Validate a feature matrix: dense, 2-d, numeric, finite, at least ``min_samples`` rows.

    Shape and type problems get scikit-learn's own messages (users know them, and sklearn's
    estimator checks look for them); NaN/inf gets a message naming the first bad row.
    """
    import scipy.sparse as sp
    from sklearn.utils import check_array

    if sp.issparse(X):
        raise DataError(f"{name} is a sparse matrix; sparse input is not supported: pass a dense array (X.toarray())")
    try:
        X = check_array(X, dtype="numeric", ensure_all_finite=False, ensure_min_samples=min_samples,
                        input_name=name)
    except ValueError as e:
        raise DataError(f"{name}: {e}".replace("\n", " ")) from None
    except TypeError as e:
        raise DataTypeError(f"{name} could not be read as a numeric array: {e}") from None
    if not np.isfinite(X).all():
        bad = np.where(~np.isfinite(X).all(axis=1))[0]
        raise DataError(
            f"{name} contains NaN or infinite values in {bad.size} rows (first: row {bad[0]}); "
            "drop or impute them first"
        )
    return X


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ConfigError(f"distance={distance!r} is not one of {DISTANCES}")
    return distance


def prepare(X: np.ndarray, distance: str, *, dtype=np.float32) -> np.ndarray:
    """Contiguous copy in ``dtype``; for cosine, rows are L2-normalised so cosine = sqeuclidean / 2."""
    X = np.ascontiguousarray(X, dtype=dtype)
    if distance == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if (norms == 0).any():
            raise DataError("cosine distance is undefined for all-zero rows")
        X = X / norms
    return X


def condensed_distances_blocked(X: np.ndarray, distance: str = "sqeuclidean", *, block: int = 2048) -> np.ndarray:
    """Condensed distances (scipy ``pdist`` layout, float64) built in row blocks.

    One float64 GEMM per block of rows (``|x|² + |y|² − 2 x·y``, clipped at 0); the peak memory
    is the output itself (``4·n²`` bytes) plus one ``block × n`` tile, not the full square matrix
    and its index arrays (about 20·n² bytes). Computed in float64 from
    the float64 input (no float32 round trip), so cuts agree with scipy's ``pdist`` away from
    exact ties.
    """
    check_distance(distance)
    Xp = prepare(X, distance, dtype=np.float64)
    n = Xp.shape[0]
    sq = (Xp * Xp).sum(1)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    for i0 in range(0, n - 1, block):
        i1 = min(n - 1, i0 + block)
        tile = sq[i0:i1, None] + sq[None, i0:] - 2.0 * (Xp[i0:i1] @ Xp[i0:].T)
        np.maximum(tile, 0.0, out=tile)
        for r in range(i1 - i0):
            i = i0 + r
            start = i * n - i * (i + 1) // 2
            out[start : start + n - i - 1] = tile[r, r + 1 :]
    if distance == "euclidean":
        np.sqrt(out, out=out)
    elif distance == "cosine":
        out /= 2.0
    return out
