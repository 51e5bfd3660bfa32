"""The TV-episode protocol: real track structure, real face descriptors of unseen people.

The paper (Tapaswi, Law, Fidler, ICCV 2019) clusters the face tracks of 12 TV episodes (BBT
S1E1–6, Buffy S5E1–6), but its 256-d track features cannot be obtained. What *can* be obtained is
the episodes' real structure (every track's character, time span, and which tracks co-occur:
``tv_tracks/``, ``bcl_tv/ids``) and real face descriptors of people the embedding never saw in
training (the CelebA test identities, ``faces_celeba/``). This module joins the two:

- every character of a series is mapped to a distinct test identity, the same identity in every
  episode it appears in (so the combined 6-episode sets are consistent). Characters are matched
  to identities by demand: the character with the most real tracks gets the identity with the
  most images (ties between identities broken at random, seeded), because a main character with
  hundreds of tracks would otherwise be starved by an identity with 2 images;
- every kept track gets ``images_per_track`` (default 2) distinct images of its identity, fewer
  (1) only when the identity runs short; a track's descriptor is the mean of its images'
  descriptors (as a real track's descriptor is the mean over its frames);
- an identity has at most 30 images, while main characters have 139–1,323 real tracks, so per
  character only as many tracks are kept as its images allow: a seeded random subset of its real
  tracks, with at least one track in every episode the character appears in, so #characters per
  episode and which characters co-occur stay real;
- must-link pairs are the images of one track (image-level indices); cannot-link pairs are the
  real co-occurring pairs (overlapping frame ranges) among the kept tracks, within an episode.

**How images are shared across episodes** (``image_budget`` for the single episodes,
``combined_image_budget`` for the combined sets):

``"series"``
    An identity's images are one budget for the whole series. No image is used by two tracks
    anywhere in ``bbt_all`` or ``buffy_all``. The price, if single episodes are drawn this way
    too: a main character's ≤ 15 tracks are spread over up to 6 episodes, so a single episode
    keeps 1–5 tracks of a main character while a background character keeps all of its 8
    (bbt_s01e01 keeps 23 of 656 tracks and no cannot-link at seed 0).
``"episode"``
    Each episode spends the identity's whole budget on its own; within an episode no image is
    shared, but the same image can recur in other episodes of the series. Single episodes keep
    up to 15 tracks per character (88 of 656 for bbt_s01e01) and a screen-time order close to
    the real one.

The default is ``"episode"`` for the single episodes and ``"series"`` for the combined sets:
every returned set uses each image at most once, single episodes stay as rich as the images
allow, and the character→identity map is the same in both. The combined sets are then a second
draw (same seed), not the union of the returned single episodes; pass
``combined_image_budget=None`` to get the exact union instead (its ``images_shared`` says whether
an image recurs). ``results/bcl2019/episodes.md`` has the measured counts of every option.

**Which tracks are kept** (``track_selection``): ``"uniform"`` (default, as issue 7 specifies)
keeps a uniform random subset of each character's tracks. A pair of co-occurring tracks then
survives with probability ≈ (kept fraction)², so heavily truncated episodes keep few or no
cannot-links. ``"cooccur"`` walks the real co-occurring pairs in random order first and keeps
both tracks while both characters' budgets allow, which keeps several times more cannot-links.
Either way, minor characters keep all their tracks, so the few same-character co-occurring
pairs (15 of the 4,936 real ones, mostly minor characters) are over-represented among the kept
cannot-links compared with the real episodes.

The combined set of all 12 episodes has 212 characters (103 + 109) and does not fit the default
109 test identities; asking for it raises :class:`~kfree.exceptions.DataError` unless the split
leaves at least 212 test identities.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kfree.data.splits import IdentitySplit
from kfree.exceptions import ConfigError, DataError, DataFileNotFoundError
from kfree_reproductions.bcl2019.faces import (
    DEFAULT_SPLIT,
    FaceDescriptors,
    load_celeba_faces,
    shared_data_root,
    split_faces,
)
from kfree_reproductions.bcl2019.reference_data import (
    BBT_EPISODES,
    BUFFY_EPISODES,
    EPISODES,
    load_track_labels,
)

logger = logging.getLogger(__name__)

ImageBudget = Literal["series", "episode"]
IMAGE_BUDGETS = ("series", "episode")
TrackSelection = Literal["uniform", "cooccur"]
TRACK_SELECTIONS = ("uniform", "cooccur")
#: The per-series combined sets of the paper (Table 1, last columns) and their episodes.
COMBINED_SETS: dict[str, tuple[str, ...]] = {"bbt_all": BBT_EPISODES, "buffy_all": BUFFY_EPISODES}
#: Name of the 12-episode combined set (212 characters; needs >= 212 test identities).
ALL_SET = "all"


# --------------------------------------------------------------------------------------------
# real structure


@dataclass(frozen=True, eq=False)
class EpisodeStructure:
    """The real track structure of one episode (no descriptors).

    Attributes
    ----------
    name : str
        Episode name, e.g. ``bbt_s01e01``.
    track_ids : ndarray of shape (n_tracks,), int64
        Real track ids, ascending (ascending id is roughly time order).
    characters : ndarray of shape (n_tracks,), str
        Character of each track (background people resolved, as in ``bcl_tv/ids``).
    start_frame, end_frame : ndarray of shape (n_tracks,), int64
        First and last frame of each (contiguous) track.
    cooccur : ndarray of shape (n_pairs, 3), int64
        Co-occurring track pairs ``(track_id_a, track_id_b, n_shared_frames)`` with ``a < b``.
    series : str
        Series the episode belongs to (``bbt``, ``buffy``); characters of one series with the
        same name are the same person. Defaults to the part of ``name`` before the first ``_``.
    """

    name: str
    track_ids: np.ndarray
    characters: np.ndarray
    start_frame: np.ndarray
    end_frame: np.ndarray
    cooccur: np.ndarray
    series: str = ""

    def __post_init__(self) -> None:
        if not self.series:
            object.__setattr__(self, "series", self.name.split("_")[0])
        ids = np.asarray(self.track_ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        n = ids.shape[0]
        arrays = {
            "characters": self.characters,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
        }
        for key, arr in arrays.items():
            if np.shape(arr) != (n,):
                raise DataError(
                    f"episode {self.name}: {key} has shape {np.shape(arr)}, expected ({n},) like track_ids"
                )
        if np.unique(ids).shape[0] != n:
            raise DataError(f"episode {self.name}: track ids are not unique")
        object.__setattr__(self, "track_ids", ids[order])
        object.__setattr__(self, "characters", np.asarray(self.characters, dtype=str)[order])
        object.__setattr__(self, "start_frame", np.asarray(self.start_frame, dtype=np.int64)[order])
        object.__setattr__(self, "end_frame", np.asarray(self.end_frame, dtype=np.int64)[order])
        co = np.asarray(self.cooccur, dtype=np.int64).reshape(-1, 3)
        if co.shape[0] and not np.isin(co[:, :2], ids).all():
            raise DataError(
                f"episode {self.name}: co-occurring pairs name tracks that are not in track_ids"
            )
        object.__setattr__(self, "cooccur", co)

    @classmethod
    def from_intervals(
        cls,
        name: str,
        track_ids: Sequence[int] | np.ndarray,
        characters: Sequence[str] | np.ndarray,
        start_frame: Sequence[int] | np.ndarray,
        end_frame: Sequence[int] | np.ndarray,
        *,
        series: str = "",
    ) -> EpisodeStructure:
        """Build a structure whose co-occurrences are the overlaps of the frame intervals.

        Two contiguous tracks co-occur iff ``start_a <= end_b and start_b <= end_a``; they share
        ``min(end_a, end_b) - max(start_a, start_b) + 1`` frames (the rule of ``tv_tracks/``).
        """
        ids = np.asarray(track_ids, dtype=np.int64)
        s = np.asarray(start_frame, dtype=np.int64)
        e = np.asarray(end_frame, dtype=np.int64)
        return cls(
            name=name,
            track_ids=ids,
            characters=np.asarray(characters, dtype=str),
            start_frame=s,
            end_frame=e,
            cooccur=interval_cooccurrences(ids, s, e),
            series=series,
        )

    @property
    def n_tracks(self) -> int:
        return int(self.track_ids.shape[0])

    @property
    def n_characters(self) -> int:
        return int(np.unique(self.characters).shape[0])


def interval_cooccurrences(
    track_ids: np.ndarray, start_frame: np.ndarray, end_frame: np.ndarray
) -> np.ndarray:
    """All pairs of tracks whose frame ranges overlap.

    Returns
    -------
    ndarray of shape (n_pairs, 3), int64
        ``(track_id_a, track_id_b, n_shared_frames)`` with ``track_id_a < track_id_b``, sorted.
    """
    ids = np.asarray(track_ids, dtype=np.int64)
    s = np.asarray(start_frame, dtype=np.int64)
    e = np.asarray(end_frame, dtype=np.int64)
    shared = np.minimum(e[:, None], e[None, :]) - np.maximum(s[:, None], s[None, :]) + 1  # (n, n)
    i, j = np.nonzero(np.triu(shared > 0, k=1))
    a, b = np.minimum(ids[i], ids[j]), np.maximum(ids[i], ids[j])
    out = np.stack([a, b, shared[i, j]], axis=1).reshape(-1, 3)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def _read_csv(path: Path):
    import pandas as pd

    if not path.exists():
        raise DataFileNotFoundError(
            f"{path} not found; see tv_tracks/NOTE.md in the shared data folder"
        )
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:  # pandas' ParserError and UnicodeDecodeError are ValueErrors
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def load_episode_structures(
    episodes: Sequence[str] = EPISODES, data_root: str | os.PathLike[str] | None = None
) -> dict[str, EpisodeStructure]:
    """Read the real structure of the BCL tracks of each episode.

    Tracks and labels are those of ``bcl_tv/ids/<episode>.ids`` (9,740 tracks over the 12
    episodes, background people resolved); frame ranges come from ``tv_tracks/tracks_<ep>.csv``
    and co-occurring pairs from ``tv_tracks/cooccur_pairs.csv`` (restricted to BCL tracks).

    Raises
    ------
    DataError
        If a BCL track is missing from the track table, or the table's ``bcl_label`` disagrees
        with the ``.ids`` file (the two files would then not describe the same tracks).
    """
    root = shared_data_root(data_root)
    pairs = _read_csv(root / "tv_tracks" / "cooccur_pairs.csv")
    out: dict[str, EpisodeStructure] = {}
    for ep in episodes:
        labels = load_track_labels(ep, root)
        table = _read_csv(root / "tv_tracks" / f"tracks_{ep}.csv").set_index("track_id")
        missing = np.setdiff1d(labels.track_ids, table.index.to_numpy())
        if missing.size:
            raise DataError(
                f"{ep}: {missing.size} BCL tracks are not in tracks_{ep}.csv (e.g. {missing[:3].tolist()})"
            )
        rows = table.loc[labels.track_ids]
        if "bcl_label" in rows.columns:
            bad = rows["bcl_label"].astype(str).to_numpy() != labels.names
            if bad.any():
                raise DataError(
                    f"{ep}: tracks_{ep}.csv bcl_label disagrees with {ep}.ids on {int(bad.sum())} tracks"
                )
        p = pairs[pairs["episode"] == ep][["track_id_a", "track_id_b", "n_shared_frames"]].to_numpy(
            np.int64
        )
        keep = np.isin(p[:, 0], labels.track_ids) & np.isin(p[:, 1], labels.track_ids)
        out[ep] = EpisodeStructure(
            name=ep,
            track_ids=labels.track_ids,
            characters=labels.names,
            start_frame=rows["start_frame"].to_numpy(np.int64),
            end_frame=rows["end_frame"].to_numpy(np.int64),
            cooccur=p[keep],
        )
    return out


# --------------------------------------------------------------------------------------------
# the built episode


@dataclass(frozen=True, eq=False)
class Episode:
    """One test episode (or a combined set of episodes) with real descriptors.

    Attributes
    ----------
    name : str
        Episode name (``bbt_s01e01``) or combined-set name (``bbt_all``, ``buffy_all``, ``all``).
    episodes : tuple of str
        Source episodes, in order (one for a single episode).
    track_descriptors : ndarray of shape (n_tracks, d), float32
        Mean of each kept track's image descriptors; the input to clustering.
    track_labels : ndarray of shape (n_tracks,), int64
        Ground truth: the face data set's identity index of each track (one per character).
    track_characters : ndarray of shape (n_tracks,), str
        The real character each track stands for.
    track_ids : ndarray of shape (n_tracks,), int64
        The real track id (unique within an episode, not across a combined set).
    track_episode : ndarray of shape (n_tracks,), str
        Source episode of each track.
    image_descriptors : ndarray of shape (n_images, d), float32
        Descriptors of every image used ("frames"; one random image per track is what
        constraint fine-tuning samples).
    image_track : ndarray of shape (n_images,), int64
        Track index of each image.
    image_rows : ndarray of shape (n_images,), int64
        Row of each image in the face descriptor file (for tracing back to file names).
    must_link : ndarray of shape (n_must_link, 2), int64
        Image-index pairs that are the same person (the images of one track).
    cannot_link : ndarray of shape (n_cannot_link, 2), int64
        Track-index pairs ``i < j`` whose real tracks overlap in time (within one episode); a few
        share a character (hand-overs, one person tracked twice), as in real data.
    n_tracks_real : int
        Number of real (BCL) tracks of the episode(s) before truncation.
    n_cannot_link_real : int
        Real co-occurring pairs among all real tracks (same ``min_shared_frames`` filter).
    n_cannot_link_real_same_label : int
        How many of those share a character.
    n_characters : int
        Distinct characters (= identities) among the kept tracks.
    image_budget : str
        ``"series"`` or ``"episode"`` (see the module docstring).
    images_shared : bool
        True if some image is used by more than one track of this set (only possible for
        combined sets with ``image_budget="episode"``).
    """

    name: str
    episodes: tuple[str, ...]
    track_descriptors: np.ndarray
    track_labels: np.ndarray
    track_characters: np.ndarray
    track_ids: np.ndarray
    track_episode: np.ndarray
    image_descriptors: np.ndarray
    image_track: np.ndarray
    image_rows: np.ndarray
    must_link: np.ndarray
    cannot_link: np.ndarray
    n_tracks_real: int
    n_cannot_link_real: int
    n_cannot_link_real_same_label: int
    n_characters: int
    image_budget: str
    images_shared: bool

    @property
    def n_tracks(self) -> int:
        return int(self.track_labels.shape[0])

    @property
    def n_images(self) -> int:
        return int(self.image_track.shape[0])

    @property
    def X(self) -> np.ndarray:
        """Alias of :attr:`track_descriptors`, ndarray of shape (n_tracks, d)."""
        return self.track_descriptors

    @property
    def y(self) -> np.ndarray:
        """Alias of :attr:`track_labels`, ndarray of shape (n_tracks,)."""
        return self.track_labels

    @property
    def n_cannot_link_same_label(self) -> int:
        """Cannot-link pairs whose two tracks are the same character (label noise)."""
        if not self.cannot_link.shape[0]:
            return 0
        lab = self.track_labels
        return int((lab[self.cannot_link[:, 0]] == lab[self.cannot_link[:, 1]]).sum())

    def images_per_track(self) -> np.ndarray:
        """Number of images of each track, ndarray of shape (n_tracks,)."""
        return np.bincount(self.image_track, minlength=self.n_tracks)

    def sample_images(self, rng: np.random.Generator) -> np.ndarray:
        """One random image index per track, ndarray of shape (n_tracks,) (a "random frame")."""
        counts = self.images_per_track()
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # images of a track are contiguous
        return first + np.floor(rng.random(self.n_tracks) * counts).astype(np.int64)

    def summary(self) -> dict[str, int | str | bool]:
        """The row of the protocol table: real vs kept tracks, characters, constraints."""
        return {
            "name": self.name,
            "n_tracks_real": self.n_tracks_real,
            "n_tracks": self.n_tracks,
            "n_characters": self.n_characters,
            "n_images": self.n_images,
            "n_one_image_tracks": int((self.images_per_track() == 1).sum()),
            "n_must_link": int(self.must_link.shape[0]),
            "n_cannot_link_real": self.n_cannot_link_real,
            "n_cannot_link_real_same_label": self.n_cannot_link_real_same_label,
            "n_cannot_link": int(self.cannot_link.shape[0]),
            "n_cannot_link_same_label": self.n_cannot_link_same_label,
            "images_shared": self.images_shared,
        }


# --------------------------------------------------------------------------------------------
# building


def assign_identities(
    demand: Mapping[str, int], image_counts: Mapping[int, int], rng: np.random.Generator
) -> dict[str, int]:
    """Map each character to a distinct identity, the most-seen characters to the richest identities.

    Parameters
    ----------
    demand : mapping character -> number of real tracks
    image_counts : mapping identity -> number of images available
    rng : generator breaking ties between identities with equal image counts

    Raises
    ------
    DataError
        If there are more characters than identities.
    """
    if len(demand) > len(image_counts):
        raise DataError(
            f"{len(demand)} characters need distinct identities but only {len(image_counts)} are available; "
            f"leave more identities for testing (smaller train/validation split) or build fewer episodes together"
        )
    chars = sorted(demand, key=lambda c: (-demand[c], c))
    ids = np.asarray(sorted(image_counts), dtype=np.int64)
    counts = np.asarray([image_counts[int(i)] for i in ids])
    order = np.lexsort((rng.permutation(ids.shape[0]), -counts))  # most images first, random ties
    return {c: int(ids[order[k]]) for k, c in enumerate(chars)}


def _spread(n_images: int, n_tracks: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Images per track, as even as possible and at most ``cap``; the short tracks are random."""
    used = min(n_images, cap * n_tracks)
    base, extra = divmod(used, n_tracks)
    sizes = np.full(n_tracks, base, dtype=np.int64)
    sizes[rng.permutation(n_tracks)[:extra]] += 1
    return sizes


Handle = tuple[str, int]  # (episode, position of the track in that episode's structure)


def _select_tracks(
    sts: Sequence[EpisodeStructure],
    positions: Mapping[str, Mapping[str, np.ndarray]],
    image_counts: Mapping[str, int],
    *,
    k: int,
    budget: str,
    selection: str,
    min_shared_frames: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, list[int]]]:
    """Choose the kept tracks of every character of a group.

    ``positions[c][ep]``: positions of character ``c``'s real tracks in episode ``ep``;
    ``image_counts[c]``: images of ``c``'s identity. Returns ``{c: {ep: [positions]}}``.

    Budgets: ``"series"`` keeps ``min(N, max(ceil(m / k), E))`` of a character's N tracks over
    its E episodes (at least one in each episode); ``"episode"`` keeps ``min(n_e, ceil(m / k))`` in
    each episode. ``selection="uniform"`` fills the budgets with uniformly random tracks;
    ``"cooccur"`` first walks the real co-occurring pairs in random order and keeps both tracks
    of a pair while both characters' budgets allow, then fills the rest uniformly — it keeps
    many more cannot-link pairs than uniform truncation, which keeps about (kept fraction)² of them.
    """
    series = budget == "series"

    def bkey(c: str, ep: str) -> tuple[str, str]:
        return (c, "") if series else (c, ep)

    left: dict[tuple[str, str], int] = {}
    handles: dict[tuple[str, str], list[Handle]] = {}
    for c in sorted(positions):
        m = image_counts[c]
        per = positions[c]
        for ep in sorted(per):
            handles.setdefault(bkey(c, ep), []).extend((ep, int(p)) for p in per[ep])
        if series:
            n_eps = len(per)
            if m < n_eps:
                raise DataError(
                    f"character {c} appears in {n_eps} episodes but its identity has only {m} images; "
                    f"it cannot keep one track per episode without reusing images; pass 'episode' as the image "
                    f"budget of this set (image_budget / combined_image_budget) to let episodes reuse images"
                )
            total = sum(p.shape[0] for p in per.values())
            left[bkey(c, "")] = min(total, max(math.ceil(m / k), n_eps))
        else:
            for ep in sorted(per):
                left[bkey(c, ep)] = min(per[ep].shape[0], math.ceil(m / k))

    char_of: dict[Handle, str] = {}
    for c, per in positions.items():
        for ep, pos in per.items():
            char_of.update(((ep, int(p)), c) for p in pos)
    taken: set[Handle] = set()
    # "series": episodes in which a character has no kept track yet; one slot of its budget
    # stays reserved for each, so #characters per episode stays real
    missing: dict[str, set[str]] = {c: set(positions[c]) for c in positions} if series else {}

    def take(h: Handle) -> None:
        taken.add(h)
        c = char_of[h]
        left[bkey(c, h[0])] -= 1
        if series:
            missing[c].discard(h[0])

    if selection == "cooccur":
        pairs: list[tuple[Handle, Handle]] = []
        for st in sts:
            co = st.cooccur[st.cooccur[:, 2] >= min_shared_frames]
            pa = np.searchsorted(st.track_ids, co[:, 0])
            pb = np.searchsorted(st.track_ids, co[:, 1])
            pairs.extend(((st.name, int(x)), (st.name, int(z))) for x, z in zip(pa, pb))
        for i in rng.permutation(len(pairs)):
            need = [h for h in dict.fromkeys(pairs[i]) if h not in taken]
            if not need:
                continue
            cost: dict[tuple[str, str], int] = {}
            covers: dict[str, set[str]] = {}
            for h in need:
                kk = bkey(char_of[h], h[0])
                cost[kk] = cost.get(kk, 0) + 1
                covers.setdefault(char_of[h], set()).add(h[0])
            ok = all(
                left[kk] - v >= (len(missing[kk[0]] - covers[kk[0]]) if series else 0)
                for kk, v in cost.items()
            )
            if ok:
                for h in need:
                    take(h)
    if series:  # one random track in each episode the character has none in yet
        for c in sorted(positions):
            for ep in sorted(missing[c]):
                take((ep, int(rng.choice(positions[c][ep]))))
    for kk in sorted(handles):
        if left[kk] > 0:
            pool = [h for h in handles[kk] if h not in taken]
            for j in np.sort(rng.permutation(len(pool))[: left[kk]]):
                take(pool[int(j)])
    out: dict[str, dict[str, list[int]]] = {c: {} for c in positions}
    for ep, p in sorted(taken):
        out[char_of[(ep, p)]].setdefault(ep, []).append(p)
    return out


def _assign_images(
    chosen: Mapping[str, list[int]], rows: np.ndarray, k: int, budget: str, rng: np.random.Generator
) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Give a character's kept tracks distinct images of its identity, at most ``k`` each.

    ``"series"``: one shuffle of the identity's images is cut among all its tracks of the group,
    so no image is used twice. ``"episode"``: a fresh shuffle per episode (distinct within it).
    Images are spread as evenly as possible, so a track gets fewer than ``k`` only when the
    identity runs short; which tracks are short is random.
    """
    m = rows.shape[0]
    blocks = [sorted(chosen)] if budget == "series" else [[ep] for ep in sorted(chosen)]
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for eps in blocks:
        tracks = [(ep, p) for ep in eps for p in chosen[ep]]
        sizes = _spread(m, len(tracks), k, rng)
        perm = rows[rng.permutation(m)]
        ends = np.cumsum(sizes)
        for (ep, p), n, e in zip(tracks, sizes, ends):
            out.setdefault(ep, []).append((p, perm[e - n : e]))
    return out


def _assemble(
    st: EpisodeStructure,
    kept: list[tuple[int, np.ndarray]],
    label_of: Mapping[str, int],
    key_of: Callable[[EpisodeStructure, str], str],
    X: np.ndarray,
    budget: str,
    min_shared_frames: int,
) -> Episode:
    kept = sorted(kept, key=lambda pr: pr[0])  # track order = real track-id order
    pos = np.asarray([p for p, _ in kept], dtype=np.int64)
    sizes = np.asarray([r.shape[0] for _, r in kept], dtype=np.int64)
    image_rows = (
        np.concatenate([r for _, r in kept]).astype(np.int64) if kept else np.zeros(0, np.int64)
    )
    image_track = np.repeat(np.arange(pos.shape[0]), sizes)
    image_desc = X[image_rows].astype(np.float32)
    sums = np.zeros((pos.shape[0], X.shape[1]), dtype=np.float64)
    np.add.at(sums, image_track, image_desc.astype(np.float64))
    track_desc = (sums / np.maximum(sizes, 1)[:, None]).astype(np.float32)
    chars = st.characters[pos]
    labels = np.asarray([label_of[key_of(st, c)] for c in chars], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ml = [
        (s + a, s + b)
        for s, n in zip(starts, sizes)
        for a, b in itertools.combinations(range(int(n)), 2)
    ]
    must_link = np.asarray(ml, dtype=np.int64).reshape(-1, 2)

    co = st.cooccur[st.cooccur[:, 2] >= min_shared_frames]
    real_lab = dict(zip(st.track_ids.tolist(), st.characters.tolist()))
    same_real = int(sum(real_lab[a] == real_lab[b] for a, b in co[:, :2].tolist()))
    index_of = {int(st.track_ids[p]): i for i, p in enumerate(pos)}
    cl = [
        (index_of[a], index_of[b]) for a, b in co[:, :2].tolist() if a in index_of and b in index_of
    ]
    cannot_link = np.sort(np.asarray(cl, dtype=np.int64).reshape(-1, 2), axis=1)
    cannot_link = cannot_link[np.lexsort((cannot_link[:, 1], cannot_link[:, 0]))]
    return Episode(
        name=st.name,
        episodes=(st.name,),
        track_descriptors=track_desc,
        track_labels=labels,
        track_characters=chars,
        track_ids=st.track_ids[pos],
        track_episode=np.full(pos.shape[0], st.name),
        image_descriptors=image_desc,
        image_track=image_track,
        image_rows=image_rows,
        must_link=must_link,
        cannot_link=cannot_link,
        n_tracks_real=st.n_tracks,
        n_cannot_link_real=int(co.shape[0]),
        n_cannot_link_real_same_label=same_real,
        n_characters=int(np.unique(labels).shape[0]),
        image_budget=budget,
        images_shared=bool(np.unique(image_rows).shape[0] < image_rows.shape[0]),
    )


def combine_episodes(name: str, parts: Sequence[Episode]) -> Episode:
    """Concatenate episodes into one combined set; constraints stay within their episode.

    Track and image indices of later parts are offset; cannot-links are never added between
    episodes (co-occurrence is only known within an episode — the reason the paper gives for
    under-clustering combined sets).
    """
    if not parts:
        raise ConfigError(f"combined set {name!r} needs at least one episode")
    t_off = np.cumsum([0] + [p.n_tracks for p in parts[:-1]])
    i_off = np.cumsum([0] + [p.n_images for p in parts[:-1]])
    image_rows = np.concatenate([p.image_rows for p in parts])
    labels = np.concatenate([p.track_labels for p in parts])
    return Episode(
        name=name,
        episodes=tuple(e for p in parts for e in p.episodes),
        track_descriptors=np.concatenate([p.track_descriptors for p in parts]),
        track_labels=labels,
        track_characters=np.concatenate([p.track_characters for p in parts]),
        track_ids=np.concatenate([p.track_ids for p in parts]),
        track_episode=np.concatenate([p.track_episode for p in parts]),
        image_descriptors=np.concatenate([p.image_descriptors for p in parts]),
        image_track=np.concatenate([p.image_track + o for p, o in zip(parts, t_off)]),
        image_rows=image_rows,
        must_link=np.concatenate([p.must_link + o for p, o in zip(parts, i_off)]).reshape(-1, 2),
        cannot_link=np.concatenate([p.cannot_link + o for p, o in zip(parts, t_off)]).reshape(
            -1, 2
        ),
        n_tracks_real=sum(p.n_tracks_real for p in parts),
        n_cannot_link_real=sum(p.n_cannot_link_real for p in parts),
        n_cannot_link_real_same_label=sum(p.n_cannot_link_real_same_label for p in parts),
        n_characters=int(np.unique(labels).shape[0]),
        image_budget=parts[0].image_budget,
        images_shared=bool(np.unique(image_rows).shape[0] < image_rows.shape[0]),
    )


def _group_rng(seed: int, group: str) -> np.random.Generator:
    # one independent stream per group: building BBT does not change Buffy
    return np.random.default_rng([int(seed), zlib.crc32(group.encode("utf-8"))])


def build_from_structures(
    structures: Sequence[EpisodeStructure],
    embeddings: np.ndarray,
    labels: np.ndarray,
    identities: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    groups: Mapping[str, Sequence[str]] | None = None,
    combined: Mapping[str, Sequence[str]] | None = None,
    image_budget: ImageBudget = "episode",
    combined_image_budget: ImageBudget | None = "series",
    track_selection: TrackSelection = "uniform",
    images_per_track: int = 2,
    min_shared_frames: int = 1,
) -> dict[str, Episode]:
    """Build episodes from real structures and a pool of labelled face descriptors.

    Parameters
    ----------
    structures : sequence of EpisodeStructure
        The episodes to build.
    embeddings : ndarray of shape (n_faces, d)
        Face descriptors.
    labels : ndarray of shape (n_faces,)
        Identity of each face.
    identities : sequence of int
        The identities episodes may use (the test identities).
    seed : int
        Seeds identity tie-breaks, track subsets and image choice (one stream per group).
    groups : mapping name -> episode names, optional
        Episodes that share one character→identity map (and, with ``image_budget="series"``, one
        image budget). Default: one group per series, named ``<series>_all``. Characters are keyed
        by ``(series, name)``, so a group spanning series never merges two series' characters.
    combined : mapping name -> episode names, optional
        Combined sets to return besides the episodes; each must lie inside one group. Default:
        one per group with more than one episode, under the group's name.
    image_budget : {"episode", "series"}
        How an identity's images are shared across the episodes of a group, for the single
        episodes (module docstring). Default ``"episode"``.
    combined_image_budget : {"series", "episode"} or None
        The same for the combined sets. Default ``"series"``: no image recurs anywhere in a
        combined set. When it differs from ``image_budget`` the combined sets are a second draw
        (same seed, same character→identity map) rather than the union of the returned single
        episodes; ``None`` means "as ``image_budget``" (then they are exactly that union).
    track_selection : {"uniform", "cooccur"}
        Which of a character's real tracks are kept when its images do not cover them all.
        ``"uniform"`` (default): a seeded uniform random subset. ``"cooccur"``: real co-occurring
        pairs first (in random order, while both characters' budgets allow), then uniform; keeps
        more cannot-link constraints, at the price of favouring tracks seen together with others.
    images_per_track : int
        Images per kept track (>= 1; fewer only when the identity runs short). Default 2.
    min_shared_frames : int
        A co-occurring pair becomes a cannot-link only if the tracks share at least this many
        frames (1 = any overlap; the real data has 1–4-frame overlaps at track hand-overs).

    Returns
    -------
    dict of str -> Episode
        Episodes in the order given, then the combined sets.

    Raises
    ------
    ConfigError
        Bad option values or group/combined definitions.
    DataError
        A group has more characters than ``identities``, or (``"series"`` budget) a character
        appears in more episodes than its identity has images.
    """
    if image_budget not in IMAGE_BUDGETS:
        raise ConfigError(f"image_budget={image_budget!r} must be one of {IMAGE_BUDGETS}")
    if combined_image_budget is not None and combined_image_budget not in IMAGE_BUDGETS:
        raise ConfigError(
            f"combined_image_budget={combined_image_budget!r} must be one of {IMAGE_BUDGETS} or None"
        )
    if track_selection not in TRACK_SELECTIONS:
        raise ConfigError(f"track_selection={track_selection!r} must be one of {TRACK_SELECTIONS}")
    if int(images_per_track) != images_per_track or images_per_track < 1:
        raise ConfigError(f"images_per_track={images_per_track!r} must be an integer >= 1")
    if int(min_shared_frames) != min_shared_frames or min_shared_frames < 1:
        raise ConfigError(f"min_shared_frames={min_shared_frames!r} must be an integer >= 1")
    X = np.asarray(embeddings)
    y = np.asarray(labels)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataError(f"embeddings {X.shape} and labels {y.shape} do not describe the same faces")
    by_name = {st.name: st for st in structures}
    if len(by_name) != len(structures):
        raise ConfigError("episode names must be unique")
    if groups is None:
        groups = {}
        for st in structures:
            groups.setdefault(f"{st.series}_all", []).append(st.name)  # type: ignore[union-attr]
    group_of: dict[str, str] = {}
    for g, eps in groups.items():
        for ep in eps:
            if ep not in by_name:
                raise ConfigError(
                    f"group {g!r} names episode {ep!r}, which is not among the structures {list(by_name)}"
                )
            if ep in group_of:
                raise ConfigError(f"episode {ep!r} is in two groups ({group_of[ep]!r} and {g!r})")
            group_of[ep] = g
    ungrouped = [n for n in by_name if n not in group_of]
    if ungrouped:
        raise ConfigError(f"episodes {ungrouped} are in no group")
    if combined is None:
        combined = {g: list(eps) for g, eps in groups.items() if len(eps) > 1}
    for c, eps in combined.items():
        gs = {group_of.get(ep) for ep in eps}
        if None in gs:
            raise ConfigError(
                f"combined set {c!r} names episodes that were not built: {[e for e in eps if e not in group_of]}"
            )
        if len(gs) != 1:
            raise ConfigError(
                f"combined set {c!r} spans groups {sorted(gs)}; its characters would not have distinct "
                f"identities. Put its episodes in one group"
            )

    identities = np.unique(np.asarray(identities, dtype=np.int64))
    counts = np.bincount(
        y[np.isin(y, identities)].astype(np.int64), minlength=int(identities.max(initial=-1)) + 1
    )
    image_counts = {int(i): int(counts[i]) for i in identities if counts[i] > 0}
    rows_of = {i: np.flatnonzero(y == i) for i in image_counts}

    def key_of(st: EpisodeStructure, character: str) -> str:
        return f"{st.series}/{character}"

    def build_all(budget: str) -> dict[str, Episode]:
        built: dict[str, Episode] = {}
        for g, eps in groups.items():
            rng = _group_rng(seed, g)
            sts = [by_name[ep] for ep in eps]
            positions: dict[str, dict[str, np.ndarray]] = {}
            for st in sts:
                for c in np.unique(st.characters):
                    positions.setdefault(key_of(st, str(c)), {})[st.name] = np.flatnonzero(
                        st.characters == c
                    )
            demand = {c: sum(p.shape[0] for p in per.values()) for c, per in positions.items()}
            try:  # first draw of the group's stream: the same map whatever the budget
                label_of = assign_identities(demand, image_counts, rng)
            except DataError as e:
                raise DataError(f"set {g!r} ({len(eps)} episodes): {e}") from None
            selected = _select_tracks(
                sts,
                positions,
                {c: rows_of[label_of[c]].shape[0] for c in positions},
                k=int(images_per_track),
                budget=budget,
                selection=track_selection,
                min_shared_frames=int(min_shared_frames),
                rng=rng,
            )
            kept: dict[str, list[tuple[int, np.ndarray]]] = {ep: [] for ep in eps}
            for c in sorted(positions):
                plan = _assign_images(
                    selected[c], rows_of[label_of[c]], int(images_per_track), budget, rng
                )
                for ep, tracks in plan.items():
                    kept[ep].extend(tracks)
            for st in sts:
                built[st.name] = _assemble(
                    st, kept[st.name], label_of, key_of, X, budget, int(min_shared_frames)
                )
            logger.info(
                "%s (%s budget): %d characters over %d episodes, %d of %d real tracks kept",
                g,
                budget,
                len(positions),
                len(eps),
                sum(built[e].n_tracks for e in eps),
                sum(built[e].n_tracks_real for e in eps),
            )
        return built

    built = build_all(image_budget)
    out = {st.name: built[st.name] for st in structures}
    if combined:
        if combined_image_budget is not None and combined_image_budget != image_budget:
            built = build_all(combined_image_budget)  # a second draw, same identity map
        for c, eps in combined.items():
            out[c] = combine_episodes(c, [built[ep] for ep in eps])
    return out


def count_characters(
    structures: Mapping[str, EpisodeStructure] | Sequence[EpisodeStructure],
) -> dict[str, int]:
    """Distinct characters per series and over everything (``{"bbt_all": 103, "buffy_all": 109, "all": 212}``).

    A combined set fits the test identities only if its count is at most the number of test
    identities; use this to decide which combined sets can be built.
    """
    sts = list(structures.values()) if isinstance(structures, Mapping) else list(structures)
    keys: dict[str, set[str]] = {}
    for st in sts:
        keys.setdefault(f"{st.series}_all", set()).update(
            f"{st.series}/{c}" for c in np.unique(st.characters)
        )
    out = {g: len(k) for g, k in keys.items()}
    out[ALL_SET] = len(set().union(*keys.values())) if keys else 0
    return out


def build_episodes(
    data_root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    episodes: Sequence[str] = EPISODES,
    faces: FaceDescriptors | None = None,
    split: IdentitySplit | None = None,
    split_sizes: tuple[int, int, int] = DEFAULT_SPLIT,
    include_all: bool = False,
    image_budget: ImageBudget = "episode",
    combined_image_budget: ImageBudget | None = "series",
    track_selection: TrackSelection = "uniform",
    images_per_track: int = 2,
    min_shared_frames: int = 1,
) -> dict[str, Episode]:
    """Build the 12 test episodes and the per-series combined sets from the shared data.

    Parameters
    ----------
    data_root : path, optional
        Shared data folder (see :func:`kfree_reproductions.bcl2019.faces.shared_data_root`).
    seed : int
        Seeds the identity split (when ``split`` is not given) and the episode construction.
    episodes : sequence of str
        Which episodes to build (default all 12).
    faces : FaceDescriptors, optional
        Pre-loaded CelebA descriptors (default: load them from ``data_root``).
    split : IdentitySplit, optional
        The identity split whose ``test_ids`` the episodes use. Default:
        ``split_faces(faces, *split_sizes, seed=seed)`` — the same call training code makes, so
        the same seed gives the same held-out identities.
    split_sizes : (int, int, int)
        Train / validation / test identity counts (default 170 / 20 / 109).
    include_all : bool
        Also build the 12-episode set ``"all"`` (212 characters). Then every character of both
        series needs its own identity: raises :class:`DataError` unless there are at least 212
        test identities (e.g. ``split_sizes=(70, 10, 219)``), and the per-series sets are built
        from that one joint map.
    image_budget, combined_image_budget, track_selection, images_per_track, min_shared_frames
        See :func:`build_from_structures`.

    Returns
    -------
    dict of str -> Episode
        ``{episode: Episode}`` for each requested episode, then ``bbt_all`` / ``buffy_all`` (for
        each series with more than one requested episode) and ``all`` if asked.
    """
    unknown = [e for e in episodes if e not in EPISODES]
    if unknown:
        raise ConfigError(f"unknown episodes {unknown}; choose from {list(EPISODES)}")
    if faces is None:
        faces = load_celeba_faces(data_root)
    if split is None:
        split = split_faces(faces, *split_sizes, seed=seed)
    structures = load_episode_structures(episodes, data_root)
    n_test = int(np.unique(split.test_ids).shape[0])
    series_sets = {name: [e for e in eps if e in structures] for name, eps in COMBINED_SETS.items()}
    series_sets = {k: v for k, v in series_sets.items() if v}
    if include_all:
        need = count_characters(structures)[ALL_SET]
        if need > n_test:
            raise DataError(
                f"the combined set of all {len(episodes)} episodes has {need} characters but the split has only "
                f"{n_test} test identities, so characters cannot get distinct identities; use "
                f"split_sizes with >= {need} test identities (e.g. (70, 10, 219)) or include_all=False"
            )
        groups: dict[str, list[str]] = {ALL_SET: list(episodes)}
        combined = {k: v for k, v in series_sets.items() if len(v) > 1}
        combined[ALL_SET] = list(episodes)
    else:
        groups = series_sets
        combined = {k: v for k, v in series_sets.items() if len(v) > 1}
    return build_from_structures(
        [structures[e] for e in episodes],
        faces.embeddings,
        faces.labels,
        split.test_ids,
        seed=seed,
        groups=groups,
        combined=combined,
        image_budget=image_budget,
        combined_image_budget=combined_image_budget,
        track_selection=track_selection,
        images_per_track=images_per_track,
        min_shared_frames=min_shared_frames,
    )
