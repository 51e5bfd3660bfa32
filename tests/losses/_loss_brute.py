"""Brute-force reference loops shared by the loss tests (deliberately naive, no vectorisation)."""

from __future__ import annotations

import torch


def sqd(x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return ((x[i] - x[j]) ** 2).sum()


def valid_triplets(labels: list[int]) -> list[tuple[int, int, int]]:
    n = len(labels)
    return [(a, p, q) for a in range(n) for p in range(n) for q in range(n)
            if a != p and labels[a] == labels[p] and labels[q] != labels[a]]


def triplet_term(variant: str, dap: torch.Tensor, dan: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    zero = dap * 0
    if variant == "l1":
        return torch.maximum(dap - dan + alpha, zero)
    if variant == "l2":
        return torch.maximum(dap - dan + alpha, zero) + torch.maximum(dap - beta, zero)
    return torch.maximum(alpha - dan, zero) + torch.maximum(dap - beta, zero)
