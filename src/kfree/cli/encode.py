"""``kfree encode faces|texts``: users' photos and texts → the feature vectors kfree clusters.

Each writes one ``.npz`` that every other command reads: ``embeddings`` (the features), where
the faces came from (``paths``, ``boxes``), ``labels`` when the input carries them (one folder
per person, a label column) and ``index`` when a table names its rows. ``kfree report --images
faces.npz`` shows each face cropped from its photo; ``--texts`` takes the texts' own file (the
``.npz`` does not copy them: a million tickets would weigh gigabytes as a NumPy text array).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import ConfigError, DataError, OutputError
from .console import (
    _STATE,
    _limit_threads,
    cli_errors,
    console,
    err_console,
    progress_hook,
    record,
    warn_line,
)

encode_app = typer.Typer(
    help="Turn photos (faces) or texts into feature vectors with a pretrained encoder, offline.",
    no_args_is_help=True,
)

OUT_HELP = "Output .npz (required): 'embeddings', and 'labels' and row ids when given."


def _check_out(out: Path | None, inputs, force: bool, name: str = "features.npz") -> Path:
    """``--out``, checked before any work. A folder is refused with a file name that is accepted:
    the general advice, "a file name inside it, e.g. tiny/out", was then refused for not ending in
    .npz (found by a photo-library trial). The name beside the folder comes first, so that the
    output and its ``.partial/`` do not land among the photos the next run reads."""
    import itertools

    from ..utils.io import check_output

    if out is None:
        raise ConfigError("say where to write the features: --out features.npz")
    if out.expanduser().is_dir():
        folder = out.expanduser()
        beside = [] if folder.name in ("", ".", "..") else [folder.with_name(folder.name + ".npz")]
        stem = Path(name).stem
        names = itertools.chain(beside, [folder / name], (folder / f"{stem}-{k}.npz" for k in itertools.count(2)))
        free = next(p for p in names if not p.exists() and not _partial(p).exists())
        raise OutputError(f"--out {out} is a folder; name the .npz file to write, e.g. --out {free}")
    return check_output(out, inputs=inputs, force=force, formats=(".npz",))


def _write(out: Path, arrays: dict) -> None:
    import numpy as np

    from ..utils.io import atomic_path

    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


#: photos per block of `kfree encode faces` saved on disk as it is done; an interruption saves
#: the finished part of the block in progress as a block of its own (it loses one CHUNK at most)
BLOCK = 1024


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


#: the format of an ``OUT.partial/`` folder; one of another kfree is refused, not misread
PARTIAL_FORMAT = "kfree-encode-partial/2"


def _open_partial(out: Path, manifest: dict, force: bool) -> Path:
    """``OUT.partial/``, the blocks an interrupted run of the same command saved, made when there
    is none. One made with other options (``manifest``) is refused, not mixed in or overwritten
    (it is the work of another run, which may still be wanted), unless ``force`` discards it."""
    import json

    from ..utils.io import write_json

    partial = _partial(out)
    if partial.exists():
        try:
            found = json.loads((partial / "manifest.json").read_text())
        except (OSError, ValueError):
            found = {}
        if found != manifest and not force:
            if isinstance(found, dict) and found.get("format") == manifest["format"]:
                raise OutputError(f"{partial} holds an interrupted encoding with other options; run again with "
                                  "those to finish it, or pass --force to discard it")
            raise OutputError(f"{partial} holds an interrupted encoding that this kfree cannot resume (another "
                              "version's, or damaged); pass --force to discard it and start afresh")
        if force:
            shutil.rmtree(partial)
    if not partial.exists():
        partial.mkdir(parents=True)
        write_json(partial / "manifest.json", manifest)
    return partial


def _stopped(partial: Path, kept: int, what: str, e: BaseException) -> None:
    """After a stop (``e``): say what ``partial`` keeps, or remove it when it keeps nothing (a
    missing model, say), so that no folder is left to trip over."""
    from ..report.figures import plural

    if isinstance(e, KeyboardInterrupt) and kept:
        err_console.print(f"{plural(kept, what)} encoded before the stop {'is' if kept == 1 else 'are'} "
                          f"kept in {partial}: the same command resumes from there", soft_wrap=True,
                          highlight=False)
    if not any(partial.glob("*.npz")):
        shutil.rmtree(partial, ignore_errors=True)


def _encode_in_blocks(encoder, paths: list[Path], out: Path, workers: int, hook, *, force: bool = False):
    """``encoder.encode(paths)`` a block of :data:`BLOCK` photos at a time, each block saved in
    ``OUT.partial/`` as it is done with the name, size and time of each of its photos: (the faces,
    how many photos came from blocks an interrupted run saved).

    Interrupted (Ctrl-C, ``kill``), the photos of the block in progress already encoded (whole
    chunks of ``CHUNK``, 16, in order) are saved as a block of their own before the interrupt goes
    on: a run stopped before its first 1,024 photos had kept nothing, and the rerun started again
    from the first photo (found by a photo-library trial: 832 of 1,240 photos lost, 88 s again).
    A block holding fewer photos than :data:`BLOCK` is read as any other, photo by photo.

    An interrupted run's blocks are taken photo by photo: a photo deleted or added since costs
    only itself, and one replaced under its name (another size or time) is encoded again (a
    deleted photo had made every saved block unusable, an hour of work in a large library). A
    ``.partial`` folder made with other options is refused, not mixed in or overwritten (it is the
    work of another run, which may still be wanted), unless ``force``."""
    import re

    import numpy as np

    from ..embed.pretrained import MIN_PER_WORKER, Faces

    partial = _open_partial(out, {"format": PARTIAL_FORMAT, "block": BLOCK, "settings": encoder.settings()}, force)
    resolved = [str(p.resolve()) for p in paths]
    stats = [p.stat() for p in paths]  # a photo replaced under its name is another photo: its size or time differs
    keys = {(f, st.st_size, st.st_mtime_ns): i for i, (f, st) in enumerate(zip(resolved, stats, strict=True))}
    saved = sorted(b for b in partial.glob("*.npz") if re.fullmatch(r"\d{10}", b.stem))  # (not a copy made by hand)
    parts, done = [], np.zeros(len(paths), dtype=bool)
    for block in saved:
        try:
            with np.load(block) as z:
                part = Faces.from_arrays(z)
                to = np.array([keys.get((str(f), int(size), int(mtime)), -1) for f, size, mtime in
                               zip(z["photo"].tolist(), z["size"].tolist(), z["mtime_ns"].tolist(), strict=True)],
                              dtype=np.int64)
        except Exception as e:  # (blocks are written whole: one damaged or put there by hand)
            warn_line(f"{block} cannot be read ({type(e).__name__}): its photos are "
                      "encoded again")
            continue
        to[to >= 0] = np.where(done[to[to >= 0]], -1, to[to >= 0])  # (a photo taken from an earlier block)
        done[to[to >= 0]] = True
        parts.append(part.renumbered(to))
    resumed = int(done.sum())
    if resumed and hook is not None:
        hook("faces", completed=resumed, total=len(paths))
    pending = np.flatnonzero(~done)
    number = 1 + max((int(b.stem) for b in saved), default=-1)

    def save(part: Faces, at: np.ndarray) -> None:
        nonlocal number
        _write(partial / f"{number:010d}.npz", {
            **part.arrays(), "photo": np.array([resolved[i] for i in at], dtype=str),
            "size": np.array([stats[i].st_size for i in at], dtype=np.int64),
            "mtime_ns": np.array([stats[i].st_mtime_ns for i in at], dtype=np.int64)})
        number += 1

    kept = resumed  # photos encoded and on disk
    chunks: list[tuple[Faces, int]] = []  # the finished chunks of the block in progress, and how many photos
    at = pending[:0]
    try:
        with encoder.processes(max(1, min(workers, pending.size // MIN_PER_WORKER))) as pool:
            for start in range(0, pending.size, BLOCK):
                at = pending[start:start + BLOCK]
                base = resumed + start
                step = None if hook is None else (lambda name, completed, total, base=base: hook(
                    name, completed=base + completed, total=len(paths)))
                chunks.clear()
                part = encoder.encode([paths[i] for i in at], progress=step, pool=pool,
                                      on_chunk=lambda faces, n: chunks.append((faces, n)))
                save(part, at)
                chunks.clear()
                kept += at.size
                parts.append(part.renumbered(at))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) and chunks:
            k = chunks[-1][1]  # (positions counted in the block: those of its first k photos)
            save(Faces.concat([faces for faces, _ in chunks]), at[:k])
            kept += k
        _stopped(partial, kept, "photo", e)
        raise
    return Faces.concat(parts).in_order() if parts else encoder.encode([]), resumed


#: texts per block of `kfree encode texts` kept on disk as it is done (rounded down to whole
#: batches, so that a resumed run batches the texts as one run does; about 20 s of MiniLM here)
TEXT_BLOCK = 2048
#: the format of a ``kfree encode texts`` ``OUT.partial/`` folder
TEXT_PARTIAL_FORMAT = "kfree-encode-texts-partial/1"


def _texts_digest(texts: list[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def _encode_texts_in_blocks(encoder, items: list[str], out: Path, hook, *, force: bool = False):
    """``encoder.encode(items)`` a block of :data:`TEXT_BLOCK` texts at a time, each block kept in
    ``OUT.partial/`` with a digest of its texts as it is done: (the embeddings, the positions of the
    texts the model cut, how many texts came from an interrupted run's blocks).

    A million tickets take hours on a CPU (about 100 texts/s here), and a stop had lost them all
    (found by an operations trial). A rerun takes a saved block whose texts are still those at its
    place in the input, so a file that grew since (tomorrow's tickets appended) keeps its blocks;
    one whose texts changed is encoded again. Blocks start at whole batches, so the output is the
    one a run without a stop writes, bit for bit."""
    import numpy as np

    block = max(1, TEXT_BLOCK // encoder.batch_size) * encoder.batch_size
    partial = _open_partial(out, {"format": TEXT_PARTIAL_FORMAT, "block": block, "settings": encoder.settings()},
                            force)
    starts = range(0, len(items), block)
    parts: list[np.ndarray | None] = [None] * len(starts)
    cut: list[list[int]] = [[] for _ in starts]
    for k, start in enumerate(starts):
        f = partial / f"{k:010d}.npz"
        if f.exists():
            try:
                with np.load(f) as z:
                    if str(z["digest"]) == _texts_digest(items[start:start + block]):
                        parts[k], cut[k] = z["embeddings"], z["truncated"].tolist()
            except Exception as e:  # (blocks are written whole: one damaged or put there by hand)
                warn_line(f"{f} cannot be read ({type(e).__name__}): its texts are "
                          "encoded again")
    resumed = sum(len(p) for p in parts if p is not None)
    kept = resumed
    try:
        for k, start in enumerate(starts):
            if parts[k] is not None:
                continue
            texts = items[start:start + block]
            step = None if hook is None else (lambda name, completed, total, base=kept: hook(
                name, completed=base + completed, total=len(items)))
            parts[k] = encoder.encode(texts, progress=step)
            cut[k] = list(encoder.truncated_)
            _write(partial / f"{k:010d}.npz", {"embeddings": parts[k], "truncated": np.array(cut[k], dtype=np.int64),
                                               "digest": np.array(_texts_digest(texts))})
            kept += len(texts)
    except BaseException as e:
        _stopped(partial, kept, "text", e)
        raise
    truncated = [start + i for start, c in zip(starts, cut, strict=True) for i in c]
    return np.concatenate(parts), truncated, resumed


@encode_app.command("faces", no_args_is_help=True)
def faces(
    photos: Annotated[list[Path], typer.Argument(show_default=False, help="Image files, folders of them (searched "
                                                                         "recursively) or .txt lists of paths.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help=OUT_HELP)] = None,
    largest: Annotated[bool, typer.Option("--largest", help="One face per image, the largest (for face crops, "
                                                            "e.g. frames of face tracks); default: every face.")] = False,
    whole_if_none: Annotated[bool, typer.Option("--whole-if-none", help="An image without a detected face is "
                                                                        "taken whole as the face: only for "
                                                                        "photos that are already face crops (a "
                                                                        "landscape would become a face); "
                                                                        "default: it gives no row.")] = False,
    upsample: Annotated[int, typer.Option(min=0, help="Times the detector doubles each image: 1 finds faces "
                                                      "from about 40 px wide, 2 smaller ones at 4x the cost.")] = 1,
    max_side: Annotated[int, typer.Option(min=0, help="Shrink larger photos to this longer side before "
                                                      "detection (0: never; boxes stay in the photo's pixels).")] = 1600,
    jitters: Annotated[int, typer.Option(min=0, help="Average each descriptor over this many jittered crops "
                                                     "(0: one, deterministic; 10 is slower, slightly better).")] = 0,
    labels_from_folders: Annotated[bool, typer.Option("--labels-from-folders", help="Label each photo by its "
                                                      "folder just below the folder given (one folder per "
                                                      "person, subfolders included), for kfree train; one face "
                                                      "per photo, the largest.")] = False,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes encoding at once (default: the thread "
                                                            "budget, --threads).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file, and start afresh "
                                                        "instead of resuming OUT.partial/.")] = False,
) -> None:
    """Find the faces in photos and write one 128-d dlib descriptor per face (pip install 'kfree\\[faces]').

    \b
    kfree encode faces photos/ --out faces.npz
    kfree cluster faces.npz --threshold 0.6 --distance euclidean --out clusters.csv   # dlib's "same person"
    kfree report clusters.csv --images faces.npz --out report/      # each face cropped from its photo
    kfree encode faces people/ --labels-from-folders --out seen.npz && kfree train seen.npz --out model.kfree

    Photos are encoded in blocks of 1,024, each kept in OUT.partial/ until the output is written,
    and on Ctrl-C the photos done of the block in progress too: an interrupted run, started again
    with the same options, resumes where it stopped (photos added, deleted or changed since cost
    only themselves). Photos without a face (a week of landscapes) give an output without rows,
    which kfree assign takes; photos none of which can be read are refused.
    """
    with cli_errors():
        import numpy as np

        from ..data.images import HEIF_ADVICE, HEIF_SUFFIXES, UNREAD_PHOTO_SUFFIXES, find_images
        from ..embed.pretrained import FaceEncoder
        from ..report.figures import plural
        from ..utils.threads import thread_budget

        out = _check_out(out, [p for p in photos if p.is_file()], force, "faces.npz")
        if 0 < max_side < 64:
            raise ConfigError(f"--max-side {max_side}: give 64 pixels or more, or 0 to keep every photo's size")
        # a folder's label names one person: the other faces of a group photo in it are not them
        encoder = FaceEncoder(faces="largest" if largest or labels_from_folders else "all",
                              if_no_face="whole" if whole_if_none else "skip", upsample=upsample,
                              max_side=max_side or None, jitters=jitters)
        paths, groups, ignored = find_images(photos)
        if ignored:
            kinds = ", ".join(f"{suffix} {count:,}" for suffix, count in sorted(ignored.items(), key=lambda kv: -kv[1]))
            n = sum(ignored.values())
            photos_left = sorted(ignored.keys() & set(UNREAD_PHOTO_SUFFIXES))
            warn_line(f"passed over {plural(n, 'file')} that "
                      f"{'is not an image' if n == 1 else 'are not images'} kfree reads ({kinds})"
                      + (f"; {HEIF_ADVICE}" if ignored.keys() & set(HEIF_SUFFIXES) else "")
                      + (f"; convert the photos ({', '.join(photos_left)}) to JPEG to include them"
                         if photos_left else ""))
        if labels_from_folders and (loose := [p for p, g in zip(paths, groups, strict=True) if g is None]):
            raise DataError(f"--labels-from-folders: {plural(len(loose), 'image')} lie in no folder below a folder "
                            f"given (first: {loose[0]}); give the folder that holds one folder per person")
        with _limit_threads(), progress_hook(progress) as hook:  # (Ctrl-C: it says what it kept)
            found, resumed = _encode_in_blocks(encoder, paths, out, workers or thread_budget(_STATE["threads"]),
                                               hook, force=force)
        if resumed:
            console.print(f"resumed: {plural(resumed, 'image')} had been encoded by an interrupted run")
        for i, why in list(found.unreadable.items())[:3]:
            warn_line(f"skipped: {why}")
        if len(found.unreadable) > 3:
            warn_line(f"{len(found.unreadable) - 3} more unreadable image(s) skipped")
        if len(found.unreadable) == len(paths):  # (no face because no photo: a wrong folder, not a quiet week)
            shutil.rmtree(_partial(out), ignore_errors=True)  # (finished: a rerun with other options starts afresh)
            raise DataError(f"none of the {plural(len(paths), 'image')} could be read (see the warnings above); "
                            "nothing was written")
        if found.n_faces == 0:
            # a week's photos without a face (a holiday's landscapes) are a batch with no rows, as a quiet
            # day's texts are, which kfree assign takes: refusing them broke `encode && assign` scripts
            # (found by a photo-library trial). --whole-if-none is not the remedy: it made three
            # landscapes "faces" that joined a person's cluster
            warn_line(f"no face found in {plural(len(found.missed), 'image')}: the "
                      "output has no rows. Faces under about 40 pixels wide need --upsample 2; "
                      "--whole-if-none is only for photos that are already face crops (it takes any "
                      "photo whole as a face)")
        base = out.resolve().parent  # paths are kept relative to the output's folder, one per photo
        rel = np.array([os.path.relpath(p.resolve(), base) for p in paths], dtype=str)
        arrays = {"embeddings": found.embeddings, "paths": rel[found.image], "boxes": found.boxes,
                  "detected": found.detected, "image": found.image,
                  "root": np.array(str(base))}  # (where the paths start: the report finds them after a move)
        if labels_from_folders:
            arrays["labels"] = np.array([groups[i] for i in found.image], dtype=str)
        if skipped := sorted([*found.missed, *found.unreadable]):
            arrays["skipped"] = rel[skipped]
        _write(out, arrays)
        shutil.rmtree(_partial(out), ignore_errors=True)  # (the blocks of this run: the output is whole)
        several = int((np.bincount(found.image) > 1).sum())
        parts = [f"{plural(len(paths), 'image')} → {plural(found.n_faces, 'face')}"]
        if several:
            parts.append(f"{plural(several, 'image')} with several")
        if found.missed:
            parts.append(f"{plural(len(found.missed), 'image')} without a face skipped (listed in 'skipped')")
        if n_whole := int((~found.detected).sum()):
            parts.append(f"{plural(n_whole, 'image')} without a detected face taken whole")
        if found.unreadable:
            parts.append(f"{len(found.unreadable)} unreadable")
        if labels_from_folders:
            parts.append(f"{plural(len(set(arrays['labels'].tolist())), 'label')} from folders")
        from rich.markup import escape

        console.print(f"{'; '.join(parts)}; wrote [bold]{escape(str(out))}[/bold]", soft_wrap=True)
        record(out=out, images=len(paths), faces=found.n_faces, images_without_a_face=len(found.missed),
               unreadable=len(found.unreadable), taken_whole=n_whole)


@encode_app.command("texts", no_args_is_help=True)
def texts(
    data: Annotated[Path, typer.Argument(show_default=False, help="A .txt (one text per line; a .txt whose first "
                                                                 "line names tab-separated columns is a table) or "
                                                                 "a .csv/.tsv/.parquet table with a text column.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help=OUT_HELP)] = None,
    column: Annotated[str | None, typer.Option(help="The table's text column (default: the first of "
                                                    "text, texts, sentence, message, utterance, body).")] = None,
    label_column: Annotated[str | None, typer.Option(help="A table column of labels to keep (for kfree "
                                                          "train).")] = None,
    id_column: Annotated[str | None, typer.Option(help="A table column of ids naming the rows (ticket ids), kept "
                                                       "as the output's row ids (default: 'index', if the table "
                                                       "has one).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts encoded together.")] = 64,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file, and start afresh "
                                                        "instead of resuming OUT.partial/.")] = False,
) -> None:
    """Embed texts with all-MiniLM-L6-v2, 384-d, unit length (pip install 'kfree\\[text]').

    A table's 'index' column (or --id-column: ticket ids) is kept, so clusters files name rows by
    it. A file without texts (a quiet day's batch) gives an output without rows. Texts are encoded
    in blocks of about 2,000, each kept in OUT.partial/ until the output is written: a stopped run,
    started again, resumes with the blocks whose texts are unchanged.

    \b
    kfree encode texts tickets.csv --column body --out tickets.npz
    kfree cluster model.kfree tickets.npz --out clusters.csv
    kfree report clusters.csv --texts tickets.csv --out report/     # joined by the ticket ids
    """
    with cli_errors():
        from rich.markup import escape

        from ..data.io import (
            ID_LIKE,
            TABLES,
            TEXT_COLUMNS,
            check_index,
            check_path,
            read_lines,
            read_table,
            tab_table,
            table_column,
        )
        from ..embed.pretrained import TextEncoder
        from ..report.figures import plural
        from ..utils.threads import limit_threads

        p = check_path(data, (".txt", *TABLES), wrong_format=f"{data.name}: give the texts as a .txt (one per "
                                                              f"line) or a .csv/.parquet with a text column")
        out = _check_out(out, [data], force, "texts.npz")
        encoder = TextEncoder(batch_size=batch_size)
        arrays: dict = {}
        header, why = tab_table(p) if p.suffix.lower() == ".txt" else (None, "")
        if header is not None:  # Excel's "Unicode text" / "Text (Tab delimited)": a table, not lines
            shown = ", ".join(header[:6]) + (", …" if len(header) > 6 else "")
            console.print(f"note: {p.name} is a tab-separated table (columns {shown}): read as a table, not as "
                          "one text per line", soft_wrap=True, highlight=False)
        if p.suffix.lower() == ".txt" and header is None:
            lines_why = (f"its first line holds tabs, but {why}" if why else "its first line has no tabs")
            if column is not None or label_column is not None or id_column is not None:
                raise DataError(f"{p.name} is read as one text per line ({lines_why}): --column, --label-column and "
                                "--id-column name columns of a table; give the .txt a first line naming its columns, "
                                "tab-separated (each row with as many cells), or a .csv/.tsv/.parquet")
            if why:  # (a review: such a file was encoded line by line, ids and all, without a word)
                warn_line(f"{p.name} is read as one text per line, tabs included "
                          f"({lines_why}); for a table, give it a first line naming its columns, each row "
                          "with as many cells")
            items = read_lines(p)
        else:
            df = read_table(p, ids=id_column or "index")  # (ids as written: "007" stays "007")
            col = table_column(df, (column,) if column else TEXT_COLUMNS, p, option="--column")
            ids = None
            if id_column is not None:
                ids = check_index(df[table_column(df, (id_column,), p, option="--id-column")], p, id_column)
            elif "index" in df.columns and col != "index":
                ids = check_index(df["index"], p)
            elif likely := [c for c in df.columns if c != col and ID_LIKE.search(str(c))]:
                console.print(f"note: column {likely[0]!r} looks like ids; --id-column {likely[0]} keeps them, so "
                              "clusters files name the rows by them", soft_wrap=True, highlight=False)
            # an empty cell is a ticket without words (an attachment only), as a blank one is: both are
            # encoded as "" below, with one warning, so a day's file is never refused for one of them
            items = [str(v) for v in df[col].fillna("").tolist()]
            if label_column is not None:
                lab = df[table_column(df, (label_column,), p, option="--label-column")]
                if unlabelled := int(lab.isna().sum()):  # a table labelled in part: kept as empty labels,
                    # which every reader takes as none (kfree train --labelled-only trains on the others)
                    import pandas as pd

                    lab = pd.Series(["" if pd.isna(v) else str(int(v)) if isinstance(v, float) and v.is_integer()
                                     else str(v) for v in lab.tolist()], dtype=object)
                    console.print(f"{unlabelled:,} of the {len(lab):,} rows have no label: their labels are written "
                                  "empty, which kfree reads as none (kfree train --labelled-only trains on the others)",
                                  soft_wrap=True, highlight=False)
                labels = lab.to_numpy()
                arrays["labels"] = labels.astype(str) if labels.dtype.kind == "O" else labels  # no pickles
            if ids is not None:
                arrays["index"] = ids
        if not items:  # a quiet day's batch: kfree assign takes an output without rows
            warn_line(f"{p.name} holds no text; the output has no rows")
        if blank := [i for i, t in enumerate(items) if not t.strip()]:
            named = f", id {arrays['index'][blank[0]].item()!r}" if "index" in arrays else ""
            warn_line(f"{len(blank):,} of {plural(len(items), 'text')} "
                      f"{'is' if len(blank) == 1 else 'are'} empty or blank (first: row {blank[0]}, from 0"
                      f"{named}); they share one vector (and one cluster)")
        first_of: dict[str, int] = {}
        repeats = [(i, first_of[t]) for i, t in enumerate(items) if t.strip() and first_of.setdefault(t, i) != i]
        if repeats:  # (a ticket trial: the same body under new ids went unmentioned)
            i, j = repeats[0]
            named = (f", id {arrays['index'][i].item()!r} as id {arrays['index'][j].item()!r}" if "index" in arrays
                     else f" as row {j}")
            console.print(f"note: {len(repeats):,} of {plural(len(items), 'text')} "
                          f"{'repeats' if len(repeats) == 1 else 'repeat'} an earlier one word for word "
                          f"(first: row {i}, from 0{named}); each pair shares one vector, and one cluster",
                          soft_wrap=True, highlight=False)
        # a transformer, unlike kfree's small heads, gains from every thread: torch gets the budget
        with limit_threads(_STATE["threads"], torch=True), progress_hook(progress) as hook:
            if items:
                Z, cut, resumed = _encode_texts_in_blocks(encoder, items, out, hook, force=force)
            else:
                Z, cut, resumed = encoder.encode(items), [], 0
        if resumed:
            console.print(f"resumed: {plural(resumed, 'text')} had been encoded by an interrupted run")
        if cut:  # (named by id as the blank ones are: a ticket trial)
            named = f", id {arrays['index'][cut[0]].item()!r}" if "index" in arrays else ""
            warn_line(f"{len(cut):,} of {plural(len(items), 'text')} "
                      f"{'is' if len(cut) == 1 else 'are'} longer than the model reads (256 word pieces, about "
                      f"200 words; first: row {cut[0]}, from 0{named}): only their start was encoded")
        arrays = {"embeddings": Z, **arrays}
        _write(out, arrays)
        shutil.rmtree(_partial(out), ignore_errors=True)  # (the blocks of this run: the output is whole)
        record(out=out, texts=len(items), dims=Z.shape[1])
        console.print(f"{plural(len(items), 'text')} → {Z.shape[1]}-d MiniLM embeddings (unit length); wrote "
                      f"[bold]{escape(str(out))}[/bold]",
                      soft_wrap=True)
