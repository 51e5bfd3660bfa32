"""Ctrl-C and ``kill`` during a long call into compiled code.

Python runs its signal handlers between bytecodes, so a handler (Python's own for Ctrl-C, the
command line's for SIGTERM) waits until a call into C or C++ returns. A README trial found that
``timeout 5 kfree cluster … --method ward`` on 20,000 rows ran 15.6 s, until fastcluster's
linkage returned, and that a ``kfree train`` process waiting in ``init_process_group`` for a
torchrun peer that never started ignored ``kill`` for minutes (only SIGKILL ended it).

Around such a call that writes nothing, :func:`stoppable` gives both signals the operating
system's default action, which ends the process at once (exit status 130 or 143 in a shell), and
restores the handlers after. Nothing is lost: the call's result was going to be computed again
anyway, and no output file is half-written during it (kfree writes each output to a temporary
name after the work, see :mod:`kfree.utils.io`). It acts only once the command line has asked for it
(:func:`stop_at_once_in_compiled_calls`) and only in the main thread, where signals are handled:
in a notebook, Ctrl-C still raises ``KeyboardInterrupt`` when the call returns, and does not
kill the kernel. The terminal's cursor is shown first: a progress bar hides it, and a process
ended by the default action cannot show it again.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_STATE = {"enabled": False}


def stop_at_once_in_compiled_calls(enabled: bool = True) -> None:
    """Let :func:`stoppable` act (the command line calls this at start; a library user need not)."""
    _STATE["enabled"] = bool(enabled)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Around a long compiled call that writes nothing: Ctrl-C and SIGTERM end the process at
    once while it runs (see the module's docstring for when this acts)."""
    if not _STATE["enabled"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    # (a signal the process ignores stays ignored: a shell's background job ignores SIGINT)
    saved = {s: h for s in (signal.SIGINT, signal.SIGTERM) if (h := signal.getsignal(s)) is not signal.SIG_IGN}
    _show_cursor()
    for s in saved:
        signal.signal(s, signal.SIG_DFL)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _show_cursor() -> None:
    """Show the terminal's cursor: a progress bar hides it until it stops, and a process ended by
    a signal's default action never stops it, which would leave the shell without a cursor."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                stream.write("\x1b[?25h")
                stream.flush()
        except (OSError, ValueError):  # a closed or odd stream: nothing to restore there
            pass
