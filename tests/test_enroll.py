"""speechrnn-enroll end to end on takes from the small corpus: the taught model knows the new
word and answers the old ones as before; bad takes, words and models are one line each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.audio import read_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.inference.predict import load_model
from speechrnn.labels import SILENCE, UNKNOWN
from speechrnn.training.anchors import Anchors, body_fingerprint, corpus_anchors, head_inputs
from speechrnn.training.enroll import anchors_beside, check_word
from speechrnn.training.new_row import Row, calibrate, fit_row

from support.inference import RATE, cli_env, split_clips, tiny_checkpoint, write

WORD = "dog"  # an _unknown_ word of the trained model: what a user would teach it


def training_clips(corpus: Path, word: str) -> list[Path]:
    return split_clips(corpus, word, "train")


def held_out_clips(corpus: Path, word: str) -> list[Path]:
    return split_clips(corpus, word, "test")


def enroll_cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    code = "import sys; from speechrnn.cli.enroll import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=cli_env(),
    )  # fmt: skip


def old_accuracy(model_path: Path, corpus: Path, labels: list[str]) -> float:
    """Accuracy on the test split's clips of `labels` (the base model's), the new word's own
    clips (`_unknown_` to the base) left out."""
    model = load_model(model_path)
    words = tuple(w for w in labels if w not in (SILENCE, UNKNOWN))
    clips = load_split(DataConfig(root=str(corpus), words=words), "test", labels)
    rows = [i for i, path in enumerate(clips.paths) if not path.startswith(f"{WORD}/")]
    probs = model.probabilities(np.asarray(clips.waves[rows], np.float32) / 32768.0)
    said = [model.labels[i] for i in probs.argmax(axis=1)]
    truth = [labels[t] for t in clips.targets[rows]]
    return float(np.mean([s == t for s, t in zip(said, truth, strict=True)]))


@pytest.fixture(scope="module")
def taught(
    trained_checkpoint: Path, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The trained model taught `dog` by the CLI from 8 takes, one file each."""
    out = tmp_path_factory.mktemp("taught") / "dog"
    takes = training_clips(small_corpus, WORD)[:8]
    done = enroll_cli(WORD, *takes, "-m", trained_checkpoint, "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and f"wrote {out}/model.pt and {out}/model.onnx" in done.stdout
    return out


def test_the_taught_model_knows_the_word_and_keeps_the_others(
    taught: Path, trained_checkpoint: Path, small_corpus: Path
) -> None:
    base = load_checkpoint(trained_checkpoint)
    record = json.loads((taught / "enroll.json").read_text())
    assert record["labels"] == [*base.labels, WORD] and len(record["takes"]["takes"]) == 8
    assert set(record["negatives"]) == {"noise", "reversed takes", "espeak-ng words"}  # no anchors
    model = load_model(taught / "model.onnx")
    assert model.labels == [*base.labels, WORD]
    heard = [model.predict(p).label for p in held_out_clips(small_corpus, WORD)]
    assert heard.count(WORD) >= len(heard) / 2, heard  # speakers it never heard
    before = old_accuracy(trained_checkpoint, small_corpus, base.labels)
    after = old_accuracy(taught / "model.onnx", small_corpus, base.labels)
    assert after >= before - 0.05, (before, after)


def test_old_logits_are_the_same_numbers(taught: Path, trained_checkpoint: Path) -> None:
    base, new = load_checkpoint(trained_checkpoint), load_checkpoint(taught / "model.pt")
    wave = torch.from_numpy(
        np.random.default_rng(0).uniform(-0.3, 0.3, (4, RATE)).astype(np.float32)
    )
    with torch.inference_mode():
        torch.testing.assert_close(new(wave)[:, :-1], base(wave), rtol=0, atol=0)


def test_one_recording_of_several_takes_teaches_too(
    trained_checkpoint: Path, small_corpus: Path, tmp_path: Path
) -> None:
    gap = np.zeros(RATE // 2, np.float32)
    takes = [read_audio(p) for p in training_clips(small_corpus, "cat")[:6]]
    recording = write(
        tmp_path / "takes.flac",
        np.concatenate([x for t in takes for x in (t, gap)]),
        subtype="PCM_16",
    )
    done = enroll_cli("cat", recording, "-m", trained_checkpoint, "-o", tmp_path / "cat", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert len(record["takes"]["takes"]) == 6 and record["word"] == "cat"


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (["_x"], 2, r"word '_x': give 1 to 40 characters"),
        (["yes"], 2, r"word 'yes' is already one of the model's labels"),
        (["bird", "--min-takes", "0"], 2, r"--min-takes must be in \[1, 100\], got 0"),
    ],
)
def test_bad_words_and_options_are_one_line(
    trained_checkpoint: Path,
    small_corpus: Path,
    tmp_path: Path,
    args: list[str],
    status: int,
    needle: str,
) -> None:
    takes = training_clips(small_corpus, "bird")[:5]
    done = enroll_cli(args[0], *takes, "-m", trained_checkpoint, "-o", tmp_path / "out", *args[1:])
    assert done.returncode == status, done.stderr
    assert len(done.stderr.splitlines()) == 1 and re.search(needle, done.stderr)


def test_bad_takes_are_one_line_each(
    trained_checkpoint: Path, small_corpus: Path, tmp_path: Path
) -> None:
    takes = training_clips(small_corpus, "bird")[:3]
    silent = write(tmp_path / "silent.wav", np.zeros(RATE, np.float32))
    done = enroll_cli("bird", *takes, silent, "-m", trained_checkpoint, "-o", tmp_path / "o")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines == [
        f"error: {silent}: silent (loudest 25 ms at -100 dBFS); check the microphone and its level"
    ]
    done = enroll_cli("bird", *takes, "-m", trained_checkpoint, "-o", tmp_path / "o")
    assert (
        done.returncode == 1
        and "3 takes found in 3 recordings; say the word at least 5" in done.stderr
    )
    onnx = enroll_cli("bird", *takes, "-m", tmp_path / "model.onnx")
    assert onnx.returncode == 2 and "only a checkpoint (.ckpt, .pt) can learn a word" in onnx.stderr
    assert not (tmp_path / "o").exists()


def test_anchors_of_the_same_body_stand_in_for_the_corpus(
    trained_checkpoint: Path, small_corpus: Path, tmp_path: Path
) -> None:
    model = load_checkpoint(trained_checkpoint)
    base = model.save(tmp_path / "base.pt")
    anchors = corpus_anchors(model, str(small_corpus), per_label=8)
    assert anchors.body == body_fingerprint(model) and WORD in anchors.words  # _unknown_ clips
    assert anchors.embeddings.shape[1:] == (1, model.config.output_size)
    anchors.save(anchors_beside(base))
    loaded = Anchors.load(anchors_beside(base))
    assert loaded.words == anchors.words and np.array_equal(loaded.embeddings, anchors.embeddings)
    takes = training_clips(small_corpus, WORD)[:5]
    done = enroll_cli(WORD, *takes, "-m", base, "-o", tmp_path / "out", "--json")
    assert done.returncode == 0, done.stderr
    negatives = json.loads(done.stdout)["negatives"]
    assert set(negatives) == {"noise", "reversed takes", "anchors"}
    assert negatives["anchors"] == len(anchors.words) - anchors.words.count(WORD)
    assert anchors_beside(tmp_path / "out" / "model.pt").is_file()  # the body is unchanged


def test_a_row_on_step_embeddings_wins_at_some_step_and_stays_under_the_target() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 3)
    positives = torch.randn(40, 5, 8)
    positives[:, 2] += 3.0  # the word at one step of each take
    negatives = torch.randn(200, 5, 8)
    row = fit_row(head, positives, negatives.flatten(0, 1))
    calibrated = calibrate(head, row, [negatives[:50]], positives, threshold=0.7, target=0.02)
    assert calibrated.bias <= row.bias and calibrated.false_accepts <= 0.02
    assert calibrated.recall > 0.8
    assert Row(row.weight, row.bias).weight.shape == (8,)


def test_head_inputs_of_a_causal_model_are_per_step(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "causal.pt", causal=True, bidirectional=False)
    model = load_checkpoint(path)
    inputs = head_inputs(model, np.zeros((2, RATE), np.float32) + 0.01)
    assert inputs.shape[0] == 2 and inputs.shape[1] > 1 and inputs.shape[2] == 32


@pytest.mark.parametrize("word", ["lights", "turn on", "o'clock", "wake-up", "zwölf"])
def test_words_that_are_labels(word: str) -> None:
    assert check_word(f" {word} ", ["yes", "no"]) == word


def test_the_benchmark_reports_recall_accuracy_and_false_alarms(
    trained_checkpoint: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from benchmarks.enroll import bench_enroll, summary

    report = bench_enroll(trained_checkpoint, small_corpus, WORD, tmp_path, takes=8, duration=60)
    assert report["word_test_clips"] == len(held_out_clips(small_corpus, WORD))
    assert 0.0 <= report["word_recall_at_threshold"] <= report["word_recall"] <= 1.0
    assert report["enroll"]["negatives"]["anchors"] > 0  # saved as a release would be
    before, after = report["others_before"], report["others_after"]
    assert before["clips"] == after["clips"] and set(before["per_class"]) == set(after["per_class"])
    stream = report["streaming_after"]
    assert stream["word_events"] > 0 and 0 <= stream["word_hits"] <= stream["word_events"]
    assert report["streaming_before"]["word_false_alarms_per_hour"] == 0.0  # it has no such label
    assert json.loads((tmp_path / "bench.json").read_text())["word"] == WORD
    assert summary(report).startswith(f"{WORD}: recall ")


def test_enroll_help_answers_without_torch() -> None:
    code = "import sys, speechrnn.cli.enroll; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env()
    )
    assert done.stdout.strip() == "False", done.stderr
