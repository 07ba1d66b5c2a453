"""Hostile inputs: link loops, huge globs, odd names, cut and huge WAVs, bad option values."""

from __future__ import annotations

import glob
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from speechrnn.audio import read_audio
from speechrnn.cli import predict, serve
from speechrnn.errors import AudioError
from speechrnn.inference.inputs import expand_inputs

from support.inference import run_cli, speechlike, tiny_checkpoint, write

BOUND_S = 60.0


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("m") / "tiny.pt")


def _looped(tmp_path: Path) -> Path:
    folder = tmp_path / "d"
    write(folder / "one.wav", speechlike(0))
    (folder / "up").symlink_to("..")
    (folder / "loop2").symlink_to(".")
    return folder


@pytest.mark.parametrize("pattern", ["d/**/*.wav", "d/*/*/*/*.wav", "d", "d/**"])
def test_symlink_loops_answer_the_one_file_once(tmp_path: Path, pattern: str) -> None:
    _looped(tmp_path)
    start = time.monotonic()
    found = expand_inputs([str(tmp_path / pattern)])
    assert time.monotonic() - start < 5
    assert len(found) == 1 and Path(found[0]).resolve() == (tmp_path / "d/one.wav").resolve()


def test_same_file_by_two_names_is_answered_once(tmp_path: Path) -> None:
    folder = _looped(tmp_path)
    (tmp_path / "alias.wav").symlink_to(folder / "one.wav")
    assert expand_inputs([str(folder / "one.wav"), str(tmp_path / "alias.wav")]) == [
        folder / "one.wav"
    ]


def test_file_cap_gives_one_error_for_the_argument(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.wav").write_bytes(b"x")
    (entry,) = expand_inputs([str(tmp_path / "*.wav")], max_files=4)
    assert isinstance(entry, AudioError)
    assert (
        str(entry)
        == f"{tmp_path}/*.wav: expands to more than 4 files; name fewer (or raise --max-files)"
    )
    assert len(expand_inputs([str(tmp_path)], max_files=5)) == 5


def _predict(capfd: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """speechrnn-predict's main in this process: (exit status, stdout, stderr)."""
    code = predict.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def test_predict_on_a_looping_glob_ends_with_one_answer(
    tmp_path: Path, model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _looped(tmp_path)
    code, out, err = _predict(capfd, model, str(tmp_path / "d/**/*.wav"), tmp_path / "d")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1


def test_predict_max_files_flag(
    tmp_path: Path, model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        write(tmp_path / f"{i}.wav", speechlike(i))
    code, out, err = _predict(capfd, model, tmp_path, "--max-files", "2")
    assert code == 1 and out == ""
    assert (
        err.strip()
        == f"error: {tmp_path}: expands to more than 2 files; name fewer (or raise --max-files)"
    )
    code, _, err = _predict(capfd, model, tmp_path, "--max-files", "0")
    assert code == 2 and err.strip() == "error: --max-files must be in [1, 10000000], got 0"


def test_file_name_with_a_newline_stays_on_one_line(
    tmp_path: Path, model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "a\nb.wav", speechlike(1))
    broken = tmp_path / "c\nd.wav"
    broken.write_bytes(b"not audio")
    code, out, err = _predict(capfd, model, good, broken)
    assert code == 1
    (answer,) = out.strip().splitlines()
    assert answer.startswith(str(tmp_path / "a\\nb.wav") + "  ")
    (error,) = err.strip().splitlines()
    assert error.startswith(f"error: {tmp_path}/c\\nd.wav: cannot decode audio")


def _wav_header(frames: int, rate: int, channels: int = 1) -> bytes:
    data = frames * channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data)
    )


def _sparse_wav(path: Path, seconds: float, rate: int, channels: int = 1) -> Path:
    frames = int(seconds * rate)
    with path.open("wb") as out:
        out.write(_wav_header(frames, rate, channels))
        out.truncate(44 + frames * channels * 2)  # sparse: no disk, no time
    return path


def test_huge_declared_wav_is_refused_from_its_header(
    tmp_path: Path, model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _sparse_wav(tmp_path / "huge.wav", 3300, 600_000)
    start = time.monotonic()
    code, out, err = _predict(capfd, model, path)
    assert time.monotonic() - start < BOUND_S
    assert code == 1 and out == ""
    assert err.strip() == (
        f"error: {path}: too large (1,980,000,000 samples declared: 3300 s at 600000 Hz x 1 "
        "channels; at most 1,382,400,000)"
    )


def test_too_long_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _sparse_wav(tmp_path / "long.wav", 7200, 8000)
    with pytest.raises(AudioError, match=r"too long \(7200 s; at most 3600 s\)"):
        read_audio(path)


def _cut_wav(tmp_path: Path) -> Path:
    whole = write(tmp_path / "whole.wav", speechlike(2)).read_bytes()
    assert len(whole) == 32044
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:20000])
    return cut


def _cut_error(cut: Path) -> str:
    return (
        f"error: {cut}: truncated WAV: its data chunk declares 32000 bytes but the file holds "
        "19956 (0.62 of 1.00 s); re-export or re-download it"
    )


def test_cut_wav_is_refused_with_what_is_missing(
    tmp_path: Path, model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cut = _cut_wav(tmp_path)
    code, out, err = _predict(capfd, model, cut)
    assert code == 1 and out == ""
    assert err.strip() == _cut_error(cut)


def test_console_script_answers_hostile_inputs_one_line_each(tmp_path: Path, model: Path) -> None:
    """The process-level contract: one line per bad input, no traceback, exit 1, bounded time."""
    _looped(tmp_path)
    huge = _sparse_wav(tmp_path / "huge.wav", 3300, 600_000)
    cut = _cut_wav(tmp_path)
    start = time.monotonic()
    done = run_cli(model, str(tmp_path / "d/**/*.wav"), huge, cut, timeout=BOUND_S)
    assert time.monotonic() - start < BOUND_S
    assert done.returncode == 1
    assert len(done.stdout.strip().splitlines()) == 1  # d/one.wav, once
    assert done.stderr.strip().splitlines() == [
        f"error: {huge}: too large (1,980,000,000 samples declared: 3300 s at 600000 Hz x 1 "
        "channels; at most 1,382,400,000)",
        _cut_error(cut),
    ]


def test_streamed_wav_without_a_size_is_still_read(tmp_path: Path) -> None:
    body = (speechlike(3) * 32767).astype("<i2").tobytes()
    header = bytearray(_wav_header(16000, 16000))
    header[40:44] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "s.wav").write_bytes(bytes(header) + body)
    assert read_audio(tmp_path / "s.wav").shape == (16000,)


@pytest.mark.parametrize("rate", [8000, 44_100, 192_000])
def test_blockwise_resampling_matches_whole_file_resampling(tmp_path: Path, rate: int) -> None:
    import soxr

    wave = np.random.default_rng(rate).uniform(-0.3, 0.3, rate * 3).astype(np.float32)
    path = write(tmp_path / "x.wav", wave, rate, "FLOAT")
    expected = soxr.resample(wave, rate, 16_000, quality="HQ")
    np.testing.assert_array_equal(read_audio(path), expected)


def test_nan_in_a_late_block_is_refused(tmp_path: Path) -> None:
    wave = np.zeros(200_000, np.float32)
    wave[-5] = np.nan
    path = write(tmp_path / "nan.wav", wave, 16_000, "FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        read_audio(path)


def _deep_tree(root: Path, depth: int, links: bool = True) -> Path:
    """`depth` nested folders, each with an audio file, a side folder and a link back up."""
    folder = root
    for level in range(depth):
        folder = folder / f"l{level}"
        (folder / "side").mkdir(parents=True)
        (folder / f"f{level}.wav").write_bytes(b"x")
        if links:
            (folder / "up").symlink_to("..")
    return root


def _real(entries: list[Path | AudioError] | list[str]) -> set[str]:
    return {os.path.realpath(e) for e in entries if isinstance(e, Path | str)}


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("/".join(["**"] * 12) + "/*.wav", 30),
        ("/".join(["**"] * 200) + "/*.wav", 30),
        ("**/l*/" * 12 + "*.wav", 19),
        ("**/l1*/**/x*/**/y*/**/z*/**/*.wav", 0),
        ("/".join(["*"] * 25) + "/*.wav", 13),  # each `*` may also take a link up: 2^25 paths
        ("**/" + "*/" * 20 + "**/*.wav", 30),
    ],
)
def test_globs_take_linear_time(tmp_path: Path, pattern: str, found: int) -> None:
    root = _deep_tree(tmp_path / "t", 30)
    start = time.monotonic()
    entries = expand_inputs([f"{root}/{pattern}"])
    assert time.monotonic() - start < 10  # generous: each takes milliseconds
    assert len(_real(entries)) == found


@pytest.mark.parametrize(
    ("pattern", "links"),
    [
        ("*/*.wav", True),
        ("/".join(["*"] * 9) + "/*.wav", True),  # `*` follows links, as glob's does
        ("**/*.wav", False),
        ("**/l1*/**/*.wav", False),
        ("l0/**/l2/**/f1*", False),
        ("**/l1[01]", False),  # matched folders are searched
        ("**/**/l[3-5]/*.wav", False),
    ],
)
def test_globs_find_what_glob_finds(tmp_path: Path, pattern: str, links: bool) -> None:
    root = _deep_tree(tmp_path / "t", 12, links)
    expected = [
        found
        for match in glob.glob(f"{root}/{pattern}", recursive=True)
        for found in (
            glob.glob(f"{match}/**/*.wav", recursive=True) if os.path.isdir(match) else [match]
        )
    ]
    assert _real(expand_inputs([f"{root}/{pattern}"])) == _real(expected) != set()


def test_double_star_matches_hidden_names_and_takes_no_links(tmp_path: Path) -> None:
    for name in ("a/x.wav", "a/b/y.wav", "a/.hidden/z.wav", "a/b/c/w.flac", "c/v.wav", "a/n.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "c")

    def names(pattern: str) -> list[str]:
        found = expand_inputs([str(tmp_path / pattern)])
        return sorted(str(Path(p).relative_to(tmp_path)) for p in found if isinstance(p, Path))

    assert names("a/**/*.wav") == ["a/.hidden/z.wav", "a/b/y.wav", "a/x.wav"]
    assert names("a/*/*.wav") == ["a/b/y.wav", "a/link/v.wav"]  # `*` names the link
    assert names("a/**/**/**/*.flac") == ["a/b/c/w.flac"]
    assert names("a/*") == ["a/b/c/w.flac", "a/b/y.wav", "a/link/v.wav", "a/x.wav"]
    assert names("*/b") == ["a/b/c/w.flac", "a/b/y.wav"]  # a matched folder is searched
    assert names("a/**") == ["a/.hidden/z.wav", "a/b/c/w.flac", "a/b/y.wav", "a/x.wav"]


PREDICTOR_OPTIONS = {
    "--top-k": ["0", "1001", "-5"],
    "--threshold": ["nan", "inf", "-inf", "1.5", "-0.1"],
    "--stride": ["nan", "inf", "0", "2"],
    "--average": ["nan", "inf", "-1", "11"],
    "--detect-threshold": ["nan", "inf", "2"],
    "--suppress": ["nan", "inf", "-1", "1e9"],
    "--batch-size": ["0", "100000", "1e3"],
    "--max-seconds": ["nan", "inf", "0", "-1", "1e9"],
}
SERVE_OPTIONS = {
    "--port": ["70000", "-1", "65536", "nan"],
    "--max-upload-mb": ["nan", "inf", "0", "-1", "1e6"],
    "--host": ["", "a/b", "a b", "x" * 300, "a\0b", "http://x"],
}
BAD_VALUES = [
    *((predict, option, value) for option, values in PREDICTOR_OPTIONS.items() for value in values),
    *((predict, "--max-files", value) for value in ["0", "-1", "1e9", "x"]),
    *((serve, option, value) for option, values in PREDICTOR_OPTIONS.items() for value in values),
    *((serve, option, value) for option, values in SERVE_OPTIONS.items() for value in values),
]


@pytest.mark.parametrize(
    ("command", "option", "value"),
    BAD_VALUES,
    ids=[f"{c.__name__.rsplit('.')[-1]} {o}={v[:10]!r}" for c, o, v in BAD_VALUES],
)
def test_every_bad_number_or_address_is_one_line_before_the_model_is_read(
    tmp_path: Path, command, option: str, value: str, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_model.pt"  # the option must be refused before it is looked at
    audio = [] if command is serve else [str(tmp_path / "a.wav")]
    assert command.main([str(missing), *audio, f"{option}={value}"]) == 2
    out, err = capfd.readouterr()
    (line,) = err.strip().splitlines()
    assert out == "" and line.startswith("error: ") and option in line, err
    assert str(missing) not in line
