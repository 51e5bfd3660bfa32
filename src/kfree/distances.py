"""Distance kinds, their units, and the NumPy helpers shared by clustering and calibration (no torch).

This module is the one place that knows the three distance kinds (:data:`DISTANCES`) and how a
cut in one kind's units maps to another's: :func:`to_sq` / :func:`from_sq` convert through the
squared Euclidean radius on prepared rows (centred, or L2-normalised for cosine, where
``d² = 2 d_cos``); :meth:`kfree.threshold.Threshold.to` and every clusterer use them.
:func:`resolve_cut` is the seam every threshold clusterer shares: a float in the clusterer's
``distance`` units or a :class:`~kfree.threshold.Threshold` that carries its own kind.

Squared Euclidean distances are computed with one GEMM (``|x|² + |y|² − 2 x·y``) on centred
rows, clipped at 0, which is what makes dense HAC on tens of thousands of points affordable
(scipy's ``pdist`` is several times slower); pairs near a threshold can be recomputed exactly as
scipy does (:func:`condensed_distances_blocked`, ``exact_near``). Cosine distance is ``1 − cos``;
for unit vectors it equals ``d²/2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import check_choice
from .exceptions import ConfigError, DataError, DataTypeError

#: the distance kinds kfree measures in
DISTANCES: tuple[str, ...] = ("sqeuclidean", "euclidean", "cosine")


#: largest feature magnitude accepted: squared distances of larger values overflow float64
LARGEST_VALUE = 1e150


def _text_in(X) -> tuple[str, str] | None:
    """Where ``X`` holds text ("column 'text'", or "it") and its first text (cut to 40
    characters), else None: only the first value of a list, an array or each column is looked at."""
    def shown(v) -> str:
        v = v.decode(errors="replace") if isinstance(v, bytes) else v
        return v[:40] + ("…" if len(v) > 40 else "")

    dtypes = getattr(X, "dtypes", None)
    if hasattr(dtypes, "items"):  # a DataFrame
        for c, t in dtypes.items():  # (categories: the non-numeric columns' own message)
            if getattr(t, "kind", "O") in "OSU" and len(X) and not hasattr(t, "categories"):
                first = X[c].iloc[0]
                if isinstance(first, (str, bytes)):
                    return f"column {c!r}", shown(first)
        return None
    first = X
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(X, np.ndarray) and X.dtype.kind in "OSU" and X.size:
        first = X.flat[0]
    return ("it", shown(first)) if isinstance(first, (str, bytes)) else None


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``'12'``, ``'1.5e3'``, ``'nan'``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_features(X, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Validate a feature matrix: dense, 2-d, numeric, finite, at least ``min_samples`` rows.

    Shape and type problems get scikit-learn's own messages (users know them, and sklearn's
    estimator checks look for them); NaN/inf gets a message naming the first bad row.
    """
    import scipy.sparse as sp
    from sklearn.utils import check_array

    if sp.issparse(X):
        raise DataError(f"{name} is a sparse matrix; sparse input is not supported: pass a dense array (X.toarray())")
    if (text := _text_in(X)) is not None:  # texts given where their embeddings belong
        where, first = text
        if is_number(first):  # '0', '12.5': a label or an id column left in, or numbers never converted
            raise DataTypeError(f"{name}: {where} holds numbers written as text ({first!r}): a label or id column? "
                                "leave it out of the features, or convert it with astype(float) if it holds features")
        if len(first.split()) < 3:  # an id, a category, a file name
            raise DataTypeError(f"{name}: {where} holds strings ({first!r}), and features are numbers: leave it "
                                "out (an id or a category?)")
        raise DataTypeError(f"{name}: {where} holds text ({first!r}); kfree clusters numeric features: embed the "
                            "texts first (kfree.TextEncoder().encode(texts), or `kfree encode texts` on the command "
                            "line)")
    ndim = getattr(X, "ndim", None)
    if ndim is not None and ndim != 2:
        # sklearn's own message for this case prints every value of the array
        raise DataError(f"{name} must be a 2-d array of shape (n_samples, n_features), got shape "
                        f"{tuple(X.shape)}. Reshape your data: X.reshape(1, -1) for a single row, X.reshape(-1, 1) "
                        "for a single feature")
    X_in = X
    if getattr(getattr(X, "dtype", None), "kind", None) == "c":  # (scikit-learn's message printed the array)
        raise DataTypeError(f"{name}: Complex data not supported; kfree clusters real features: give their real "
                            "and imaginary parts as columns of their own (np.hstack([X.real, X.imag])), or abs(X)")
    if ndim == 2 and X.shape[0] < min_samples:
        one = "" if X.shape[0] == 1 else "s"
        raise DataError(f"{name} has {X.shape[0]:,} sample{one} (row{one}); at least "
                        f"{min_samples} {'is' if min_samples == 1 else 'are'} needed here")
    try:
        X = check_array(X, dtype="numeric", ensure_all_finite=False, ensure_min_samples=min_samples,
                        input_name=name)
    except ValueError as e:  # (scikit-learn's messages may print the whole array: the start says it)
        said = f"{name}: {e}".replace("\n", " ")
        raise DataError(said if len(said) <= 400 else said[:400] + "…") from None
    except TypeError as e:
        raise DataTypeError(f"{name} could not be read as a numeric array: {e}") from None
    if X.dtype.kind not in "biuf":  # e.g. a DataFrame with a pandas categorical column
        dtypes = getattr(X_in, "dtypes", None)  # a DataFrame's, per column
        cols = [str(c) for c, t in dtypes.items() if getattr(t, "kind", "O") not in "biuf"] \
            if hasattr(dtypes, "items") else []
        raise DataTypeError(f"{name} could not be read as a numeric array (it came out as {X.dtype}"
                            + (f"; non-numeric column(s): {cols[:5]}" if cols else "")
                            + "): keep only numeric feature columns")
    if X.size == 0:
        return X
    hi, lo = X.max(), X.min()  # NaN propagates; no copy of X
    if not (np.isfinite(hi) and np.isfinite(lo)):
        bad = np.where(~np.isfinite(X).all(axis=1))[0]
        raise DataError(
            f"{name} contains NaN or infinite values in {bad.size} rows (first: row {bad[0]}); "
            "drop or impute them first"
        )
    top = max(float(hi), -float(lo))
    if top > LARGEST_VALUE:
        raise DataError(f"{name} holds values up to {top:.3g}: their squared distances "
                        "overflow float64 (above ~1e308); rescale the features first (e.g. X / abs(X).max())")
    return X


def labels_array(labels: Any, name: str = "labels") -> np.ndarray:
    """``labels`` as an array, refusing a list that mixes text and numbers: NumPy makes ``['1', 1,
    2]`` the texts ``'1', '1', '2'`` and two labels one (a notebook trial), where an object array
    of them is refused as mixed, as everywhere."""
    a = np.asarray(labels)
    if a.dtype.kind == "U" and isinstance(labels, (list, tuple)) and any(
            v is None or isinstance(v, (bool, int, float, np.number)) for v in labels):  # (not a list of lists)
        raise DataError(f"{name} mix types that cannot be compared (e.g. numbers and text, or None); "
                        "give every label as the same type")
    return a


def check_labels(y: Any, n_rows: int, *, name: str = "y") -> np.ndarray:
    """Validate identity labels: one per row of X, each a class. NaN or None is no class (and
    ``np.unique`` would count all NaNs as one while ``np.isin`` matches none of them), and labels
    of mixed types cannot be ordered: each is a one-line DataError."""
    y = labels_array(y, name)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise DataError(f"{name} must have shape ({n_rows},), one label per row of X, got {y.shape}"
                        + (f" (a column: give {name}.ravel(), or the DataFrame's column as a Series)"
                           if y.shape == (n_rows, 1) else ""))
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise DataError(f"{name} has {int(np.isnan(y).sum())} NaN labels; a missing label is no identity: "
                        "drop those rows or label them")
    if y.dtype.kind == "O":
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in y.tolist()):
            raise DataError(f"{name} has missing labels (None or NaN); drop those rows or label them")
        try:
            np.unique(y)
        except TypeError:
            raise DataError(f"{name} mixes label types that cannot be compared (e.g. numbers and text); "
                            "give every label as the same type, e.g. y.astype(str)") from None
    return y


def check_distance(distance: str) -> str:
    return check_choice("distance", distance, DISTANCES)


#: precisions the rows may be rounded to before clustering (None: the input's own)
ROW_DTYPES = (None, "float32", "float64")



def refuse_zero_rows(X: Any, distance: str, what: str = "X", offset: int = 0) -> None:
    """Refuse all-zero rows under cosine distance (undefined there), naming how many and the first
    (a message that named none sent an embeddings trial searching 58,000 rows). Other distances
    take them."""
    if distance != "cosine":
        return
    X = np.asarray(X)
    # the norm in the rows' own precision: float32 values near 1e-25 have a norm of 0 there (a review)
    zero = (np.linalg.norm(X, axis=1) == 0) if X.dtype.kind == "f" else ~X.any(axis=1)
    if zero.any():
        first = offset + int(np.flatnonzero(zero)[0])
        raise DataError(f"cosine distance is undefined for all-zero rows, and {int(zero.sum()):,} of {what}'s "
                        f"{zero.size:,} rows are (first: row {first}, from 0); drop them first")

def length_range(X: Any, *, sample: int = 10_000) -> tuple[float, float]:
    """The 5th and 95th percentiles of the rows' lengths (L2 norms), on a seeded sample of
    ``sample`` rows when there are more: what :func:`unlike_lengths` compares new rows with."""
    X = np.asarray(X)
    if X.shape[0] > sample:
        X = X[np.sort(np.random.default_rng(0).choice(X.shape[0], sample, replace=False))]
    lo, hi = np.quantile(np.linalg.norm(np.asarray(X, dtype=np.float64), axis=1), [0.05, 0.95])
    return float(lo), float(hi)


def unlike_lengths(lengths: tuple[float, float], X_new: Any) -> float | None:
    """The new rows' median length when it lies outside ``lengths`` (a :func:`length_range`,
    with 5 % slack), else None. From 3 to 9 rows, where a median says little, only when every row
    lies outside the range with 20 % slack (rows of one kind: about 1 in 1,000 for 3 rows; an
    operations trial's 5 rows of another scale went into a state without a word); None below 3.

    Why: rows of another encoder, or scaled otherwise, meet a cut made for other units without a
    word (a photo-library trial's unit-length batch went into a state of dlib descriptors,
    lengths 1.36–1.59, every row a cluster of its own; an embeddings trial's rows scaled ×3 were
    1,810 clusters for 99 people under a model). A range, not a ratio: where length varies with
    content (digits' pixels by digit) rows of one kind stay within it."""
    X_new = np.asarray(X_new)
    if X_new.shape[0] < 3:
        return None
    lo, hi = lengths
    norms = np.linalg.norm(np.asarray(X_new, dtype=np.float64), axis=1)
    new = float(np.median(norms))
    if X_new.shape[0] < 10:
        return new if bool(np.all((norms < lo / 1.2) | (norms > hi * 1.2))) else None
    return new if (new < lo / 1.05 or new > hi * 1.05) else None


def check_rows_dtype(dtype: Any) -> Any:
    if dtype not in ROW_DTYPES:
        raise ConfigError(f"dtype={dtype!r} must be None (X's own), 'float32' or 'float64'")
    return dtype


def to_sq(value: float, distance: str) -> float:
    """A cut ``value`` in units of ``distance`` as a squared Euclidean radius on prepared rows
    (centred; for cosine L2-normalised, where ``d² = 2 d_cos``)."""
    check_distance(distance)
    if distance == "sqeuclidean":
        return float(value)
    if distance == "euclidean":
        try:
            return float(value) ** 2
        except OverflowError:
            raise ConfigError(f"a euclidean cut of {value} is too large to square in floating point; a cut "
                              "above the data's diameter gives one cluster, so give a smaller one") from None
    return 2.0 * float(value)


def from_sq(sq: float, distance: str) -> float:
    """The inverse of :func:`to_sq`: a squared radius on prepared rows in units of ``distance``."""
    check_distance(distance)
    if distance == "sqeuclidean":
        return float(sq)
    if distance == "euclidean":
        return float(sq) ** 0.5
    return float(sq) / 2.0


def resolve_cut(threshold: Any, distance: str | None, *, default: str = "sqeuclidean", merge_height: bool = False,
                by_pairs: bool = True):
    """The cut a threshold clusterer makes, as a :class:`~kfree.threshold.Threshold` in the
    distance it will measure in.

    ``threshold`` is a float in ``distance`` units or a Threshold. ``distance=None`` means the
    Threshold's own kind (``default`` for a float). A Threshold of another kind than an explicit
    ``distance`` is converted when the partition cannot change: squared and plain Euclidean cut
    the same pairs, which is all a clusterer that only asks whether a pair is within the cut
    (``by_pairs``: complete and single linkage) sees. Average linkage averages distances and a
    multicut weighs them (``by_pairs=False``): the mean of squares is not the square of the
    mean, so the conversion is refused there (it changed an average-linkage partition, ARI 0.93,
    silently: a scikit-learn trial). A cosine cut and a Euclidean one agree only on unit-norm
    rows, so mixing them is refused. Raises a ConfigError (one line) for anything but a finite number > 0, and for a
    Ward merge height (:attr:`~kfree.threshold.Threshold.is_ward_height`) unless
    ``merge_height`` (the Ward cut itself): any other clusterer would read it as the distance
    between two points, and a height calibrated for Ward's merges is none.
    """
    from .threshold import Threshold

    if isinstance(threshold, Threshold) and threshold.is_ward_height and not merge_height:
        raise ConfigError(f"threshold {threshold.value:g} is a Ward merge height ({threshold.source}), not a "
                          "distance between two points, and only a Ward cut (WardThreshold, method 'ward') can use "
                          "it; a model's pair-distance cut is learner.state_rule().threshold (complete linkage)")
    if isinstance(threshold, Threshold):
        if distance is None or distance == threshold.distance:
            return threshold
        check_distance(distance)
        if "cosine" in (distance, threshold.distance):
            raise ConfigError(f"threshold {threshold.value:g} is in {threshold.distance} units but distance="
                              f"{distance!r}; cosine and Euclidean cuts agree only on unit-norm rows: pass "
                              f"distance={threshold.distance!r} (or None), or a threshold in {distance} units")
        if not by_pairs:
            raise ConfigError(f"threshold {threshold.value:g} is in {threshold.distance} units but distance="
                              f"{distance!r}; this clusterer averages or weighs distances, so a cut converted to "
                              f"{distance} would not give the same clusters: pass distance={threshold.distance!r} "
                              f"(or None), or a threshold in {distance} units")
        return threshold.to(distance)
    dist = check_distance(distance if distance is not None else default)
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value > 0) or isinstance(threshold, (bool, str, bytes)):
        # (text too: '0.3' was taken, where scikit-learn's estimators refuse it; a notebook trial)
        raise ConfigError(f"threshold={threshold!r} must be a finite number > 0"
                          + (" (it is text: give the number itself)" if isinstance(threshold, (str, bytes)) else ""))
    return Threshold(value, dist, "given")


def prepare(X: np.ndarray, distance: str, *, dtype=np.float32) -> np.ndarray:
    """Contiguous copy in ``dtype``; for cosine, rows are L2-normalised so cosine = sqeuclidean / 2."""
    X = np.ascontiguousarray(X, dtype=dtype)
    if distance == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if (norms == 0).any():  # (the norms once: the helper, which counts and names them, only then)
            refuse_zero_rows(X, distance)
        X = X / norms
    return X


def condensed_distances_blocked(
    X: np.ndarray,
    distance: str = "sqeuclidean",
    *,
    block: int = 2048,
    exact_near: float | None = None,
) -> np.ndarray:
    """Condensed distances (scipy ``pdist`` layout, float64) built in row blocks.

    One float64 GEMM per block of rows (``|x|² + |y|² − 2 x·y``, clipped at 0) on centred rows
    (L2-normalised for cosine); the peak memory is the output itself (``4·n²`` bytes) plus one
    ``block × n`` tile, not the full square matrix and its index arrays (about 20·n² bytes).

    Centring removes the catastrophic cancellation far from the origin, but the formula is
    still accurate only to ~``d·u·|x|²`` (u = 2⁻⁵³), not to the last bit of scipy's value. With
    ``exact_near=tau`` (in units of ``distance``), every pair within
    :func:`~kfree._exact_distances.gemm_band` of ``tau`` is recomputed the way scipy computes it
    on the original rows, so each pair is on the same side of ``tau`` as in ``pdist`` (a pair at
    exactly ``tau`` is ``<= tau``). Values away from ``tau`` keep the GEMM's rounding: cuts at
    other heights, and the order of distances within ~1e-13 (relative to the spread) of each
    other, may differ from ``pdist`` in the last bits.
    """
    check_distance(distance)
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    refuse_zero_rows(X64, distance)
    from ._exact_distances import band_pairs, gemm_band, gemm_ready, pair_distances

    Xp = gemm_ready(X64, distance)
    n, dim = Xp.shape
    sq = (Xp * Xp).sum(1)
    band = thr = None
    if exact_near is not None and n > 1:
        thr = to_sq(exact_near, distance)
        band = gemm_band(thr, float(sq.max()), dim, distance)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    near_i: list[np.ndarray] = []
    near_j: list[np.ndarray] = []
    for i0 in range(0, n - 1, block):
        i1 = min(n - 1, i0 + block)
        tile = sq[i0:i1, None] + sq[None, i0:] - 2.0 * (Xp[i0:i1] @ Xp[i0:].T)
        np.maximum(tile, 0.0, out=tile)
        if band is not None:
            bi, bj = band_pairs(tile, thr, band, i0)
            near_i.append(bi)
            near_j.append(bj)
        for r in range(i1 - i0):
            i = i0 + r
            start = i * n - i * (i + 1) // 2
            out[start : start + n - i - 1] = tile[r, r + 1 :]
    if distance == "euclidean":
        np.sqrt(out, out=out)
    elif distance == "cosine":
        out /= 2.0
    if near_i:
        ei = np.concatenate(near_i)
        ej = np.concatenate(near_j)
        if ei.size:
            pos = ei * n - ei * (ei + 1) // 2 + (ej - ei - 1)
            out[pos] = pair_distances(X64, ei, ej, distance)
    return out


def pair_distances(X: np.ndarray, ei: np.ndarray, ej: np.ndarray, distance: str) -> np.ndarray:
    """Distances of the row pairs ``(ei[t], ej[t])`` of ``X`` in units of ``distance``, float64,
    computed the way scipy's ``pdist`` computes them (the exact kernels of
    :mod:`kfree._exact_distances`)."""
    from ._exact_distances import pair_distances as exact

    check_distance(distance)
    return exact(X, ei, ej, distance)
