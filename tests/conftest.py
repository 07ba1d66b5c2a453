"""Shared fixtures: isolated cache, the small synthetic corpus, a loopback HTTP server, Hydra
composition, and one trained model per session."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig

from speechrnn.cli.registry import register_configs
from speechrnn.data.files import file_lock

from support.cli import (
    SMALL_CORPUS_SPEAKERS,
    SMALL_CORPUS_WORDS,
    TRAINED_RUN,
    compose_config,
    small_task_overrides,
    tone_task_overrides,
    train_settings,
)
from support.loopback import LoopbackServer, serve

register_configs()

# The long files first: pytest-xdist (scripts/test.sh) hands files to its workers in this order.
FIRST = ("test_demo.py", "test_cluster.py", "test_sweeps.py", "test_train.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]
) -> Path:
    """What `build(dir)` returns, built once per test session: under pytest-xdist the first
    worker to ask builds it in the temp dir all workers share, the others wait and reuse it."""
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent
    folder, done = base / f"built-{name}", base / f"built-{name}.done"
    with file_lock(base / f".built-{name}.lock"):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(str(build(folder)))
    return Path(done.read_text())


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test writes caches and downloads under a session temp dir, never ~/.cache."""
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("SPEECHRNN_CACHE")
    os.environ["SPEECHRNN_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("SPEECHRNN_CACHE", None)
    else:
        os.environ["SPEECHRNN_CACHE"] = previous


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic corpus in exact GSC layout, built once per session (~3 s; needs espeak-ng).

    9 words: the commands yes no up down left right plus bird cat dog (non-command words, i.e.
    `_unknown_` in the 12-class task); 36 espeak-ng speakers split by the GSC hash rule into
    28 training, 4 validation and 4 testing speakers; one 1 s clip per speaker and word (324 clips);
    `_background_noise_/` with 5 files of 60 s; `validation_list.txt`, `testing_list.txt`.
    Shared by all tests: treat it as read-only (copy it before changing anything).
    """
    from speechrnn.data.synth.writer import synthesize

    def build(folder: Path) -> Path:
        words, speakers = SMALL_CORPUS_WORDS, SMALL_CORPUS_SPEAKERS
        return synthesize(folder / "gsc", words, speakers, seed=0, progress=False)

    return built_once(tmp_path_factory, "small_corpus", build)


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A loopback HTTP server (port 0) in a thread; put bytes in `.files` to serve them."""
    state = LoopbackServer()
    server, thread = serve(state)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def compose_train() -> Callable[[list[str]], DictConfig]:
    return lambda overrides: compose_config("train", overrides)


@pytest.fixture(scope="session")
def trained_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run dir of lstm_small trained once per session on `small_corpus` (metrics.json, report)."""
    from speechrnn.training.train import train

    def build(run_dir: Path) -> Path:
        # Pinned so the inference tests' thresholds do not move with the real-speech recipe; 60
        # epochs and louder noise keep the spotting tests off float rounding (docs/benchmarks.md):
        augment = ("augment.time_shift_ms=100", "augment.noise_volume=0.2", "augment.speed=0.0")
        overrides = small_task_overrides(small_corpus, run_dir, *TRAINED_RUN, *augment)
        train(train_settings(overrides))
        return run_dir

    return built_once(tmp_path_factory, "trained_run", build)


@pytest.fixture(scope="session")
def trained_checkpoint(trained_run: Path) -> Path:
    """Best checkpoint of `trained_run`; labels _silence_ _unknown_ yes no up down left right."""
    return Path(json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"])


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13-word tone corpus in GSC layout, 10 speakers; read-only (copy it to change it)."""
    from support.tones import write_toy_corpus

    return built_once(
        tmp_path_factory, "toy_corpus", lambda folder: write_toy_corpus(folder / "corpus")
    )


@pytest.fixture(scope="session")
def tone_checkpoint(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lstm_small trained a few epochs on `toy_corpus` (yes no up down; ~30 s): a real, tiny model
    whose run dir also holds the CSV log of its learning curves."""
    from speechrnn.training.train import train

    def build(run_dir: Path) -> Path:
        overrides = tone_task_overrides(
            toy_corpus,
            run_dir,
            "trainer.max_epochs=8",
            "trainer.log_every_n_steps=1",
            "optim.lr=1e-2",
        )
        train(train_settings(overrides))
        return Path(json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"])

    return built_once(tmp_path_factory, "tone_run", build)
