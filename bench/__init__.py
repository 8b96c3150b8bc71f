"""Benchmarks: run one with ``python -m bench.<name>``; results go to ``bench/results/``."""
