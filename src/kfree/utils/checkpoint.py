"""Training checkpoints that load without running code: tensors plus plain data, written atomically.

``torch.load(..., weights_only=False)`` unpickles arbitrary objects, so opening a checkpoint
someone handed you could run their code. This module is kfree's one way to write and read a
resumable training state; it reads with ``torch.load(weights_only=True)`` only, so a corrupted
or foreign file is refused with one line and never executed.

API
---
``save_checkpoint(path, state: dict, *, config: dict | dataclass) -> Path``
    Write ``state`` and ``config`` to ``path`` atomically (a temporary file beside it, renamed
    when complete: a process killed mid-write leaves the previous checkpoint intact).

    ``state`` may hold, nested in dicts (str or int keys), lists and tuples:

    - ``torch.Tensor`` (model/optimiser ``state_dict()``, ``torch.get_rng_state()``, ...),
    - ``numpy.ndarray`` of a numeric or bool dtype (stored as a tensor, loaded back as ndarray
      of the same dtype and shape),
    - numpy scalars (loaded back as Python ``int``/``float``/``bool``),
    - dataclass instances (stored as a dict of their fields and loaded back **as that dict**;
      rebuild the object yourself, e.g. ``TrainResult(**state["result"])``),
    - ``pathlib.Path`` (loaded back as ``str``),
    - ``int`` (any size: numpy ``Generator.bit_generator.state`` dicts are fine), ``float``,
      ``bool``, ``str``, ``bytes``, ``None``.

    Anything else (object arrays, arbitrary classes, functions) raises
    :class:`~kfree.exceptions.CheckpointError` naming where it sits (``state['sampler']['x']``).

    ``config`` is what the state depends on (hyper-parameters, seed, data size): a dict or a
    dataclass of JSON-able values; tuples are stored as lists. It is compared on load.

``load_checkpoint(path, *, expect_config: dict | dataclass | None = None, map_location="cpu", allow_legacy=False) -> dict``
    Read a checkpoint written by :func:`save_checkpoint` and return its ``state`` (decoded as
    above). Raises :class:`~kfree.exceptions.CheckpointError`, one line each, when

    - the file is damaged, truncated, or not a torch file;
    - it holds anything but tensors and plain data (such a file is refused *without* running
      its code);
    - it is not a kfree checkpoint (no ``kfree-checkpoint/1`` format tag), unless
      ``allow_legacy`` (below);
    - ``expect_config`` is given and differs from the stored config: the message names the
      differing keys (top-level keys of the config; tuples and lists compare equal).

    A missing file raises :class:`~kfree.exceptions.DataFileNotFoundError`.

    ``allow_legacy=True`` also accepts a plain ``torch.save``'d dict written before this module
    (numeric numpy arrays in it are allowed, still without running code); its ``"config"``
    entry, if any, is compared with ``expect_config`` on the keys both have. Returned as
    stored, undecoded.

``read_checkpoint_config(path) -> dict``
    The stored config alone (same checks as :func:`load_checkpoint`, none on the config).

Example
-------
>>> save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
...                        "sampler": sampler.get_state(), "torch_rng": torch.get_rng_state(),
...                        "epoch": epoch}, config=asdict(cfg))
>>> state = load_checkpoint(ckpt, expect_config=asdict(cfg))   # refused if cfg changed
>>> model.load_state_dict(state["model"])
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import CheckpointError, DamagedFileError, DataFileNotFoundError, OutputError

FORMAT = "kfree-checkpoint/1"
_TAG = "__kfree_checkpoint__"
#: what to do with a training checkpoint kfree wrote that cannot be used
START_OVER = "delete it to start over"
REMEDY = f"restore it from a copy, or {START_OVER}"


# --------------------------------------------------------------------------- encoding
def _encode(obj: Any, where: str) -> Any:
    import torch

    if isinstance(obj, np.generic):  # before the plain types: np.float64 is a float, np.str_ a str
        if obj.dtype.kind not in "biufSU":
            raise CheckpointError(f"{where} is a numpy {obj.dtype} scalar; store numbers and text only")
        return obj.item()  # the Python value (a numpy object would be refused on load)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc" or obj.dtype.byteorder == ">":
            raise CheckpointError(f"{where} is an array of dtype {obj.dtype}; checkpoints store numeric "
                                  "arrays only (convert it, or keep it outside the checkpoint)")
        try:
            data = torch.from_numpy(np.ascontiguousarray(obj).reshape(obj.shape)).clone()  # 0-d stays 0-d
        except TypeError as e:
            raise CheckpointError(f"{where}: numpy dtype {obj.dtype} has no torch equivalent ({e})") from None
        return {_TAG: "ndarray", "data": data, "dtype": obj.dtype.str}
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}") for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        if _TAG in obj:
            raise CheckpointError(f"{where} uses the reserved key {_TAG!r}")
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"{where} has a key {k!r} of type {type(k).__name__}; keys must be str or int")
            out[k] = _encode(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    raise CheckpointError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints hold "
                          "tensors, numeric arrays and plain data only (convert it to a dict or a tensor)")


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.get(_TAG) == "ndarray":
            return obj["data"].cpu().numpy().astype(np.dtype(obj["dtype"]), copy=True)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode(v) for v in obj)
    return obj


def _plain_config(config: Any, what: str = "config") -> dict[str, Any]:
    from .io import json_default

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise CheckpointError(f"{what} must be a dict or a dataclass, got {type(config).__name__}")
    try:
        return json.loads(json.dumps(config, default=json_default, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{what} must hold JSON-able values (numbers, strings, lists, dicts): {e}") from None


def _differing_keys(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    keys = set(stored) | set(expected)
    return sorted(k for k in keys if stored.get(k, _MISSING) != expected.get(k, _MISSING))


_MISSING = object()


# --------------------------------------------------------------------------- public API
def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], *, config: Any) -> Path:
    """Write ``state`` (tensors + plain data) and ``config`` to ``path`` atomically; see the module docstring."""
    import torch

    from .io import atomic_path
    from .provenance import utc_now, versions

    if not isinstance(state, dict):
        raise CheckpointError(f"state must be a dict, got {type(state).__name__}")
    payload = {
        "format": FORMAT,
        "config": _plain_config(config),
        "meta": {**versions(("torch",)), "written_utc": utc_now()},
        "state": _encode(state, "state"),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as e:
            # torch's zip writer reports a short write (a full disk, a file-size limit) as a RuntimeError
            # ("unexpected pos ..."): an operations trial's finished training ended in 56 lines of traceback
            import shutil

            free = shutil.disk_usage(path.parent).free
            raise OutputError(f"cannot write {path}: the write stopped short ({str(e).splitlines()[0][:120]}) with "
                              f"{free / 2**20:,.1f} MiB free there: a full disk or a file-size limit? Free space, "
                              "or choose another place") from None
    return path


def _numpy_safe_globals() -> list[Any]:
    """numpy's array reconstruction: data only (an object array would need more, and is refused)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def _read(p: Path, map_location: Any, *, legacy: bool) -> dict[str, Any]:
    import contextlib
    import pickle

    import torch

    if not p.exists():
        raise DataFileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory, not a checkpoint file")
    _check_crc(p)
    scope: Any = contextlib.nullcontext()
    if legacy and hasattr(torch.serialization, "safe_globals"):
        scope = torch.serialization.safe_globals(_numpy_safe_globals())
    try:
        with scope, warnings.catch_warnings():
            # (torch warns about a foreign pickle before failing on it; the refusal below says it all)
            warnings.filterwarnings("ignore", message=".*pickle protocol")
            payload = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # torch's weights-only unpickler met a class or function
            raise CheckpointError(
                f"{p.name} is refused: it holds objects other than tensors and plain data, which could run "
                "code when loaded; it was not written by kfree's checkpoint module", START_OVER) from None
        raise CheckpointError(f"{p.name} is not a readable checkpoint (damaged or not a torch file)",
                              START_OVER) from None
    except Exception as e:
        raise CheckpointError(f"{p.name} is not a readable checkpoint (damaged, truncated or not a torch file: "
                              f"{type(e).__name__})", START_OVER) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{p.name} is not a kfree checkpoint (it holds a {type(payload).__name__})")
    if payload.get("format") != FORMAT and not legacy:
        found = payload.get("format")
        from .provenance import newer_format

        if newer_format(found, FORMAT):
            raise CheckpointError(f"{p.name} was written by a newer kfree (format {found}; this kfree reads {FORMAT})",
                                  "upgrade kfree to read it")
        raise CheckpointError(f"{p.name} is not a kfree checkpoint (format {found!r}, expected {FORMAT!r})")
    return payload


#: what to do with a damaged checkpoint (a model file says "train it again")


def _check_crc(p: Path) -> None:
    """Refuse a file whose stored checksums fail. A torch file is a zip archive with a CRC-32 of
    every record, which ``torch.load`` does not check: one flipped bit in a model's threshold
    loaded silently and changed the clusters (found by an operations trial: 100 clusters for 125,
    exit 0). Reading the file once more costs little beside loading it."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            # torch writes its records stored: a compressed one is inflated whole before anything is
            # checked (a security review: a 1 MB file took 2.5 GB and 18 s to be refused)
            packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
            bad = None if packed else z.testzip()
    except zipfile.BadZipFile:
        return  # (a legacy or foreign file: torch.load says what it is)
    except (OSError, RuntimeError, ValueError, EOFError) as e:  # (a record too damaged to read back)
        raise DamagedFileError(f"{p.name} is damaged ({type(e).__name__} reading it)", REMEDY) from None
    if packed:
        raise DamagedFileError(f"{p.name} holds {len(packed)} compressed record(s) (first: "
                               f"{packed[0].split('/', 1)[-1]!r}), which kfree never writes: a re-packed or foreign "
                               "file, not read", REMEDY)
    if bad is not None:
        raise DamagedFileError(f"{p.name} is damaged: the checksum of its record {bad.split('/', 1)[-1]!r} fails "
                               "(a changed bit on disk or in a copy)", REMEDY) from None



def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect_config: Any = None,
    map_location: Any = "cpu",
    allow_legacy: bool = False,
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; return its state. See the module docstring."""
    p = Path(path)
    payload = _read(p, map_location, legacy=allow_legacy)
    is_new = payload.get("format") == FORMAT
    stored = payload.get("config") if is_new else payload.get("config", None)
    if expect_config is not None:
        expected = _plain_config(expect_config, "expect_config")
        if not isinstance(stored, dict):
            raise CheckpointError(f"{p.name} stores no config to check", START_OVER)
        stored = _plain_config(stored, f"the config stored in {p.name}")
        if not is_new:  # a legacy file stored its whole config: compare the keys both sides have
            common = set(stored) & set(expected)
            stored = {k: stored[k] for k in common}
            expected = {k: expected[k] for k in common}
        diff = _differing_keys(stored, expected)
        if diff:
            raise CheckpointError(
                f"{p.name} was written with a different configuration (differs in: {', '.join(diff)}); "
                f"resume with the original settings, or delete it (or use another folder) to start over"
            )
    if not is_new:
        return payload
    state = payload.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{p.name} is damaged: it has no state")
    return _decode(state)


def read_checkpoint_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config stored in a checkpoint written by :func:`save_checkpoint`."""
    p = Path(path)
    return dict(_read(p, "cpu", legacy=False)["config"])
