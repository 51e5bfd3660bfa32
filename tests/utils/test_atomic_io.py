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


def test_an_output_that_appears_while_a_command_runs_is_not_replaced(tmp_path):
    """Found by an operations trial: two nightly jobs onto one new --out both checked at the start
    that it did not exist, both exited 0, and the first's result was silently replaced."""
    from kfree.exceptions import OutputError
    from kfree.utils.io import MUST_BE_NEW, atomic_path, check_output, replace_together

    out, state = tmp_path / "same.csv", tmp_path / "same.kstate"
    try:
        check_output(out)
        check_output(state)
        out.write_text("the other job's\n")  # ... written by another process meanwhile
        with pytest.raises(OutputError, match=r"same.csv appeared while this command ran .* pass --force"):
            with atomic_path(out) as tmp:
                tmp.write_text("this job's\n")
        assert out.read_text() == "the other job's\n" and len(list(tmp_path.iterdir())) == 1
        # a state and its clusters file: neither is put in place when one of them appeared
        (tmp_path / "a").write_text("state")
        (tmp_path / "b").write_text("clusters")
        with pytest.raises(OutputError, match="same.csv appeared"):
            replace_together([(tmp_path / "a", state), (tmp_path / "b", out)])
        assert not state.exists() and out.read_text() == "the other job's\n"
        # absent still: put in place; with --force (checked so): replaced
        out.unlink()
        replace_together([(tmp_path / "a", state), (tmp_path / "b", out)])
        assert state.read_text() == "state" and out.read_text() == "clusters"
        check_output(out, force=True)
        with atomic_path(out) as tmp:
            tmp.write_text("forced\n")
        assert out.read_text() == "forced\n"
    finally:
        MUST_BE_NEW.clear()
