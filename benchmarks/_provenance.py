"""What a benchmark row was measured with (date, commit, command, versions), for the runners."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def run_provenance(runner: str) -> dict[str, str]:
    """What a row was measured with: the date, the commit (``+dirty`` with changes), the command
    and the versions of the libraries timed. Rows are merged across runs, so each row keeps its
    own (a benchmark audit found tables merged from runs of other code with none)."""
    import importlib.metadata as md
    import subprocess
    import sys

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    pkgs = ("kfree", "numpy", "scipy", "fastcluster", "numba", "scikit-learn", "hdbscan", "faiss-cpu", "highspy")
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
            "command": f"python -m benchmarks.{runner} " + " ".join(sys.argv[1:]),
            "versions": ", ".join(f"{n} {version(n)}" for n in pkgs) + f", python {platform.python_version()}"}
