"""Clustering metrics: pure functions on label arrays (no torch, no kfree.losses)."""

from .clustering import (
    adjusted_rand,
    bcubed,
    clustering_accuracy,
    contingency,
    evaluate_by_group,
    evaluate_clustering,
    n_clusters,
    nmi,
    pairwise_prf,
    wcp,
)

__all__ = [
    "adjusted_rand",
    "bcubed",
    "clustering_accuracy",
    "contingency",
    "evaluate_by_group",
    "evaluate_clustering",
    "n_clusters",
    "nmi",
    "pairwise_prf",
    "wcp",
]
