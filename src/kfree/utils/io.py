"""Atomic writes: outputs appear whole or not at all, never half-written.

:func:`check_output` is the early check commands run before any work: it refuses an output that
cannot be written (missing permission, a file where a folder should be), that would replace an
input, or that exists (unless ``force``). :func:`atomic_path` reports any failure to write as
an :class:`~kfree.exceptions.OutputError` naming the target, never its hidden temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..exceptions import OutputError


@functools.cache
def _umask() -> int:
    """The process umask, read once on first use (never at import). Linux reports it in
    /proc/self/status; elsewhere the only portable way is to set it and put it back, which
    briefly changes process-global state, so it is the fallback."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


#: the name of :func:`atomic_path`'s temporary file beside NAME (``rest``: mkstemp's random part and ".tmp")
_TEMP = ".{name}.{rest}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Missing parent folders are created. Failing to create them, the temporary file or the final
    rename (and a full disk inside the block) raises :class:`~kfree.exceptions.OutputError`
    naming ``path``; nothing is left behind. A file replaced keeps its permissions.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TEMP.format(name=path.name, rest=""), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_reason(e)} (in {path.parent}); choose another place") from None
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode of the file it replaces (a state made
    # private, chmod 600, came back readable by all after the next kfree assign: a security review),
    # else the mode a plain open() would have
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode | 0o600)  # (writable by its writer until it is whole: a read-only file is replaced too)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OutputError(f"cannot write {path}: {_reason(e)}") from None
            raise
        try:
            os.chmod(tmp_path, mode)
            _fsync(tmp_path)
            _put_in_place(tmp_path, path)
        except OutputError:
            raise
        except OSError as e:
            what = "it is a directory" if path.is_dir() else _reason(e)
            raise OutputError(f"cannot write {path}: {what}; choose another name") from None
        _fsync(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: outputs a command found absent and may not replace (no --force): put in place only if they are
#: still absent (:func:`check_output` adds them; a command line clears them as it starts)
MUST_BE_NEW: set[str] = set()


def _appeared(dst: str | os.PathLike[str]) -> OutputError:
    return OutputError(f"{dst} appeared while this command ran (written by another command?), and this command "
                       "may not replace it: its result was not put there; run it again with another name, or "
                       "pass --force to replace the file")


def _put_in_place(src: Path, dst: str | os.PathLike[str]) -> None:
    """``os.replace(src, dst)``, except for an output in :data:`MUST_BE_NEW`, which is linked into
    place only if it is still absent. An operations trial ran two nightly jobs onto one new --out:
    both checked at the start that it did not exist, both exited 0, and the first's result was
    silently replaced (against "never overwrite without --force")."""
    key = os.path.abspath(dst)
    if key not in MUST_BE_NEW:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)  # fails if dst exists, atomically
    except FileExistsError:
        raise _appeared(dst) from None
    except OSError:  # a file system without hard links: checked, then renamed
        if os.path.lexists(dst):
            raise _appeared(dst) from None
        os.replace(src, dst)
    else:
        os.unlink(src)
    MUST_BE_NEW.discard(key)


def _fsync(path: Path) -> None:
    """Flush a file's data (or a folder's entries) to the disk. A rename is atomic for the
    processes that see the file, but after a power loss the new name may point to data never
    written, a model or state of zero bytes (noted by an operations trial): the data is flushed
    before the rename, the folder's entry after it. A file system that cannot (some network
    ones) is left to its own guarantees."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (they arrive when it ends): renames that put
    outputs belonging together in place are done all or none by a Ctrl-C or a kill. Only
    SIGKILL or a crash can still fall between them, a window of microseconds."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def replace_together(pairs: Iterable[tuple[Path, Path]]) -> None:
    """``os.replace(src, dst)`` for each pair, in order, with :func:`signals_held`: outputs that
    belong together (a cluster state and its clusters file) are put in place together (an
    operations trial's SIGTERM between the two left a new state beside the old clusters file)."""
    pairs = list(pairs)
    for _, dst in pairs:  # (all or none: a clusters file is not put in place without its state)
        if os.path.abspath(dst) in MUST_BE_NEW and os.path.lexists(dst):
            raise _appeared(dst)
    with signals_held():
        for src, dst in pairs:
            try:
                _put_in_place(src, dst)
            except OutputError:
                raise
            except OSError as e:
                raise OutputError(f"cannot write {dst}: {_reason(e)}") from None
    for folder in {Path(dst).parent for _, dst in pairs}:
        _fsync(folder)


def stale_temporaries(path: str | os.PathLike[str], *, directory: bool = False) -> list[Path]:
    """The temporary files :func:`atomic_path` left beside ``path`` when its process was killed
    (SIGKILL, an OOM kill, a reboot) before it could remove them: ``.NAME.XXXXXXXX.tmp`` (for an
    output folder, the ``.NAME.kfree-XXXX/`` folders of :func:`atomic_dir`). Only their writer's
    successor may remove them (``kfree assign`` does, holding the state's lock), or anyone once
    they are old (:func:`remove_stale_temporaries`)."""
    import glob

    path = Path(path)
    rest = "kfree-*" if directory else "*.tmp"
    return sorted(path.parent.glob(_TEMP.format(name=glob.escape(path.name), rest=rest)))


#: the file in a folder :func:`atomic_dir` fills that lists the files of ``owned`` it wrote there
WRITTEN = ".kfree-written.json"


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], owned: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside the folder ``path``; move its files into ``path`` (created
    if missing; files of the same names replaced) only if the block succeeds, so a failure
    midway (an unreadable input) leaves no partial set of outputs. ``owned``: names of files the
    block writes into ``path`` when it applies; those an earlier run wrote there (listed in
    :data:`WRITTEN`, which this writes too) and this one did not are removed (a report rewritten
    without images left the last run's montage beside the new page, found by a photo-library
    trial). A file of such a name that kfree did not write stays: a user's own ``map.png`` among
    their photos had been deleted (a pictures trial). Errors as :func:`atomic_path`."""
    import shutil

    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TEMP.format(name=final.name, rest="kfree-"), dir=final.parent))
    except OSError as e:
        raise OutputError(f"cannot write {final}: {_reason(e)} (in {final.parent}); choose another place") from None
    try:
        yield tmp
        try:
            final.mkdir(exist_ok=True)
            written = {f.name for f in tmp.iterdir()}
            earlier: set[str] = set()
            if owned:
                # none (a folder kfree never wrote into), or not ours to read: nothing earlier
                with contextlib.suppress(OSError, ValueError, TypeError):
                    earlier = set(json.loads((final / WRITTEN).read_text())) & set(owned)
                (tmp / WRITTEN).write_text(json.dumps(sorted(written & set(owned))))
            with signals_held():  # (a report half of the last run and half of this one, after a kill: a trial)
                for f in tmp.iterdir():
                    f.replace(final / f.name)
                for name in earlier - written:
                    (final / name).unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(f"cannot write {final}: {_reason(e)}; choose another place") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    force: bool = False,
    directory: bool = False,
    option: str = "--out",
    outputs: dict[str, str | os.PathLike[str] | None] | None = None,
    rename: str | None = None,
    formats: tuple[str, ...] | None = None,
) -> Path:
    """Refuse an output that cannot or must not be written, before any work is done.

    Parameters
    ----------
    path : the output file (or, with ``directory=True``, the output folder).
    inputs : files the command reads; writing over one of them is refused even with ``force``.
    force : allow replacing an existing output file (or writing into a non-empty folder).
    directory : ``path`` is a folder the command fills.
    option : how the user named the output, for the messages.
    outputs : the command's other outputs, by how the user named them (``{"--out": out}``):
        one file written twice is refused, and the message names both.
    rename : what the user does to write elsewhere, for an output the command names itself (the
        validation curve beside a model: "choose another --out name"); default: choose another name.
    formats : the suffixes the command writes (".csv", ".parquet"): another is refused, not written
        in one of these formats under a name that says otherwise.

    Returns the path. Raises :class:`~kfree.exceptions.OutputError` with one line saying what is
    wrong and what to do. Nothing is created: missing parent folders are made by the write.
    """
    p = Path(path).expanduser()
    choose = rename or "choose another name"
    for inp in inputs:
        if inp is not None and _same_file(p, Path(inp).expanduser()):
            raise OutputError(f"{option} {p} is an input file of this command; writing there would destroy it: "
                              f"{choose}")
    for other, q in (outputs or {}).items():
        if q is not None and _same_file(p, Path(q).expanduser()):
            raise OutputError(f"{option} {p} is also the {other} file; give each output its own name"
                              + (f": {rename}" if rename else ""))
    if directory:
        if p.exists() and not p.is_dir():
            raise OutputError(f"{option} {p} is a file; give a folder for the run's outputs")
        if p.is_dir() and any(p.iterdir()) and not force:
            raise OutputError(f"{option} {p} already holds files; choose a new folder, or pass --force to "
                              f"write into it (files of the same names are replaced)")
    else:
        if p.is_dir():
            raise OutputError(f"{option} {p} is a directory; " + (
                rename if rename else f"give a file name inside it, e.g. {p / 'out'}"))
        if p.exists() or p.is_symlink():
            if not p.is_file():
                raise OutputError(f"{option} {p} exists and is not a regular file; {choose}")
            if not force:
                raise OutputError(f"{option} {p} already exists; pass --force to replace it, or {choose}")
        if force:
            MUST_BE_NEW.discard(os.path.abspath(p))
        else:  # absent now (else refused above): it must still be absent when it is put in place
            MUST_BE_NEW.add(os.path.abspath(p))
    # the nearest folder that exists must be a folder we can create files in
    anc = p if directory else p.parent
    anc = Path(os.path.abspath(anc))
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"cannot write {option} {p}: {anc} is a file, not a folder; choose another place")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kfree-write-check.", dir=anc)
    except OSError as e:
        raise OutputError(f"cannot write {option} {p}: {anc} is not writable ({_reason(e)}); "
                          f"choose another place") from None
    os.close(fd)
    os.unlink(probe)
    if formats is not None and p.suffix.lower() not in formats:
        raise OutputError(f"{option} {p.name}: this command writes {' or '.join(formats)} files; name the "
                          f"output accordingly, e.g. {p.with_suffix(formats[0]).name}")
    remove_stale_temporaries(p, directory=directory)
    return p


#: a temporary output untouched this long was left by a writer that was killed outright (a file is
#: written in seconds to minutes, and its temporary removed on any exit Python sees)
STALE_AFTER_S = 3600.0


def remove_stale_temporaries(path: Path, *, directory: bool = False) -> list[Path]:
    """Remove what writers of ``path`` killed outright (SIGKILL, an out-of-memory kill, a reboot)
    left beside it more than :data:`STALE_AFTER_S` ago: ``.NAME.XXXXXXXX.tmp`` files (as large
    as the output: one per kill, until the disk filled, found by an operations trial) and, for
    an output folder, ``.NAME.kfree-XXXX/`` folders. Younger ones may be another run's, still
    writing, and are left alone. Returns what was removed."""
    import shutil
    import time

    now, removed = time.time(), []
    for q in stale_temporaries(path, directory=directory) if path.parent.is_dir() else []:
        try:
            if now - q.stat().st_mtime < STALE_AFTER_S:
                continue
            shutil.rmtree(q) if q.is_dir() else q.unlink()
        except OSError:
            continue  # (another process removed it, or it cannot be: it stays)
        removed.append(q)
    return removed


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex), read a MiB at a time: what records use to say which
    file they were made from or point to."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(X: Any) -> str:
    """The sha256 (hex) of an array's shape, dtype and values: how a cluster state knows a batch
    it holds, and a fitted clusterer the rows it was fitted on."""
    import hashlib

    import numpy as np

    X = np.ascontiguousarray(X)
    h = hashlib.sha256(f"{X.shape}{X.dtype.str}".encode())
    h.update(memoryview(X).cast("B"))  # the array's own bytes, not a copy of them
    return h.hexdigest()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (2-space indent, sorted keys) atomically. A NaN or infinite number is
    written as ``null``: Python's ``NaN``/``Infinity`` tokens are not JSON, and other parsers
    (``jq``, JavaScript, most JSON libraries) refuse the whole file."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=True, default=json_default, allow_nan=False)
    return write_text(path, text + "\n")


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (also numpy's, in arrays too) replaced by None;
    containers are copied (tuples become lists, as JSON writes them), anything else is kept for
    :func:`json_default`, so the JSON text differs only where a number was not finite."""
    import math

    import numpy as np

    if isinstance(obj, (float, np.floating)):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    return obj


def json_default(o: Any) -> Any:
    """``json.dumps(default=)`` for what numbers and paths arrive as: numpy scalars and arrays
    (their Python values), paths (their text). The one conversion of results (:func:`write_json`)
    and checkpoint configs (kfree.utils.checkpoint), so both store the same values."""
    import numpy as np

    if isinstance(o, np.floating):
        return float(o)  # (.item() would keep a long double as it is)
    if isinstance(o, np.generic):
        return o.item()  # numpy integers and bools
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
