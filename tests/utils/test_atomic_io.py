"""Atomic writes: whole or nothing, and with the permissions of an ordinary file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

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



def test_temporaries_a_killed_writer_left_are_removed_when_old(tmp_path):
    """An operations trial: SIGKILLed kfree train, cluster --state and report left their
    temporary outputs (as large as the outputs) beside them for good, one per kill."""
    import os
    import time

    from kfree.utils.io import STALE_AFTER_S, check_output

    old = [tmp_path / ".m.kfree.abc123.tmp", tmp_path / ".rep.kfree-x1"]
    young = tmp_path / ".m.kfree.def456.tmp"  # (another run's, still writing)
    other = tmp_path / ".n.kfree.abc123.tmp"  # (another output's)
    old[0].write_bytes(b"x" * 100)
    old[1].mkdir()
    (old[1] / "index.html").write_text("half")
    young.write_bytes(b"y")
    other.write_bytes(b"z")
    then = time.time() - STALE_AFTER_S - 60
    for p in (old[0], old[1], other):
        os.utime(p, (then, then))
    check_output(tmp_path / "m.kfree")
    check_output(tmp_path / "rep", directory=True)
    assert not old[0].exists() and not old[1].exists() and young.exists() and other.exists()


def test_an_output_is_flushed_to_disk_before_and_after_its_rename(tmp_path, monkeypatch):
    """An operations trial: without fsync a power loss may leave a renamed state or model of zero
    bytes. The data is flushed before the rename and the folder's entry after it."""
    from kfree.utils import io

    calls = []
    real_replace = os.replace
    monkeypatch.setattr(io, "_fsync", lambda p: calls.append(("fsync", Path(p))))
    monkeypatch.setattr(io.os, "replace", lambda a, b: (calls.append(("rename", Path(b))), real_replace(a, b)))
    write_json(tmp_path / "m.json", {"a": 1})
    kinds = [k for k, _ in calls]
    assert kinds == ["fsync", "rename", "fsync"], calls
    assert calls[0][1].name.startswith(".m.json.") and calls[1][1] == tmp_path / "m.json" and calls[2][1] == tmp_path


def test_a_replaced_file_keeps_its_mode_and_a_read_only_one_is_still_written(tmp_path):
    """A security review: a state made private (0600) came back 0644 after kfree assign. The mode
    is kept; the temporary stays writable by its writer until it is whole (a review found a
    read-only file's mode given to the temporary before the write, which a non-root writer could
    not then open)."""
    for mode in (0o600, 0o444):
        p = tmp_path / f"f{mode:o}"
        p.write_text("old")
        os.chmod(p, mode)
        with atomic_path(p) as tmp:
            assert tmp.stat().st_mode & stat.S_IWUSR  # its writer can open it
            tmp.write_text("new")
        assert p.read_text() == "new" and p.stat().st_mode & 0o777 == mode
