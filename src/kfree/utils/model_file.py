"""The model file ``kfree train`` writes: a kfree checkpoint whose config says what was trained.

One on-disk format for everything kfree saves with tensors in it. A model file is written by
:func:`~kfree.utils.checkpoint.save_checkpoint` (tensors plus plain data, atomic) with the config
``{"kind": "kfree-model/3", "params": …}`` — the estimator's parameters, with its
:class:`~kfree.config.TrainConfig` under ``params["train"]`` — and the fitted state (head weights,
loss state, chosen rule, validation curve, provenance). It is read with ``weights_only=True``
only, so a model file handed to you never runs code.

Files of the two earlier formats (``kfree-model/1`` and ``/2``: one ``torch.save``'d dict with
flat parameters) still load; :func:`read_model` returns their flat parameters for the estimator
to map (:meth:`kfree.learner.ClusterLearner.from_params`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exceptions import CheckpointError, DamagedFileError, DataFileNotFoundError, ModelError
from .checkpoint import START_OVER, load_checkpoint, read_checkpoint_config, save_checkpoint

MODEL_FORMAT = "kfree-model/3"
LEGACY_FORMATS = ("kfree-model/1", "kfree-model/2")


def write_model(path: str | Path, *, params: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write a model file atomically: ``params`` (JSON-able) and ``state`` (tensors + plain data)."""
    return save_checkpoint(path, state, config={"kind": MODEL_FORMAT, "params": params})


def read_model(path: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(format, params, state)`` of a model file of this or an earlier format.

    Raises :class:`~kfree.exceptions.DataFileNotFoundError` for a missing file and
    :class:`~kfree.exceptions.ModelError`, one line, for anything that is not a kfree model file.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"model file not found: {p}")
    try:
        raw = load_checkpoint(p, allow_legacy=True)
    except DamagedFileError as e:  # a model file that a changed bit spoilt: said as such
        raise ModelError(f"{e.what}; restore it from a copy, or train it again") from None
    except CheckpointError as e:
        raise ModelError(_not_a_model(p, e)) from None
    if raw.get("format") in LEGACY_FORMATS:  # a torch.save'd dict of an earlier kfree
        state = {k: v for k, v in raw.items() if k not in ("format", "params")}
        return raw["format"], _params(raw.get("params"), p), state
    try:
        config = read_checkpoint_config(p)
    except CheckpointError as e:
        raise ModelError(_not_a_model(p, e)) from None
    kind = config.get("kind")
    if kind != MODEL_FORMAT:
        from .provenance import newer_format

        if newer_format(kind, MODEL_FORMAT):
            raise ModelError(f"{p.name} was written by a newer kfree (format {kind}; this kfree reads "
                             f"{MODEL_FORMAT}): upgrade kfree to use it")
        raise ModelError(f"{p.name} is not a kfree model file (expected format {MODEL_FORMAT}); "
                         "give a model saved by `kfree train`")
    return MODEL_FORMAT, _params(config.get("params"), p), raw


def _not_a_model(p: Path, e: CheckpointError) -> str:
    """Why ``p`` is not a model, in one line. The checkpoint reader's remedy "delete it to start
    over" is for a training checkpoint kfree wrote itself; a file given as a model is the user's
    (often their data, given in the wrong place), so it gets a remedy of its own. Any other remedy
    (a newer kfree's file: upgrade) is kept."""
    if e.remedy not in (None, START_OVER):
        return str(e)
    why = "it " + e.what[len(p.name) + 1:] if e.what.startswith(f"{p.name} ") else e.what
    return f"{p.name} is not a kfree model file: {why}; give a model saved by `kfree train`"


def _params(params: Any, p: Path) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ModelError(f"{p.name} is a damaged kfree model file (its parameters are a "
                         f"{type(params).__name__}, not a mapping); train the model again")
    return dict(params)
