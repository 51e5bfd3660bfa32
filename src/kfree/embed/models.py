"""Embedding heads on top of fixed descriptors.

The BCL paper's model is an MLP on a track's mean descriptor (256→256→128→64→64, ReLU between
layers, no batch-norm, L2-normalised output). The module keeps the reference code's parameter
names (``linears.N.weight``) so its released checkpoint loads as is.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ConfigError


def _layers(linears: nn.ModuleList, x: torch.Tensor, dropout: float, training: bool) -> torch.Tensor:
    """Linear layers with ReLU (and dropout) between them, none after the last."""
    last = len(linears) - 1
    for i, layer in enumerate(linears):
        x = layer(x)
        if i < last:
            x = F.relu(x)
            if dropout > 0:
                x = F.dropout(x, dropout, training)
    return x


class _StandardizedStack(nn.Module):
    """What both heads share: input standardisation stored as buffers (so a saved model embeds
    raw features correctly) and a stack of linear layers ``in_dim → *sizes`` with ReLU (and
    dropout) between them. The attribute names (``linears.N``, ``mean``, ``std``) are the BCL
    reference code's, so its released checkpoint loads as is."""

    def __init__(self, in_dim: int, sizes: tuple[int, ...], *, dropout: float, what: str) -> None:
        super().__init__()
        if in_dim < 1 or not sizes or min(sizes) < 1:
            raise ConfigError(f"in_dim={in_dim} and {what} must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be in [0, 1)")
        self.in_dim = int(in_dim)
        self.dropout = float(dropout)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise((self.in_dim, *sizes)))
        self.register_buffer("mean", torch.zeros(self.in_dim))
        self.register_buffer("std", torch.ones(self.in_dim))

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def _stack(self, x: torch.Tensor) -> torch.Tensor:
        return _layers(self.linears, (x - self.mean) / self.std, self.dropout, self.training)


class MLPEmbedder(_StandardizedStack):
    """MLP head: ``in_dim → dims[0] → … → dims[-1]``, ReLU between layers, unit-norm output.

    Parameters
    ----------
    in_dim : int
        Input descriptor size (128 for dlib faces, 384 for MiniLM, 256 for BCL's VGGFace2).
    dims : sequence of int
        Output sizes of the linear layers; the last one is the embedding dimension.
    normalize : bool
        L2-normalise the output (BCL and the triplet thresholds assume unit-norm embeddings).
    mean, std : tensor of shape (in_dim,), optional
        Input standardisation fitted on the training data; stored as buffers so a saved model
        embeds raw features correctly.
    """

    def __init__(
        self,
        in_dim: int,
        dims: Sequence[int] = (256, 128, 64, 64),
        *,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        dims = tuple(int(d) for d in dims)
        super().__init__(in_dim, dims, dropout=dropout, what=f"dims={dims}")
        self.dims = dims
        self.normalize = bool(normalize)

    @property
    def out_dim(self) -> int:
        return self.dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stack(x)
        return F.normalize(x, dim=1) if self.normalize else x

    def config(self) -> dict:
        return {"kind": "mlp", "in_dim": self.in_dim, "dims": list(self.dims), "normalize": self.normalize,
                "dropout": self.dropout}


class ResidualEmbedder(_StandardizedStack):
    """Identity-start head: ``f(x) = normalize(x + g(standardize(x)))``, ``g`` an MLP whose last
    layer starts at zero.

    Why: a head trained on a few seen classes can only be trusted where it improves on the
    features it was given. Starting exactly at the (L2-normalised) input means step 0 of training
    *is* the raw geometry, so model selection on validation classes can never pick something
    worse than the start by accident, and early steps are small corrections of it rather than a
    random projection that has to relearn what the input already knew. The output has the input's
    dimension.

    Parameters
    ----------
    in_dim : int
    hidden : sequence of int
        Hidden sizes of the correction branch ``g`` (``in_dim → hidden… → in_dim``).
    dropout : float
        Dropout after every hidden layer of ``g``.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256,), *, dropout: float = 0.0) -> None:
        hidden = tuple(int(d) for d in hidden)
        if not hidden:  # checked before in_dim is appended as the output size
            raise ConfigError(f"in_dim={in_dim} and hidden={hidden} must be positive")
        super().__init__(in_dim, (*hidden, int(in_dim)), dropout=dropout, what=f"hidden={hidden}")
        self.hidden = hidden
        self.normalize = True
        nn.init.zeros_(self.linears[-1].weight)
        nn.init.zeros_(self.linears[-1].bias)

    @property
    def out_dim(self) -> int:
        return self.in_dim

    @property
    def dims(self) -> tuple[int, ...]:
        return (*self.hidden, self.in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self._stack(x), dim=1)

    def config(self) -> dict:
        return {"kind": "residual", "in_dim": self.in_dim, "hidden": list(self.hidden), "dropout": self.dropout}


HEADS: tuple[str, ...] = ("residual", "mlp")


def build_head(kind: str, in_dim: int, dims: Sequence[int] | None, *, dropout: float = 0.0) -> nn.Module:
    """The embedding head ``kind`` (``"residual"`` or ``"mlp"``) for ``in_dim`` input features.

    ``dims``: hidden sizes of the residual branch (default ``(256,)``), or the MLP's layer sizes
    with the embedding size last (default ``(256, 128, 64, 64)``, the BCL paper's head).
    """
    if kind == "residual":
        return ResidualEmbedder(in_dim, dims or (256,), dropout=dropout)
    if kind == "mlp":
        return MLPEmbedder(in_dim, dims or (256, 128, 64, 64), dropout=dropout)
    raise ConfigError(f"head={kind!r} is not one of {HEADS}")


def head_from_config(cfg: dict) -> nn.Module:
    """Rebuild a head from its :meth:`config` dict (a saved model)."""
    if cfg.get("kind") == "residual":
        return ResidualEmbedder(cfg["in_dim"], cfg["hidden"], dropout=cfg["dropout"])
    return MLPEmbedder(cfg["in_dim"], cfg["dims"], normalize=cfg["normalize"], dropout=cfg["dropout"])
