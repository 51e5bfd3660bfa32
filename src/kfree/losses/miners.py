"""Which pairs and triplets of a batch a loss looks at.

Every miner returns plain index tensors into the batch, so a loss computes its formula once on
gathered distances and the mining strategy stays swappable:

- :func:`all_triplets` — *batch-all*: every ``(a, p, n)`` with ``y_a = y_p``, ``a != p`` and
  ``y_n != y_a`` (O(B³) triplets; fine for the P×K batches kfree uses, B ≲ 200).
- :func:`hard_triplets` — *batch-hard* (Hermans et al. 2017): per anchor, the farthest positive and
  the nearest negative in the batch.
- :func:`random_triplets` — the ICPR 2020 protocol: per anchor, one positive and one negative
  drawn uniformly from the batch.
- :func:`given_triplets` — the batch *is* a list of triplets laid out as rows ``3t, 3t+1, 3t+2``
  (what :class:`~kfree.data.samplers.TripletSampler` yields, label noise included), so labels are
  not consulted at all: a wrong positive stays wrong, which is the point of the noise study.
- :func:`all_pairs` — every unordered positive and negative pair.

All functions are pure (no state) and take the random generator explicitly where they draw.
"""

from __future__ import annotations

import torch

TRIPLET_MINING: tuple[str, ...] = ("batch-all", "batch-hard", "random", "given")


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pos, neg)`` boolean (B, B): ``pos[a, p]`` same label and ``a != p``, ``neg[a, n]`` other label."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def all_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unordered pairs ``i < j`` of a batch, split by label agreement.

    Parameters
    ----------
    labels : LongTensor of shape (B,)

    Returns
    -------
    pos, neg : LongTensor of shape (n_pos, 2) and (n_neg, 2)
    """
    b = labels.shape[0]
    iu = torch.triu_indices(b, b, offset=1, device=labels.device)  # (2, B(B-1)/2)
    same = labels[iu[0]] == labels[iu[1]]
    return iu[:, same].T.contiguous(), iu[:, ~same].T.contiguous()


def all_triplets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-all: every valid ``(anchor, positive, negative)`` index triple of the batch.

    Returns three LongTensors of shape (n_triplets,); empty when no anchor has both a positive
    and a negative.
    """
    pos, neg = _masks(labels)  # (B, B)
    valid = pos[:, :, None] & neg[:, None, :]  # (B, B, B): a, p, n
    a, p, n = valid.nonzero(as_tuple=True)
    return a, p, n


def hard_triplets(
    sq_dist: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-hard: per anchor, the farthest positive and the nearest negative.

    Parameters
    ----------
    sq_dist : tensor of shape (B, B), pairwise (squared) distances; only their order matters.
    labels : LongTensor of shape (B,)

    Returns one triplet per anchor that has at least one positive and one negative.
    """
    pos, neg = _masks(labels)
    ok = pos.any(1) & neg.any(1)
    d = sq_dist.detach()
    hardest_p = d.masked_fill(~pos, -torch.inf).argmax(1)
    hardest_n = d.masked_fill(~neg, torch.inf).argmin(1)
    a = ok.nonzero(as_tuple=True)[0]
    return a, hardest_p[a], hardest_n[a]


def random_triplets(
    labels: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor, one uniformly drawn positive and one uniformly drawn negative of the batch.

    Anchors without a positive (an identity seen once in the batch) or without a negative are
    skipped. Drawing uses ``generator`` (the global torch RNG when None), so seeded runs repeat.
    """
    pos, neg = (m.float() for m in _masks(labels))
    ok = (pos.sum(1) > 0) & (neg.sum(1) > 0)
    a = ok.nonzero(as_tuple=True)[0]
    if a.numel() == 0:
        empty = a.new_empty(0)
        return a, empty, empty
    p = torch.multinomial(pos[a], 1, generator=generator).squeeze(1)
    n = torch.multinomial(neg[a], 1, generator=generator).squeeze(1)
    return a, p, n


def given_triplets(batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplets laid out as consecutive rows ``(3t, 3t+1, 3t+2)`` = (anchor, positive, negative).

    ``batch_size`` must be a multiple of 3 (the caller checks and raises).
    """
    t = torch.arange(0, batch_size - batch_size % 3, 3, device=device)
    return t, t + 1, t + 2
