"""The one resume policy: a record is reused only under the configuration that made it."""

from __future__ import annotations

import pytest

from kfree.exceptions import ConfigError
from kfree_reproductions.records import config_differences, refuse_changed


def test_every_field_that_differs_is_named():
    rec = {"alpha": 0.8, "lr": 0.001, "dims": [64, 32], "order": "cells"}
    assert config_differences(rec, {"alpha": 0.8, "lr": 0.001, "dims": (64, 32)}) == []
    assert config_differences(rec, {"alpha": 0.9, "lr": 0.001, "dims": (64, 16)}) == [
        "alpha: recorded 0.8, asked 0.9", "dims: recorded [64, 32], asked [64, 16]"]
    assert config_differences(rec, {"order": "other"}, ignore=("order",)) == []


def test_fields_added_later_count_as_the_behaviour_before_them():
    rec = {"alpha": 0.8}
    assert config_differences(rec, {"alpha": 0.8, "dropout": 0.0}, before_field={"dropout": 0.0}) == []
    assert config_differences(rec, {"dropout": 0.3}, before_field={"dropout": 0.0}) == [
        "dropout: recorded 0.0, asked 0.3"]
    assert config_differences(rec, {"new": 1}) == ["new: not recorded, asked 1"]
    assert config_differences(None, {"alpha": 0.8}) == ["the record carries no configuration"]


def test_refusal_is_one_line_that_says_what_to_do(tmp_path):
    refuse_changed(tmp_path / "c.json", {"lr": 0.1}, {"lr": 0.1})
    with pytest.raises(ConfigError) as e:
        refuse_changed(tmp_path / "c.json", {"lr": 0.1}, {"lr": 0.2})
    msg = str(e.value)
    assert "\n" not in msg and "lr: recorded 0.1, asked 0.2" in msg and "--no-resume" in msg
