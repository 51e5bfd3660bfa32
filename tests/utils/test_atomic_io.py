"""Atomic writes: whole or nothing, and with the permissions of an ordinary file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from kfree.utils.io import atomic_path, write_json


def test_atomic_write_gets_the_usual_file_mode_and_leaves_nothing_on_failure(tmp_path):
    p = write_json(tmp_path / "a" / "x.json", {"k": 1})
    assert json.loads(p.read_text()) == {"k": 1}
    # the mode open() would give (rw-r--r-- under the usual umask 022), not mkstemp's private 0600
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "y.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a"]  # no target, no temporary left

