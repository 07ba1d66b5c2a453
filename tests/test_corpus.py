"""Resolving the corpus (given, downloaded, synthesised), DataConfig, and speechrnn-download."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from speechrnn.data.corpus import prepare, resolve_root
from speechrnn.data.settings import DataConfig, cache_root
from speechrnn.errors import ConfigError, DataError
from speechrnn.settings import from_mapping

from support.cli import data_variant

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class _Archive:
    url: str
    sha256: str | None


def _patch(monkeypatch: pytest.MonkeyPatch, module: str, name: str, fake: Any) -> None:
    """Replace module.name, standing in a stub module when that module is not there yet."""
    try:
        real = __import__(module, fromlist=[name])
    except ImportError:
        stub = types.ModuleType(module)
        stub.Archive = _Archive  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module, stub)
        real = stub
    monkeypatch.setattr(real, name, fake, raising=False)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, toy_corpus: Path) -> list[tuple[Any, Path, Path]]:
    calls: list[tuple[Any, Path, Path]] = []

    def ensure_extracted(archive: Any, dest: Path, downloads_dir: Path, progress: bool = True):
        calls.append((archive, dest, downloads_dir))
        if not dest.exists():
            shutil.copytree(toy_corpus, dest)
        return dest

    _patch(monkeypatch, "speechrnn.data.gsc.download", "ensure_extracted", ensure_extracted)
    return calls


@pytest.fixture
def syntheses(monkeypatch: pytest.MonkeyPatch, toy_corpus: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def synthesize(out_dir: Path, **options: Any) -> Path:
        calls.append({"out_dir": out_dir, **options})
        shutil.copytree(toy_corpus, out_dir)
        return out_dir

    _patch(monkeypatch, "speechrnn.data.synth.writer", "synthesize", synthesize)
    return calls


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPEECHRNN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(DataConfig()) == tmp_path / "xdg" / "speechrnn"
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path / "env"))
    assert cache_root(DataConfig()) == tmp_path / "env"
    assert cache_root(DataConfig(cache_dir=str(tmp_path / "own"))) == tmp_path / "own"
    monkeypatch.delenv("SPEECHRNN_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root(DataConfig()) == Path.home() / ".cache" / "speechrnn"


@pytest.mark.parametrize("name", ["gsc_v1_12", "gsc_v2_12", "gsc_v2_35", "synthetic"])
def test_every_data_config_file_builds(name: str) -> None:
    data = from_mapping(DataConfig, data_variant(name), "data")
    assert data.name == name and data.root is None
    if name.endswith("_12"):
        assert data.words == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
        assert data.silence_share == data.unknown_share == 0.1
    assert data.synthetic == (name == "synthetic")


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"silence_share": 1.5}, "data.silence_share must be in"),
        ({"unknown_share": -0.1}, "data.unknown_share must be in"),
        ({"unknown_draw": "speaker"}, "data.unknown_draw must be one of clip, word"),
        ({"batch_size": 0}, "data.batch_size must be at least 1"),
        ({"resident": "always"}, "data.resident must be auto, true or false"),
        ({"sha256": "abc"}, "data.sha256 must be 64 hex digits"),
        ({"words": []}, "data.words cannot be an empty list"),
        ({"words": ["a", "a"]}, "data.words has duplicates"),
        ({"words": ["_silence_"]}, "data.words: '_silence_' is not a word"),
        ({"words": [True]}, r"data.words\[0\]: expected a string"),
        ({"cache_workers": 0}, "data.cache_workers must be at least 1"),
    ],
)
def test_config_errors_name_the_key(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_mapping(DataConfig, values, "data")


def test_defaults_are_the_gsc_v2_12_file() -> None:
    section = data_variant("gsc_v2_12")
    assert from_mapping(DataConfig, section, "data") == DataConfig()


def test_resident_auto_means_cuda_only() -> None:
    assert DataConfig().resident_on("cuda") and not DataConfig().resident_on("cpu")
    assert DataConfig(resident=True).resident_on("cpu")
    assert not DataConfig(resident=False).resident_on("cuda")


def test_existing_root_is_used_as_is_and_never_written(toy_corpus: Path, tmp_path: Path) -> None:
    before = sorted((p, p.stat().st_mtime_ns) for p in toy_corpus.rglob("*"))
    data = DataConfig(root=str(toy_corpus), cache_dir=str(tmp_path / "cache"), words=("yes",))
    assert resolve_root(data) == toy_corpus
    corpus = prepare(data, progress=False)
    assert corpus.root == toy_corpus
    assert sorted((p, p.stat().st_mtime_ns) for p in toy_corpus.rglob("*")) == before
    assert corpus.cache_dir.is_relative_to(tmp_path / "cache")


def test_missing_root_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.root: .*/nowhere does not exist"):
        resolve_root(DataConfig(root=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match=r"data\.root and data\.url are both null"):
        resolve_root(DataConfig(cache_dir=str(tmp_path), url=None))


def test_default_root_downloads_through_ensure_extracted(
    tmp_path: Path, downloads: list[tuple[Any, Path, Path]]
) -> None:
    data = from_mapping(
        DataConfig,
        {"cache_dir": str(tmp_path / "c"), **_yaml("gsc_v2_12", "url", "sha256")},
        "data",
    )
    root = resolve_root(data, progress=False)
    assert root == tmp_path / "c" / "speech_commands_v0.02"
    archive, dest, downloads_dir = downloads[0]
    assert (archive.url, archive.sha256) == (data.url, data.sha256)
    assert dest == root and downloads_dir == tmp_path / "c" / "downloads"
    assert prepare(data, progress=False).root == root


def test_synthetic_corpus_is_generated_once(
    tmp_path: Path, syntheses: list[dict[str, Any]]
) -> None:
    data = DataConfig(
        name="synthetic", synthetic=True, cache_dir=str(tmp_path), synthetic_speakers=12
    )
    data = dataclasses.replace(data, url=None, words=None, silence_share=0.0, unknown_share=0.0)
    root = resolve_root(data, progress=False)
    assert root == tmp_path / "synthetic" and syntheses[0]["speakers"] == 12
    assert resolve_root(data, progress=False) == root and len(syntheses) == 1
    own = dataclasses.replace(data, root=str(tmp_path / "mine"))
    assert resolve_root(own, progress=False) == tmp_path / "mine" and len(syntheses) == 2


def _yaml(name: str, *keys: str) -> dict[str, Any]:
    section = data_variant(name)
    return {key: section[key] for key in keys}


def _download_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPEECHRNN_CACHE": str(cwd / "cache")}
    code = "from speechrnn.cli.download import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_download_cli_prints_the_summary(toy_corpus: Path, tmp_path: Path) -> None:
    done = _download_cli(f"data.root={toy_corpus}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in ("_silence_", "_unknown_", "stop", "validation", "total", "cache:", "MiB"):
        assert needle in out
    total = next(line for line in out.splitlines() if "total" in line)
    assert [int(n) for n in total.replace("│", " ").split()[1:]] == [72, 24, 24]
    assert str(tmp_path / "cache") in out.replace("\n", "")
    assert not any(p.suffix == ".npy" for p in toy_corpus.rglob("*"))


def test_download_cli_bad_root_is_one_error_line(tmp_path: Path) -> None:
    done = _download_cli(f"data.root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "not a GSC-layout corpus" in lines[0] and "Traceback" not in done.stdout
