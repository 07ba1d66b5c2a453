"""speechrnn-synth: valid GSC-layout corpus, GSC split rule, determinism, safe re-runs, errors."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn.cli.synth import main
from speechrnn.data.files import file_lock
from speechrnn.data.staging import read_marker
from speechrnn.data.synth import writer
from speechrnn.data.synth.espeak import Voice, inventory, trim_silence
from speechrnn.data.synth.writer import (
    GSC_WORDS,
    SPLIT_LISTS,
    SynthSettings,
    choose_speakers,
    gsc_split,
    split_quota,
    synthesize,
)
from speechrnn.errors import ConfigError, DataError

from support.cli import console_script, run_console

REPO = Path(__file__).resolve().parents[1]
CLIP_NAME = re.compile(r"[0-9a-f]{8}_nohash_0\.wav")


def _tensorflow_which_set(filename: str, validation: float = 10, testing: float = 10) -> str:
    """speech_commands/input_data.py `which_set`, verbatim apart from names."""
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    max_num_wavs_per_class = 2**27 - 1
    percentage_hash = (int(hash_name_hashed, 16) % (max_num_wavs_per_class + 1)) * (
        100.0 / max_num_wavs_per_class
    )
    if percentage_hash < validation:
        return "validation"
    if percentage_hash < testing + validation:
        return "testing"
    return "training"


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


def _split_of_files(root: Path) -> dict[str, str]:
    splits = {rel: "training" for rel in (p.relative_to(root).as_posix() for p in _clips(root))}
    for split, name in SPLIT_LISTS.items():
        for line in (root / name).read_text().splitlines():
            splits[line] = split
    return splits


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _no_espeak_env(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty_bin"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "PATH": str(empty), "PYTHONPATH": str(REPO)}


def test_every_clip_is_16k_mono_pcm16_one_second_with_speech(small_corpus: Path) -> None:
    clips = _clips(small_corpus)
    words = sorted(read_marker(small_corpus)["words"])
    assert sorted({p.parent.name for p in clips}) == words
    assert len(clips) == len(words) * 36
    starts = set()
    for path in clips:
        assert CLIP_NAME.fullmatch(path.name), path
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            16000,
            1,
            "PCM_16",
            16000,
        )
        wave, _ = sf.read(str(path), dtype="float32")
        frames = wave.reshape(-1, 160)  # (100, 160): 10 ms frames
        loudest = np.sqrt((frames**2).mean(axis=1)).max()
        assert loudest > 0.005, f"{path}: no speech energy"
        assert (np.abs(frames).max(axis=1) == 0).sum() >= 5, f"{path}: no silence padding"
        starts.add(int(np.flatnonzero(wave)[0]) // 1600)
    assert len(starts) >= 5  # speech sits at random offsets


def test_lists_name_existing_files_and_speaker_splits_are_disjoint(small_corpus: Path) -> None:
    speakers: dict[str, set[str]] = {"training": set(), "validation": set(), "testing": set()}
    for name in SPLIT_LISTS.values():
        lines = (small_corpus / name).read_text().splitlines()
        assert lines == sorted(lines) and lines
        for line in lines:
            assert (small_corpus / line).is_file(), line
    for rel, split in _split_of_files(small_corpus).items():
        speakers[split].add(rel.split("/")[1].split("_nohash_")[0])
    assert speakers["training"].isdisjoint(speakers["validation"] | speakers["testing"])
    assert speakers["validation"].isdisjoint(speakers["testing"])
    sizes = {split: len(ids) for split, ids in speakers.items()}
    assert sizes == split_quota(36) == {"training": 28, "validation": 4, "testing": 4}


def test_split_assignment_follows_the_gsc_hash_rule(small_corpus: Path) -> None:
    for rel, split in _split_of_files(small_corpus).items():
        assert _tensorflow_which_set(rel) == split, rel
    for speaker in (f"{i:08x}" for i in range(0, 2**32, 2**32 // 997)):
        assert gsc_split(speaker) == _tensorflow_which_set(f"yes/{speaker}_nohash_0.wav")


def test_background_noise_files(small_corpus: Path) -> None:
    noise_dir = small_corpus / "_background_noise_"
    stems = {p.stem for p in noise_dir.glob("*.wav")}
    assert {"white_noise", "pink_noise", "brown_noise", "hum", "babble"} <= stems
    low_share = {}
    for path in noise_dir.glob("*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames >= 10 * 16000
        wave, _ = sf.read(str(path), dtype="float32")
        assert np.sqrt(np.mean(wave**2)) > 0.01
        power = np.abs(np.fft.rfft(wave)) ** 2
        freqs = np.fft.rfftfreq(wave.size, 1 / 16000)
        low_share[path.stem] = power[freqs < 500].sum() / power.sum()
        if path.stem == "hum":
            assert round(freqs[np.argmax(power)]) in (50, 60, 100, 120)
    assert low_share["white_noise"] < 0.1 < low_share["pink_noise"] < low_share["brown_noise"]


def test_same_seed_gives_identical_bytes_whatever_the_jobs(tmp_path: Path) -> None:
    one = synthesize(tmp_path / "a", ["yes", "no"], speakers=4, seed=3, jobs=1, progress=False)
    two = synthesize(tmp_path / "b", ["yes", "no"], speakers=4, seed=3, jobs=2, progress=False)
    assert _tree(one) == _tree(two)
    other = synthesize(tmp_path / "c", ["yes", "no"], speakers=4, seed=4, progress=False)
    assert (
        _tree(other)["_background_noise_/white_noise.wav"]
        != _tree(one)["_background_noise_/white_noise.wav"]
    )
    assert {p.name for p in _clips(other)} != {p.name for p in _clips(one)}


def test_rerun_on_a_complete_corpus_does_nothing(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    before = {p: p.stat().st_mtime_ns for p in small_corpus.rglob("*")}
    monkeypatch.setenv("PATH", _no_espeak_env(tmp_path)["PATH"])  # nothing may be synthesized
    marker = read_marker(small_corpus)
    assert synthesize(small_corpus, marker["words"], 36, seed=0, progress=False) == small_corpus
    argv = [str(small_corpus), "--words", ",".join(marker["words"]), "--speakers", "36"]
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in small_corpus.rglob("*")} == before


def test_other_settings_or_an_unrelated_dir_are_refused(small_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="other settings: seed 0 \\(asked 1\\)"):
        synthesize(small_corpus, read_marker(small_corpus)["words"], 36, seed=1)
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        synthesize(unrelated, ["yes"], speakers=3)
    assert [p.name for p in unrelated.iterdir()] == ["notes.txt"]


def test_interrupted_run_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = writer.render_clip, []

    def flaky(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(writer, "render_clip", flaky)
    out = tmp_path / "corpus"
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, ["yes", "no"], speakers=8, jobs=2, progress=False)
    assert sorted(tmp_path.iterdir()) == []
    monkeypatch.setattr(writer, "render_clip", real)
    synthesize(out, ["yes", "no"], speakers=8, progress=False)
    assert read_marker(out)["clips"] == 16


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_never_looks_complete(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "corpus"
    cmd = [console_script("speechrnn-synth"), str(out), "--speakers", "60", "--jobs", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".corpus.partial-*/*/*.wav")) and time.monotonic() < deadline:
        time.sleep(0.05)
    caught = proc.poll() is None and bool(list(tmp_path.glob(".corpus.partial-*/*/*.wav")))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert caught, "the run was not caught mid-way"
    assert not out.exists() and read_marker(out) is None
    if sig == signal.SIGTERM:  # cleans up after itself
        assert proc.returncode == 143 and err.decode().startswith("error: terminated (SIGTERM)")
        assert not list(tmp_path.iterdir())
        return
    assert list(tmp_path.glob(".corpus.partial-*"))
    synthesize(out, ["yes"], speakers=3, progress=False)  # the next run removes the leftover
    assert read_marker(out)["clips"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_missing_espeak_gives_one_clear_line_through_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("PATH", _no_espeak_env(tmp_path)["PATH"])
    assert main([str(tmp_path / "corpus"), "--speakers", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: espeak-ng is not installed") and err.count("\n") == 1
    assert "apt-get install espeak-ng" in err and "brew install espeak-ng" in err
    assert not (tmp_path / "corpus").exists()


def test_missing_espeak_through_the_console_script(tmp_path: Path) -> None:
    done = run_console(
        "speechrnn-synth", str(tmp_path / "corpus"), env=_no_espeak_env(tmp_path), timeout=120
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "apt-get install espeak-ng" in done.stderr


def test_command_line_usage_errors_and_help(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "x"), "--speakers", "many"]) == 2  # ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error: argument --speakers: invalid int value")
    assert main([str(tmp_path / "x"), "--words", "yes,Yes!"]) == 2
    assert "words: 'Yes!'" in capsys.readouterr().err
    assert main([str(tmp_path / "x"), "--jobs", "0"]) == 2
    assert "jobs: 0" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "--speakers" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"words": ()}, "words: give at least one word"),
        ({"words": ("yes", "yes")}, "only once"),
        ({"words": ("_silence_",)}, "not a lower-case word"),
        ({"speakers": 0}, "speakers: 0"),
        ({"seed": -1}, "seed: -1"),
    ],
)
def test_settings_are_checked(settings: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        SynthSettings(**settings)


def test_speakers_are_distinct_stable_and_hundreds_are_possible() -> None:
    assert len(GSC_WORDS) == 35 and len(set(GSC_WORDS)) == 35
    # The id is the first 8 hex digits of sha1("en-us+m3|s150|p50|a80"), on any machine.
    assert Voice("en-us", "m3", 150, 50, 80).speaker_id == "c0573abc"
    assert re.fullmatch(r"[0-9a-f]{8}", Voice("en-gb", "f2", 170, 40, 60).speaker_id)
    inv = inventory()
    voices = choose_speakers(SynthSettings(speakers=600, seed=5), inv)
    ids = [v.speaker_id for v in voices]
    combos = {(v.voice, v.variant, v.rate, v.pitch, v.amplitude) for v in voices}
    assert len(set(ids)) == len(combos) == 600
    assert len({v.voice for v in voices}) == len(inv.voices) >= 5
    counts = {s: sum(gsc_split(i) == s for i in ids) for s in ("training", "validation", "testing")}
    assert counts == split_quota(600) == {"training": 480, "validation": 60, "testing": 60}
    assert choose_speakers(SynthSettings(speakers=600, seed=5), inv) == voices


def test_trim_silence_keeps_only_the_sound() -> None:
    wave = np.zeros(16000, dtype=np.float32)
    wave[4000:6000] = np.sin(np.arange(2000) / 5.0)
    trimmed = trim_silence(wave)
    assert 2000 <= trimmed.size <= 2320 and trim_silence(np.zeros(800, np.float32)).size == 0


def test_a_live_builds_partial_dir_is_kept_and_a_dead_ones_swept(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    live = tmp_path / ".corpus.partial-otherhost-1"
    dead = tmp_path / ".corpus.partial-otherhost-2"
    for partial in (live, dead):
        (partial / "yes").mkdir(parents=True)
        (tmp_path / f"{partial.name}.lock").touch()
    with file_lock(tmp_path / f"{live.name}.lock"):  # a build still running, on any host
        synthesize(out, ["yes"], speakers=2, progress=False)
        assert live.is_dir() and not dead.exists()
        assert not (tmp_path / f"{dead.name}.lock").exists()
    assert read_marker(out)["clips"] == 2
