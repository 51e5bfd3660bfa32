"""What a result was made with: the versions of the packages that computed it, and when."""

from __future__ import annotations

import datetime as _dt
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


def utc_now() -> str:
    """The time now in UTC, to the second, as ISO 8601 (``2024-05-01T12:00:00Z``): how every file
    kfree writes records when it was made, so the times compare and sort as text."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def newer_format(found: object, current: str) -> bool:
    """Whether a file's format tag ``found`` (``"kfree-model/4"``) is a later version of the
    ``current`` one (``"kfree-model/3"``): a file a newer kfree wrote, which asks for an upgrade,
    not for another file (an operations trial was told "not a kfree model file")."""
    family, _, version = str(found).partition("/")
    ours, _, our_version = current.partition("/")
    return family == ours and version.isdigit() and int(version) > int(our_version)
