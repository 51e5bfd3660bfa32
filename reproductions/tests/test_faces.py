"""CelebA descriptor loader, shared-data root resolution and the default identity split."""

from __future__ import annotations

import numpy as np
import pytest

from kfree.exceptions import DataError, DataFileNotFoundError
from kfree_reproductions.bcl2019.faces import (
    CELEBA_FILE,
    ENV_VAR,
    FaceDescriptors,
    load_celeba_faces,
    shared_data_root,
    split_faces,
)


def _write_faces(root, rng, n_ids=12, per=5, **drop):
    n = n_ids * per
    arrays = {
        "embeddings": rng.normal(size=(n, 128)).astype(np.float32),
        "labels": np.repeat(np.arange(n_ids), per).astype(np.int64),
        "celeba_identity": np.repeat(1000 + np.arange(n_ids), per).astype(np.int64),
        "filenames": np.asarray([f"{i:06d}.jpg" for i in range(n)]),
    }
    for k in drop:
        arrays.pop(k)
    path = root / CELEBA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_shared_data_root_explicit_env_and_missing(tmp_path, monkeypatch):
    assert shared_data_root(tmp_path) == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert shared_data_root() == tmp_path
    with pytest.raises(DataFileNotFoundError, match="shared data folder not found"):
        shared_data_root(tmp_path / "nope")


def test_load_synthetic_faces(tmp_path, rng):
    path = _write_faces(tmp_path, rng)
    for where in (tmp_path, path):
        f = load_celeba_faces(where)
        assert isinstance(f, FaceDescriptors)
        assert f.embeddings.shape == (60, 128) and f.embeddings.dtype == np.float32
        assert f.n_faces == 60 and f.n_identities == 12
        assert f.images_per_identity().tolist() == [5] * 12
        assert f.filenames[0] == "000000.jpg" and f.identity_ids[5] == 1001


def test_load_faces_errors(tmp_path, rng):
    with pytest.raises(DataFileNotFoundError, match="CelebA descriptors not found"):
        load_celeba_faces(tmp_path)
    _write_faces(tmp_path, rng, filenames=True)
    with pytest.raises(DataError, match="filenames"):
        load_celeba_faces(tmp_path)


def test_split_faces_disjoint_and_seeded(tmp_path, rng):
    f = load_celeba_faces(_write_faces(tmp_path, rng))
    s = split_faces(f, 6, 2, 4, seed=3)
    assert (len(s.train_ids), len(s.val_ids), len(s.test_ids)) == (6, 2, 4)
    assert not set(s.train_ids) & set(s.val_ids) and not set(s.train_ids) & set(s.test_ids)
    assert not set(s.val_ids) & set(s.test_ids)
    assert np.array_equal(s.test_ids, split_faces(f, 6, 2, 4, seed=3).test_ids)
    with pytest.raises(DataError, match="only 12"):
        split_faces(f, 10, 2, 4)


@pytest.mark.shared_data
def test_real_celeba(shared_data):
    f = load_celeba_faces(shared_data)
    assert f.embeddings.shape == (6279, 128)
    assert f.n_identities == 299
    counts = f.images_per_identity()
    assert counts.min() == 2 and counts.max() == 30
    s = split_faces(f, seed=0)
    assert (len(s.train_ids), len(s.val_ids), len(s.test_ids)) == (170, 20, 109)
    assert len(set(s.train_ids) | set(s.val_ids) | set(s.test_ids)) == 299
