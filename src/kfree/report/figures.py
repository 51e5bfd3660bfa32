"""Saving a matplotlib figure as a PNG the way every report figure is saved: atomically (no
half-written file if the process stops), then closed so a long run does not accumulate figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.io import atomic_path


def save_png(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG, parent folders created) and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
