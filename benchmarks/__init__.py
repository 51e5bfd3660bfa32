"""Benchmarks (outside pytest): runners that print tables and write results/benchmarks/."""
