"""Benchmark bodies run by scripts/bench.py; not part of the runtime package."""
