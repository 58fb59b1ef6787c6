"""Likelihood on held-out data, musical metrics against a reference, published benchmarks."""
