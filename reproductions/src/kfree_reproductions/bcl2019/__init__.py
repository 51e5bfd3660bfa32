"""Ball Cluster Learning (ICCV 2019): face clustering of TV episodes with an unknown number of characters.

Modules, in the order data flows: :mod:`.faces` and :mod:`.episodes` build the episodes from the
shared CelebA descriptors and the TV-episode track structure (:mod:`.reference_data` holds the
paper's episode statistics); :mod:`.methods` trains one head per loss and fixes its threshold;
:mod:`.finetune` adapts a head to one episode's must-/cannot-link pairs; :mod:`.experiment` runs
the grid of (episode, method) cells; :mod:`.report` writes the tables and figures next to the
paper's numbers (:mod:`.paper`); :mod:`.cli` is ``kfree experiment bcl2019``.
"""
