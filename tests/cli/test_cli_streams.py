"""Standard output that cannot be written, or cannot encode kfree's characters: a command whose
files are written succeeds (found by an operations trial: `kfree assign … > /dev/full` exited 1
after saving the state, so its retry was refused as a batch added before; `LC_ALL=C` made the
summary's arrow a traceback after the clusters file was written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _kfree(args: list[str], cwd: Path, *, stdout=subprocess.PIPE, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "kfree", *args], check=False, cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture
def rows(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    return tmp_path


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_standard_output_fails_only_a_command_whose_result_it_is(rows):
    with open("/dev/full", "w") as full:
        done = _kfree(["cluster", "x.npy", "--threshold", "0.5", "--out", "c.csv"], rows, stdout=full)
        assert done.returncode == 0, done.stderr
        assert (rows / "c.csv").exists()
        assert ("warning: could not write to standard output (No space left on device); its lines were lost, the "
                "command's files were written") in " ".join(done.stderr.split())
        scored = _kfree(["evaluate", "c.csv", "c.csv"], rows, stdout=full)  # its result is what it prints
        assert scored.returncode == 1
        assert "error: could not write the result to standard output: No space left on device" in scored.stderr
        written = _kfree(["evaluate", "c.csv", "c.csv", "--out", "m.json"], rows, stdout=full)
        assert written.returncode == 0 and (rows / "m.json").exists(), written.stderr
    # started with standard output closed (a cron wrapper's >&-): the same, not a traceback at import
    closed = subprocess.run([sys.executable, "-m", "kfree", "cluster", "x.npy", "--threshold", "0.5", "--out", "d.csv"],
                            cwd=rows, stderr=subprocess.PIPE, text=True, timeout=120, pass_fds=(),
                            preexec_fn=lambda: os.close(1), check=False)
    assert closed.returncode == 0 and (rows / "d.csv").exists(), closed.stderr
    assert "could not write to standard output (standard output is closed)" in closed.stderr


def test_a_standard_output_that_cannot_encode_the_summary_gets_question_marks(rows):
    done = _kfree(["cluster", "x.npy", "--threshold", "0.5", "--out", "c.csv"], rows,
                  env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "PYTHONUTF8": "0"})
    assert done.returncode == 0, done.stderr
    assert "30 rows ? " in done.stdout and "Traceback" not in done.stderr


def test_the_help_shows_flags_without_a_type(tmp_path):
    """A docs trial: typer listed `--force <bool>` and `--verbose <int>`, read as options taking a
    value (`kfree --verbose 2` failed, `--force true` took `true` for the data file)."""
    for args in (["--help"], ["assign", "--help"], ["train", "--help"]):
        shown = _kfree(args, tmp_path, env={"COLUMNS": "150"})
        assert shown.returncode == 0 and "--quiet" in shown.stdout or "--force" in shown.stdout, shown.stderr
        assert "<bool>" not in shown.stdout, shown.stdout
    top = _kfree(["--help"], tmp_path, env={"COLUMNS": "150"}).stdout
    assert "<int>" not in top[top.index("--verbose"):top.index("--quiet")]


def test_strict_stops_at_a_warning_and_writes_nothing(rows):
    """An operations trial: rows of another scale were added to a state for good with exit status 0,
    and nothing let an unattended job fail on the warning."""
    # the runs without --strict in-process (--strict's warning filter stays in its subprocess)
    from _cli import run

    assert run("cluster", rows / "x.npy", "--threshold", "0.5", "--out", rows / "c.csv", "--state",
               rows / "s.kstate")[0] == 0
    np.save(rows / "scaled.npy", np.load(rows / "x.npy")[:20] * 5)
    before = (rows / "s.kstate").read_bytes()
    stopped = _kfree(["--strict", "assign", "s.kstate", "scaled.npy", "--out", "a.csv"], rows)
    assert stopped.returncode == 1 and "median length" in stopped.stderr, stopped.stderr
    assert "(--strict stops at a warning; nothing was written)" in " ".join(stopped.stderr.split())
    assert "added all the same" not in stopped.stderr  # (what happens without --strict: a photo-library trial)
    assert not (rows / "a.csv").exists() and (rows / "s.kstate").read_bytes() == before
    code, said = run("assign", rows / "s.kstate", rows / "scaled.npy", "--out", rows / "a.csv")  # without: warned, added
    assert code == 0 and "warning:" in said and (rows / "a.csv").exists(), said
