"""Evaluation protocols: threshold calibration, curves, demo runs."""
