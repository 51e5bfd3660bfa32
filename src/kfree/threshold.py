"""The clustering threshold an embedding implies, with the distance it is measured in.

A threshold without its distance kind is a bug waiting to happen: BCL's ``4b`` is in *squared*
Euclidean units, the triplet ``sqrt((alpha+beta)/2)`` is in plain Euclidean units. So the value
always travels with its kind and its provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .config import finite_positive
from .distances import DISTANCES, check_distance, from_sq, to_sq

__all__ = ["DISTANCES", "Threshold"]


#: how the source of a Ward merge height begins (see :attr:`Threshold.is_ward_height`)
WARD_SOURCE = "Ward"


@dataclass(frozen=True)
class Threshold:
    """A distance threshold for cutting a dendrogram (pairs at ``<= value`` may be joined).

    Parameters
    ----------
    value : float
        The cut height, in the units of ``distance``. For unit-norm embeddings typical values
        lie in ``[0, 4]`` (sqeuclidean), ``[0, 2]`` (euclidean) or ``[0, 2]`` (cosine).
    distance : {"sqeuclidean", "euclidean", "cosine"}
        The distance the value is measured in.
    source : str
        Where it came from, e.g. ``"4b"``, ``"sqrt((alpha+beta)/2)"``, ``"validation #clusters"``.
    """

    value: float
    distance: str = "sqeuclidean"
    source: str = "user"

    def __post_init__(self) -> None:
        check_distance(self.distance)
        # a plain float: NumPy scalars (np.float32 from an embedding) pass the check but not JSON
        object.__setattr__(self, "value", finite_positive("threshold value", self.value))

    @property
    def is_ward_height(self) -> bool:
        """A Ward merge height (calibrated by kfree for a Ward rule: ``source`` starts with
        ``"Ward"``), not a distance between two points: only a Ward cut may use it."""
        return self.source.startswith(WARD_SOURCE)

    def to(self, distance: str) -> Threshold:
        """The same cut expressed in another distance (only between the Euclidean kinds and,
        for unit-norm vectors, cosine: ``d_cos = d_sq / 2``)."""
        if distance == self.distance:
            return self
        value = from_sq(to_sq(self.value, self.distance), distance)
        return Threshold(value=value, distance=distance, source=self.source + f" (as {distance})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Threshold:
        return cls(value=float(d["value"]), distance=str(d["distance"]), source=str(d["source"]))
