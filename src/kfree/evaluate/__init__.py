"""Held-out evaluation: threshold calibration (:mod:`.calibrate`), the choice of a clustering rule
on validation classes (:mod:`.selection`), and scoring a predicted-clusters file against true
labels (:mod:`.compare`)."""
