"""Pair distances computed the way scipy's ``pdist`` computes them, and the GEMM error band.

Fast paths compute squared distances with one matrix product, ``|x|² + |y|² − 2 x·y``. That is
accurate to a few units of ``u·(|x|² + |y|²)`` (u = 2⁻⁵³), not of ``u·|x − y|²``: a pair at
exactly the threshold can land on either side of it, and far from the origin the error is
catastrophic. So callers (1) centre the data before the product (:func:`grid_centre`), which
makes ``|x|²`` the spread of the data instead of its offset, and (2) recompute every pair
whose product value lies within :func:`gemm_band` of the threshold with :func:`pair_distances`,
which reproduces scipy's arithmetic on the original rows, and decide those pairs on that value.

:func:`pair_distances` is bit-identical to ``scipy.spatial.distance.pdist`` for
``"sqeuclidean"`` and ``"euclidean"`` (the sum of squared coordinate differences, accumulated
in coordinate order; euclidean is its square root). For ``"cosine"`` it evaluates scipy's formula
``1 − u·v / (|u| |v|)`` with sums in coordinate order; scipy's compiled loop may vectorise those
sums differently, so cosine values can differ from scipy's in the last bit or two.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: unit roundoff of float64
U64 = 2.0**-53


@nb.njit(cache=True)
def _sq_pairs(X, ei, ej):
    m = ei.shape[0]
    d = X.shape[1]
    out = np.empty(m, dtype=np.float64)
    for t in range(m):
        s = 0.0
        a = ei[t]
        b = ej[t]
        for k in range(d):
            v = X[a, k] - X[b, k]
            s += v * v
        out[t] = s
    return out


@nb.njit(cache=True)
def _cos_pairs(X, ei, ej):
    m = ei.shape[0]
    d = X.shape[1]
    out = np.empty(m, dtype=np.float64)
    for t in range(m):
        a = ei[t]
        b = ej[t]
        uv = 0.0
        uu = 0.0
        vv = 0.0
        for k in range(d):
            uv += X[a, k] * X[b, k]
            uu += X[a, k] * X[a, k]
            vv += X[b, k] * X[b, k]
        c = uv / (np.sqrt(uu) * np.sqrt(vv))
        if abs(c) > 1.0:  # scipy clips rounding beyond +-1
            c = 1.0 if c > 0 else -1.0
        out[t] = 1.0 - c
    return out


@nb.njit(cache=True)
def _scan_band(tile, lo, hi, i0, out_i, out_j):
    """Count (and, while they fit, store) the entries above the diagonal of ``tile`` (rows and
    columns both starting at sample ``i0``) with ``lo <= value <= hi``."""
    k = 0
    cap = out_i.shape[0]
    for r in range(tile.shape[0]):
        for c in range(r + 1, tile.shape[1]):
            v = tile[r, c]
            if v >= lo and v <= hi:
                if k < cap:
                    out_i[k] = i0 + r
                    out_j[k] = i0 + c
                k += 1
    return k


def band_pairs(tile: np.ndarray, thr: float, band: float, i0: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample pairs (i < j) of a GEMM tile whose value lies within ``band`` of ``thr``.

    ``tile`` holds rows ``i0, i0 + 1, ...`` against columns ``i0, i0 + 1, ...`` (as
    :func:`~kfree.distances.condensed_distances_blocked` builds it); one pass, no temporaries.
    """
    out_i = np.empty(1024, dtype=np.int64)
    out_j = np.empty(1024, dtype=np.int64)
    k = _scan_band(tile, thr - band, thr + band, i0, out_i, out_j)
    if k > out_i.shape[0]:  # rare (many pairs at the threshold, e.g. grids): scan again
        out_i = np.empty(k, dtype=np.int64)
        out_j = np.empty(k, dtype=np.int64)
        _scan_band(tile, thr - band, thr + band, i0, out_i, out_j)
    return out_i[:k], out_j[:k]


def pair_distances(X: np.ndarray, ei: np.ndarray, ej: np.ndarray, distance: str) -> np.ndarray:
    """Distances of the pairs ``(ei[t], ej[t])`` of the rows of ``X``, as scipy computes them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The original rows (not centred, not normalised), float64.
    ei, ej : ndarray of shape (n_pairs,), integer
    distance : {"sqeuclidean", "euclidean", "cosine"}

    Returns
    -------
    ndarray of shape (n_pairs,), float64, in units of ``distance``.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    ei = np.ascontiguousarray(ei, dtype=np.int64)
    ej = np.ascontiguousarray(ej, dtype=np.int64)
    if distance == "cosine":
        return _cos_pairs(X, ei, ej)
    sq = _sq_pairs(X, ei, ej)
    return np.sqrt(sq) if distance == "euclidean" else sq


def grid_centre(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A centre for the rows whose coordinates lie in ``[lo, hi]``: the midpoint rounded to a
    multiple of the largest power of two not above the range (per coordinate).

    Subtracting it keeps the centred rows within the range of the data (what the GEMM error
    depends on), and it is exact for data on a binary grid as coarse as that power of two
    (integers, halves, ...): such data keep exact distances in the GEMM, so their exact ties stay
    exact ties (a plain mean would round them apart at random).
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    rng = hi - lo
    pos = rng > 0
    step = np.ones_like(rng)
    step[pos] = np.exp2(np.floor(np.log2(rng[pos])))
    mid = lo + rng / 2
    return np.where(pos, np.round(mid / step) * step, lo)


def gemm_ready(X: np.ndarray, distance: str, *, centre: np.ndarray | None = None) -> np.ndarray:
    """Float64 rows ready for the GEMM formula: centred (sqeuclidean, euclidean; by ``centre``,
    default the :func:`grid_centre` of ``X`` — so ``|x|² + |y|² − 2x·y`` does not cancel far
    from the origin) or L2-normalised (cosine, where centring would change the distance)."""
    X = np.asarray(X, dtype=np.float64)
    if distance == "cosine":
        return X / np.linalg.norm(X, axis=1, keepdims=True)
    if centre is None:
        if X.shape[0] == 0:
            return np.ascontiguousarray(X)
        centre = grid_centre(X.min(axis=0), X.max(axis=0))
    return np.ascontiguousarray(X - centre)


def gemm_band(tau_sq, max_sq_norm: float, n_features: int, distance: str):
    """Half-width (squared units) of the band around ``tau_sq`` outside which a float64 GEMM
    value ``g = |x|² + |y|² − 2 x·y`` of prepared rows decides ``pdist(x, y) <= tau`` correctly.

    Let u = 2⁻⁵³, d = ``n_features``, M = ``max_sq_norm`` (the largest ``|x|²`` of the prepared
    rows) and s the squared distance scipy computes on the original rows. Whatever the BLAS
    summation order (with or without FMA), each of the three inner products is within
    ``γ_d |x||y|`` of its exact value (γ_d = d·u / (1 − d·u)), and the two additions add
    ``2u (|x| + |y|)²``, so ``|g − |x − y|²| <= (γ_d + 2u)(|x| + |y|)² <= (4d + 8)·u·M``
    to first order. Centring rounds each coordinate by at most ``u |x_k|`` (x the centred row;
    on binary grids it is exact), which moves ``|x − y|²`` by at most ``2u (|x| + |y|)² <=
    8u·M``. scipy's own sum of squared differences is within ``(d + 2)·u·s`` of the exact
    squared distance of the original rows. In all,

        |g − s| <= (4d + 16)·u·M + (d + 2)·u·s,

    and a pair decided by the threshold has ``s`` near ``tau_sq``. For cosine, rows are
    normalised (each coordinate off by about ``(d + 3)·u``, so ``|x − y|²`` by ``8(d + 3)·u``),
    and scipy's ``1 − u·v / (|u||v|)`` is within about ``(2d + 4)·u`` of the exact cosine, i.e.
    ``(4d + 8)·u`` in squared units: another ``(12d + 32)·u``. The band returned is twice
    the sum of these bounds (the second-order terms are far below that for any d·u ≪ 1).

    Pairs with ``|g − tau_sq| <= band`` are recomputed with :func:`pair_distances` and decided
    on that value; outside the band, ``g`` and ``s`` are on the same side of ``tau_sq`` (for
    euclidean, ``sqrt(s) <= tau`` and ``s <= tau_sq = fl(tau²)`` differ only within a few ulps
    of ``tau_sq``, well inside the ``(d + 2)·u·tau_sq`` term). For
    typical data the band is ~1e-13 relative to the spread, so a handful of pairs is recomputed
    (on integer grids: exactly the pairs at the threshold, which is where it matters).
    """
    d = float(n_features)
    t = np.abs(tau_sq)  # a float, or an array of thresholds
    b = (4.0 * d + 16.0) * float(max_sq_norm) + (d + 2.0) * t
    if distance == "cosine":
        b += 12.0 * d + 32.0
    return 2.0 * U64 * b
