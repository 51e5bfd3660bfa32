"""What a benchmark row was measured with (date, commit, command, versions), for the runners."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when it has uncommitted changes), or None."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def run_provenance(runner: str) -> dict[str, str]:
    """What a row was measured with: the date, the commit (:func:`commit`), the command and the
    versions of the libraries timed. Rows are merged across runs, so each row keeps its own (a
    benchmark audit found tables merged from runs of other code with none)."""
    import importlib.metadata as md
    import sys

    from kfree.utils.provenance import utc_now

    def version(name: str) -> str:  # (by distribution: the optional ones may be absent)
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"

    pkgs = ("kfree", "numpy", "scipy", "fastcluster", "numba", "scikit-learn", "hdbscan", "faiss-cpu", "highspy")
    return {"date": utc_now(), "commit": commit() or "unknown",
            "command": f"python -m benchmarks.{runner} " + " ".join(sys.argv[1:]),
            "versions": ", ".join(f"{n} {version(n)}" for n in pkgs) + f", python {platform.python_version()}"}
