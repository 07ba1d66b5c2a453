"""Memory benchmark: peak RSS and wall time of speechrnn-predict on long files at 16 and 192 kHz."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

DURATIONS = (1.0, 60.0, 3600.0)  # seconds of audio
RATES = (16_000, 192_000)
BLOCK_SECONDS = 10.0  # audio written at a time: a 1 h 192 kHz file never sits in memory
_HELPER = (
    "import resource, subprocess, sys;"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)
_CLI = "import sys; from speechrnn.cli.predict import main; sys.exit(main())"


def bench_memory(
    ckpt_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str] | None = None,
    durations: Sequence[float] = DURATIONS,
    rates: Sequence[int] = RATES,
    work: Path | None = None,
) -> list[dict[str, float | str]]:
    """One row per (model, rate, duration): the peak RSS (MiB) and wall seconds of a fresh
    speechrnn-predict process answering one mono int16 WAV of that length and rate.

    The peak is the process's `ru_maxrss` when it exits (see `peak_rss`); rows for
    `python -c 'import torch'` and `'import onnxruntime'` give the floors. The WAVs are
    written block by block into `work` (a temporary dir by default) and removed afterwards;
    an ONNX model is exported from the checkpoint when `onnx_path` is not given.
    """
    with tempfile.TemporaryDirectory(prefix="speechrnn-memory-", dir=work) as tmp:
        root = Path(tmp)
        if onnx_path is None:
            from speechrnn.inference.export import export_onnx

            onnx_path = export_onnx(ckpt_path, root / "model.onnx").path
        rows: list[dict[str, float | str]] = []
        for floor in ("torch", "onnxruntime"):
            peak, wall = peak_rss(["-c", f"import {floor}"])
            rows.append(
                {
                    "model": f"import {floor}",
                    "rate": 0,
                    "seconds": 0.0,
                    "peak_mib": peak,
                    "wall_s": wall,
                }
            )
            print(f"python -c 'import {floor}'  peak {peak:8.1f} MiB  {wall:7.1f} s", flush=True)
        for rate in rates:
            for seconds in durations:
                wav = write_wav(root / f"{rate}_{seconds:g}s.wav", seconds, rate)
                for kind, model in (("checkpoint", ckpt_path), ("onnx", onnx_path)):
                    peak, wall = peak_rss(["-c", _CLI, str(model), str(wav)])
                    rows.append(
                        {
                            "model": kind,
                            "rate": rate,
                            "seconds": seconds,
                            "peak_mib": peak,
                            "wall_s": wall,
                        }
                    )
                    print(
                        f"{kind:10s} {rate:>6d} Hz {seconds:>6g} s  peak {peak:8.1f} MiB  "
                        f"{wall:7.1f} s",
                        flush=True,
                    )
                wav.unlink()
    return rows


def memory_rows(
    rows: list[dict[str, float | str]],
) -> list[tuple[str, float, str, float | None, str]]:
    """bench.py table rows: each predict peak next to its backend's import floor."""
    floors = {r["model"]: float(r["peak_mib"]) for r in rows if r["rate"] == 0}
    floor_of = {"checkpoint": "import torch", "onnx": "import onnxruntime"}
    table = []
    for r in rows:
        if r["rate"] == 0:
            continue
        seconds = float(r["seconds"])
        length = (
            f"{seconds / 3600:g} h"
            if seconds >= 3600
            else (f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s")
        )
        floor = floor_of[str(r["model"])]
        table.append(
            (
                f"predict peak RSS, {r['model']}, {length} at {int(r['rate']) // 1000} kHz",
                float(r["peak_mib"]),
                "MiB",
                floors[floor],
                f"python -c '{floor}'",
            )
        )
    return table


def write_wav(path: Path, seconds: float, rate: int, seed: int = 0) -> Path:
    """A mono int16 WAV of speech-like bursts over faint noise, written in blocks."""
    needed = int(seconds * rate) * 2
    if shutil.disk_usage(path.parent).free < needed + (1 << 30):
        raise OSError(f"{path.parent}: needs {needed / 2**30:.1f} GiB free for the test file")
    rng = np.random.default_rng(seed)
    block = int(BLOCK_SECONDS * rate)
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16", format="WAV") as out:
        for first in range(0, total, block):
            t = np.arange(first, min(total, first + block)) / rate  # (b,) seconds
            voice = np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.3 * t)) * t)
            envelope = np.clip(np.sin(2 * np.pi * 0.7 * t), 0, None) ** 4
            noise = rng.standard_normal(t.shape[0])
            out.write((0.3 * envelope * voice + 0.01 * noise).astype(np.float32))
    return path


def peak_rss(args: Sequence[str]) -> tuple[float, float]:
    """(peak resident MiB, wall seconds) of `python ARGS` (speechrnn-predict, or a floor).

    A small helper interpreter starts it and reads its `ru_maxrss`: a child forked from this
    process would count this process's own memory (Linux carries the high-water mark over fork
    and exec).
    """
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", _HELPER, sys.executable, *args]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"python {' '.join(args)[:200]} exited {done.returncode}: {done.stderr.strip()}"
        )
    return int(done.stdout.split()[-1]) / 1024, wall  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak memory of speechrnn-predict.")
    parser.add_argument("ckpt")
    parser.add_argument("--onnx", default=None)
    parser.add_argument("--work", type=Path, default=None, help="where the WAVs are written")
    parser.add_argument("--seconds", type=float, nargs="+", default=list(DURATIONS))
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    args = parser.parse_args(argv)
    bench_memory(args.ckpt, args.onnx, args.seconds, args.rates, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
