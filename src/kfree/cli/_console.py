"""The only module that touches rich: console, error handling, progress hooks, tables."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Not on a terminal (logs, CI, pipes) rich would wrap tables at 80 columns; give them room.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=False, highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)], force=True)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected errors into one red line and exit code 1 (never a traceback)."""
    from ..exceptions import KfreeError

    try:
        yield
    except KfreeError as e:
        err_console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(1) from None
    except MemoryError as e:
        err_console.print(f"[red]error:[/red] out of memory: {e or 'the input is too large for this machine'}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]; no partial output was written")
        raise typer.Exit(130) from None


class RichHook:
    """A ``hook(step, completed=, total=, **info)`` that drives a rich progress bar per step name."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, *, completed: int, total: int | None = None, **info: Any) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        extra = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
                          if k in ("loss", "threshold", "val_nmi", "val_clusters", "b"))
        self.progress.update(self.tasks[step], completed=completed, total=total, info=extra)


@contextlib.contextmanager
def progress_hook(enabled: bool = True) -> Iterator[RichHook | None]:
    """A progress-bar hook, or None when disabled or not on a terminal (plain output for logs/CI)."""
    if not enabled or not sys.stdout.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
    # rich needs every field a column uses to exist at task creation
    original = progress.add_task
    progress.add_task = lambda *a, **k: original(*a, info="", **k)  # type: ignore[method-assign]
    with progress:
        yield RichHook(progress)


def metrics_table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> Table:
    """A table with one row per dict; ``columns`` = [(key, header)]; floats printed to 3 decimals."""
    table = Table(title=title, header_style="bold")
    for _, header in columns:
        table.add_column(header, justify="right" if header not in ("method", "row") else "left")
    for row in rows:
        cells = []
        for key, _ in columns:
            v = row.get(key, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        table.add_row(*cells)
    return table
