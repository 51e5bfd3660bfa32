"""Read the Ball Cluster Learning reference release's label files (``bcl_tv/``).

The release (Tapaswi, Law, Fidler, ICCV 2019) labels every face track of the 12 test episodes
in ``ids/<episode>.ids``: a header line ``CVHCI_TRACKLABELS_V1`` and then ``<track_id> <name>``
per line. Unlike the raw ground truth of the tracks (where every background person is
``unknown``), these names resolve background people into distinct characters
(``unknown_e01_1``, …), which is what gives the paper's #characters (8/6/26/28/25/37 for BBT,
13/22/15/32/38/45 for Buffy). ``model_chkpts/{trn,val}_actors.txt`` list the actors of the
embedding's training and validation sets. The checkpoint itself is read by
:mod:`kfree_reproductions.bcl2019.reference_model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfree.exceptions import ConfigError, DataError, DataFileNotFoundError
from kfree_reproductions.bcl2019.faces import shared_data_root

HEADER = "CVHCI_TRACKLABELS_V1"
BBT_EPISODES = tuple(f"bbt_s01e{i:02d}" for i in range(1, 7))
BUFFY_EPISODES = tuple(f"buffy_s05e{i:02d}" for i in range(1, 7))
EPISODES = BBT_EPISODES + BUFFY_EPISODES
#: #characters per episode in the paper (Table 1, row #Ch) and in ``bcl_tv/episode_summary.csv``.
PAPER_N_CHARACTERS = dict(zip(EPISODES, (8, 6, 26, 28, 25, 37, 13, 22, 15, 32, 38, 45)))


@dataclass(frozen=True)
class TrackLabels:
    """Track labels of one episode as the reference release gives them.

    Attributes
    ----------
    episode : str
        Episode name, e.g. ``bbt_s01e01``.
    track_ids : ndarray of shape (n_tracks,), int64
        Track ids in file order (unique within the episode; the face tracks' ``trackerId``).
    names : ndarray of shape (n_tracks,), str
        Lower-case character name of each track.
    """

    episode: str
    track_ids: np.ndarray
    names: np.ndarray

    @property
    def n_tracks(self) -> int:
        return int(self.track_ids.shape[0])

    @property
    def characters(self) -> list[str]:
        """Distinct character names, sorted."""
        return sorted(set(self.names.tolist()))

    @property
    def n_characters(self) -> int:
        return len(self.characters)

    def as_dict(self) -> dict[int, str]:
        """``{track_id: name}``."""
        return dict(zip(self.track_ids.tolist(), self.names.tolist()))


def read_track_labels(path: str | os.PathLike[str], *, episode: str | None = None) -> TrackLabels:
    """Parse one ``<episode>.ids`` file.

    Parameters
    ----------
    path : path
        The ``.ids`` file.
    episode : str, optional
        Name to record; defaults to the file name without ``.ids``.

    Raises
    ------
    DataFileNotFoundError
        If the file does not exist.
    DataError
        If the header is missing, a line is not ``<int> <name>``, or a track id repeats.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"track label file not found: {p}")
    lines = p.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != HEADER:
        got = lines[0].strip()[:40] if lines else "(empty file)"
        raise DataError(
            f"{p.name}: first line must be {HEADER!r}, got {got!r}; is this a BCL .ids file?"
        )
    ids: list[int] = []
    names: list[str] = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(
                f"{p.name} line {i}: expected '<track_id> <name>', got {line.strip()!r}"
            )
        try:
            ids.append(int(parts[0]))
        except ValueError:
            raise DataError(f"{p.name} line {i}: track id {parts[0]!r} is not an integer") from None
        names.append(parts[1])
    track_ids = np.asarray(ids, dtype=np.int64)
    uniq, counts = np.unique(track_ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{p.name}: track ids repeat: {uniq[counts > 1][:5].tolist()}")
    return TrackLabels(
        episode=episode if episode is not None else p.name.removesuffix(".ids"),
        track_ids=track_ids,
        names=np.asarray(names, dtype=str),
    )


def load_track_labels(episode: str, data_root: str | os.PathLike[str] | None = None) -> TrackLabels:
    """Read ``bcl_tv/ids/<episode>.ids`` from the shared data folder.

    Raises
    ------
    ConfigError
        If ``episode`` is not one of the 12 released episodes.
    """
    if episode not in EPISODES:
        raise ConfigError(f"unknown episode {episode!r}; the release has {list(EPISODES)}")
    return read_track_labels(
        shared_data_root(data_root) / "bcl_tv" / "ids" / f"{episode}.ids", episode=episode
    )


def read_actor_list(path: str | os.PathLike[str]) -> list[str]:
    """One actor name per line (UTF-8); blank lines are skipped."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"actor list not found: {p}")
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_actor_lists(
    data_root: str | os.PathLike[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Return ``(train_actors, val_actors)`` of the reference embedding (1,214 and 66 names)."""
    d = shared_data_root(data_root) / "bcl_tv" / "model_chkpts"
    return read_actor_list(d / "trn_actors.txt"), read_actor_list(d / "val_actors.txt")
