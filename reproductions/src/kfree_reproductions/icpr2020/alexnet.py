"""AlexNet with batch-norm for 32×32 images, ending in a small L2-normalised embedding.

The ICPR 2020 triplet-loss study (Ho et al.) trains "AlexNet as in DeepCluster [Caron et al.
2018], local response normalisation replaced by batch normalisation, the last two
fully-connected layers shrunk from 4096 to 64 and 32". The paper does not say how the 224×224
AlexNet was adapted to CIFAR's 32×32 inputs, so this module makes the smallest change that keeps
AlexNet's shape: the same five convolutions with DeepCluster's widths (96, 256, 384, 384, 256),
batch-norm + ReLU after each, overlapping 3×3/2 max-pooling after conv1, conv2 and conv5, but a
5×5 stride-1 first convolution instead of 11×11 stride 4 (which would shrink a 32-pixel image to
8×8 in one step and leave nothing for the later pools). Spatial sizes: 32 → pool 15 → pool 7 →
pool 3, so the first fully-connected layer sees 256·3·3 = 2304 inputs.

Head: ``2304 → 64`` (fc6) → ReLU → ``64 → 32`` (fc7) → L2 normalisation, so the triplet
thresholds (``sqrt((alpha+beta)/2)`` on unit vectors) apply directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kfree.exceptions import ConfigError, DataError

DEEPCLUSTER_WIDTHS: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)
# CIFAR-10 channel statistics (official training set, pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class AlexNetBN(nn.Module):
    """AlexNet-BN embedding network for 32×32 RGB images.

    Parameters
    ----------
    widths : 5 ints
        Output channels of conv1..conv5 (default DeepCluster's AlexNet: 96, 256, 384, 384, 256).
    fc_dims : sequence of int
        Sizes of the fully-connected layers (default ``(64, 32)``, the paper's); the last is the
        embedding dimension. ReLU between them, none after the last.
    normalize : bool
        L2-normalise the embedding (the triplet thresholds assume unit-norm vectors).
    dropout : float
        Dropout before each fully-connected layer, as in AlexNet (default 0: with 64 and 32
        units there is little to regularise, and the paper does not mention it).
    image_size : int
        Input height = width (32 for CIFAR). Sizes down to 16 work; the conv stack keeps ceil
        divisions so the flattened size is computed, not assumed.

    Notes
    -----
    ``forward`` takes a float tensor ``(n, 3, H, W)`` already normalised
    (:meth:`preprocess` does it from uint8 ``(n, H, W, 3)``) and returns ``(n, fc_dims[-1])``.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = DEEPCLUSTER_WIDTHS,
        fc_dims: Sequence[int] = (64, 32),
        normalize: bool = True,
        dropout: float = 0.0,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        fc_dims = tuple(int(d) for d in fc_dims)
        if len(widths) != 5 or min(widths) < 1:
            raise ConfigError(f"widths={widths} must be 5 positive channel counts (conv1..conv5)")
        if not fc_dims or min(fc_dims) < 1:
            raise ConfigError(f"fc_dims={fc_dims} must be a non-empty sequence of positive sizes")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be in [0, 1)")
        if image_size < 16:
            raise ConfigError(f"image_size={image_size} must be >= 16 (three 3×3/2 max-pools)")
        self.widths, self.fc_dims = widths, fc_dims
        self.normalize, self.dropout, self.image_size = (
            bool(normalize),
            float(dropout),
            int(image_size),
        )
        c1, c2, c3, c4, c5 = widths

        def conv(cin: int, cout: int, k: int) -> list[nn.Module]:
            # bias is redundant before batch-norm
            return [
                nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2)
        self.features = nn.Sequential(
            *conv(3, c1, 5),
            pool(),
            *conv(c1, c2, 5),
            pool(),
            *conv(c2, c3, 3),
            *conv(c3, c4, 3),
            *conv(c4, c5, 3),
            pool(),
        )
        side = self.image_size
        for _ in range(3):
            side = (side - 3) // 2 + 1
        self.flat_dim = c5 * side * side
        sizes = (self.flat_dim, *fc_dims)
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.register_buffer(
            "input_mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "input_std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1), persistent=False
        )
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return self.fc_dims[-1]

    def reset_parameters(self) -> None:
        """He initialisation for convolutions (ReLU), PyTorch defaults elsewhere."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"expected input of shape (n, 3, H, W), got {tuple(x.shape)}")
        h = self.features(x).flatten(1)  # (n, c5, s, s) -> (n, c5*s*s)
        last = len(self.fcs) - 1
        for i, fc in enumerate(self.fcs):
            if self.dropout > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = fc(h)
            if i < last:
                h = F.relu(h)
        return F.normalize(h, dim=1) if self.normalize else h

    def preprocess(self, images) -> torch.Tensor:
        """uint8 images ``(n, H, W, 3)`` (numpy or torch) → standardised ``(n, 3, H, W)`` float."""
        if not isinstance(images, torch.Tensor):
            images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise DataError(
                f"images must be uint8 of shape (n, H, W, 3), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        x = (
            images.to(self.input_mean.device).permute(0, 3, 1, 2).float().div_(255.0)
        )  # NHWC -> NCHW
        return (x - self.input_mean) / self.input_std

    def config(self) -> dict:
        return {
            "widths": list(self.widths),
            "fc_dims": list(self.fc_dims),
            "normalize": self.normalize,
            "dropout": self.dropout,
            "image_size": self.image_size,
        }
