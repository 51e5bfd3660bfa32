"""What every report figure and page share: matplotlib without a display, PNGs saved atomically
(no half-written file if the process stops) and closed (a long run does not accumulate figures),
and which clusters a page or montage shows, and which of their members."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_path


class _AggFigures:
    """What kfree's figures use of ``matplotlib.pyplot`` (``subplots``, ``rcParams``,
    ``get_cmap``), on figures with an Agg canvas of their own.

    Why not pyplot itself: ``matplotlib.use("Agg")`` switched a notebook's backend for the rest
    of its session, so the user's own plots stopped showing (a notebook trial). Figures made
    here belong to no pyplot window manager: they are drawn the same on a server without a
    display, whatever the backend, and freed when dropped."""

    @staticmethod
    def subplots(*args: Any, figsize: Any = None, **kwargs: Any) -> tuple[Any, Any]:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        return fig, fig.subplots(*args, **kwargs)

    @property
    def rcParams(self) -> Any:  # (pyplot's name)
        import matplotlib

        return matplotlib.rcParams

    @staticmethod
    def get_cmap(name: str) -> Any:
        import matplotlib

        return matplotlib.colormaps[name]


def pyplot() -> Any:
    """The figure makers kfree draws with (:class:`_AggFigures`: pyplot's ``subplots`` on Agg
    canvases, the caller's backend untouched). Imported on first use (matplotlib is slow to
    import and most commands draw nothing)."""
    return _AggFigures()


def check_png(path: str | Path) -> Path:
    """``path`` when it ends in ``.png``, else an OutputError: PNG bytes in a ``sizes.svg`` (a
    notebook trial) open as nothing, or as an error, wherever the name says another format.
    Called before drawing (a t-SNE map takes minutes) and again when writing."""
    from ..exceptions import OutputError

    if Path(path).suffix.lower() != ".png":
        raise OutputError(f"{Path(path).name}: kfree draws PNG images; give a file name ending in .png")
    return Path(path)


def save_png(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG, :func:`check_png`; parent folders created) and close it;
    returns the path."""
    check_png(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    if fig.canvas.manager is not None:  # (a pyplot figure: closed, as pyplot keeps it otherwise)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Path(path)


def plural(n: int, word: str) -> str:
    """``1 item``, ``2 items`` (with thousands separators)."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


@functools.lru_cache(maxsize=1)
def _glyphs():
    """Whether the figures' font (DejaVu Sans) draws a character: a function of a code point."""
    try:
        from matplotlib import font_manager, ft2font

        font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans", fallback_to_default=True))
        return lambda cp: font.get_char_index(cp) != 0
    except Exception:  # (no font to ask: draw as given)
        return lambda cp: True


def drawable(s: str) -> str:
    """``s`` with each character the figures' font lacks written as its code point (张伟 →
    ``U+5F20U+4F1F``): drawn as given, Chinese, Japanese and Korean ids were all empty boxes, one
    cluster's caption like another's (a pictures trial); the page shows them as they are."""
    has = _glyphs()
    return "".join(ch if has(ord(ch)) else f"U+{ord(ch):04X}" for ch in s)


def short_id(c: Any, most: int = 18) -> str:
    """A cluster id as a figure shows it (:func:`drawable`): at most ``most`` characters (a long
    id ran across a montage's thumbnails), its start and its end, where ids of one kind differ (a
    pictures trial: 2024-06-01_beach_party_001, _002 and _003 all read "2024-06-01_beac…"); the
    page shows it whole."""
    s = drawable(str(c))
    head = (most - 1) * 2 // 5
    return s if len(s) <= most else s[:head] + "…" + s[len(s) - (most - 1 - head):]


def largest_clusters(labels: np.ndarray, top: int | None = None) -> np.ndarray:
    """The cluster ids of ``labels``, largest first (ties: the lower id first), at most ``top``:
    the order every figure and page lists clusters in."""
    ids, counts = np.unique(labels, return_counts=True)
    return ids[np.lexsort((ids, -counts))][:top]


def sample_clusters(labels_pred: np.ndarray, per_cluster: int, *, labels_true: np.ndarray | None = None,
                    max_clusters: int | None = None, seed: int = 0) -> Iterator[tuple[Any, np.ndarray, np.ndarray, Any, Any]]:
    """What a page or montage shows of each of the ``max_clusters`` largest clusters, in that order.

    Yields ``(cluster id, its members' rows, up to per_cluster of them drawn at random (seeded,
    one draw per cluster in order, so a page is the same every time), majority true label,
    its share of the members)``; the last two are None without ``labels_true``, or for a cluster
    none of whose members has one (a missing label, None or NaN, is no class: the majority and
    its share are of the labelled members).
    """
    rng = np.random.default_rng(seed)
    known = None if labels_true is None else ~np.asarray(pd_isna(labels_true), dtype=bool)
    for c in largest_clusters(labels_pred, max_clusters):
        members = np.flatnonzero(labels_pred == c)
        pick = rng.choice(members, size=min(per_cluster, members.size), replace=False)
        majority = share = None
        if labels_true is not None and known[members].any():
            vals, cnt = np.unique(labels_true[members[known[members]]], return_counts=True)
            majority, share = vals[np.argmax(cnt)], cnt.max() / known[members].sum()
        yield c, members, pick, majority, share


def pd_isna(values: Any) -> np.ndarray:
    """Which entries are missing (None, NaN), as pandas sees them."""
    import pandas as pd

    return pd.isna(np.asarray(values))
