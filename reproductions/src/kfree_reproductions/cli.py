"""``kfree experiment run FILE…``: the runner of experiment files, as a command.

:func:`register` is this package's ``run`` entry point in the ``kfree.experiments`` group.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from kfree.cli.console import cli_errors, console


def run_files(
    files: Annotated[list[Path], typer.Argument(help="Experiment files, e.g. reproductions/configs/bcl2019.toml.")],
    resume: Annotated[bool, typer.Option(help="Reuse finished cells made under the same configuration.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the files; list what would be reused or computed.")] = False,
) -> None:
    """Run experiment files (TOML): the papers' runs as data, one runner, one resume policy."""
    with cli_errors():
        from kfree_reproductions.runner import pending, run

        # each cell's progress, through kfree's log handler (basicConfig did nothing once kfree had set
        # one up, so a run of 18 minutes printed nothing: a contributor trial); -q keeps it quiet
        if not console.quiet:
            logging.getLogger("kfree_reproductions").setLevel(logging.INFO)
        for f in files:
            pl = run(f, resume=resume, dry_run=dry_run)
            for out, todo in pending(pl) if dry_run else []:
                what = ("cannot tell in advance" if todo is None else
                        f"to compute: {', '.join(todo[:6])}{' …' if len(todo) > 6 else ''}" if todo else
                        "every cell done (reused)")
                console.print(f"{f.name}: {out}: {what}")


def register(experiment_app: typer.Typer) -> None:
    """Add ``run`` to kfree's ``experiment`` sub-app."""
    experiment_app.command("run")(run_files)
