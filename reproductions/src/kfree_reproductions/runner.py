"""Experiments as data: one TOML file says what runs, one runner runs it.

An experiment file names the experiment, its output folder, the fields of its typed config and,
optionally, a grid of fields to sweep (one run per combination, in order)::

    experiment = "bcl2019"                      # see EXPERIMENTS
    out = "results/bcl2019/variants/stepwise"   # may use {field} of the grid, e.g. "…/{loss}_s{seed}"
    report = true                               # write the experiment's report afterwards

    [config]                                    # fields of the experiment's config dataclass
    epochs = 210
    batches_per_epoch = 8
    eval_every_steps = "none"                   # TOML has no null: "none" means None

    [grid]                                      # swept fields (lists); omit for a single run
    seed = [0, 1, 2, 3, 4]

    [report_options]                            # keyword arguments of the report, if any
    att = false

Every run goes through the experiment's own function, which keeps one record per cell and
applies the one resume policy (:mod:`kfree_reproductions.records`): a finished cell is reused only
under the configuration that made it. The files behind the committed results are in
``reproductions/configs/``; ``kfree experiment run FILE`` (or ``python -m
kfree_reproductions.runner FILE``) runs one.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import logging
import time
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfree.exceptions import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Experiment:
    """How to build, run and report one kind of experiment (imports deferred until used)."""

    config: Callable[[], type]
    run: Callable[..., Any]
    report: Callable[..., Any] | None
    #: the cells a run would (re)compute, or None when the experiment cannot tell in advance
    pending: Callable[[Any, Path], list[str]] | None = None


def _bcl2019() -> Experiment:
    from kfree_reproductions.bcl2019.experiment import Bcl2019Config, pending_cells, run_bcl2019
    from kfree_reproductions.bcl2019.report import write_report

    return Experiment(lambda: Bcl2019Config, lambda cfg, out, resume: run_bcl2019(cfg, out, resume=resume),
                      write_report, pending_cells)


def _icpr2020_b() -> Experiment:
    from kfree_reproductions.icpr2020.protocol_b import (
        ProtocolBConfig,
        pending_cells,
        run_protocol_b,
    )

    return Experiment(lambda: ProtocolBConfig, lambda cfg, out, resume: run_protocol_b(cfg, out, resume=resume), None,
                      pending_cells)


def _icpr2020_a() -> Experiment:
    from kfree_reproductions.icpr2020.protocol_a import (
        ProtocolAConfig,
        pending_epochs,
        run_protocol_a,
    )

    return Experiment(lambda: ProtocolAConfig, lambda cfg, out, resume: run_protocol_a(cfg, out, resume=resume), None,
                      pending_epochs)


#: experiment name -> its description (built on first use)
EXPERIMENTS: dict[str, Callable[[], Experiment]] = {
    "bcl2019": _bcl2019, "icpr2020-b": _icpr2020_b, "icpr2020-a": _icpr2020_a,
}
_KEYS = {"experiment", "out", "report", "config", "grid", "report_options", "description"}


@dataclass(frozen=True)
class Plan:
    """One experiment file, read and checked: the runs it makes, in order."""

    path: Path
    experiment: str
    runs: list[tuple[Any, Path]]  # (config, output folder)
    report: bool
    report_options: dict[str, Any]


def _fits(v: Any, hint: Any) -> bool:
    """Whether a TOML value (lists already tuples) is of the annotated type: ``bool``, ``int``,
    ``float`` (an int too), ``str``, ``Literal``, unions with None, ``tuple[X, ...]`` and fixed
    tuples are checked; anything else (dicts, ``Any``) is left to the config's own checks."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(v, a) for a in args)
    if hint is type(None):
        return v is None
    if origin is typing.Literal:
        return v in args
    if origin is tuple:
        if not isinstance(v, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(x, args[0]) for x in v)
        return not args or (len(args) == len(v) and all(_fits(x, a) for x, a in zip(v, args, strict=True)))
    if hint is bool:
        return isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is str:
        return isinstance(v, str)
    return True


def _coerce(cls: type, values: dict[str, Any]) -> Any:
    """Build ``cls`` from TOML values: lists become tuples, the string ``"none"`` becomes None (TOML
    has no null), and a table becomes the nested config dataclass of that field. A value of
    another type than the field's annotation is refused, naming the field (``"no"`` for a bool
    was true, ``2.5`` epochs ran)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid are {sorted(fields)}")
    out = {}
    for k, v in values.items():
        if isinstance(v, dict):
            f = fields[k]
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if not dataclasses.is_dataclass(default):
                raise ConfigError(f"{cls.__name__}.{k} is not a nested config; give a value, not a table")
            v = _coerce(type(default), v)
        elif isinstance(v, list):
            v = tuple(v)
        elif v == "none":
            v = None
        if not isinstance(v, dict) and not dataclasses.is_dataclass(v) and not _fits(v, hints[k]):
            want = hints[k].__name__ if isinstance(hints[k], type) else str(hints[k]).replace("typing.", "")
            raise ConfigError(f"{cls.__name__}.{k} = {v!r} must be {want}")
        out[k] = v
    return cls(**out)


def plan(path: str | Path) -> Plan:
    """Read an experiment file and expand its grid; every config is built (and so validated)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the experiment file ({e})") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {unknown}; an experiment file has {sorted(_KEYS)}")
    name = data.get("experiment")
    if name not in EXPERIMENTS:
        raise ConfigError(f"{p}: experiment={name!r} is not one of {sorted(EXPERIMENTS)}")
    if "out" not in data:
        raise ConfigError(f"{p}: set out = \"folder\" (where the records and tables go)")
    exp = EXPERIMENTS[name]()
    cls = exp.config()
    base = dict(data.get("config", {}))
    grid = dict(data.get("grid", {}))
    bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
    if bad:
        raise ConfigError(f"{p}: grid field(s) {bad} must be non-empty lists")
    runs = []
    for combo in itertools.product(*grid.values()) if grid else [()]:
        fields = {**base, **dict(zip(grid, combo, strict=True))}
        try:
            cfg = _coerce(cls, fields)
            out = Path(str(data["out"]).format(**fields))
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{p}: {e}") from None
        except KeyError as e:
            raise ConfigError(f"{p}: out uses {{{e.args[0]}}}, which is neither in [config] nor in [grid]") from None
        except (ValueError, IndexError) as e:
            raise ConfigError(f"{p}: out = {data['out']!r} is not a folder pattern ({e}); write a field "
                              "of [grid] as {seed}") from None
        runs.append((cfg, out))
    report = bool(data.get("report", False))
    if report and exp.report is None:
        raise ConfigError(f"{p}: experiment {name!r} has no report to write; its report is "
                          "reproductions/icpr2020/make_report.py (or set report = false)")
    options = dict(data.get("report_options", {}))
    if options:
        _check_report_options(p, exp, options)
    return Plan(p, name, runs, report, options)


def _check_report_options(p: Path, exp: Experiment, options: dict[str, Any]) -> None:
    """Refuse ``[report_options]`` the experiment's report does not take, before any run (a typo
    found by the report would come after hours of runs)."""
    if exp.report is None:
        raise ConfigError(f"{p}: [report_options] given, but this experiment writes no report")
    sig = inspect.signature(exp.report)
    if not any(q.kind is inspect.Parameter.VAR_KEYWORD for q in sig.parameters.values()):
        names = [n for n, q in list(sig.parameters.items())[1:] if q.kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(f"{p}: unknown [report_options] {unknown}; the report takes {names}")


def pending(pl: Plan) -> list[tuple[Path, list[str] | None]]:
    """For each run of a plan, the cells it would (re)compute (None: the experiment cannot tell)."""
    exp = EXPERIMENTS[pl.experiment]()
    return [(out, None if exp.pending is None else exp.pending(cfg, out)) for cfg, out in pl.runs]


def run(path: str | Path, *, resume: bool = True, dry_run: bool = False) -> Plan:
    """Run every configuration of an experiment file (finished cells are reused), then report."""
    pl = plan(path)
    exp = EXPERIMENTS[pl.experiment]()
    for i, (cfg, out) in enumerate(pl.runs, 1):
        log.info("%s: run %d of %d → %s", pl.path.name, i, len(pl.runs), out)
        if dry_run:
            continue
        t0 = time.perf_counter()
        exp.run(cfg, out, resume)
        log.info("%s: run %d done in %.0f s", pl.path.name, i, time.perf_counter() - t0)
    if pl.report and not dry_run:
        for out in dict.fromkeys(out for _, out in pl.runs):
            exp.report(out, **pl.report_options)
    return pl


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="experiment files (reproductions/configs/*.toml)")
    ap.add_argument("--no-resume", action="store_true", help="recompute finished cells")
    ap.add_argument("--dry-run", action="store_true", help="check the files and list the runs only")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for f in a.files:
        pl = run(f, resume=not a.no_resume, dry_run=a.dry_run)
        if a.dry_run:
            for out, todo in pending(pl):
                what = "cannot tell in advance" if todo is None else (
                    f"{len(todo)} cell(s) to compute: {', '.join(todo[:6])}{' …' if len(todo) > 6 else ''}"
                    if todo else "every cell done (reused)")
                print(f"{f.name}: {out}: {what}")


if __name__ == "__main__":
    main()
