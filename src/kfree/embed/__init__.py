"""Embedding networks and batched encoding."""

from .models import MLPEmbedder

__all__ = ["MLPEmbedder"]
