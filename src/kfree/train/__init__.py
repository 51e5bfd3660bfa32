"""Training loops (seeded, resumable, with an optional progress hook)."""

from .trainer import TrainResult, train_embedding

__all__ = ["TrainResult", "train_embedding"]
