"""Loading the BCL reference implementation's released checkpoint into kfree's MLP."""

from pathlib import Path

import numpy as np
import pytest
import torch

from kfree.exceptions import DataFileNotFoundError, ModelError
from kfree_reproductions.bcl2019.reference_model import load_bcl_reference


def _checkpoint(shared_data: Path) -> Path:
    return next((shared_data / "bcl_tv" / "model_chkpts").glob("*.pth.tar"))


@pytest.mark.shared_data
def test_released_checkpoint_gives_b_and_tau(shared_data):
    model, b, thr = load_bcl_reference(_checkpoint(shared_data))
    assert b == pytest.approx(0.2051, abs=1e-4)
    assert thr.value == pytest.approx(0.820, abs=1e-3)
    assert thr.distance == "sqeuclidean"
    assert model.in_dim == 256 and model.dims == (256, 128, 64, 64)
    state = torch.load(_checkpoint(shared_data), map_location="cpu", weights_only=True)["model_state"]
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    z = model(torch.randn(5, 256))
    np.testing.assert_allclose(z.norm(dim=1).detach().numpy(), 1.0, rtol=1e-5)


def test_synthetic_reference_layout_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    dims = [(8, 6), (4, 8)]
    ms = {}
    for i, (o, n) in enumerate(dims):
        ms[f"linears.{i}.weight"] = torch.randn(o, n, generator=g)
        ms[f"linears.{i}.bias"] = torch.randn(o, generator=g)
    torch.save({"epoch": 1, "model_state": ms, "criterion_state": {"ctrd.h_bias": torch.tensor(0.0)}}, tmp_path / "c.pth.tar")
    model, b, thr = load_bcl_reference(tmp_path / "c.pth.tar")
    assert b == pytest.approx(np.log(2.0))
    assert thr.value == pytest.approx(4 * np.log(2.0))
    x = torch.randn(3, 6, generator=g)
    h = torch.relu(x @ ms["linears.0.weight"].T + ms["linears.0.bias"])
    expected = torch.nn.functional.normalize(h @ ms["linears.1.weight"].T + ms["linears.1.bias"], dim=1)
    torch.testing.assert_close(model(x), expected)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        load_bcl_reference(tmp_path / "none.pth.tar")
    torch.save({"model_state": {}}, tmp_path / "bad.pth.tar")
    with pytest.raises(ModelError, match="not a BCL reference checkpoint"):
        load_bcl_reference(tmp_path / "bad.pth.tar")
