"""The TV-episode protocol: synthetic mini-structures for the logic, the shared data for the real thing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kfree.exceptions import ConfigError, DataError
from kfree_reproductions.bcl2019.episodes import (
    Episode,
    EpisodeStructure,
    assign_identities,
    build_episodes,
    build_from_structures,
    count_characters,
    interval_cooccurrences,
    load_episode_structures,
)
from kfree_reproductions.bcl2019.reference_data import (
    BBT_EPISODES,
    BUFFY_EPISODES,
    EPISODES,
    PAPER_N_CHARACTERS,
    load_actor_lists,
    load_track_labels,
    read_track_labels,
)

# ---------------------------------------------------------------------------------------------
# synthetic mini-structure: series "s" (2 episodes), series "t" (1 episode); character "a" of
# "t" is a different person from "a" of "s".

S_E1 = [  # (track id, character, start, end)
    (1, "a", 0, 9),
    (2, "a", 20, 29),
    (3, "a", 40, 49),
    (4, "a", 60, 69),
    (5, "a", 80, 89),
    (6, "a", 100, 109),
    (7, "a", 21, 24),  # 7 overlaps 2: one person tracked twice
    (11, "b", 5, 14),
    (12, "b", 45, 54),
    (13, "b", 200, 210),
    (21, "c", 22, 25),
    (22, "c", 300, 310),
]
S_E2 = [
    (1, "a", 0, 9),
    (2, "a", 20, 29),
    (3, "a", 40, 49),
    (4, "a", 60, 69),
    (11, "b", 25, 30),
    (31, "d", 41, 43),
    (32, "d", 61, 70),
]
T_E1 = [(1, "a", 0, 5), (2, "a", 10, 15), (3, "e", 3, 12)]
# identities 100..105 with 6, 5, 3, 2, 4, 9 images
IMAGES = {100: 6, 101: 5, 102: 3, 103: 2, 104: 4, 105: 9}


def _structure(name, rows):
    ids, chars, s, e = zip(*rows)
    return EpisodeStructure.from_intervals(name, ids, chars, s, e)


@pytest.fixture
def structures():
    return [_structure("s_e01", S_E1), _structure("s_e02", S_E2), _structure("t_e01", T_E1)]


@pytest.fixture
def faces(rng):
    y = np.concatenate([np.full(n, i) for i, n in IMAGES.items()]).astype(np.int64)
    X = rng.normal(size=(y.shape[0], 4)).astype(np.float32)
    return X, y


def _build(structures, faces, **kw):
    X, y = faces
    return build_from_structures(structures, X, y, list(IMAGES), **kw)


ALL_OPTIONS = [(b, s) for b in ("series", "episode") for s in ("uniform", "cooccur")]


def _overlapping_pairs(ep: Episode, structures) -> set[tuple[int, int]]:
    """Brute force: kept track pairs of one episode whose real frame ranges overlap."""
    st = {s.name: s for s in structures}[ep.name]
    span = dict(zip(st.track_ids.tolist(), zip(st.start_frame.tolist(), st.end_frame.tolist())))
    out = set()
    for i, j in itertools.combinations(range(ep.n_tracks), 2):
        (sa, ea), (sb, eb) = span[int(ep.track_ids[i])], span[int(ep.track_ids[j])]
        if sa <= eb and sb <= ea:
            out.add((i, j))
    return out


def test_interval_cooccurrences_brute_force():
    ids, s, e = np.array([5, 1, 9, 3]), np.array([0, 10, 5, 30]), np.array([10, 12, 6, 31])
    got = interval_cooccurrences(ids, s, e)
    assert got.tolist() == [[1, 5, 1], [5, 9, 2]]


def test_structure_sorts_and_validates():
    st = EpisodeStructure.from_intervals("x_e1", [3, 1], ["b", "a"], [5, 0], [6, 9])
    assert st.track_ids.tolist() == [1, 3] and st.characters.tolist() == ["a", "b"]
    assert st.series == "x" and st.cooccur.tolist() == [[1, 3, 2]]
    with pytest.raises(DataError, match="not unique"):
        EpisodeStructure.from_intervals("x_e1", [1, 1], ["a", "b"], [0, 0], [1, 1])
    with pytest.raises(DataError, match="not in track_ids"):
        EpisodeStructure(
            "x_e1",
            np.array([1]),
            np.array(["a"]),
            np.array([0]),
            np.array([1]),
            np.array([[1, 2, 1]]),
        )


def test_assign_identities_by_demand(rng):
    got = assign_identities({"a": 11, "b": 4, "c": 2, "d": 2}, IMAGES, rng)
    assert got == {"a": 105, "b": 100, "c": 101, "d": 104}
    with pytest.raises(DataError, match="7 characters need distinct identities but only 6"):
        assign_identities({c: 1 for c in "abcdefg"}, IMAGES, rng)


@pytest.mark.parametrize("budget,selection", ALL_OPTIONS)
def test_invariants(structures, faces, budget, selection):
    X, y = faces
    eps = _build(
        structures,
        faces,
        seed=1,
        image_budget=budget,
        combined_image_budget=None,
        track_selection=selection,
    )
    assert list(eps) == ["s_e01", "s_e02", "t_e01", "s_all"]
    # characters per episode stay real
    assert [eps[n].n_characters for n in ("s_e01", "s_e02", "t_e01", "s_all")] == [3, 3, 2, 4]
    for name, ep in eps.items():
        assert ep.track_descriptors.shape == (ep.n_tracks, 4)
        # each image is a face of the track's identity, and the track descriptor is their mean
        assert np.array_equal(y[ep.image_rows], ep.track_labels[ep.image_track])
        assert np.allclose(ep.image_descriptors, X[ep.image_rows])
        for t in range(ep.n_tracks):
            assert np.allclose(
                ep.track_descriptors[t], X[ep.image_rows[ep.image_track == t]].mean(0), atol=1e-6
            )
        # 2 images per track, 1 only when the identity runs short
        assert set(ep.images_per_track().tolist()) <= {1, 2}
        # must-link = the two images of one track
        ml = ep.must_link
        assert ml.shape == (int((ep.images_per_track() == 2).sum()), 2)
        assert np.array_equal(ep.image_track[ml[:, 0]], ep.image_track[ml[:, 1]])
        assert (ml[:, 0] < ml[:, 1]).all()
        # images of a track are distinct; within one episode no image is shared between tracks
        if len(ep.episodes) == 1 or budget == "series":
            assert np.unique(ep.image_rows).shape[0] == ep.n_images
            assert not ep.images_shared
        assert ep.image_budget == budget
    # cannot-link = kept tracks that overlap in time, within an episode only
    for name in ("s_e01", "s_e02", "t_e01"):
        got = {tuple(p) for p in eps[name].cannot_link.tolist()}
        assert got == _overlapping_pairs(eps[name], structures)
    comb = eps["s_all"]
    assert comb.n_tracks == eps["s_e01"].n_tracks + eps["s_e02"].n_tracks
    assert (
        comb.cannot_link.shape[0]
        == eps["s_e01"].cannot_link.shape[0] + eps["s_e02"].cannot_link.shape[0]
    )
    ep_of = comb.track_episode
    assert (ep_of[comb.cannot_link[:, 0]] == ep_of[comb.cannot_link[:, 1]]).all()
    assert comb.n_tracks_real == 12 + 7


def test_same_character_same_identity_across_episodes(structures, faces):
    eps = _build(structures, faces, seed=0)
    s_map: dict[str, set[int]] = {}
    for name in ("s_e01", "s_e02"):
        for c, lab in zip(eps[name].track_characters, eps[name].track_labels):
            s_map.setdefault(str(c), set()).add(int(lab))
    assert all(len(v) == 1 for v in s_map.values())  # one identity per character...
    assert len({next(iter(v)) for v in s_map.values()}) == len(s_map)  # ...distinct per character
    assert s_map == {"a": {105}, "b": {100}, "c": {101}, "d": {104}}  # most tracks -> most images
    comb = eps["s_all"]
    assert dict(zip(comb.track_characters.tolist(), comb.track_labels.tolist())) == {
        c: next(iter(v)) for c, v in s_map.items()
    }


def test_series_budget_truncation(structures, faces):
    eps = _build(structures, faces, seed=0, image_budget="series", combined_image_budget=None)
    comb = eps["s_all"]
    per_char = {c: int((comb.track_characters == c).sum()) for c in "abcd"}
    # a: 11 real tracks, identity of 9 images -> ceil(9/2) = 5 tracks, one of them with 1 image
    # b: 4 tracks, 6 images -> 3; c: 2 tracks, 5 images -> 2 (all); d: 2 tracks, 4 images -> 2
    assert per_char == {"a": 5, "b": 3, "c": 2, "d": 2}
    a = comb.track_characters == "a"
    assert sorted(comb.images_per_track()[a].tolist()) == [1, 2, 2, 2, 2]
    assert int(comb.images_per_track()[comb.track_characters == "c"].sum()) == 4
    # every episode a character appears in keeps at least one of its tracks
    for name in ("s_e01", "s_e02"):
        assert {"a", "b"} <= set(eps[name].track_characters.tolist())
    # no image is used twice anywhere in the series set
    assert np.unique(comb.image_rows).shape[0] == comb.n_images and not comb.images_shared


def test_episode_budget_truncation(structures, faces):
    eps = _build(structures, faces, seed=0, image_budget="episode", combined_image_budget=None)
    n_a = [int((eps[n].track_characters == "a").sum()) for n in ("s_e01", "s_e02")]
    assert n_a == [5, 4]  # min(real tracks, ceil(9 / 2)) per episode
    comb = eps["s_all"]
    assert comb.images_shared == (np.unique(comb.image_rows).shape[0] < comb.n_images)
    assert comb.images_shared  # "a" spends its 9 images in each episode


def test_default_episode_budget_for_episodes_series_budget_for_combined_sets(structures, faces):
    eps = _build(structures, faces, seed=2)
    series = _build(structures, faces, seed=2, image_budget="series", combined_image_budget=None)
    episode = _build(structures, faces, seed=2, image_budget="episode", combined_image_budget=None)
    for n in ("s_e01", "s_e02", "t_e01"):  # single episodes: the episode-budget draw
        assert np.array_equal(eps[n].image_rows, episode[n].image_rows)
    comb = eps["s_all"]  # combined set: the series-budget draw, no image reused
    assert np.array_equal(comb.image_rows, series["s_all"].image_rows)
    assert not comb.images_shared and comb.image_budget == "series"
    # one character -> identity map for both
    m_single = {
        (str(c), int(lab))
        for n in ("s_e01", "s_e02")
        for c, lab in zip(eps[n].track_characters, eps[n].track_labels)
    }
    assert m_single == set(zip(comb.track_characters.tolist(), comb.track_labels.tolist()))


def test_cooccur_selection_keeps_more_cannot_links(faces):
    # "a" has 20 tracks, only one overlaps "b"'s single track; a's identity (9 images) keeps 5
    rows = [(i, "a", 100 * i, 100 * i + 10) for i in range(20)] + [(99, "b", 705, 706)]
    st = [_structure("s_e01", rows)]
    kept = {
        sel: [
            _build(st, faces, seed=s, track_selection=sel)["s_e01"].cannot_link.shape[0]
            for s in range(10)
        ]
        for sel in ("uniform", "cooccur")
    }
    assert kept["cooccur"] == [1] * 10
    assert sum(kept["uniform"]) < 10


def test_seeded(structures, faces):
    a = _build(structures, faces, seed=5)
    b = _build(structures, faces, seed=5)
    c = _build(structures, faces, seed=6)
    for n in a:
        assert np.array_equal(a[n].image_rows, b[n].image_rows)
        assert np.array_equal(a[n].track_ids, b[n].track_ids)
    assert any(not np.array_equal(a[n].image_rows, c[n].image_rows) for n in a)


def test_sample_images(structures, faces):
    ep = _build(structures, faces, seed=0)["s_all"]
    idx = ep.sample_images(np.random.default_rng(0))
    assert idx.shape == (ep.n_tracks,)
    assert np.array_equal(ep.image_track[idx], np.arange(ep.n_tracks))


def test_too_many_characters_is_a_clear_error(structures, faces):
    X, y = faces
    with pytest.raises(
        DataError, match="'s_all'.*4 characters need distinct identities but only 3"
    ):
        build_from_structures(structures, X, y, [100, 101, 105])
    # one group over both series: s's 4 characters + t's 2 = 6 identities needed, 6 available
    eps = build_from_structures(
        structures,
        X,
        y,
        list(IMAGES),
        groups={"all": ["s_e01", "s_e02", "t_e01"]},
        combined={"all": ["s_e01", "s_e02", "t_e01"]},
    )
    assert eps["all"].n_characters == 6  # "a" of s and "a" of t are different people
    with pytest.raises(DataError, match="6 characters need distinct identities but only 5"):
        build_from_structures(
            structures, X, y, list(IMAGES)[:5], groups={"all": ["s_e01", "s_e02", "t_e01"]}
        )


def test_option_errors(structures, faces):
    with pytest.raises(ConfigError, match="image_budget"):
        _build(structures, faces, image_budget="global")
    with pytest.raises(ConfigError, match="track_selection"):
        _build(structures, faces, track_selection="best")
    with pytest.raises(ConfigError, match="images_per_track"):
        _build(structures, faces, images_per_track=0)
    with pytest.raises(ConfigError, match="spans groups"):
        _build(structures, faces, combined={"x": ["s_e01", "t_e01"]})


def test_series_budget_needs_one_image_per_episode(faces):
    X, y = faces
    sts = [_structure(f"s_e{i}", [(1, "a", 0, 1)]) for i in range(3)]
    with pytest.raises(DataError, match="appears in 3 episodes but its identity has only 2 images"):
        build_from_structures(sts, X, y, [103], image_budget="series")
    with pytest.raises(DataError, match="combined_image_budget"):
        build_from_structures(sts, X, y, [103])  # the default combined sets use the series budget
    eps = build_from_structures(
        sts, X, y, [103], image_budget="episode", combined_image_budget="episode"
    )
    assert eps["s_all"].images_shared


def test_count_characters(structures):
    assert count_characters(structures) == {"s_all": 4, "t_all": 2, "all": 6}


def test_read_track_labels(tmp_path):
    p = tmp_path / "x_e01.ids"
    p.write_text(
        "CVHCI_TRACKLABELS_V1\n7 sheldon\n11 leonard\n\n14 unknown_e01_1\n", encoding="utf-8"
    )
    t = read_track_labels(p)
    assert t.episode == "x_e01" and t.track_ids.tolist() == [7, 11, 14]
    assert t.characters == ["leonard", "sheldon", "unknown_e01_1"] and t.n_characters == 3
    p.write_text("7 sheldon\n", encoding="utf-8")
    with pytest.raises(DataError, match="first line must be"):
        read_track_labels(p)
    p.write_text("CVHCI_TRACKLABELS_V1\n7 sheldon\n7 penny\n", encoding="utf-8")
    with pytest.raises(DataError, match="repeat"):
        read_track_labels(p)
    p.write_text("CVHCI_TRACKLABELS_V1\nseven sheldon\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_track_labels(p)


# ---------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def real_episodes():
    # module-scoped (one build for all real-data tests); the same folder conftest resolves
    from conftest import SHARED_DATA

    return build_episodes(SHARED_DATA, seed=0)


@pytest.mark.shared_data
def test_real_track_labels(shared_data):
    for ep in EPISODES:
        assert load_track_labels(ep, shared_data).n_characters == PAPER_N_CHARACTERS[ep]
    trn, val = load_actor_lists(shared_data)
    assert (len(trn), len(val)) == (1214, 66)


@pytest.mark.shared_data
def test_real_cooccurrences_are_interval_overlaps(shared_data):
    sts = load_episode_structures(EPISODES, shared_data)
    total = same = 0
    for st in sts.values():
        assert np.array_equal(
            st.cooccur, interval_cooccurrences(st.track_ids, st.start_frame, st.end_frame)
        )
        lab = dict(zip(st.track_ids.tolist(), st.characters.tolist()))
        total += st.cooccur.shape[0]
        same += sum(lab[a] == lab[b] for a, b in st.cooccur[:, :2].tolist())
    assert (total, same) == (4936, 15)
    assert sum(st.n_tracks for st in sts.values()) == 9740
    assert count_characters(sts) == {"bbt_all": 103, "buffy_all": 109, "all": 212}


@pytest.mark.shared_data
def test_real_episodes(real_episodes):
    eps = real_episodes
    assert list(eps) == list(EPISODES) + ["bbt_all", "buffy_all"]
    for name in EPISODES:
        ep = eps[name]
        assert ep.n_characters == PAPER_N_CHARACTERS[name]
        assert 0 < ep.n_tracks <= ep.n_tracks_real
        assert ep.track_descriptors.shape == (ep.n_tracks, 128)
    assert eps["bbt_all"].n_characters == 103 and eps["buffy_all"].n_characters == 109
    assert eps["bbt_all"].n_tracks_real + eps["buffy_all"].n_tracks_real == 9740
    assert (
        eps["bbt_all"].n_cannot_link_real_same_label
        + eps["buffy_all"].n_cannot_link_real_same_label
        == 15
    )
    for name in ("bbt_all", "buffy_all"):
        ep = eps[name]
        assert not ep.images_shared and np.unique(ep.image_rows).shape[0] == ep.n_images
        assert ep.episodes == (BBT_EPISODES if name == "bbt_all" else BUFFY_EPISODES)
        # the same character keeps one identity over the whole series
        assert (
            len(set(zip(ep.track_characters.tolist(), ep.track_labels.tolist()))) == ep.n_characters
        )


@pytest.mark.shared_data
def test_real_all_episodes_do_not_fit(shared_data):
    with pytest.raises(
        DataError, match="212 characters but the split has only 109 test identities"
    ):
        build_episodes(shared_data, include_all=True)


@pytest.mark.shared_data
def test_real_all_episodes_with_enough_test_identities(shared_data):
    eps = build_episodes(shared_data, include_all=True, split_sizes=(70, 10, 219))
    assert list(eps)[-3:] == ["bbt_all", "buffy_all", "all"]
    assert eps["all"].n_characters == 212 and eps["all"].n_tracks_real == 9740
    assert not eps["all"].images_shared
    # one joint map: no identity plays a character in both series
    assert not set(eps["bbt_all"].track_labels.tolist()) & set(
        eps["buffy_all"].track_labels.tolist()
    )
