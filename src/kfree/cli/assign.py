"""``kfree assign`` and ``kfree cluster --state``: incremental clustering at the command line.

A thin layer over :mod:`kfree.cluster.incremental`. ``kfree cluster ... --state S`` keeps the
clustering as a state file; ``kfree assign [MODEL] S NEW --out labels.csv`` adds new rows to it,
embedding them with the same model the state was made with (checked by the model file's
SHA-256), or, for a model-free state, taking the features as they are.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import (
    ConfigError,
    DataError,
    DataWarning,
    KfreeWarning,
    ModelError,
    StateBusyError,
    user_stacklevel,
)
from .columns import (
    ID_HELP,
    IGNORE_HELP,
    SKIP_INVALID_HELP,
    align_columns,
    ignored,
    invalid_rows,
    model_rows,
)
from .console import _limit_threads, cli_errors, console, progress_hook, record

STATE_HELP = ("Also keep the clustering as a cluster state file (e.g. clusters.kstate) that `kfree assign` "
              "adds new rows to (hac at a threshold, complete linkage; a model whose chosen rule is a Ward "
              "cut uses its best validated complete-linkage cut).")


def check_state_request(state: Path | None, method: str, n_clusters: int | None, *, inputs: tuple, out: Path,
                        force: bool, linkage: str | None = None) -> None:
    """``kfree cluster --state``, checked before any work: a state needs a clustering new rows can be
    assigned to (HAC at a threshold) and a place to be written (not over one of ``inputs``, nor
    over the ``--out`` file ``out``)."""
    from ..utils.io import check_output

    if state is None:
        return
    if method != "hac" or n_clusters is not None:
        raise ConfigError("--state keeps a clustering cut at a threshold (--method hac, no --n-clusters); "
                          f"got --method {method}" + (f" --n-clusters {n_clusters}" if n_clusters else ""))
    if linkage not in (None, "complete"):
        raise ConfigError(f"--state keeps a complete-linkage clustering (new rows join a cluster all of whose "
                          f"members are within the cut); --linkage {linkage} has no such state: leave out --state")
    check_output(state, inputs=inputs, outputs={"--out": out}, force=force, option="--state")


def cluster_model_state(learner: Any, model_path: Path, X: Any, threshold: float | None, state_path: Path,
                        data_path: Path, columns: list[str] | None = None,
                        left_out: tuple[str, ...] = (), ids: Any = None,
                        id_column: str | None = None, photos: Any = None) -> tuple[Any, Any]:
    """Cluster ``X`` with the model's complete-linkage rule (:meth:`ClusterLearner.state_rule`:
    the chosen rule, or for a chosen Ward cut the best validated complete-linkage cut of the same
    features; ``threshold`` overrides its value) and save the state of the embedding rows (with
    the hashes of ``X``'s rows, and the names of its ``columns`` and the ``left_out`` ones when it
    came from a table: ``kfree assign`` leaves the same columns out of each batch; and the rows'
    ``ids``, the table's own 'index' values, when it has them; and their ``photos``).

    Returns ``(labels, rule)``; the caller reports the rule when it is not the chosen one."""
    from ..cluster.incremental import ClusterState, row_hashes
    from ..cluster.threshold_hac import ThresholdAgglomerative
    from ..utils.io import file_sha256

    rule = learner.state_rule()
    if rule is not learner.rule_ and threshold is not None:
        raise ConfigError(f"--threshold {threshold:g} would be a Ward merge height for this model (its chosen rule is "
                          "a Ward cut), but a cluster state cuts complete linkage at a pair distance; leave out "
                          f"--threshold to keep its validated complete-linkage cut ({rule.threshold.value:.4g} "
                          f"{rule.threshold.distance}), or cluster without --state")
    # the cut learner.cluster(X, threshold=threshold) makes for a complete-linkage model
    value = float(threshold) if threshold is not None else learner.threshold_for(rule).value
    Z = learner.transform(X)  # the chosen features: the state rule's too
    with progress_hook() as hook:  # (minutes at scale: an embeddings trial's nightly run was silent for 3 min)
        est = ThresholdAgglomerative(value, linkage="complete", distance=rule.threshold.distance).fit(
            Z, **({"hook": hook} if hook is not None else {}))
    meta = {"model": {"name": model_path.name, "sha256": file_sha256(model_path),
                      "transform_sha256": learner.transform_sha256(), "features": rule.features,
                      "threshold": value, "distance": rule.threshold.distance, "data": data_path.name,
                      "rule": rule.to_dict(), "chosen_rule_linkage": learner.rule_.linkage},
            "feature_names": columns, **table_columns(columns, left_out, id_column)}
    ClusterState.from_fit(est, Z, meta=meta, input_hashes=row_hashes(X), ids=own_ids(ids, len(Z)),
                          **(photos or {})).save(state_path, overwrite=True)
    if threshold is None:  # (said as learner.cluster says it: a ticket trial's state merged intents silently)
        learner.check_cluster_sizes(est.labels_)
    return est.labels_, rule


def own_ids(index: Any, n: int) -> Any:
    """The ids a state keeps of a table's rows: its 'index' values, unless they are only its row
    numbers 0..n-1 (each day's file would repeat them; None: no ids)."""
    import numpy as np

    from ..evaluate.compare import is_row_numbering

    if index is None or (n and is_row_numbering(np.asarray(index))):
        return None
    return np.asarray(index)


def state_rows(state: Any) -> dict[str, Any]:
    """The columns naming every row of ``state`` in ``kfree assign --all-rows`` (keyword
    arguments of ``write_predictions``): each row's id and its row in the state when it keeps ids,
    else the row alone (a row number is never written as an 'index', which would be joined to a
    table's own ids)."""
    import numpy as np

    photo = photo_columns(state.photos, state.boxes)  # (the whole library's faces)
    if state.ids is None:
        return {"index_column": "row", **photo}
    return {"index": state.ids, "row": np.arange(state.n_samples), **photo}


def state_photos(photos: Any, keep: Any = None) -> dict[str, Any]:
    """Each row's photo and face box (``face_photos`` of the .npz of ``kfree encode faces``, None
    for any other file) as keyword arguments of a state (none for None): absolute paths, so that
    ``kfree assign --all-rows`` names them from any folder; ``keep``: the rows the state holds."""
    import numpy as np

    if photos is None:
        return {}
    paths = np.asarray([os.path.abspath(p) for p in photos.paths], dtype=str)
    boxes = photos.boxes
    if keep is not None:
        paths, boxes = paths[keep], None if boxes is None else boxes[keep]
    return {"photos": paths, "boxes": boxes}


#: the columns of a clusters file that locate each face in its photo (``kfree report`` crops to them)
BOX_NAMES = ("left", "top", "right", "bottom")


def face_columns(photos: Any) -> dict[str, Any]:
    """:func:`photo_columns` of ``face_photos``' result (none for a file that is not faces)."""
    return {} if photos is None else photo_columns(photos.paths, photos.boxes)


def photo_columns(paths: Any, boxes: Any = None) -> dict[str, Any]:
    """A clusters file's columns naming each row's photo and, with ``boxes``, its face's box there
    (keyword arguments of ``write_predictions``; none without photos). A report of the file then
    shows each face, not its whole photo: a group photo showed both people in both clusters (a
    photo-library trial)."""
    if paths is None:
        return {}
    return {"photo": paths, **({} if boxes is None else {k: boxes[:, j] for j, k in enumerate(BOX_NAMES)})}


def save_plain_state(estimator: Any, X: Any, state_path: Path, columns: list[str] | None = None,
                     left_out: tuple[str, ...] = (), ids: Any = None, id_column: str | None = None,
                     photos: dict[str, Any] | None = None) -> None:
    """Save the state of a model-free ``kfree cluster DATA --threshold T`` fit (with the names of
    its feature ``columns`` when DATA is a table: a batch's columns are then taken by name; the
    ``left_out`` ones; the rows' ``ids``, DATA's own 'index' values, when it has them; and their
    ``photos``, :func:`state_photos` of the faces of ``kfree encode faces``)."""
    from ..cluster.incremental import ClusterState

    ClusterState.from_fit(estimator, X, meta={"feature_names": columns, **table_columns(columns, left_out, id_column)},
                          ids=own_ids(ids, len(X)), **(photos or {})).save(state_path, overwrite=True)


def table_columns(columns: list[str] | None, left_out: tuple[str, ...], id_column: str | None = None) -> dict[str, Any]:
    """A state's record of the columns ``--ignore-columns`` left out of its table and of its
    ``--id-column`` (none for an array): each day's batch holds the same ids and timestamps, and
    retyping the options daily should not be the price of adding rows."""
    return {**({"ignored_columns": list(left_out)} if columns is not None and left_out else {}),
            **({"id_column": id_column} if id_column is not None else {})}


def state_line(state_path: Path) -> str:
    from rich.markup import escape

    return f"cluster state saved to [bold]{escape(str(state_path))}[/bold] (add rows with `kfree assign`)"


ASSIGN_USAGE = "kfree assign [MODEL] STATE NEW_FILE --out FILE.csv"
#: a batch of which at least this share equals rows the state holds is refused as added before
#: (a retry, a re-export, an overlap); fewer such rows are distinct items with equal features
#: (support tickets with the same text), added with a warning
HELD_REFUSE_SHARE = 0.1
#: ... and of at least this many rows (or every row of the batch): one duplicate photo refused a whole
#: batch of 5 in an operations trial (CelebA holds 12 pairs of byte-equal descriptors)
HELD_REFUSE_LEAST = 2


def unexpanded(data: Any, names: Any) -> bool:
    """Whether ``data`` is a table without rows whose columns are those of ``names`` but for vector
    columns left whole (``embedding`` for ``embedding[0]``, ``embedding[1]``, …): a quiet night's
    Parquet file has no cells to count a vector's length by. Such a batch adds nothing, and its
    columns fit; any other is checked as usual."""
    if data.n_samples or data.columns is None or names is None:
        return False
    names = [str(n) for n in names]
    whole = {n.rsplit("[", 1)[0] for n in names if n.endswith("]")}
    return (any(c in whole for c in data.columns) and all(c in names or c in whole for c in data.columns)
            and all(n in data.columns or n.rsplit("[", 1)[0] in data.columns for n in names))


def pending_path(out: Path) -> Path:
    """Where ``kfree assign`` writes --out before the state is saved (then renames it onto --out)."""
    return out.with_name(f".{out.name}.pending{out.suffix}")


def remove_leftovers(state_path: Path, state_out: Path | None, out: Path) -> None:
    """Remove what an earlier ``kfree assign`` killed outright (SIGKILL, an OOM kill, a reboot)
    left of its writes: the new state half-written beside STATE (as large as the state: one per
    kill, until the disk filled) and the clusters file it had not put in place. Only an assign
    of this state writes them, and this one holds its lock; said in one line."""
    from ..utils.io import stale_temporaries

    pending = pending_path(out)
    found = [p for target in {state_path, state_out or state_path, pending} for p in stale_temporaries(target)]
    found += [pending] if pending.exists() else []
    if not found:
        return
    size = 0
    for p in found:
        with contextlib.suppress(OSError):
            size += p.stat().st_size
            p.unlink()
    console.print(f"removed {len(found)} file{'s' if len(found) > 1 else ''} ({size / 2**20:,.1f} MiB) an earlier "
                  f"kfree assign left when it was killed (first: {found[0].name})", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def locked_state(path: Path):
    """Hold an exclusive lock on a cluster state file while it is updated.

    Two ``kfree assign`` on one state at once each read it, and the later write dropped the rows
    of the other; ``kfree cluster --state S --force`` replaced a state an assign was adding to
    (an operations trial: cluster ids then given out twice). The second now fails at once, saying so. (The lock is on the file read; a state
    replaced between opening and locking it is another file, and counts as busy too.) Without
    ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    busy = StateBusyError(f"another kfree command is updating {path.name} (kfree assign, or kfree cluster --state "
                          "--force); run this one when it has finished (exit status 75: try again later)")
    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: held by another process
            raise busy from None
        except OSError as e:  # a file system without locks (ENOLCK, EOPNOTSUPP): go on, and say so
            # (a KfreeWarning: kfree --strict stops here, an ops trial)
            warnings.warn(f"cannot lock {path.name} on this file system ({e.strerror}): run one kfree command "
                          "on it at a time", KfreeWarning, stacklevel=user_stacklevel())
            yield
            return
        if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
            raise busy
        yield


def assign_files(first: Path | None, second: Path | None, third: Path | None,
                 out: Path) -> tuple[Path | None, Path, Path]:
    """``(model or None, state, new rows)`` from ``kfree assign``'s positional arguments.

    Typer fills them left to right, so a missing file shows as an empty last place; which one is
    missing is told by the files' kinds (``.kfree`` a model, ``.kstate`` a state), and the error
    names it with the command to type."""
    def kind(p: Path) -> str:
        return {".kfree": "model", ".kstate": "state"}.get(p.suffix.lower(), "rows")

    if first is None:
        raise ConfigError(f"the cluster state and the new rows are missing (usage: {ASSIGN_USAGE})")

    if third is not None:
        if kind(first) == "state":
            raise ConfigError(f"{first.name} is a cluster state, but with three files the first must be the model "
                              f"the state was made with: kfree assign MODEL STATE NEW_FILE --out {out}; to add one "
                              f"file of new rows to {first.name}: kfree assign {first} NEW_FILE --out {out}")
        return first, second, third
    given = [p for p in (first, second) if p is not None]
    kinds = [kind(p) for p in given]
    if len(given) == 2 and kinds[0] != "model":
        return None, first, second  # a state made without a model, and its new rows
    if kinds == ["model", "rows"]:
        missing, command = "the cluster state", f"kfree assign {first} STATE {second} --out {out}"
    elif kinds[-1] == "rows":  # new rows alone
        missing, command = "the cluster state", f"kfree assign [MODEL] STATE {first} --out {out}"
    elif kinds == ["model"]:
        missing, command = "the cluster state and the new rows", f"kfree assign {first} STATE NEW_FILE --out {out}"
    else:  # [MODEL] STATE: the new rows are missing
        command = f"kfree assign {' '.join(str(p) for p in given)} NEW_FILE --out {out}"
        missing = "the file of new rows (NEW_FILE)"
    verb = "are" if " and " in missing else "is"
    raise ConfigError(f"{missing} {verb} missing: {command} (usage: {ASSIGN_USAGE})")


#: largest distance between a batch row and the state's row of the same id, relative to the state
#: row's length, that ``--skip-held`` takes as the same item encoded again: one text encoded in
#: another batch differs by about 1e-7 (padding changes the float32 sums; a ticket trial), a
#: different text by far more than this
SAME_ITEM_TOLERANCE = 1e-4


def held_by_id(state, data, rows: Any, transform) -> tuple[Any, Any]:
    """``(rows, their state rows)``: the batch rows among ``rows`` whose id the state holds and
    whose features (after ``transform``, a model's, when given: the state keeps what it clusters)
    lie within :data:`SAME_ITEM_TOLERANCE` of that row's. Others with a held id stay, and the
    state refuses their ids as before (another item under an id already given out)."""
    import numpy as np

    twin = state.rows_of_ids(data.index[rows]) if rows.size else np.empty(0, dtype=np.int64)
    cand, twin = rows[twin >= 0], twin[twin >= 0]
    if not cand.size:
        return cand, twin
    with warnings.catch_warnings():  # (the rows added are checked, and said, once: a review)
        warnings.simplefilter("ignore", DataWarning)
        Z = np.asarray(transform(data.X[cand]) if transform is not None else data.X[cand], dtype=np.float64)
    kept = np.asarray(state.X[twin], dtype=np.float64)
    gap = np.linalg.norm(Z - kept, axis=1)
    same = gap <= SAME_ITEM_TOLERANCE * np.maximum(np.linalg.norm(kept, axis=1), 1e-12)
    return cand[same], twin[same]


def _check_model_of_state(state, state_path: Path, model: Path | None, new_path: Path, out: Path) -> None:
    """Refuse a model other than the one ``state`` was made with (or one where it was made
    without); accept, and say so, another file of a model that embeds rows alike (trained again
    alike: the same ``transform_sha256``)."""
    from ..utils.io import file_sha256

    made_with = state.meta.get("model")
    if model is None and made_with:
        raise ModelError(f"{state_path.name} was made with the model {made_with.get('name')}: give it first, "
                         f"kfree assign MODEL {state_path} {new_path} --out {out}")
    if model is not None and not made_with:
        raise ModelError(f"{state_path.name} was made without a model (features as they are); leave the "
                         f"model out: kfree assign {state_path} {new_path} --out {out}")
    if model is not None and model.is_file() and file_sha256(model) != made_with.get("sha256"):
        from ..learner import ClusterLearner

        other = ClusterLearner.load(model)  # (a damaged model is said to be damaged, not another: an operations trial)
        if other.transform_sha256() != made_with.get("transform_sha256"):
            raise ModelError(f"{model.name} is not the model {state_path.name} was made with "
                             f"({made_with.get('name')}, another SHA-256): new rows must be embedded "
                             "by the same model as the state's. Give that model file (a model trained again "
                             "embeds alike only with the same data, settings, seed and versions), or make a new "
                             f"state with it: kfree cluster {model} DATA --state NEW.kstate")
        console.print(f"{model.name} is another file than the model {state_path.name} was made with "
                      f"({made_with.get('name')}), but embeds rows as it does (the same features, layers and "
                      "weights: a model trained again alike): used", soft_wrap=True, highlight=False)
        record(model_accepted="another file that embeds rows as the state's model does")


def _rows_to_add(state, data, state_path: Path, new_path: Path, *, skip_held: bool, again: bool, transform):
    """Which rows of the batch ``data`` to add to ``state``: ``(batch, hashes, fresh, held,
    twins, by_id)`` — the batch's record, its row hashes, the rows to add, the rows held already
    (with --skip-held: not added, and ``twins`` their equals in the state), and how many of those
    were held by id. ``transform``: the model's, for rows held by id.

    Refused (ConfigError): a batch added before, unless --again, or --skip-held where the state
    tells single rows apart and holds all of the batch's valid rows; a batch whose rows are held
    already, all of them or at least ``HELD_REFUSE_LEAST`` and ``HELD_REFUSE_SHARE`` of them,
    unless --again or --skip-held. Refused (DataError): rows without ids for a state that names
    its rows by id. Warned: a few rows equal to held ones (added), and a state that cannot tell
    single rows apart (a retry is recognised only as the same file)."""
    import numpy as np

    from ..cluster.incremental import row_hashes
    from ..utils.io import array_sha256

    batch = {"file": new_path.name, "rows": int(data.n_samples), "sha256": array_sha256(data.X)}
    seen = [b for b in state.meta.get("batches") or [] if b.get("sha256") == batch["sha256"]]
    hashes = row_hashes(data.X)
    held = state.held(hashes)  # a batch reordered, cut or extended: the rows themselves
    # --skip-held leaves out the rows the state recognises; a state that recognises whole
    # batches only (no row hashes, or rows that repeat) must still refuse a retried one
    blind = ("--skip-held: " + state_path.name + " cannot tell single rows it holds (its rows repeat, or it was "
             "made before rows were recorded), only whole batches") if skip_held and not state.recognises_rows() else ""
    if seen and not again and not (skip_held and held.size + data.invalid.size == data.n_samples):
        raise ConfigError(f"the rows of {new_path.name} were already added to {state_path.name} (as "
                          f"{seen[0].get('file')}, assign {seen[0].get('assign')}): adding them again would "
                          "hold each of them twice; " + (f"{blind}; " if blind else
                                                         "if its --out was lost, --skip-held writes it again "
                                                         "and adds nothing; ")
                          + "pass --again if they are new rows that repeat old ones")
    if blind:
        warnings.warn(f"{blind}: every row of {new_path.name} is added", DataWarning, stacklevel=user_stacklevel())
    elif not state.recognises_rows() and not again:  # (said each time: a reordered retry goes in unseen)
        warnings.warn(f"{state_path.name} cannot tell single rows it holds (its rows repeat, or it was made "
                      "before rows were recorded): a batch added before is refused only as the same file, "
                      "not reordered, cut or extended", DataWarning, stacklevel=user_stacklevel())
    named = (f"ids {', '.join(str(v) for v in data.index[held[:5]].tolist())}" if data.index is not None
             else f"rows {', '.join(str(int(r)) for r in held[:5])}") + ("…" if held.size > 5 else "")
    retried = held.size and (held.size == data.n_samples or (
        held.size >= HELD_REFUSE_LEAST and held.size >= HELD_REFUSE_SHARE * data.n_samples))
    if retried and not (again or skip_held):
        raise ConfigError(f"{held.size:,} of the {data.n_samples:,} rows of {new_path.name} are already in "
                          f"{state_path.name} ({named}), added before: adding them again would hold each "
                          "twice; pass --skip-held to add only the others (those get the cluster of the row "
                          "they equal), or --again if they are new rows that repeat old ones")
    if held.size and not (again or skip_held):  # a few: distinct items with equal features (two tickets, one text)
        warnings.warn(f"{held.size:,} of the {data.n_samples:,} rows of {new_path.name} ({named}) equal rows "
                      f"{state_path.name} already holds, feature for feature: added as new rows (the same text "
                      "from two customers); if they are the same items added again, --skip-held leaves them out",
                      DataWarning, stacklevel=user_stacklevel())
    fresh = np.flatnonzero(data.valid)  # (--skip-invalid leaves the others out)
    by_id, twins = 0, None
    if skip_held and held.size and state.ids is not None and data.index is not None:
        # rows named by ids are held by them: a new id with a held row's features is another item (two
        # tickets, one text), and --skip-held had left it out of the state for good (an operations trial)
        held = held[state.rows_of_ids(data.index[held]) >= 0]
    if skip_held and held.size:
        order = np.argsort(state.row_hashes, kind="stable")  # each held row's equal in the state
        twins = order[np.searchsorted(state.row_hashes[order], hashes[held])]
    if skip_held and state.ids is not None and data.index is not None:  # the same ticket encoded again
        same, their = held_by_id(state, data, np.setdiff1d(fresh, held), transform)
        if same.size:
            by_id = same.size
            twins = np.concatenate([twins, their]) if held.size else their
            held = np.concatenate([held, same])
    if skip_held and held.size:
        fresh = np.setdiff1d(fresh, held)
    if state.ids is not None and data.index is None and fresh.size:
        raise DataError(f"{state_path.name} names its rows by their ids: give {new_path.name}'s rows theirs (an "
                        "'index' column, --id-column, or the ids `kfree encode texts --id-column` keeps)")
    return batch, hashes, fresh, held, twins, by_id


def assign(
    first: Annotated[Path | None, typer.Argument(
        metavar="MODEL", show_default=False,
        help="The model the state was made with (`kfree cluster MODEL DATA --state STATE`): the new rows are "
             "embedded with it. Leave it out for a state made without a model.")] = None,
    second: Annotated[Path | None, typer.Argument(metavar="STATE", show_default=False,
                                                  help="Cluster state from `kfree cluster ... --state`.")] = None,
    third: Annotated[Path | None, typer.Argument(
        metavar="NEW_FILE", show_default=False, help="New rows: .npz, .npy, .csv or .parquet.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output .csv or .parquet (required): index,cluster[,label] of the new rows (index = row of NEW_FILE, or the "
                           "value of its own 'index' column, then with a 'row' column).")] = None,
    recluster_affected: Annotated[bool, typer.Option(
        "--recluster-affected",
        help="Re-cluster, exactly, the τ-components the new rows touch, and those earlier assigns left "
             "unsettled (existing rows there may change cluster): the state then equals clustering all its rows "
             "again. Without it rows are placed greedily, and each assign says how many of the state's rows lie "
             "where clustering all again may group them otherwise.")] = False,
    state_out: Annotated[Path | None, typer.Option(
        help="Write the updated state here instead of replacing STATE.")] = None,
    all_rows: Annotated[bool, typer.Option(
        "--all-rows", help="Write every row of the state to --out as row,cluster (row = row of the state: "
                           "earlier rows first, then NEW_FILE's), with each row's id in 'index' when the state "
                           "keeps ids (made from rows with ids), not only the new ones.")] = False,
    x_key: Annotated[str | None, typer.Option(help="Features array in an .npz.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table, if present (default 'label').")] = None,
    ignore_columns: Annotated[str | None, typer.Option(help=IGNORE_HELP)] = None,
    id_column: Annotated[str | None, typer.Option(help=ID_HELP + " Default: the one the state was made with.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out (or --state-out) file.")] = False,
    again: Annotated[bool, typer.Option(
        "--again", help="Add NEW_FILE's rows even though the state already holds a batch of the same rows "
                        "(refused otherwise: a retried command would hold every row twice).")] = False,
    skip_held: Annotated[bool, typer.Option(
        "--skip-held", help="Add only the rows the state does not hold yet; a row equal to a held one, feature "
                            "for feature (a retried batch), or with a held row's id and its features to rounding "
                            "(re-encoded in another batch), is not added and gets that row's cluster in --out. In "
                            "a state with ids a row with a new id is added, whatever its features (two tickets, "
                            "one text).")] = False,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help=SKIP_INVALID_HELP + ", and they are not added. Without it such a batch is refused, "
                               "naming the first of them.")] = False,
) -> None:
    """Add new rows to a saved clustering without clustering everything again.

    \b
    kfree cluster model.kfree data.npy --out c.csv --state c.kstate   # once
    kfree assign model.kfree c.kstate new.npy --out new.csv             # each batch
    kfree assign c.kstate new.npy --out new.csv                         # a state made without a model

    Each new row joins the cluster all of whose members are within the threshold (the nearest by
    largest distance, then the lowest label) or opens a new one; existing rows keep their clusters.
    With --recluster-affected the touched parts are clustered again exactly. STATE is replaced
    atomically with the updated state (or written to --state-out). A NEW_FILE without rows (a
    quiet day's batch) writes an --out without rows and leaves STATE as it was.
    """
    with cli_errors(), contextlib.ExitStack() as hold:
        from ..utils.io import check_output

        if out is None:
            raise ConfigError("say where to write the new rows' clusters: --out labels.csv")
        model, state_path, new_path = assign_files(first, second, third, out)
        if state_path.is_symlink() and state_out is None:  # updated in place: the file it links to
            # (the link was replaced by a new file, and the state it shared stayed behind: a security review)
            real = state_path.resolve()
            console.print(f"{state_path} links to {real}: that state is updated", soft_wrap=True, highlight=False)
            state_path = real
        check_output(out, inputs=(model, state_path, new_path), force=force, formats=(".csv", ".parquet"))
        if state_out is not None:
            check_output(state_out, inputs=(model, state_path, new_path), outputs={"--out": out}, force=force,
                         option="--state-out")
        else:  # STATE is replaced: its folder must take the new file, checked before any work
            check_output(state_path, inputs=(model, new_path), outputs={"--out": out}, force=True, option="STATE")
        import numpy as np
        from rich.markup import escape

        from ..cluster.incremental import ClusterState
        from ..cluster.incremental import assign as assign_rows
        from ..data.images import face_photos
        from ..data.io import load_features
        from ..evaluate.compare import fill_rows, index_columns, write_predictions
        from ..report.figures import plural

        if state_path.is_file():  # (a missing one: ClusterState.load says so)
            hold.enter_context(locked_state(state_path))
            remove_leftovers(state_path, state_out, out)
        state = ClusterState.load(state_path)
        _check_model_of_state(state, state_path, model, new_path, out)
        if skip_held and again:
            raise ConfigError("--skip-held adds only the rows the state does not hold, --again adds them all: "
                              "give one of them")
        remembered = state.meta.get("ignored_columns") if ignore_columns is None else None
        data = load_features(new_path, x_key=x_key, label_column=label_column, min_samples=0,
                             ignore_columns=remembered or ignored(ignore_columns), ignore_missing=bool(remembered),
                             partial_labels=True, id_column=id_column or state.meta.get("id_column"),
                             invalid="keep")
        invalid_rows(data, new_path, skip_invalid, "add")
        photos = face_photos(new_path)  # (the photo and box of each face, from kfree encode faces; located once)
        faces = face_columns(photos)
        if model is not None:  # the columns in the model's order before the batch is hashed: a table
            from ..learner import ClusterLearner  # with its columns reordered holds the same rows

            learner = ClusterLearner.load(model)
            if not unexpanded(data, getattr(learner, "feature_names_in_", None)):
                data.X = model_rows(learner, data, new_path, tuple(remembered or ()))
        names = state.meta.get("feature_names")  # a state made from a table: the batch's columns by name
        if names and (model is None or getattr(learner, "feature_names_in_", None) is None) and not unexpanded(
                data, names):
            data.X = align_columns(data, names, new_path, f"{state_path.name}'s", "it was not made with",
                                   f"{state_path.name} was made with", left_out=tuple(remembered or ()))
        if remembered and data.columns is not None:
            console.print(f"leaving out the columns {', '.join(remembered)} as {escape(state_path.name)} was made "
                          "(--ignore-columns names others)", soft_wrap=True, highlight=False)
        if data.n_samples == 0:  # a quiet day's batch: a scheduled job goes on, and the state holds no empty batch
            if all_rows:
                write_predictions(out, state.labels, **state_rows(state))
            else:
                write_predictions(out, np.empty(0, dtype=np.int64), y=data.y, **index_columns(data.index, 0),
                                  **faces)  # (the header of a week with faces)
            console.print(f"{new_path.name} has no rows: nothing to assign; {state_path.name} is unchanged "
                          f"({state.n_samples} rows in {state.n_clusters} clusters); wrote [bold]{escape(str(out))}"
                          "[/bold]" + (" (every row of the state)" if all_rows else " (no rows)"))
            record(out=out, state=state_out or state_path, new_rows=0, joined_existing=0, new_clusters=0,
                   skipped_held=0, state_rows=state.n_samples, state_clusters=state.n_clusters,
                   unsettled_rows=state.n_unsettled)  # (the fields of any day: an operations trial's jq read null)
            if state_out is not None:
                state.save(state_out, overwrite=True)
                console.print(f"state written: [bold]{escape(str(state_out))}[/bold]")
            return
        batch, hashes, fresh, held, twins, by_id = _rows_to_add(
            state, data, state_path, new_path, skip_held=skip_held, again=again,
            transform=learner.transform if model is not None else None)
        n_before, k_before, unsettled_before = state.n_samples, state.next_label, state.n_unsettled
        labels = np.empty(data.n_samples, dtype=np.int64)
        if fresh.size:  # (none for a retried batch under --skip-held)
            with _limit_threads():
                Z = learner.transform(data.X[fresh]) if model is not None else data.X[fresh]
                labels[fresh] = assign_rows(state, Z, recluster_affected=recluster_affected,
                                            input_hashes=hashes[fresh],
                                            ids=None if state.ids is None else data.index[fresh],
                                            **({} if state.photos is None else state_photos(photos, fresh)),
                                            check_lengths=model is None)  # (a model checked them: said once)
            state.meta["batches"] = [*(state.meta.get("batches") or []), {**batch, "assign": state.meta["assigns"]}]
            if model is not None:  # the clusters the state now holds, against the validation identities
                learner.check_cluster_sizes(state.labels)
        if skip_held and held.size:  # (after the assign: --recluster-affected may have moved the twins)
            labels[held] = state.labels[twins]
        # both outputs or neither: --out is written beside itself first, the state saved, then --out
        # put in place (cluster ids written for rows a state never recorded would be handed out
        # again by the next assign; a state with a batch whose --out is missing refuses its rerun)
        target = state_out if state_out is not None else state_path
        pending = pending_path(out)
        try:
            if all_rows:
                write_predictions(pending, state.labels, **state_rows(state))
            else:
                keep = data.valid  # (the others: left out by --skip-invalid, an empty cluster)
                write_predictions(pending, fill_rows(labels[keep], keep), y=data.y, **index_columns(data.index, data.n_samples),
                                  **faces)
            if fresh.size or state_out is not None:  # (nothing added: STATE stays the file it was)
                state.save(target, overwrite=True)
            os.replace(pending, out)
        finally:
            pending.unlink(missing_ok=True)
        info = state.meta.get("last_assign") if fresh.size else None  # (no rows added: no assign ran)
        added = labels[fresh]
        opened = int(np.unique(added[added >= k_before]).shape[0])
        joined = int(np.count_nonzero(added < k_before))
        if skipped := data.n_samples - fresh.size - data.invalid.size:
            console.print(f"{plural(skipped, 'row')} the state already held {'was' if skipped == 1 else 'were'} not "
                          "added again (--skip-held): --out gives them the cluster of the row they equal"
                          + (f" ({by_id:,} of them by id: the same id, and features equal to that row's to rounding, "
                             "as when a text is encoded again in another batch)" if by_id else ""),
                          soft_wrap=True, highlight=False)
        console.print((f"{fresh.size} new rows: {joined} in existing clusters, {fresh.size - joined} in "
                       f"{opened} new cluster{'' if opened == 1 else 's'}; the state now has {state.n_samples} rows "
                       f"(was {n_before})" if fresh.size else f"no new row; the state has {state.n_samples} rows")
                      + f" in {state.n_clusters} clusters; wrote [bold]{escape(str(out))}[/bold]")
        unsettled = state.n_unsettled  # (a pass over every row: once)
        record(out=out, state=target, new_rows=int(fresh.size), joined_existing=joined, new_clusters=opened,
               skipped_held=skipped, state_rows=state.n_samples, state_clusters=state.n_clusters,
               unsettled_rows=unsettled,
               **({"reclustered_rows": info["n_reclustered"], "existing_rows_moved": info["n_existing_moved"]}
                  if recluster_affected and info else {}))
        if recluster_affected and info:
            kept = info["n_components_kept_whole"]
            console.print(f"re-clustered {info['n_reclustered']:,} rows exactly: those of the "
                          f"{plural(info['n_components_touched'], 'τ-component')} the batch touched"
                          + (f" and of those earlier assigns left unsettled ({unsettled_before:,} rows): the state "
                             "now equals clustering all its rows again" if unsettled_before else "")
                          + f"; {info['n_existing_moved']:,} earlier rows changed cluster"
                          + (f"; {plural(kept, 'group')} of new rows, all within τ of each other and of the cluster "
                             f"{'it' if kept == 1 else 'they'} joined, needed none" if kept else ""),
                          soft_wrap=True, highlight=False)
        elif unsettled:
            console.print(f"{unsettled:,} of the state's rows ({unsettled / state.n_samples:.0%}) lie "
                          "in τ-components where clustering all its rows again may group them otherwise"
                          + (f" ({info['n_placed_unsettled']:,} of this batch's rows were placed there greedily)"
                             if info else "")
                          + "; the next assign with --recluster-affected re-clusters them exactly"
                          + (" (most of the state: that costs about as much as clustering it all again)"
                             if unsettled > state.n_samples / 2 else ""),
                          soft_wrap=True, highlight=False)
        console.print(f"state {'written' if state_out is not None else 'updated' if fresh.size else 'unchanged'}: "
                      f"[bold]{escape(str(target))}[/bold]")
