"""Malformed input: one clear stderr line per bad file, no traceback, the good files answered."""

from __future__ import annotations

import io
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.cli.predict import main

from support.inference import RATE, run_cli, speechlike, tiny_checkpoint, write

Maker = Callable[[Path], str]  # builds the bad input under a dir, returns the CLI argument


def _encoded(fmt: str, subtype: str, seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, speechlike(7, seconds), RATE, format=fmt, subtype=subtype)
    return buffer.getvalue()


GOOD = {
    "wav": _encoded("WAV", "PCM_16"),
    "flac": _encoded("FLAC", "PCM_16"),
    "ogg": _encoded("OGG", "VORBIS"),
    "aiff": _encoded("AIFF", "PCM_16"),
}


def _bytes(name: str, data: bytes) -> Maker:
    def make(root: Path) -> str:
        (root / name).write_bytes(data)
        return str(root / name)

    return make


def _wav_header_patch(name: str, offset: int, fmt: str, value: int) -> Maker:
    data = bytearray(GOOD["wav"])
    struct.pack_into(fmt, data, offset, value)
    return _bytes(name, bytes(data))


def _samples(name: str, wave: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Maker:
    def make(root: Path) -> str:
        return str(write(root / name, wave, rate, subtype))

    return make


def _sparse_hours(name: str, hours: float) -> Maker:
    """A PCM16 WAV whose header declares `hours` of audio; the file is sparse (no disk use)."""

    def make(root: Path) -> str:
        size = int(hours * 3600 * RATE) * 2
        header = bytearray(GOOD["wav"][:44])
        struct.pack_into("<I", header, 4, min(size + 36, 0xFFFFFFFF))
        struct.pack_into("<I", header, 40, size)
        with open(root / name, "wb") as out:
            out.write(header)
            out.truncate(44 + size)
        return str(root / name)

    return make


def _special(kind: str) -> Maker:
    def make(root: Path) -> str:
        target = root / f"{kind}.wav"
        if kind == "loop":
            target.symlink_to(target)
        elif kind == "dangling":
            target.symlink_to(root / "nowhere.wav")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "devnull":
            return os.devnull
        elif kind == "missing":
            pass
        return str(target)

    return make


def _folder(kind: str) -> Maker:
    def make(root: Path) -> str:
        folder = root / f"dir_{kind}"
        folder.mkdir()
        if kind == "text_only":
            (folder / "README.txt").write_text("no audio here")
        elif kind == "link_loop":
            (folder / "again").symlink_to(folder)
        elif kind == "glob":
            return str(folder / "*.wav")
        return str(folder)

    return make


def _cases() -> Iterator[tuple[str, Maker]]:
    for ext, offsets in {
        "wav": [0, 1, 4, 8, 11, 12, 16, 20, 24, 30, 36, 40, 43, 44],
        "flac": [0, 4, 12, 40, 44, 100, len(GOOD["flac"]) // 2],
        "ogg": [0, 12, 50, 100, len(GOOD["ogg"]) // 2],
        "aiff": [0, 12, 30, 50],
    }.items():
        for offset in offsets:
            yield f"truncated {ext} at {offset}", _bytes(f"trunc{offset}.{ext}", GOOD[ext][:offset])
    rng = np.random.default_rng(0)
    for ext, size in [("wav", 1), ("wav", 5000), ("flac", 3000), ("ogg", 3000), ("mp3", 4000)]:
        yield f"random bytes .{ext} ({size})", _bytes(f"random{size}.{ext}", rng.bytes(size))
    riff = b"RIFF\x00\x10\x00\x00WAVEfmt " + rng.bytes(200)
    yield "RIFF/WAVE then garbage", _bytes("riff_garbage.wav", riff)
    yield "text named .wav", _bytes("notes.wav", b"hello world\n" * 50)
    yield "JSON named .flac", _bytes("data.flac", b'{"label": "yes"}')
    yield "PNG named .wav", _bytes("image.wav", b"\x89PNG\r\n\x1a\n" + rng.bytes(500))
    yield "zero channels", _wav_header_patch("ch0.wav", 22, "<H", 0)
    yield "zero sample rate", _wav_header_patch("rate0.wav", 24, "<I", 0)
    yield "zero bits per sample", _wav_header_patch("bits0.wav", 34, "<H", 0)
    yield "unknown sample format", _wav_header_patch("fmt999.wav", 20, "<H", 999)
    yield "absurd sample rate", _wav_header_patch("rate_huge.wav", 24, "<I", 2**31 - 1)
    yield "hours at 1 Hz (header)", _wav_header_patch("rate1.wav", 24, "<I", 1)
    yield "five hours declared (sparse)", _sparse_hours("five_hours.wav", 5.0)
    # A data chunk that ends before its header says: refused, never answered as if whole (#23).
    yield "truncated inside the data", _bytes("cut.wav", GOOD["wav"][:1000])
    yield "data size past the end", _wav_header_patch("big_header.wav", 40, "<I", 0xFFFFFFF0)
    yield "empty file", _bytes("empty.wav", b"")
    yield "empty flac", _bytes("empty.flac", b"")
    yield "header, no frames", _samples("no_frames.wav", np.zeros(0, np.float32))
    yield "all NaN", _samples("nan.wav", np.full(RATE, np.nan, np.float32))
    yield "one NaN", _samples("one_nan.wav", np.where(np.arange(RATE) == 99, np.nan, 0.1))
    yield "all +inf", _samples("inf.wav", np.full(800, np.inf, np.float32))
    yield (
        "NaN in one channel",
        _samples("nan_ch.wav", np.stack([np.zeros(RATE), np.full(RATE, np.nan)], 1)),
    )
    for kind in ["loop", "dangling", "fifo", "devnull", "missing"]:
        yield f"special: {kind}", _special(kind)
    for kind in ["empty", "text_only", "link_loop", "glob"]:
        yield f"folder: {kind}", _folder(kind)


CASES = list(_cases())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def _good_pair(root: Path) -> list[str]:
    return [
        str(write(root / "good_a.wav", speechlike(1))),
        str(write(root / "good_b.wav", speechlike(2))),
    ]


def test_at_least_fifty_malformed_inputs() -> None:
    assert len(CASES) >= 50 and len({name for name, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "make"), CASES, ids=[name for name, _ in CASES])
def test_bad_input_is_one_line_and_the_rest_is_answered(
    tmp_path: Path, model: Path, name: str, make: Maker, capfd: pytest.CaptureFixture[str]
) -> None:
    good_a, good_b = _good_pair(tmp_path)
    bad = make(tmp_path)
    assert main([str(model), good_a, bad, good_b]) == 1
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and bad in err, err
    assert "Traceback" not in err + out
    answered = [line.split("  ")[0] for line in out.splitlines()]
    assert answered == [good_a, good_b]


def test_every_bad_input_in_one_process(tmp_path: Path, model: Path) -> None:
    """The real console process: one line per bad input, no traceback, exit status 1."""
    good = _good_pair(tmp_path)
    bad = []
    for i, (_, make) in enumerate(CASES):
        (tmp_path / f"case{i}").mkdir()
        bad.append(make(tmp_path / f"case{i}"))
    done = run_cli(model, good[0], *bad, good[1])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(bad) and all(line.startswith("error: ") for line in lines)
    assert all(b in line for b, line in zip(bad, lines, strict=True))
    assert [line.split("  ")[0] for line in done.stdout.splitlines()] == good


def _without_root_privileges() -> tuple[str, ...]:
    """A command prefix under which permissions apply (root reads any file otherwise)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


def test_unreadable_files_and_folders(tmp_path: Path, model: Path) -> None:
    prefix = _without_root_privileges()
    good = str(write(tmp_path / "good.wav", speechlike(3)))
    locked = write(tmp_path / "locked.wav", speechlike(4))
    locked_dir = tmp_path / "locked_dir"
    write(locked_dir / "inside.wav", speechlike(5))
    locked.chmod(0o000)
    locked_dir.chmod(0o000)
    try:
        done = run_cli(model, locked, good, locked_dir, prefix=prefix)
    finally:
        locked_dir.chmod(0o755)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 2 and str(locked) in lines[0] and str(locked_dir) in lines[1]
    assert "ermission denied" in lines[0] and "ermission denied" in lines[1]
    assert done.stdout.split("  ")[0] == good


VALID_ODDITIES = [
    ("WAV named .flac", _bytes("really_wav.flac", GOOD["wav"])),
    ("FLAC named .wav", _bytes("really_flac.wav", GOOD["flac"])),
    ("one sample", _samples("one.wav", np.full(1, 0.5, np.float32))),
    ("digital silence", _samples("silence.wav", np.zeros(RATE, np.float32), subtype="PCM_16")),
    ("full-scale clipping", _samples("clip.wav", np.sign(speechlike(8)) * 1.0, subtype="PCM_16")),
    ("8-bit unsigned", _samples("u8.wav", speechlike(9), subtype="PCM_U8")),
    (
        "6 channels at 48 kHz",
        _samples("surround.wav", np.tile(speechlike(1, 1.0)[:, None], 6), 48000),
    ),
    (
        "three seconds (scanned)",
        _samples("long.wav", np.concatenate([speechlike(i) for i in range(3)])),
    ),
]


@pytest.mark.parametrize(("name", "make"), VALID_ODDITIES, ids=[n for n, _ in VALID_ODDITIES])
def test_odd_but_valid_audio_is_answered(
    tmp_path: Path, model: Path, name: str, make: Maker, capfd: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    assert main([str(model), path]) == 0
    out, err = capfd.readouterr()
    assert not err and out.startswith(f"{path}  ")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing", "not found"),
        ("directory", "not found"),
        ("empty", "not a readable checkpoint"),
        ("garbage", "not a readable checkpoint"),
        ("truncated", "not a readable checkpoint"),
        ("foreign", "not a speechrnn checkpoint"),
        ("onnx_garbage", "not a readable ONNX model"),
        ("onnx_missing", "model not found"),
        ("onnx_foreign", "not a speechrnn ONNX model"),
    ],
)
def test_unusable_model_is_one_line_and_exit_2(
    tmp_path: Path, model: Path, name: str, needle: str, capfd: pytest.CaptureFixture[str]
) -> None:
    target = _bad_model(tmp_path, model, name)
    assert main([str(target), *_good_pair(tmp_path)]) == 2
    out, err = capfd.readouterr()
    assert not out and err.count("\n") == 1 and needle in err and str(target) in err


def _bad_model(root: Path, model: Path, kind: str) -> Path:
    suffix = ".onnx" if kind.startswith("onnx") else ".pt"
    target = root / f"bad{suffix}"
    if kind == "directory":
        target.mkdir()
    elif kind in ("empty", "garbage", "truncated", "onnx_garbage"):
        data = {"empty": b"", "garbage": b"\x00junk" * 99, "onnx_garbage": b"\x08\x07junk" * 9}
        target.write_bytes(data.get(kind, model.read_bytes()[:2000]))
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, target)
    elif kind == "onnx_foreign":
        import onnx
        from onnx import TensorProto, helper

        x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y"))
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        onnx.save(helper.make_model(graph), target)
    return target
