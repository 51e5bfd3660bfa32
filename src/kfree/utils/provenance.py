"""What a result was made with: the versions of the packages that computed it."""

from __future__ import annotations

import importlib
import platform

#: what a trained model records (the packages its numbers depend on)
MODEL_PACKAGES = ("torch", "numpy", "sklearn")


def versions(packages: tuple[str, ...] = MODEL_PACKAGES) -> dict[str, str]:
    """``{"kfree": …, <package>: …, "python": …}`` for the given packages, as strings.

    Only the named packages are imported, so code that must not load torch (``kfree.cluster``)
    can record its own set.
    """
    from .._version import __version__

    out = {"kfree": str(__version__)}
    for name in packages:
        out[name] = str(importlib.import_module(name).__version__)
    out["python"] = platform.python_version()
    return out
