"""Triplet losses for clustering (ICPR 2020): CIFAR-10, triplet variants L1/L2/L3, multicut vs k-means.

:mod:`.cifar` reads the data; :mod:`.alexnet` is the paper's AlexNet-BN (Protocol A,
:mod:`.protocol_a`); :mod:`.efficientnet` and :mod:`.features` give the frozen ImageNet features of
Protocol B (:mod:`.protocol_b`); :mod:`.report`, :mod:`.report_a` and :mod:`.plots` write the tables
and figures next to the paper's numbers (:mod:`.paper`); :mod:`.cli` is
``kfree experiment icpr2020``.
"""
