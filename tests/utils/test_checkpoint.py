"""Checkpoints: an exact round trip of a training state, read without running code, and one-line
refusals of damaged, foreign and mismatched files."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from kfree.exceptions import CheckpointError, DataFileNotFoundError
from kfree.utils.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint


@dataclasses.dataclass
class _Result:
    history: list = dataclasses.field(default_factory=list)
    best_score: float | None = None


class _Payload:
    """Unpickling this would run ``__reduce__``'s call: the attack a weights-only load prevents."""

    def __reduce__(self):
        return (print, ("code ran",))


def _state():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    rng = np.random.default_rng(7)
    rng.random(3)
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
        "sampler": {"rng": rng.bit_generator.state, "queue": np.arange(6, dtype=np.int64)[::-1]},
        "mask": np.array([True, False]), "half": np.ones((2, 2), dtype=np.float16),
        "result": _Result([{"epoch": 1, "loss": np.float32(0.5)}], 0.25), "epoch": np.int64(3),
        "shape": (2, 3), "partial": None,
    }


def test_round_trip_is_exact_and_typed(tmp_path):
    st = _state()
    path = save_checkpoint(tmp_path / "run" / "ck.pt", st, config={"lr": 1e-3, "dims": (4, 3)})
    got = load_checkpoint(path, expect_config={"dims": [4, 3], "lr": 1e-3})
    assert all(torch.equal(st["model"][k], got["model"][k]) for k in st["model"])
    assert torch.equal(got["torch_rng"], st["torch_rng"])
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert got["sampler"]["rng"] == st["sampler"]["rng"]  # 128-bit PCG64 integers intact
    resumed = np.random.default_rng()
    resumed.bit_generator.state = got["sampler"]["rng"]
    again = np.random.default_rng(7)
    again.random(3)
    assert resumed.random() == again.random()
    for key in ("mask", "half"):
        assert got[key].dtype == st[key].dtype and np.array_equal(got[key], st[key])
    np.testing.assert_array_equal(got["sampler"]["queue"], [5, 4, 3, 2, 1, 0])
    assert got["result"] == {"history": [{"epoch": 1, "loss": 0.5}], "best_score": 0.25}  # a dataclass comes back as its fields
    assert got["epoch"] == 3 and type(got["epoch"]) is int and got["shape"] == (2, 3) and got["partial"] is None
    assert read_checkpoint_config(path) == {"dims": [4, 3], "lr": 1e-3}
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["ck.pt"]  # atomic: no temporary left


def test_numpy_scalars_come_back_as_python_values_and_0d_arrays_keep_their_shape(tmp_path):
    """np.float64 is a float and np.str_ a str: they were stored as numpy objects, which the safe
    load then refused, so a run configured with a numpy learning rate could not be loaded."""
    st = {"lr": np.float64(1e-3), "name": np.str_("a"), "n": np.int64(3), "ok": np.bool_(True),
          "zero_d": np.array(5.0)}
    got = load_checkpoint(save_checkpoint(tmp_path / "ck.pt", st, config={"lr": np.float64(1e-3)}))
    assert got["lr"] == 1e-3 and type(got["lr"]) is float and type(got["name"]) is str
    assert type(got["n"]) is int and got["ok"] is True
    assert got["zero_d"].shape == () and got["zero_d"] == 5.0


def test_changed_config_is_refused_naming_the_keys(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", {"epoch": 1}, config={"lr": 1e-3, "seed": 0, "dims": [8]})
    with pytest.raises(CheckpointError, match=r"^ck.pt was written with a different configuration \(differs in: lr, p\)"):
        load_checkpoint(tmp_path / "ck.pt", expect_config={"lr": 1e-2, "seed": 0, "dims": (8,), "p": 4})


def test_foreign_damaged_and_missing_files_are_refused_without_running_code(tmp_path, capsys):
    torch.save({"model": {}, "evil": _Payload()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt is refused: it holds objects other than tensors"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Payload(), protocol=2))
    with pytest.raises(CheckpointError, match="raw.pkl is refused"):
        load_checkpoint(tmp_path / "raw.pkl", allow_legacy=True)
    assert "code ran" not in capsys.readouterr().out
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.ones(100)}, config={})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.pt").write_text("hello")
    for name in ("cut.pt", "text.pt"):
        with pytest.raises(CheckpointError, match=f"{name} is not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    torch.save({"epoch": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a kfree checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(DataFileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_legacy_plain_dict_with_numpy_arrays_loads_when_allowed(tmp_path):
    torch.save({"queue": np.arange(4), "epoch": 2, "config": {"lr": 0.1, "device": "cpu"}}, tmp_path / "old.pt")
    st = load_checkpoint(tmp_path / "old.pt", allow_legacy=True, expect_config={"lr": 0.1, "new_key": 1})
    np.testing.assert_array_equal(st["queue"], np.arange(4))
    with pytest.raises(CheckpointError, match="differs in: lr"):
        load_checkpoint(tmp_path / "old.pt", allow_legacy=True, expect_config={"lr": 0.2})


def test_unsupported_state_is_refused_at_save_naming_where(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\['sampler'\]\['fn'\] is a builtins.function"):
        save_checkpoint(tmp_path / "x.pt", {"sampler": {"fn": lambda: 0}}, config={})
    with pytest.raises(CheckpointError, match=r"state\['names'\] is an array of dtype <U1"):
        save_checkpoint(tmp_path / "x.pt", {"names": np.array(["a"])}, config={})
    with pytest.raises(CheckpointError, match="JSON-able"):
        save_checkpoint(tmp_path / "x.pt", {}, config={"f": len})
    assert not (tmp_path / "x.pt").exists()


def test_a_flipped_bit_is_refused_in_a_checkpoint_and_a_model(tmp_path):
    """An operations trial: one flipped bit in a model file's threshold loaded silently and changed
    the clusters (100 for 125, exit 0); torch.load does not check the zip records' CRC-32."""
    from kfree import ClusterLearner, TrainConfig
    from kfree.data.synthetic import sphere_blobs
    from kfree.exceptions import ModelError

    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.arange(1000.0)}, config={})
    data = bytearray(good.read_bytes())
    data[data.find(b"\x00\x00\x80?") + 2] ^= 0x10  # 1.0 → 1.125 in the tensor's bytes
    (tmp_path / "flip.pt").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"flip.pt is damaged: the checksum of its record 'data/0' fails"):
        load_checkpoint(tmp_path / "flip.pt")
    assert load_checkpoint(good)["w"][1] == 1.0
    X, y = sphere_blobs(6, 8, dim=4, seed=0)
    model = ClusterLearner(TrainConfig(epochs=1)).fit(X, y).save(tmp_path / "m.kfree")
    data = bytearray(model.read_bytes())
    at = data.find(b"data.pkl") + 200  # a byte of the pickled parameters (the threshold among them)
    data[at] ^= 0x01
    (tmp_path / "rot.kfree").write_bytes(data)
    with pytest.raises(ModelError, match=r"rot.kfree is damaged: the checksum of its record .* fails .* or train it "
                                         r"again$"):
        ClusterLearner.load(tmp_path / "rot.kfree")


def test_a_short_write_is_one_clear_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    """An operations trial: a full disk while kfree train saved its model ended in torch's
    RuntimeError ("unexpected pos ...") and 56 lines of traceback."""
    from kfree.exceptions import OutputError

    good = save_checkpoint(tmp_path / "m.pt", {"w": torch.ones(3)}, config={})
    before = good.read_bytes()

    def short_write(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 15488 vs 15376")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(OutputError, match=r"cannot write .*m.pt: the write stopped short \(\[enforce fail.*\) with "
                                          r"[\d,.]+ MiB free there: a full disk or a file-size limit"):
        save_checkpoint(good, {"w": torch.zeros(3)}, config={})
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def _repacked(src: Path, dst: Path) -> Path:
    """``src``'s zip records written again deflate-compressed (what kfree never writes)."""
    import zipfile

    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info.filename))
    return dst


def test_compressed_records_in_a_model_or_a_state_are_refused_before_they_are_inflated(tmp_path):
    """A security review: a 1 MB model whose one record inflated to 1 GiB took 2.5 GB of memory and
    18 s before it was refused, a state 1.3 GB; torch and kfree write records stored, so a compressed
    one is refused unread."""
    import numpy as np

    from kfree import ClusterLearner, TrainConfig
    from kfree.cluster.incremental import ClusterState
    from kfree.data.synthetic import sphere_blobs
    from kfree.exceptions import ClusterStateError, ModelError

    X, y = sphere_blobs(6, 8, dim=4, seed=0)
    model = ClusterLearner(TrainConfig(epochs=1)).fit(X, y).save(tmp_path / "m.kfree")
    with pytest.raises(ModelError, match=r"packed.kfree holds \d+ compressed record\(s\) .* never writes"):
        ClusterLearner.load(_repacked(model, tmp_path / "packed.kfree"))
    state = ClusterState.fit(np.asarray(X, dtype=np.float32), 1.0)
    state.save(tmp_path / "s.kstate")
    with pytest.raises(ClusterStateError, match="holds compressed records .* never writes"):
        ClusterState.load(_repacked(tmp_path / "s.kstate", tmp_path / "packed.kstate"))
    assert ClusterState.load(tmp_path / "s.kstate").n_samples == X.shape[0]  # as written: read
