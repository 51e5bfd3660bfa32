"""Version of the kfree package (kept low in the layers so any module may read it)."""

__version__ = "0.1.0"
