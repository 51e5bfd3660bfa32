"""Softmax classification features: the BCL paper's "base CNN" baseline.

A linear classifier over the training identities is trained with cross-entropy on top of the
embedding; the embedding is then used for clustering. Classification only asks that each
training identity wins its own logit, which says nothing about distances between *unseen*
identities, so no clustering threshold follows (calibrate one on validation identities).

The classifier needs the number of training identities and the embedding size, which only the
trainer knows: it calls :meth:`SoftmaxLoss.on_num_classes` before building the optimiser, so the
classifier's weights are optimised with the network (at ``lr × param_lr_scale``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ConfigError, DataError
from ..registry import register
from .base import EmbeddingLoss


def check_classes(n_classes: int | None, dim: int | None) -> None:
    if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 2):
        raise ConfigError(f"n_classes={n_classes!r} must be an int >= 2")
    if dim is not None and (not isinstance(dim, int) or dim < 1):
        raise ConfigError(f"dim={dim!r} must be an int >= 1 (the embedding size)")


def check_labels(labels: torch.Tensor, n_classes: int) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise DataError(
            f"labels must be class indices in [0, {n_classes - 1}], got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )


class ClassifierLoss(EmbeddingLoss):
    """Cross-entropy over the training identities of logits that a subclass computes (:meth:`logits`)."""

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_input(self, embeddings: torch.Tensor, in_dim: int | None) -> None:
        """Raise unless the classifier is built (``in_dim`` is its input size, ``None`` before
        :meth:`on_num_classes`) and takes embeddings of this size."""
        if in_dim is None:
            raise ConfigError(
                f"{type(self).__name__} needs the number of classes: call on_num_classes(n_classes, dim) "
                "(the trainer does) or pass n_classes= and dim="
            )
        if embeddings.shape[1] != in_dim:
            raise DataError(f"embeddings have dim {embeddings.shape[1]} but the classifier expects {in_dim}")

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.logits(embeddings)
        check_labels(labels, logits.shape[1])
        if labels.numel() == 0:
            return self.zero(embeddings)
        return F.cross_entropy(logits, labels)


@register("loss", "softmax")
class SoftmaxLoss(ClassifierLoss):
    """Cross-entropy of a linear classifier ``W f + c`` over the training identities.

    Parameters
    ----------
    n_classes, dim : int, optional
        Number of training identities (>= 2) and embedding size. Usually left out: the trainer
        supplies them through :meth:`on_num_classes`.

    Labels must be class indices in ``[0, n_classes)`` (the trainer maps identities to them).
    """

    name = "softmax"
    min_classes_per_batch = 1

    def __init__(self, *, n_classes: int | None = None, dim: int | None = None) -> None:
        super().__init__()
        check_classes(n_classes, dim)
        self.classifier: nn.Linear | None = None
        if n_classes is not None and dim is not None:
            self.on_num_classes(n_classes, dim)

    def on_num_classes(self, n_classes: int, dim: int) -> None:
        check_classes(int(n_classes), int(dim))
        c = self.classifier
        if c is None or c.out_features != n_classes or c.in_features != dim:
            self.classifier = nn.Linear(int(dim), int(n_classes))

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Class scores of shape (batch, n_classes)."""
        self.check_input(embeddings, None if self.classifier is None else self.classifier.in_features)
        return self.classifier(embeddings)

    def hparams(self) -> dict[str, Any]:
        c = self.classifier
        return {"n_classes": c.out_features if c is not None else None,
                "dim": c.in_features if c is not None else None}
