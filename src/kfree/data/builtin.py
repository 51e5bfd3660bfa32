"""Small real data sets shipped inside the package (see ``resources/CREDITS.md``).

- ``att_faces``: AT&T (ORL) faces, 40 people × 10 images, 128-d dlib descriptors + the images
  (credit: AT&T Laboratories Cambridge).
- ``banking77``: Banking77 support-ticket intents (CC BY 4.0), 13,083 utterances, 77 intents,
  384-d MiniLM sentence embeddings (float16 on disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..exceptions import ConfigError

BUILTIN = ("att_faces", "banking77")
ALIASES = {"att": "att_faces", "faces": "att_faces", "orl": "att_faces", "banking": "banking77"}


@dataclass
class BuiltinDataset:
    """Features, identity labels and whatever can illustrate a cluster (images or texts)."""

    name: str
    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) int64
    label_names: list[str]
    images: np.ndarray | None = None  # (n, H, W) uint8
    texts: np.ndarray | None = None  # (n,) str
    split: np.ndarray | None = None  # (n,) str, the data set's own train/test split
    credit: str = ""


def _resource(name: str):
    return resources.files("kfree").joinpath("resources", name)


def load_builtin(name: str, *, with_images: bool = True) -> BuiltinDataset:
    """Load a shipped data set by name (``att_faces`` or ``banking77``)."""
    key = ALIASES.get(name, name)
    if key not in BUILTIN:
        raise ConfigError(f"unknown data set {name!r}; shipped data sets are {BUILTIN}")
    if key == "att_faces":
        with _resource("att_dlib128.npz").open("rb") as f, np.load(f) as z:
            X = z["embeddings"].astype(np.float32)
            y = z["labels"].astype(np.int64)
        images = None
        if with_images:
            with _resource("att_faces.npz").open("rb") as f, np.load(f) as z:
                images = z["images"]
        return BuiltinDataset(
            name=key, X=X, y=y, label_names=[f"s{i + 1}" for i in range(40)], images=images,
            credit="AT&T (ORL) faces, AT&T Laboratories Cambridge; dlib 128-d descriptors",
        )
    with _resource("banking77_minilm384.npz").open("rb") as f, np.load(f) as z:
        X = z["embeddings"].astype(np.float32)
        y = z["labels"].astype(np.int64)
        texts = z["texts"]
        split = z["split"]
        names = [str(s) for s in z["label_names"]]
    return BuiltinDataset(
        name=key, X=X, y=y, label_names=names, texts=texts, split=split,
        credit="Banking77 (Casanueva et al. 2020, CC BY 4.0); all-MiniLM-L6-v2 embeddings",
    )
