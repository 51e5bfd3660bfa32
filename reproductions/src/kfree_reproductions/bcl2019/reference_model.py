"""Load the Ball Cluster Learning reference implementation's released checkpoint.

Its ``model_state`` holds an MLP ``linears.0..3`` (256→256→128→64→64) and its
``criterion_state`` the radius parameter ``ctrd.h_bias`` (``b = softplus(h)``). The MLP maps
straight onto :class:`~kfree.embed.models.MLPEmbedder`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from kfree.embed.models import MLPEmbedder
from kfree.exceptions import DataFileNotFoundError, ModelError
from kfree.threshold import Threshold


def load_bcl_reference(path: str | Path) -> tuple[MLPEmbedder, float, Threshold]:
    """Return ``(model, b, threshold)`` from a reference ``.pth.tar`` checkpoint."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        ms = state["model_state"]
        h = state["criterion_state"]["ctrd.h_bias"]
    except Exception as e:
        raise ModelError(f"{p.name} is not a BCL reference checkpoint: {e}") from None
    n_layers = len([k for k in ms if k.startswith("linears.") and k.endswith(".weight")])
    in_dim = ms["linears.0.weight"].shape[1]
    dims = [ms[f"linears.{i}.weight"].shape[0] for i in range(n_layers)]
    model = MLPEmbedder(in_dim, dims, normalize=True)
    missing, unexpected = model.load_state_dict(ms, strict=False)
    if unexpected or set(missing) - {"mean", "std"}:
        raise ModelError(f"{p.name}: unexpected {unexpected} / missing {missing} parameters")
    b = float(F.softplus(torch.as_tensor(h, dtype=torch.float64)))
    model.eval()
    return model, b, Threshold(value=4.0 * b, distance="sqeuclidean", source="4b (reference checkpoint)")
