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


#: training options that make a model in about a second
FAST_TRAIN = ["--epochs", "3", "--p", "6", "--k", "5", "--dims", "16,8", "--no-progress"]


def blobs_and_model(d):
    """``d/x.npy`` (12 identities × 10 rows, 8-d), ``d/y.npy`` and ``d/m.kfree`` trained on them;
    returns ``(X, y)``."""
    import numpy as np

    from kfree.data.synthetic import sphere_blobs

    X, y = sphere_blobs(12, 10, dim=8, spread=0.2, seed=0)
    np.save(d / "x.npy", X)
    np.save(d / "y.npy", y)
    result = runner.invoke(app, ["train", str(d / "x.npy"), "--labels", str(d / "y.npy"), "--out", str(d / "m.kfree"),
                                 *FAST_TRAIN])
    assert result.exit_code == 0, result.output
    return X, y
