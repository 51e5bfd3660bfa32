"""What a result was made with: the versions of the packages that computed it."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    """kfree, torch, numpy, scikit-learn and Python versions, as strings (stored with models)."""
    import numpy as np
    import sklearn
    import torch

    from .._version import __version__

    return {"kfree": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "sklearn": str(sklearn.__version__), "python": platform.python_version()}
