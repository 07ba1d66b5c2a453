"""Prediction: parity with the model's forward, batching, decisions, CLI output, inputs, API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn import load_model
from speechrnn.audio import load_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli.predict import main
from speechrnn.errors import AudioError
from speechrnn.inference.inputs import expand_inputs

from support.inference import (
    LABELS,
    RATE,
    modules_loaded_by_cli,
    speechlike,
    tiny_checkpoint,
    write,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    return [write(root / f"c{i}.wav", speechlike(i, seconds=0.6 + 0.1 * i)) for i in range(6)]


def _eval_path_probs(ckpt: Path, paths: list[Path]) -> np.ndarray:
    """What training/evaluation computes: the model's own forward on `load_audio` clips."""
    model = load_checkpoint(ckpt)
    batch = torch.from_numpy(np.stack([load_audio(p) for p in paths]))  # (B, 16000)
    with torch.no_grad():
        return model(batch).softmax(dim=-1).numpy()


def _all_probs(result, labels: list[str]) -> np.ndarray:
    probs = dict(result.top_k)
    return np.array([probs[label] for label in labels])


def test_predict_path_matches_the_model_forward(ckpt: Path, clips: list[Path]) -> None:
    model = load_model(ckpt, top_k=len(LABELS))
    expected = _eval_path_probs(ckpt, clips)
    for path, want in zip(clips, expected, strict=True):
        result = model.predict(path)
        np.testing.assert_allclose(_all_probs(result, LABELS), want, atol=1e-6)
        assert result.label == LABELS[int(np.argmax(want))]
        assert result.probability == pytest.approx(float(want.max()), abs=1e-6)


def test_batched_files_equal_one_at_a_time(ckpt: Path, clips: list[Path]) -> None:
    model = load_model(ckpt, top_k=len(LABELS))
    batched = [r for _, r in model.predict_files(clips, batch_size=4)]
    for path, result in zip(clips, batched, strict=True):
        single = model.predict(path)
        assert result.file == str(path) and result.label == single.label
        np.testing.assert_allclose(
            _all_probs(result, LABELS), _all_probs(single, LABELS), atol=1e-5
        )


def test_threshold_answers_unknown_and_top_k_is_sorted(ckpt: Path, clips: list[Path]) -> None:
    result = load_model(ckpt, top_k=3).predict(clips[0])
    assert len(result.top_k) == 3 and result.top_k[0] == (result.label, result.probability)
    assert [p for _, p in result.top_k] == sorted((p for _, p in result.top_k), reverse=True)
    unsure = load_model(ckpt, threshold=1.0).predict(clips[0])
    assert unsure.label == "_unknown_" and unsure.probability == result.probability


def test_silence_is_an_answer_not_an_error(tmp_path: Path, ckpt: Path) -> None:
    path = write(tmp_path / "quiet.wav", np.zeros(RATE, np.float32))
    result = load_model(ckpt).predict(path)
    assert (result.label, result.probability) == ("_silence_", 1.0)
    no_silence = tiny_checkpoint(tmp_path / "ns.pt", labels=["yes", "no"])
    assert load_model(no_silence).predict(path).label in ("yes", "no")


def test_waveform_input_is_resampled(ckpt: Path, clips: list[Path]) -> None:
    model = load_model(ckpt, top_k=len(LABELS))
    wave, _ = sf.read(clips[1], dtype="float32")
    from_file = model.predict(clips[1])
    from_array = model.predict(wave)
    np.testing.assert_allclose(_all_probs(from_array, LABELS), _all_probs(from_file, LABELS))
    stereo = model.predict(np.stack([wave, wave], axis=1))
    np.testing.assert_allclose(_all_probs(stereo, LABELS), _all_probs(from_file, LABELS))
    upsampled = model.predict(np.repeat(wave, 2), sample_rate=2 * RATE)
    assert upsampled.duration == pytest.approx(from_file.duration, abs=1e-3)
    for bad in (np.zeros(0, np.float32), np.full(100, np.nan, np.float32)):
        with pytest.raises(AudioError, match="<array>"):
            model.predict(bad)


def test_json_lines_and_python_api_agree(
    tmp_path: Path, ckpt: Path, clips: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    long = write(tmp_path / "long.wav", np.concatenate([speechlike(i) for i in range(3)]))
    assert main([str(ckpt), str(clips[0]), str(long), "--json", "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert set(records[0]) == {"file", "label", "probability", "top_k", "duration", "detections"}
    assert records[0]["detections"] is None and isinstance(records[1]["detections"], list)
    assert records[1]["duration"] == pytest.approx(3.0)
    assert records[0]["top_k"][0]["label"] == records[0]["label"]
    api = load_model(ckpt, top_k=2)
    for path, record in zip((clips[0], long), records, strict=True):
        direct = json.loads(api.predict(path).to_json())
        assert direct["top_k"] == [
            {"label": e["label"], "probability": pytest.approx(e["probability"], abs=1e-6)}
            for e in record["top_k"]
        ]
        direct["top_k"] = record["top_k"]
        assert direct == {**record, "probability": pytest.approx(record["probability"], abs=1e-6)}


def test_text_output_names_file_label_and_probability(
    ckpt: Path, clips: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(ckpt), str(clips[2])]) == 0
    out = capsys.readouterr().out.strip()
    result = load_model(ckpt).predict(clips[2])
    assert out == f"{clips[2]}  {result.label}  {result.probability:.3f}" == str(result)


def test_directories_are_searched_recursively_and_globs_expand(tmp_path: Path) -> None:
    for rel in ["b/two.flac", "a/one.wav", "a/deep/three.WAV", "a/notes.txt", "c.ogg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = expand_inputs([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a/one.wav")])
    assert found == [tmp_path / "a/deep/three.WAV", tmp_path / "a/one.wav", tmp_path / "b/two.flac"]
    assert expand_inputs([str(tmp_path / "*" / "*.flac")]) == [tmp_path / "b/two.flac"]
    assert expand_inputs([str(tmp_path / "**" / "*.wav")]) == [tmp_path / "a/one.wav"]
    (missing,) = expand_inputs([str(tmp_path / "*.mp3")])
    assert "no audio files match" in str(missing)


@pytest.mark.parametrize("model", ["ckpt", "trained_checkpoint"])  # standalone .pt, Lightning .ckpt
def test_checkpoint_path_imports_neither_lightning_nor_hydra(
    model: str, clips: list[Path], request: pytest.FixtureRequest
) -> None:
    loaded = modules_loaded_by_cli(request.getfixturevalue(model), clips[0])
    assert "torch" in loaded
    assert not loaded & {"lightning", "pytorch_lightning", "hydra", "omegaconf", "onnxruntime"}


class _Payload:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def test_pickle_bomb_checkpoint_is_refused_and_runs_nothing(
    tmp_path: Path, clips: list[Path], capfd: pytest.CaptureFixture[str]
) -> None:
    _Payload.marker = str(tmp_path / "pwned")
    bomb = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "speechrnn": _Payload()}, bomb, pickle_protocol=2)
    assert main([str(bomb), str(clips[0])]) == 2
    out, err = capfd.readouterr()
    assert not out and err.count("\n") == 1 and "refused" in err and str(bomb) in err
    assert not (tmp_path / "pwned").exists()


def _format_variants(tmp_path: Path, source: Path, narrowband: bool) -> list[Path]:
    """The same utterance in other rates, channel counts, sample formats and containers."""
    import soxr

    wave, rate = sf.read(source, dtype="float64")
    stereo = np.stack([wave, 0.8 * wave], axis=1)
    variants = [
        ("44k_stereo.wav", soxr.resample(stereo, rate, 44100), 44100, "PCM_16", "WAV"),
        ("float.wav", wave, rate, "FLOAT", "WAV"),
        ("pcm24.wav", wave, rate, "PCM_24", "WAV"),
        ("clip.flac", wave, rate, "PCM_16", "FLAC"),
        ("clip.ogg", wave, rate, "VORBIS", "OGG"),
        ("44k.flac", soxr.resample(wave, rate, 44100), 44100, "PCM_24", "FLAC"),
    ]
    if narrowband:
        variants.append(("8k.wav", soxr.resample(wave, rate, 8000), 8000, "PCM_16", "WAV"))
    out = []
    for name, data, r, subtype, fmt in variants:
        sf.write(tmp_path / name, data, r, subtype=subtype, format=fmt)
        out.append(tmp_path / name)
    return out


@pytest.mark.parametrize(
    ("word", "narrowband"),
    # 8 kHz keeps only what lies below 4 kHz: enough for "no" and "down", not for the /s/ of "yes"
    [("yes", False), ("left", False), ("down", False), ("no", True), ("down", True)],
)
def test_trained_model_gives_the_same_word_in_every_format(
    tmp_path: Path, trained_checkpoint: Path, small_corpus: Path, word: str, narrowband: bool
) -> None:
    model = load_model(trained_checkpoint)
    clips = sorted((small_corpus / word).glob("*.wav"))
    source = next(c for c in clips if model.predict(c).label == word)
    variants = _format_variants(tmp_path, source, narrowband)
    answers = {p.name: model.predict(p).label for p in variants}
    assert len(answers) == 6 + narrowband and answers == dict.fromkeys(answers, word)


def test_trained_model_predict_agrees_with_eval_path_word_by_word(
    trained_checkpoint: Path, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    words = str(small_corpus / "[!_]*")  # the word folders, not _background_noise_
    assert main([str(trained_checkpoint), words, "--json", "--top-k", "20"]) == 0
    speech = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(speech) == len(list(small_corpus.glob("[!_]*/*.wav"))) > 100
    labels = load_checkpoint(trained_checkpoint).labels
    expected = _eval_path_probs(trained_checkpoint, [Path(r["file"]) for r in speech])
    for record, want in zip(speech, expected, strict=True):
        got = {e["label"]: e["probability"] for e in record["top_k"]}
        np.testing.assert_allclose([got[lab] for lab in labels], want, atol=1e-5)
    truth = [Path(r["file"]).parent.name for r in speech]
    truth = [w if w in labels else "_unknown_" for w in truth]
    accuracy = np.mean([r["label"] == t for r, t in zip(speech, truth, strict=True)])
    assert accuracy >= 0.5  # a sanity floor, far above chance (1/8); parity is the point here


def test_trained_model_predict_matches_the_evaluation_split(
    tmp_path: Path, trained_checkpoint: Path, small_corpus: Path
) -> None:
    """Same clips, two roads: the data pipeline's cached test split, and files through predict."""
    from speechrnn.audio import PCM_SCALE
    from speechrnn.data.settings import DataConfig
    from speechrnn.data.splits import load_split

    model = load_checkpoint(trained_checkpoint)
    words = tuple(w for w in model.labels if not w.startswith("_"))
    data = DataConfig(name="small", root=str(small_corpus), cache_dir=str(tmp_path), words=words)
    split = load_split(data, "test", model.labels)
    rows = [i for i, p in enumerate(split.paths) if not p.startswith("_silence_/")]
    assert len(rows) >= 20
    with torch.no_grad():
        waves = torch.from_numpy(split.waves[rows]).float() / PCM_SCALE  # (N, 16000)
        expected = model(waves).softmax(dim=-1).numpy()
    predictor = load_model(trained_checkpoint, top_k=len(model.labels))
    files = [split.root / split.paths[i] for i in rows]
    for (_, result), want in zip(predictor.predict_files(files), expected, strict=True):
        np.testing.assert_allclose(_all_probs(result, model.labels), want, atol=1e-5)
