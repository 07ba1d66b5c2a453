"""Data-loading benchmark: clips/s delivered after augmentation vs a per-item librosa Dataset."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from speechrnn.audio import fit_clip
from speechrnn.augment import AugmentConfig
from speechrnn.data.datamodule import SpeechCommandsDataModule
from speechrnn.data.index import scan_corpus, word_of
from speechrnn.data.settings import DataConfig

from support.tones import TOY_OTHERS, TOY_WORDS, write_toy_corpus


def bench_corpus(out: Path, clips: int = 20_000) -> Path:
    """A tone corpus of at least `clips` clips at `out` (reused when already there)."""
    words = TOY_WORDS + TOY_OTHERS
    if not (out / "testing_list.txt").is_file():
        write_toy_corpus(out, words, speakers=math.ceil(clips / len(words)))
    return out


def bench_datamodule(
    root: Path,
    cache_dir: Path,
    device: str = "cpu",
    batch_size: int = 256,
    seconds: float = 10.0,
    augment: bool = True,
) -> dict[str, float]:
    """SpeechCommandsDataModule: cache build, setup, then training clips per second delivered
    (with the default augmentation, or none)."""
    data = DataConfig(root=str(root), cache_dir=str(cache_dir), batch_size=batch_size)
    module = SpeechCommandsDataModule(data, AugmentConfig(), progress=False)
    start = time.perf_counter()
    module.prepare_data()
    built = time.perf_counter() - start
    start = time.perf_counter()
    module.setup("fit")
    ready = time.perf_counter() - start
    target = torch.device(device)

    def deliver(batch: Any) -> int:
        waves, _ = module.gather(batch._replace(rows=batch.rows.to(target)), augment=augment)
        return waves.shape[0]

    loader = module.train_dataloader()
    start = time.perf_counter()
    deliver(next(iter(loader)))  # moves the resident store onto the device once
    _sync(target)
    first = time.perf_counter() - start
    clips, start = _drain((deliver(b) for b in _forever(loader)), seconds, target)
    return {
        "cache_build_s": built,
        "setup_s": ready,
        "first_batch_s": first,
        "clips_per_s": clips / (time.perf_counter() - start),
    }


class LibrosaClips(Dataset[tuple[torch.Tensor, int]]):
    """The baseline: one WAV decoded with librosa per item, padded or cropped to 1 s."""

    def __init__(self, root: Path, paths: list[str]) -> None:
        self.root, self.paths = root, paths
        words = sorted({word_of(p) for p in paths})
        self.targets = [words.index(word_of(p)) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import librosa

        wave, _ = librosa.load(self.root / self.paths[i], sr=16_000)
        return torch.from_numpy(fit_clip(wave.astype(np.float32))), self.targets[i]


def bench_baseline(
    root: Path, workers: int = 2, batch_size: int = 256, seconds: float = 10.0
) -> dict[str, float]:
    """Clips per second from LibrosaClips in `workers` DataLoader workers, once they run."""
    dataset = LibrosaClips(root, list(scan_corpus(root).splits["train"]))
    loader = DataLoader(
        dataset, batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    batches = _forever(loader)
    next(batches)  # workers started
    clips, start = _drain((w.shape[0] for w, _ in batches), seconds, torch.device("cpu"))
    return {"clips_per_s": clips / (time.perf_counter() - start)}


def benchmark(
    work: Path,
    clips: int = 20_000,
    device: str = "cpu",
    workers: int = 2,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Both loaders on one >= `clips` corpus under `work`; the ratio of their clips/s."""
    root = bench_corpus(work / "corpus", clips)
    ours = bench_datamodule(root, work / "cache", device, seconds=seconds)
    plain = bench_datamodule(root, work / "cache", device, seconds=seconds, augment=False)
    base = bench_baseline(root, workers, seconds=seconds)
    return {
        "corpus_clips": sum(len(s) for s in scan_corpus(root).splits.values()),
        "device": device,
        "datamodule": ours,
        "datamodule_not_augmented": plain,
        "librosa_workers": workers,
        "baseline": base,
        "speedup": ours["clips_per_s"] / base["clips_per_s"],
        "speedup_not_augmented": plain["clips_per_s"] / base["clips_per_s"],
    }


def _forever(loader: DataLoader) -> Iterator[Any]:
    """The loader's batches, epoch after epoch."""
    return itertools.chain.from_iterable(iter(loader) for _ in itertools.count())


def _drain(sizes: Iterator[int], seconds: float, device: torch.device) -> tuple[int, float]:
    """(clips delivered within about `seconds`, start time) from an iterator of batch sizes."""
    clips, start = 0, time.perf_counter()
    for size in sizes:
        clips += size
        if time.perf_counter() - start > seconds:
            break
    _sync(device)
    return clips, start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("work", type=Path, help="folder for the corpus and its cache (reused)")
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = benchmark(args.work, args.clips, args.device, args.workers, args.seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
