"""What the CLI tests share: invoke ``kfree`` in-process, and the shape of a one-line error."""

from __future__ import annotations

from typer.testing import CliRunner

from kfree.cli.app import app

runner = CliRunner()


def run(*args):
    """``kfree ARGS…`` in-process: (exit code, output); a traceback (not SystemExit) fails the test."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def one_line_error(code, out, message):
    assert code == 1, out
    assert out.startswith("error: ") and out.count("\n") == 1, out
    assert message in out, out
    assert "Traceback" not in out and ".tmp" not in out  # never the hidden temporary's name
