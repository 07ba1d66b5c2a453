"""Benchmark bodies run by scripts/bench.py; not part of the runtime package."""

from __future__ import annotations

import argparse


def run_main(
    description: str, options: dict[str, dict[str, object]], bench: object, argv: list[str] | None
) -> int:
    """A benchmark's own command line: parse `options`, run `bench(**args)`, print its numbers."""
    parser = argparse.ArgumentParser(description=description)
    for name, spec in options.items():
        parser.add_argument(name, **spec)  # type: ignore[arg-type]
    results = bench(**vars(parser.parse_args(argv)))  # type: ignore[operator]
    for key, value in results.items():
        print(f"{key:34s} {value:10.3f}")
    return 0
