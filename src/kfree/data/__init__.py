"""Data: reading users' files, the shipped default sets, identity splits, batch samplers."""

from .builtin import load_builtin
from .io import LabelledData, load_features
from .splits import IdentitySplit, split_identities

__all__ = ["IdentitySplit", "LabelledData", "load_builtin", "load_features", "split_identities"]
