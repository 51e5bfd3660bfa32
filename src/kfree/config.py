"""Typed, frozen configuration dataclasses (validated on construction), and the value checks
the library's parameters share.

Precedence is CLI > file > defaults; functions take the sub-config they need.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from .exceptions import ConfigError

SAMPLERS: tuple[str, ...] = ("pk", "triplets")


def finite_nonnegative(name: str, value: Any) -> float:
    """``value`` as a float >= 0, NaN and infinity refused (they pass ``< 0`` tests)."""
    if not (is_real(value) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def is_real(value: Any) -> bool:
    """A real number, NumPy's scalars included (``np.float32(0.5)``, what arrays hand out), but
    not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite_positive(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a float, or a ConfigError that names the parameter, what it got and what it
    needs (``hint``, e.g. typical values, appended in parentheses).

    One check for every scale-like parameter (margins, radii, temperatures, thresholds): NaN and
    infinity pass a plain ``> 0`` test and would only show up later as a NaN loss or a cut that
    joins everything.
    """
    if not (is_real(value) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={value!r} must be a finite number > 0" + (f" ({hint})" if hint else ""))
    return float(value)


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """``value`` if it is one of ``choices``, else a ConfigError naming the parameter and the choices."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {choices}")
    return value


def check_count(name: str, value: Any, least: int, none_means: str | None) -> int | None:
    """``value`` as an int >= ``least`` (a whole float such as 2.0 too), or ``None`` where
    ``none_means`` says what None does; anything else is a ConfigError naming the parameter."""
    if value is None and none_means is not None:
        return None
    if is_real(value) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        value = int(value)
    if not (is_real(value) and isinstance(value, numbers.Integral) and value >= least):
        raise ConfigError(f"{name}={value!r} must be an int >= {least}"
                          + (f" (or None: {none_means})" if none_means else ""))
    return int(value)


def check_label_noise(wrong_positives: Any, wrong_negatives: Any) -> None:
    """The triplet sampler's label noise: fractions in [0, 1), or ``wrong_negatives="random"``
    (negatives drawn without labels). Checked where it is configured and where it is sampled."""
    if not (is_real(wrong_positives) and 0.0 <= wrong_positives < 1.0):
        raise ConfigError(f"wrong_positives={wrong_positives!r} must be a fraction in [0, 1)")
    wn = wrong_negatives
    if not (wn == "random" or (is_real(wn) and 0.0 <= wn < 1.0)):
        raise ConfigError(f"wrong_negatives={wn!r} must be a fraction in [0, 1) or 'random'")


@dataclass(frozen=True)
class TrainConfig:
    """How to train an embedding head.

    ``p`` identities × ``k`` samples per batch; ``epochs`` passes of about n samples each (an
    upper bound when ``patience`` stops earlier). Validation runs every ``eval_every_steps``
    optimisation steps (and once before the first step), or every ``eval_every`` epochs when that
    is ``None``; ``patience`` stops training after that many validations without a better score
    (``None``: never). ``dims`` are the head's sizes (``None``: the head's default, see
    :func:`kfree.embed.models.build_head`). The defaults are the ones ``ClusterLearner`` uses.
    ``lr`` is Adam's learning rate for the network; the loss's own parameters (BCL's radius)
    use ``lr × loss.param_lr_scale``.

    ``sampler="triplets"`` replaces the P×K batches by explicit (anchor, positive, negative)
    triplets with label noise (the ICPR 2020 protocol): ``triplets_per_batch`` triplets per
    batch (default ``ceil(p·k/3)``, about as many rows as a P×K batch), a fraction
    ``wrong_positives`` of positives from another identity and ``wrong_negatives`` of negatives
    from the anchor's identity, or ``wrong_negatives="random"`` (negatives drawn without labels).
    It needs a loss that reads such batches (``TripletLoss(mining="given")``).
    """

    loss: str = "bcl"
    loss_params: dict[str, Any] = field(default_factory=dict)
    dims: tuple[int, ...] | None = None
    dropout: float = 0.0
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    p: int = 16
    k: int = 4
    batches_per_epoch: int | None = None
    eval_every: int = 5
    eval_every_steps: int | None = 10
    patience: int | None = 30
    select_best: bool = True
    seed: int = 0
    sampler: str = "pk"
    triplets_per_batch: int | None = None
    wrong_positives: float = 0.0
    wrong_negatives: float | str = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # numpy scalars (a grid from np.logspace) as plain values
            v = getattr(self, f.name)
            if hasattr(v, "item") and hasattr(v, "dtype") and getattr(v, "ndim", None) == 0:
                object.__setattr__(self, f.name, v.item())
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0):
            raise ConfigError(f"seed={self.seed!r} must be an int >= 0")
        # counts are whole numbers (2.0 from a JSON file is 2; 2.5 was truncated, or failed deep inside)
        for name, least, none_means in (
                ("epochs", 1, None), ("p", 2, None), ("k", 1, None), ("eval_every", 1, None),
                ("batches_per_epoch", 1, "about n samples per epoch"),
                ("eval_every_steps", 1, "validate every eval_every epochs"),
                ("patience", 1, "no early stopping"), ("triplets_per_batch", 1, "ceil(p·k/3)")):
            object.__setattr__(self, name, check_count(name, getattr(self, name), least, none_means))
        finite_positive("lr", self.lr)
        finite_nonnegative("weight_decay", self.weight_decay)
        if not (is_real(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout={self.dropout!r} must be a number in [0, 1)")
        if not isinstance(self.select_best, bool):
            raise ConfigError(f"select_best={self.select_best!r} must be True or False")
        check_choice("sampler", self.sampler, SAMPLERS)
        check_label_noise(self.wrong_positives, self.wrong_negatives)
        wn = self.wrong_negatives
        if self.sampler != "triplets" and (self.wrong_positives or wn != 0.0 or self.triplets_per_batch):
            raise ConfigError(
                "wrong_positives, wrong_negatives and triplets_per_batch apply to sampler='triplets', "
                f"but sampler={self.sampler!r}"
            )
        if self.dims is not None:
            object.__setattr__(self, "dims", tuple(check_count("dims", d, 1, None) for d in self.dims))

    def __repr__(self) -> str:
        """The fields that differ from the defaults (``TrainConfig(epochs=20)``): the 19 fields in
        full filled a learner's repr, and every scikit-learn message that quotes it (a notebook
        trial). ``to_dict()`` has them all."""
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                   if getattr(self, f.name) != (f.default_factory() if callable(f.default_factory) else f.default)]
        return f"TrainConfig({', '.join(changed)})"

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied and checked (``None`` sets a field to None, as
        :func:`dataclasses.replace` does: no early stopping for ``patience=None``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dims"] = None if self.dims is None else list(self.dims)
        return d

