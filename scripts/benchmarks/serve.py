"""speechrnn-serve benchmark: /api/predict latency (1 and 8 clients) and live detection delay."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE, read_audio

from benchmarks import run_main

FRAME = 1600  # samples per WebSocket frame, as the page sends (100 ms)


def bench_serve(
    ckpt_path: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str] | None = None,
    requests: int = 64,
    words: int = 6,
) -> dict[str, float]:
    """Milliseconds for the checkpoint and the ONNX model served by a real speechrnn-serve.

    `requests` 1 s clips are posted by 1 client, then by 8 at once (p50, p95 per request); a
    recording of `words` corpus words (one per word folder in `corpus` that the model knows,
    2 s apart) is streamed at real-time pace and the delay from each word's end to its detection
    event is taken (median, max). An ONNX model is exported when `onnx_path` is not given.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="speechrnn-bench-serve-") as tmp:
        root = Path(tmp)
        if onnx_path is None:
            from speechrnn.inference.export import export_onnx

            onnx_path = export_onnx(ckpt_path, root / "model.onnx").path
        out: dict[str, float] = {}
        for tag, model in (("ckpt", ckpt_path), ("onnx", onnx_path)):
            with _server(model) as (url, labels):
                clip = _clip(Path(corpus), labels)
                for clients in (1, 8):
                    times = _latencies(url, clip, requests, clients)
                    out[f"{tag}_{clients}_clients_p50_ms"] = _percentile(times, 50)
                    out[f"{tag}_{clients}_clients_p95_ms"] = _percentile(times, 95)
                wave, ends = _recording(Path(corpus), labels, words)
                delays = _live_delays(url, wave, ends)
                out[f"{tag}_live_delay_median_ms"] = statistics.median(delays)
                out[f"{tag}_live_delay_max_ms"] = max(delays)
                out[f"{tag}_live_detected_share"] = len(delays) / len(ends)
    return out


@contextmanager
def _server(model: str | os.PathLike[str]) -> Iterator[tuple[str, list[str]]]:
    """speechrnn-serve on a free port: (URL, labels)."""
    import httpx

    cli = Path(sys.executable).parent / "speechrnn-serve"
    process = subprocess.Popen(
        [str(cli), str(model), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().split(" at ")[-1].strip().rstrip("/")  # type: ignore
        yield url, httpx.get(f"{url}/api/model").json()["labels"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _clip(corpus: Path, labels: list[str]) -> bytes:
    word = next(lab for lab in labels if (corpus / lab).is_dir())
    return next(iter(sorted((corpus / word).glob("*.wav")))).read_bytes()


def _latencies(url: str, clip: bytes, requests: int, clients: int) -> list[float]:
    """Milliseconds of each POST /api/predict, `clients` clients sharing `requests` requests."""
    import httpx

    times: list[float] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        with httpx.Client(timeout=60) as http:
            http.post(f"{url}/api/predict?name=w.wav", content=clip).raise_for_status()  # warm
            for _ in range(count):
                start = time.perf_counter()
                http.post(f"{url}/api/predict?name=w.wav", content=clip).raise_for_status()
                with lock:
                    times.append(1000 * (time.perf_counter() - start))

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def _recording(corpus: Path, labels: list[str], words: int) -> tuple[np.ndarray, list[float]]:
    """Corpus words 2 s apart after 1 s of silence: (float32 wave, each word's end in seconds)."""
    known = [lab for lab in labels if (corpus / lab).is_dir()]
    wave, ends = [np.zeros(SAMPLE_RATE, np.float32)], []
    for i in range(words):
        speech = read_audio(sorted((corpus / known[i % len(known)]).glob("*.wav"))[i])
        loud = np.flatnonzero(np.abs(speech) > 0.05 * np.abs(speech).max())
        speech = speech[loud[0] : loud[-1] + 1]
        ends.append(sum(w.shape[0] for w in wave) / SAMPLE_RATE + speech.shape[0] / SAMPLE_RATE)
        wave += [speech, np.zeros(2 * SAMPLE_RATE - speech.shape[0], np.float32)]
    return np.concatenate(wave), ends


def _live_delays(url: str, wave: np.ndarray, ends: list[float]) -> list[float]:
    """Milliseconds from each word's end (streamed at real-time pace) to its detection event."""
    from websockets.sync.client import connect

    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    delays: list[float] = []
    with connect(url.replace("http", "ws", 1) + "/api/stream") as socket:
        socket.recv()
        start = time.perf_counter()

        def listen() -> None:
            for message in socket:
                event = json.loads(message)
                if event["type"] == "detection":
                    now = time.perf_counter() - start
                    end = min(ends, key=lambda e: abs(e - event["end"]))
                    delays.append(1000 * (now - end))
                elif event["type"] == "end":
                    return

        reader = threading.Thread(target=listen)
        reader.start()
        for at in range(0, pcm.shape[0], FRAME):
            time.sleep(max(0.0, start + (at + FRAME) / SAMPLE_RATE - time.perf_counter()))
            socket.send(pcm[at : at + FRAME].tobytes())
        socket.send(json.dumps({"type": "stop"}))
        reader.join(timeout=30)
    return delays


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(argv: list[str] | None = None) -> int:
    options: dict[str, dict[str, object]] = {
        "ckpt_path": {"metavar": "CKPT"},
        "corpus": {"help": "a GSC-layout folder with the model's words"},
        "--onnx": {"dest": "onnx_path", "default": None},
        "--requests": {"type": int, "default": 64},
    }
    return run_main("Benchmark speechrnn-serve.", options, bench_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
