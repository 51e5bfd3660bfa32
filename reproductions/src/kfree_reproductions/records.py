"""One resume policy for every experiment: a record is reused only under the configuration that made it.

Every experiment here writes JSON records (a cell, a run folder's ``config.json``) that carry the
configuration they were made with. A resumed run compares that configuration with its own before it
reuses anything, field by field, through :func:`config_differences`; any difference in a field that
changes results is refused with one line that names the fields (:func:`refuse_changed`) — a
changed ``alpha`` or ``lr`` must never silently reuse stale cells. Fields that only say how much
or how fast (more epochs, another evaluation schedule, threads) are listed per experiment in
``ignore``. A field added to a configuration after some records were written counts, in those
records, as the value that reproduces the behaviour before it existed (``before_field``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kfree.exceptions import ConfigError


def _plain(value: Any) -> Any:
    """Compare as JSON sees it (tuples are lists, keys are strings)."""
    return json.loads(json.dumps(value))


def config_differences(recorded: Mapping[str, Any] | None, wanted: Mapping[str, Any], *,
                       before_field: Mapping[str, Any] | None = None,
                       ignore: Iterable[str] = ()) -> list[str]:
    """``"field: recorded R, asked W"`` for every field of ``wanted`` the record disagrees with.

    A record without any configuration (``None``) disagrees as a whole.
    """
    if recorded is None:
        return ["the record carries no configuration"]
    recorded, wanted = _plain(dict(recorded)), _plain(dict(wanted))
    before = _plain(dict(before_field or {}))
    skip = set(ignore)
    out = []
    for key, value in wanted.items():
        if key in skip:
            continue
        if key in recorded:
            old = recorded[key]
        elif key in before:
            old = before[key]
        else:
            out.append(f"{key}: not recorded, asked {value!r}")
            continue
        if old != value:
            out.append(f"{key}: recorded {old!r}, asked {value!r}")
    return out


def refuse_changed(path: str | Path, recorded: Mapping[str, Any] | None, wanted: Mapping[str, Any], *,
                   before_field: Mapping[str, Any] | None = None, ignore: Iterable[str] = ()) -> None:
    """Raise a ConfigError naming what changed when ``path``'s record was made under another configuration."""
    diffs = config_differences(recorded, wanted, before_field=before_field, ignore=ignore)
    if diffs:
        raise ConfigError(
            f"{path} was made under another configuration ({'; '.join(diffs)}); write to another output "
            "folder, or recompute it (CLI: --no-resume; Python: resume=False)")
