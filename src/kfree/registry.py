"""Name → component lookup, so the CLI and configs can say ``--loss triplet-l3``.

Entries are import paths resolved lazily: ``kfree --help`` stays fast and a component's heavy
imports happen only when it is used. An unknown name raises a ConfigError listing valid names.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .exceptions import ConfigError, MissingDependencyError

_REGISTRY: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "loss": {
        "bcl": ("kfree.losses.ball_cluster:BallClusterLoss", {}),
        "bcl-ft": ("kfree.losses.pairwise:PairwiseConstraintLoss", {"variant": "bcl"}),
        "pairwise": ("kfree.losses.pairwise:PairwiseConstraintLoss", {}),
        "triplet": ("kfree.losses.triplet:TripletLoss", {}),
        "triplet-l1": ("kfree.losses.triplet:TripletLoss", {"variant": "l1"}),
        "triplet-l2": ("kfree.losses.triplet:TripletLoss", {"variant": "l2"}),
        "triplet-l3": ("kfree.losses.triplet:TripletLoss", {"variant": "l3"}),
        "prototypical": ("kfree.losses.prototypical:PrototypicalLoss", {}),
        "contrastive": ("kfree.losses.contrastive:ContrastiveLoss", {}),
        "softmax": ("kfree.losses.softmax:SoftmaxLoss", {}),
        "norm-softmax": ("kfree.losses.normalized_softmax:NormalizedSoftmaxLoss", {}),
    },
    "cluster": {
        "hac": ("kfree.cluster.threshold_hac:ThresholdAgglomerative", {}),
        "ward": ("kfree.cluster.ward:WardThreshold", {}),
        "multicut": ("kfree.cluster.multicut:MulticutClustering", {}),
        "kmeans": ("kfree.cluster.kmeans:KMeansClustering", {}),
        "hac-k": ("kfree.cluster.hac_k:AgglomerativeK", {}),
        "xmeans": ("kfree.cluster.xmeans:XMeans", {}),
        "gmeans": ("kfree.cluster.gmeans:GMeans", {}),
        "hdbscan": ("kfree.cluster.external_hdbscan:HDBSCANBaseline", {}),
        "finch": ("kfree.cluster.external_finch:FINCHBaseline", {}),
        "knn-cc": ("kfree.cluster.knn_components:KNNConnectedComponents", {}),
    },
}


#: Components that need an optional package: (kind, name) -> (module to import, pip extra).
REQUIRES: dict[tuple[str, str], tuple[str, str]] = {
    ("cluster", "hdbscan"): ("hdbscan", "baselines"),
    ("cluster", "finch"): ("finch", "baselines"),  # PyPI finch-clust
}


def missing_requirement(kind: str, name: str) -> str | None:
    """Why ``name`` cannot be used here (a one-line instruction), or None when it can."""
    req = REQUIRES.get((kind, name))
    if req is None:
        return None
    module, extra = req
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or None in sys.modules
        found = False
    if found:
        return None
    return (f"{kind} {name!r} needs the optional package {module!r}, which is not installed: "
            f"pip install 'kfree[{extra}]'")


def available(kind: str, name: str) -> bool:
    """Whether the component's optional packages (if any) are installed."""
    return missing_requirement(kind, name) is None


def register(kind: str, name: str, target: str, **defaults: Any) -> None:
    """Add ``name`` → ``module:Class`` (with default keyword arguments) under ``kind``."""
    _REGISTRY.setdefault(kind, {})[name] = (target, defaults)


def names(kind: str) -> list[str]:
    return sorted(_REGISTRY.get(kind, {}))


def resolve(kind: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The class registered under ``name`` and its default keyword arguments."""
    entries = _REGISTRY.get(kind)
    if entries is None:
        raise ConfigError(f"unknown component kind {kind!r}; kinds are {sorted(_REGISTRY)}")
    if name not in entries:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {names(kind)}")
    missing = missing_requirement(kind, name)
    if missing is not None:
        raise MissingDependencyError(missing)
    target, defaults = entries[name]
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr), dict(defaults)


def get(kind: str, name: str, **kwargs: Any) -> Any:
    """Instantiate the component ``name`` of ``kind`` with its defaults updated by ``kwargs``."""
    cls, defaults = resolve(kind, name)
    defaults.update(kwargs)
    try:
        return cls(**defaults)
    except TypeError as e:
        raise ConfigError(f"bad parameters for {kind} {name!r}: {e}") from None
