"""Exception and warning classes.

Every error kfree raises for bad input derives from :class:`KfreeError` *and* from the builtin
that best describes it, so ``except ValueError`` keeps working for users who do not know kfree.
The CLI turns any :class:`KfreeError` into one red line and exit code 1 (an error's own
``exit_code`` where it has one: :class:`StateBusyError`'s 75).
"""

from __future__ import annotations


class KfreeError(Exception):
    """Base class of every error kfree raises on purpose."""


class ConfigError(KfreeError, ValueError):
    """A hyper-parameter or option is invalid (the message names it and the valid range)."""


class DataError(KfreeError, ValueError):
    """Input data is missing, unreadable, or unsuitable (NaN, wrong shape, too few identities)."""


class DataTypeError(DataError, TypeError):
    """Input has a type that cannot be used (e.g. an object array of non-numbers)."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data or model file does not exist."""


class ClusterStateError(DataError):
    """A cluster state file (kfree.cluster.incremental) is missing, unreadable, damaged, or does
    not match the data or model it is used with."""


class StateBusyError(ClusterStateError):
    """Another process is updating the cluster state (it holds the state's lock): the same command
    succeeds once that one has finished. The CLI exits with :attr:`exit_code` 75 (``EX_TEMPFAIL``
    of ``sysexits.h``), not 1, so that a scheduler retries it and does not page anyone for bad
    input (an operations trial)."""

    exit_code = 75


class ModelError(KfreeError, ValueError):
    """A saved model is unreadable or does not match the data it is applied to."""


class CheckpointError(ModelError):
    """A checkpoint is unreadable, not a kfree checkpoint, or was written with another config.

    ``what`` says what is wrong and ``remedy`` (or ``None``) what to do, apart: the remedy
    depends on the file's use (a training checkpoint of kfree's own may be deleted to start
    over; a file given as a model is the user's, and the model reader words its own)."""

    def __init__(self, what: str, remedy: str | None = None) -> None:
        super().__init__(f"{what}; {remedy}" if remedy else what)
        self.what, self.remedy = what, remedy


class DamagedFileError(CheckpointError):
    """A checkpoint or model file whose stored checksums fail (a changed bit on disk or in a copy)."""


class OutputError(KfreeError, OSError):
    """An output cannot or must not be written (unwritable place, existing file, an input)."""


class MissingDependencyError(KfreeError, ImportError):
    """An optional package is not installed (the message says which extra provides it)."""


class WorkerError(KfreeError, RuntimeError):
    """Worker processes stopped before their work was done (killed, out of memory, or unable to
    start: a spawned worker re-imports the script that started it)."""


class ResourceError(MemoryError, KfreeError):
    """The requested computation would not fit in memory (the message says how much it needs).

    (MemoryError first: an exception sent back from a Dask worker is rebuilt with its first
    base's ``__new__``, and MemoryError's refuses a class whose layout it does not lead.)"""


class KfreeWarning(UserWarning):
    """Base class of kfree's warnings."""


class ScaleWarning(KfreeWarning):
    """The input is too large for the method asked for; the message says what is used instead."""


class ClusterSizeWarning(ScaleWarning):
    """The data's clusters are far smaller or larger than those a size-dependent cut (Ward) was
    calibrated on. ``replaced``: another cut was used instead (the message says which)."""

    def __init__(self, message: str, *, replaced: bool = False) -> None:
        super().__init__(message)
        self.replaced = replaced


class DataWarning(KfreeWarning):
    """The input is read as asked, but looks unlike what was likely meant; the message says what
    to do if so."""


class FeatureNamesWarning(DataWarning):
    """Rows without column names given to a model fitted on a DataFrame: their columns are taken
    as the trained ones, in that order (scikit-learn warns so too)."""


class ParameterConflictWarning(KfreeWarning):
    """Two parameters were set that cannot both apply; the message says which one is used."""


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message (what a one-line error quotes), or its type's name when
    the message is empty."""
    return (str(e).splitlines() or [type(e).__name__])[0]


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` called where this is called that names the first
    frame outside kfree and scikit-learn: the user's own line, however the call came in (through
    scikit-learn's ``fit_predict``, a learner's ``transform`` under ``set_output``, a helper; a
    notebook trial saw warnings attributed to ``sklearn/base.py``), so Python's once-per-line
    filters and a notebook's display point at what the user wrote."""
    import sys

    f, level = sys._getframe(1), 1
    while f is not None and f.f_globals.get("__name__", "").partition(".")[0] in ("kfree", "sklearn"):
        f, level = f.f_back, level + 1
    return level
