"""Load the CelebA dlib face descriptors staged in the shared data folder.

The CelebA images may not be redistributed, so kfree never ships them: it reads the derived
128-d dlib descriptors from a path (``faces_celeba/celeba_dlib128.npz`` under the shared data
root). These are *real* face descriptors of 299 identities (2–30 images each), which is what lets
an episode protocol replace the unobtainable TV-track features with real faces of people the
embedding has never seen.

The data root is resolved once, here, for every loader of the staged sets: an explicit path
wins, then ``$KFREE_SHARED_DATA``, then ``shared/data`` beside the repository checkout.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfree.data.splits import IdentitySplit, split_identities
from kfree.exceptions import DataError, DataFileNotFoundError

ENV_VAR = "KFREE_SHARED_DATA"
CELEBA_FILE = Path("faces_celeba") / "celeba_dlib128.npz"

#: Default identity split of the 299 CelebA identities (train / validation / test), as the paper
#: splits actors: the test identities are used only to build episodes.
DEFAULT_SPLIT = (170, 20, 109)


def shared_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds the staged real data sets.

    Parameters
    ----------
    data_root : path, optional
        Explicit folder (wins). Otherwise ``$KFREE_SHARED_DATA``, otherwise ``../shared/data``
        beside the working directory (a checkout run from its root), then ``../shared/data``
        beside the repository that holds this package (the layout of a development checkout).

    Returns
    -------
    Path
        An existing directory.

    Raises
    ------
    DataFileNotFoundError
        If the resolved folder does not exist; the message names every place that was tried.
    """
    tried: list[Path] = []
    if data_root is not None:
        candidates = [Path(data_root)]
    else:
        candidates = []
        env = os.environ.get(ENV_VAR)
        if env:
            candidates.append(Path(env))
        # a checkout with shared/ beside it, seen from the working directory (installed package)
        candidates.append(Path.cwd().resolve().parent / "shared" / "data")
        # reproductions/src/kfree_reproductions/bcl2019/faces.py -> parents[4] is the repository root
        # of an editable install
        candidates.append(Path(__file__).resolve().parents[4].parent / "shared" / "data")
    for c in candidates:
        tried.append(c)
        if c.is_dir():
            return c
    raise DataFileNotFoundError(
        f"shared data folder not found (tried {', '.join(str(t) for t in tried)}); "
        f"set ${ENV_VAR} to the folder that holds faces_celeba/, tv_tracks/, bcl_tv/ "
        f"(from Python you can also pass data_root=...)"
    )


@dataclass(frozen=True)
class FaceDescriptors:
    """Face descriptors with identity labels.

    Attributes
    ----------
    embeddings : ndarray of shape (n_faces, 128), float32
        dlib ResNet descriptors (not L2-normalised; mean norm ≈ 1.49; Euclidean < 0.6 ≈ same person).
    labels : ndarray of shape (n_faces,), int64
        Identity index 0..n_identities-1.
    identity_ids : ndarray of shape (n_faces,), int64
        Original data-set identity id (CelebA ``identity_CelebA.txt``).
    filenames : ndarray of shape (n_faces,), str
        Image file names, e.g. ``000093.jpg``.
    source : str
        The file the descriptors were read from.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    identity_ids: np.ndarray
    filenames: np.ndarray
    source: str = ""

    @property
    def n_faces(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_identities(self) -> int:
        return int(np.unique(self.labels).shape[0])

    def images_per_identity(self) -> np.ndarray:
        """Counts of faces per identity index, ndarray of shape (max_label + 1,)."""
        return np.bincount(self.labels)


def load_celeba_faces(data_root: str | os.PathLike[str] | None = None) -> FaceDescriptors:
    """Load the 6,279 CelebA dlib descriptors (299 identities) from the shared data folder.

    Parameters
    ----------
    data_root : path, optional
        Shared data folder (see :func:`shared_data_root`), or the ``.npz`` file itself.

    Raises
    ------
    DataFileNotFoundError
        If the file is missing.
    DataError
        If the file lacks the expected arrays or they disagree in length.
    """
    if data_root is not None and Path(data_root).suffix == ".npz":
        path = Path(data_root)
    else:
        path = shared_data_root(data_root) / CELEBA_FILE
    if not path.exists():
        raise DataFileNotFoundError(
            f"CelebA descriptors not found at {path}; see faces_celeba/NOTE.md"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            X = np.asarray(z["embeddings"], dtype=np.float32)
            y = np.asarray(z["labels"], dtype=np.int64)
            ids = np.asarray(z["celeba_identity"], dtype=np.int64)
            names = np.asarray(z["filenames"]).astype(str)
    except KeyError as e:
        raise DataError(
            f"{path.name} lacks array {e}; expected embeddings, labels, celeba_identity, filenames"
        ) from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    n = X.shape[0]
    if X.ndim != 2 or not (y.shape == ids.shape == names.shape == (n,)):
        raise DataError(
            f"{path.name}: embeddings {X.shape}, labels {y.shape}, celeba_identity {ids.shape}, "
            f"filenames {names.shape} do not describe the same faces"
        )
    if not np.isfinite(X).all():
        raise DataError(f"{path.name}: embeddings contain NaN or inf")
    return FaceDescriptors(
        embeddings=X, labels=y, identity_ids=ids, filenames=names, source=str(path)
    )


def split_faces(
    faces: FaceDescriptors,
    n_train: int = DEFAULT_SPLIT[0],
    n_val: int = DEFAULT_SPLIT[1],
    n_test: int | None = DEFAULT_SPLIT[2],
    *,
    seed: int = 0,
) -> IdentitySplit:
    """Split the identities (not the images) into disjoint train / validation / test sets.

    A thin wrapper over :func:`kfree.data.splits.split_identities` with the default 170 / 20 / 109
    split, so the training code and the episode builder get the *same* split from the same seed.
    """
    return split_identities(faces.labels, n_train, n_val, n_test, seed=seed)
