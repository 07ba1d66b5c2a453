"""Float against int8 ONNX on the CPU: file size, one-clip latency and batched throughput.

python scripts/benchmarks/quantized.py model.onnx model.int8.onnx [--calls 200] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from speechrnn.inference.backends import OnnxBackend


def bench_onnx(path: Path, calls: int = 200, batch: int = 64, rounds: int = 10) -> dict[str, float]:
    """Size (MB), median one-clip latency (ms) and clips per second in batches of `batch`."""
    model = OnnxBackend(path)
    rng = np.random.default_rng(0)
    one = (0.1 * rng.standard_normal((1, 16_000))).astype(np.float32)  # (1, T)
    many = (0.1 * rng.standard_normal((batch, 16_000))).astype(np.float32)  # (B, T)
    model(one), model(many)  # warm-up
    latency = []
    for _ in range(calls):
        start = time.perf_counter()
        model(one)
        latency.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(rounds):
        model(many)
    elapsed = time.perf_counter() - start
    return {
        "size_mb": round(path.stat().st_size / 1e6, 3),
        "latency_ms": round(1e3 * statistics.median(latency), 2),
        "clips_per_s": round(rounds * batch / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX models (float, int8, ...)")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    results = {str(m): bench_onnx(m, args.calls, args.batch) for m in args.models}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
