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


def test_the_help_shows_flags_without_a_type(monkeypatch, capsys):
    """A docs trial: typer listed `--force <bool>` and `--verbose <int>`, read as options taking a
    value (`kfree --verbose 2` failed, `--force true` took `true` for the data file).

    In-process, through the command's entry point (which makes the change: other typer programs
    keep typer's own help), starting from typer's own help even where an earlier test in this
    process ran the entry point; the help is put back as it was afterwards."""
    import gc
    import inspect

    from typer.core import TyperOption

    from kfree.cli.app import main

    typed = TyperOption.display_type_rich
    if getattr(typed, "_kfree", False):  # (installed by an earlier main() in this process)
        typed = inspect.getclosurevars(typed).nonlocals["typed"]
    monkeypatch.setattr(TyperOption, "display_type_rich", typed)
    monkeypatch.setenv("COLUMNS", "150")

    def shown(*args):
        monkeypatch.setattr(sys, "argv", ["kfree", *args])
        monkeypatch.setattr(sys, "stdout", sys.stdout)  # (main guards it; put back afterwards)
        try:
            with pytest.raises(SystemExit) as ended:
                main()
        finally:
            gc.unfreeze()  # (main freezes the collector as the process ends)
        out, err = capsys.readouterr()
        return ended.value.code, out, err

    for args in (["--help"], ["assign", "--help"], ["train", "--help"]):
        code, out, err = shown(*args)
        assert code == 0 and "--quiet" in out or "--force" in out, err
        assert "<bool>" not in out, out
    top = shown("--help")[1]
    assert "<int>" not in top[top.index("--verbose"):top.index("--quiet")]


def test_strict_stops_at_a_warning_and_writes_nothing(rows):
    """An operations trial: rows of another scale were added to a state for good with exit status 0,
    and nothing let an unattended job fail on the warning."""
    # in-process: --strict's warning filter is dropped with the catch_warnings block around it
    import warnings

    from _cli import run

    assert run("cluster", rows / "x.npy", "--threshold", "0.5", "--out", rows / "c.csv", "--state",
               rows / "s.kstate")[0] == 0
    np.save(rows / "scaled.npy", np.load(rows / "x.npy")[:20] * 5)
    before = (rows / "s.kstate").read_bytes()
    with warnings.catch_warnings():
        code, stopped = run("--strict", "assign", rows / "s.kstate", rows / "scaled.npy", "--out", rows / "a.csv")
    assert code == 1 and "median length" in stopped, stopped
    assert "(--strict stops at a warning; nothing was written)" in " ".join(stopped.split())
    assert "added all the same" not in stopped  # (what happens without --strict: a photo-library trial)
    assert not (rows / "a.csv").exists() and (rows / "s.kstate").read_bytes() == before
    code, said = run("assign", rows / "s.kstate", rows / "scaled.npy", "--out", rows / "a.csv")  # without: warned, added
    assert code == 0 and "warning:" in said and (rows / "a.csv").exists(), said
