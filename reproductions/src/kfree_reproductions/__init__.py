"""The two papers kfree started from, reproduced on top of the kfree library.

This package is *beside* the library, not inside it: it imports :mod:`kfree`, never the other way
round. ``kfree experiment …`` finds it through the ``kfree.experiments`` entry point (see
:mod:`kfree_reproductions.cli`).

- :mod:`kfree_reproductions.bcl2019` — Ball Cluster Learning (ICCV 2019), TV-episode faces;
- :mod:`kfree_reproductions.icpr2020` — triplet losses for clustering (ICPR 2020), CIFAR-10.
"""
