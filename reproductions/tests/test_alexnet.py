"""AlexNet-BN for 32×32 inputs: shapes, unit-norm embedding, gradients, options, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kfree.exceptions import ConfigError, DataError
from kfree_reproductions.icpr2020.alexnet import DEEPCLUSTER_WIDTHS, AlexNetBN


def test_paper_architecture_shapes():
    torch.manual_seed(0)
    net = AlexNetBN()
    assert net.widths == DEEPCLUSTER_WIDTHS == (96, 256, 384, 384, 256)
    assert net.flat_dim == 256 * 3 * 3  # 32 -> 15 -> 7 -> 3 after the three 3×3/2 pools
    assert [fc.out_features for fc in net.fcs] == [64, 32]
    assert net.out_dim == 32
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert n_bn == 5  # one per convolution, in place of AlexNet's LRN
    x = torch.randn(4, 3, 32, 32)
    z = net(x)
    assert z.shape == (4, 32)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))


def test_backward_and_train_eval_modes():
    torch.manual_seed(0)
    net = AlexNetBN(widths=(8, 16, 16, 16, 16), fc_dims=(16, 8), dropout=0.5)
    x = torch.randn(6, 3, 32, 32)
    net.train()
    net(x).pow(2).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))  # deterministic in eval (no dropout, BN frozen)


def test_unnormalized_and_other_sizes():
    net = AlexNetBN(widths=(8, 8, 8, 8, 8), fc_dims=(5,), normalize=False, image_size=64)
    assert net.flat_dim == 8 * 7 * 7  # 64 -> 31 -> 15 -> 7
    out = net.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5)
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))


def test_preprocess():
    net = AlexNetBN(widths=(8, 8, 8, 8, 8))
    images = np.full((2, 32, 32, 3), 255, np.uint8)
    x = net.preprocess(images)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    expected = (1 - torch.tensor([0.4914, 0.4822, 0.4465])) / torch.tensor([0.2470, 0.2435, 0.2616])
    torch.testing.assert_close(x[0, :, 0, 0], expected)
    with pytest.raises(DataError, match="uint8"):
        net.preprocess(np.zeros((2, 32, 32, 3), np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"widths": (8, 8, 8)}, "5 positive"),
        ({"fc_dims": ()}, "fc_dims"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"image_size": 8}, "image_size=8"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AlexNetBN(**kwargs)


def test_bad_input_shape():
    net = AlexNetBN(widths=(8, 8, 8, 8, 8))
    with pytest.raises(DataError, match=r"\(n, 3, H, W\)"):
        net(torch.randn(2, 32, 32, 3))


def test_config_round_trip():
    net = AlexNetBN(widths=(8, 8, 8, 8, 8), fc_dims=(16, 4), dropout=0.1)
    again = AlexNetBN(**net.config())
    assert again.config() == net.config()
    again.load_state_dict(net.state_dict(), strict=True)
