"""Embedding networks, batched encoding, and the pretrained encoders of raw photos and texts.

``MLPEmbedder`` is loaded on first use: the face encoder's worker processes import this package
and need no torch (it made each worker 260 MiB and its start seconds slower).
"""

__all__ = ["MLPEmbedder"]


def __getattr__(name: str):
    if name == "MLPEmbedder":
        from .models import MLPEmbedder

        return MLPEmbedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
