"""The reproductions reach the CLI only through the ``kfree.experiments`` entry point."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


def test_the_experiments_are_registered_through_the_entry_point():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="kfree.experiments")}
    assert names == {"bcl2019": "kfree_reproductions.bcl2019.cli:register",
                     "icpr2020": "kfree_reproductions.icpr2020.cli:register",
                     "run": "kfree_reproductions.cli:register"}
    from kfree.cli.app import app

    r = CliRunner().invoke(app, ["experiment", "--help"])
    assert r.exit_code == 0, r.output
    for command in ("bcl2019", "bcl2019-report", "icpr2020", "run"):
        assert command in r.output


def test_without_plugins_kfree_experiment_says_how_to_install_them(monkeypatch):
    import importlib.metadata

    import typer

    import kfree.cli.app as cli

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    monkeypatch.setattr(cli, "app", typer.Typer(no_args_is_help=True))
    cli._register_experiments()
    r = CliRunner().invoke(cli.app, ["experiment", "list"])
    assert r.exit_code == 2
    assert "pip install ./reproductions" in r.output


def test_a_broken_plugin_warns_and_the_cli_still_works(monkeypatch):
    import importlib.metadata

    import typer

    import kfree.cli.app as cli

    class Broken:
        name, value = "broken", "nowhere:register"

        def load(self):
            raise ImportError("no module named nowhere")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Broken()])
    monkeypatch.setattr(cli, "app", typer.Typer(no_args_is_help=True))
    with cli.err_console.capture() as cap:  # a warning: on stderr, so stdout stays the results
        cli._register_experiments()
    assert "warning: experiment plugin 'broken'" in cap.get()



def test_experiment_errors_name_what_the_cli_can_set(tmp_path, monkeypatch):
    from kfree.exceptions import DataFileNotFoundError
    from kfree_reproductions.bcl2019.faces import shared_data_root
    from kfree_reproductions.icpr2020.cifar import find_cifar10

    with pytest.raises(DataFileNotFoundError, match=r"set \$KFREE_SHARED_DATA to the folder") as e:
        shared_data_root(tmp_path / "nope")
    assert not str(e.value).startswith("pass data_root")
    monkeypatch.delenv("KFREE_CIFAR10", raising=False)
    monkeypatch.delenv("KFREE_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileNotFoundError, match=r"Set \$KFREE_CIFAR10 to the folder"):
        find_cifar10()




def test_kfree_experiment_run_dry_run_lists_what_would_be_reused(monkeypatch):
    from pathlib import Path

    from kfree.cli.app import app

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    r = CliRunner().invoke(app, ["experiment", "run", "--dry-run", "reproductions/configs/bcl2019.toml"])
    assert r.exit_code == 0, r.output
    assert "bcl2019.toml: results/bcl2019: every cell done (reused)" in r.output
    # the variant's heads have no training record beside them: the run would train them again over the
    # committed results, so it is refused, and the dry run says so
    r = CliRunner().invoke(app, ["experiment", "run", "--dry-run", "reproductions/configs/bcl2019_stepwise.toml"])
    assert r.exit_code == 1 and "results/bcl2019/variants/stepwise holds results of variant '2img', seed 0 made " \
        "under another configuration" in r.output and "--no-resume" in r.output, r.output
    r = CliRunner().invoke(app, ["experiment", "run", "--dry-run", "nope.toml"])
    assert r.exit_code != 0 and "cannot read the experiment file" in r.output
