"""The official separate GSC test set (data.test_set): layout, loopback download, evaluation."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf
from test_evaluate import _forced_model

from speechrnn.augment import AugmentConfig
from speechrnn.cli.evaluate import eval_task
from speechrnn.data.datamodule import SpeechCommandsDataModule
from speechrnn.data.gsc.archive import MARKER
from speechrnn.data.gsc.download import ARCHIVES
from speechrnn.data.index import speaker_of
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import ConfigError, DataError
from speechrnn.evaluation.evaluate import evaluate
from speechrnn.settings import from_mapping

from support.cli import SMALL_WORDS, compose_config, data_variant, run_console

if TYPE_CHECKING:
    from support.loopback import LoopbackServer

NAME = "speech_commands_test_set_v0.02.tar.gz"
SPEAKERS = ("0a1b2c3d", "4e5f6a7b")
LABELS = ["_silence_", "_unknown_", *SMALL_WORDS]  # no "go": its folder counts as _unknown_
YES = LABELS.index("yes")


def _write_test_set(root: Path) -> dict[str, tuple[str, str]]:
    """A tiny test set in the official layout; {path: (label under LABELS, speaker)} per clip."""
    rng = np.random.default_rng(0)
    clips: dict[str, tuple[str, str]] = {}

    def write(rel: str, label: str, speaker: str, level: float = 0.5) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        wave = rng.uniform(-level, level, 16000).astype(np.float32)
        sf.write(root / rel, wave, 16000, subtype="PCM_16", format="WAV")
        clips[rel] = (label, speaker)

    for word, label in (("yes", "yes"), ("no", "no"), ("go", "_unknown_")):
        for n, speaker in enumerate(SPEAKERS):
            write(f"{word}/{speaker}_nohash_{n}.wav", label, speaker)
    write(f"_unknown_/bird_{SPEAKERS[0]}_nohash_0.wav", "_unknown_", SPEAKERS[0])
    write(f"_unknown_/cat_{SPEAKERS[1]}_nohash_1.wav.wav", "_unknown_", SPEAKERS[1])
    for n, level in enumerate((0.01, 0.2, 0.9)):
        write(f"_silence_/noise_{n}.wav", "_silence_", "", level)
    return clips


@pytest.fixture(scope="module")
def test_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The official-layout tree (read-only: copy it to change it) and its expected clips."""
    root = tmp_path_factory.mktemp("official") / "speech_commands_test_set_v0.02"
    return root, _write_test_set(root)


@pytest.fixture(scope="module")
def payload(test_set: tuple[Path, dict[str, tuple[str, str]]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(test_set[0], arcname=".")
    return buffer.getvalue()


def _clips_of(data: DataConfig, labels: list[str]) -> dict[str, tuple[str, str]]:
    split = load_split(data, "test", labels)
    targets = split.targets.tolist()
    return {p: (labels[t], s) for p, t, s in zip(split.paths, targets, split.speakers, strict=True)}


def test_official_archive_is_downloaded_verified_and_evaluated(
    tmp_path: Path,
    http_server: LoopbackServer,
    payload: bytes,
    test_set: tuple[Path, dict[str, tuple[str, str]]],
) -> None:
    http_server.files[NAME] = payload
    sha = hashlib.sha256(payload).hexdigest()
    ckpt = _forced_model(tmp_path / "m.pt", LABELS, YES)
    overrides = [
        "data.test_set=official",
        f"data.test_url={http_server.url(NAME)}",
        f"data.test_sha256={sha}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    cfg = compose_config("eval", [f"ckpt_path={ckpt}", f"report_dir={tmp_path / 'r'}", *overrides])
    report = eval_task(cfg)

    extracted = tmp_path / "cache" / "speech_commands_test_set_v0.02"
    assert json.loads((extracted / MARKER).read_text())["sha256"] == sha
    assert (tmp_path / "cache" / "downloads" / NAME).read_bytes() == payload
    expected = test_set[1]
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["clips"] == len(expected) == 11 and metrics["corpus"] == str(extracted)
    support = {k: v["support"] for k, v in metrics["per_class"].items() if v["support"]}
    assert support == {"_silence_": 3, "_unknown_": 4, "yes": 2, "no": 2}
    assert metrics["accuracy"] == pytest.approx(2 / 11)
    assert metrics["per_speaker"]["speakers"] == 2  # silence clips have no speaker
    data = from_mapping(DataConfig, cfg.data, "data")
    assert _clips_of(data, LABELS) == expected
    evaluate(ckpt, data, report_dir=tmp_path / "r2", progress=False)
    assert len(http_server.requests) == 1  # downloaded and extracted once


def test_local_dir_is_read_as_is_with_corrupt_clips_skipped(
    tmp_path: Path,
    test_set: tuple[Path, dict[str, tuple[str, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = Path(shutil.copytree(test_set[0], tmp_path / "mine"))
    (root / "yes" / "deadbeef_nohash_0.wav").write_bytes(b"RIFF not really a wave")
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    data = DataConfig(test_set=str(root), cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        clips = _clips_of(data, LABELS)
    assert clips == test_set[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 of 12 test clips" in warnings[0]
    assert "yes/deadbeef_nohash_0.wav" in warnings[0]
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    cache = list((tmp_path / "cache" / "waves").iterdir())
    assert len(cache) == 1 and cache[0].name.startswith("mine-")  # keyed by the test-set dir


def test_labels_the_model_lacks_are_left_out_in_one_line(
    test_set: tuple[Path, dict[str, tuple[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    data = DataConfig(test_set=str(test_set[0]))
    with caplog.at_level(logging.WARNING):
        clips = _clips_of(data, ["go", "no", "yes"])
    assert {rel: label for rel, (label, _) in clips.items()} == {
        rel: rel.split("/")[0] for rel in test_set[1] if not rel.startswith("_")
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "left out 3 _silence_ clips, 2 _unknown_ clips" in warnings[0]


def test_wrong_checksum_names_expected_and_got(
    tmp_path: Path, http_server: LoopbackServer, payload: bytes
) -> None:
    http_server.files[NAME] = payload
    data = DataConfig(
        test_set="official",
        test_url=http_server.url(NAME),
        test_sha256="0" * 64,
        cache_dir=str(tmp_path),
    )
    with pytest.raises(DataError) as err:
        load_split(data, "test", LABELS)
    message = str(err.value)
    got = hashlib.sha256(payload).hexdigest()
    assert f"expected sha256 {'0' * 64}, got {got}" in message and "\n" not in message
    assert not (tmp_path / "speech_commands_test_set_v0.02").exists()


def test_bad_test_set_values_are_one_clear_line(
    tmp_path: Path, small_corpus: Path, test_set: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    cases: list[tuple[DataConfig, str]] = [
        (DataConfig(test_set=str(tmp_path / "nowhere")), r"nowhere is not a directory"),
        (
            DataConfig(test_set=str(small_corpus)),
            r"not in the official test-set layout \(no _silence_/ and _unknown_/",
        ),
    ]
    (tmp_path / "specials" / "_silence_").mkdir(parents=True)
    (tmp_path / "specials" / "_unknown_").mkdir()
    cases.append((DataConfig(test_set=str(tmp_path / "specials")), r"no word folders with .wav"))
    for data, match in cases:
        with pytest.raises(DataError, match=rf"^data\.test_set: .*{match}") as err:
            load_split(data, "test", LABELS)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"data\.test_set=.* use it with split=test, not split=v"):
        load_split(DataConfig(test_set=str(test_set[0])), "validation", LABELS)
    with pytest.raises(ConfigError, match=r"data\.test_set is empty"):
        DataConfig(test_set=" ")
    with pytest.raises(ConfigError, match=r"data\.test_set=official needs data\.test_url"):
        DataConfig(test_set="official", test_url=None)
    with pytest.raises(ConfigError, match=r"data\.test_sha256 must be 64 hex digits"):
        DataConfig(test_sha256="abc")
    with pytest.raises(ConfigError, match=r"data\.test_url: unsupported scheme 'ftp'"):
        load_split(DataConfig(test_set="official", test_url="ftp://x.org/t.tgz"), "test", LABELS)


def test_cli_evaluates_a_local_test_set(
    tmp_path: Path, test_set: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    ckpt = _forced_model(tmp_path / "m.pt", LABELS, YES)
    common = [f"ckpt_path={ckpt}", f"data.cache_dir={tmp_path / 'cache'}"]
    ok = run_console(
        "speechrnn-eval", *common, f"data.test_set={test_set[0]}", f"report_dir={tmp_path}/rep"
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "rep" / "report.html").is_file()
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["clips"] == 11
    bad = run_console(
        "speechrnn-eval", *common, f"data.test_set={tmp_path}/none", f"report_dir={tmp_path}/r2"
    )
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 1 and len(lines) == 1 and "Traceback" not in bad.stderr
    assert lines[0].startswith("error: data.test_set: ") and "is not a directory" in lines[0]


def test_datamodule_tests_on_the_same_test_set(
    small_corpus: Path, test_set: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    data = DataConfig(root=str(small_corpus), words=SMALL_WORDS, test_set=str(test_set[0]))
    module = SpeechCommandsDataModule(data, AugmentConfig(), progress=False)
    module.setup()
    tested, reference = module.eval_set("test"), load_split(data, "test", module.labels)
    assert tested.paths == reference.paths and tested.root == test_set[0]
    assert np.array_equal(tested.targets, reference.targets)
    assert np.array_equal(np.asarray(tested.waves), np.asarray(reference.waves))
    assert module.eval_set("validation").root == small_corpus


def test_speakers_and_config_defaults() -> None:
    assert speaker_of(f"_unknown_/bird_{SPEAKERS[0]}_nohash_2.wav.wav") == SPEAKERS[0]
    assert speaker_of("_silence_/running_tap_nohash_7.wav") == ""
    assert speaker_of(f"yes/{SPEAKERS[1]}_nohash_0.wav") == SPEAKERS[1]
    v2 = DataConfig()
    assert (v2.test_url, v2.test_sha256) == (
        ARCHIVES["test_v0.02"].url,
        ARCHIVES["test_v0.02"].sha256,
    )
    for name in ("gsc_v2_12", "gsc_v2_35", "synthetic"):
        section = data_variant(name)
        assert from_mapping(DataConfig, section, "data").test_url == v2.test_url
    v1 = from_mapping(DataConfig, data_variant("gsc_v1_12"), "data")
    assert (v1.test_url, v1.test_sha256, v1.test_set) == (ARCHIVES["test_v0.01"].url, None, None)
