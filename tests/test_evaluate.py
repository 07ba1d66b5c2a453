"""evaluate() and speechrnn-eval: hand-checked metrics, report files, and the one-line errors."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import CheckpointError, DataError
from speechrnn.evaluation.evaluate import evaluate
from speechrnn.evaluation.metrics import classification_metrics
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, StackedLSTMClassifier

from support.cli import SMALL_WORDS, run_console

LABELS = ["_silence_", "_unknown_", *SMALL_WORDS]
FORCED = LABELS.index("yes")


def _forced_model(path: Path, labels: list[str], index: int) -> Path:
    """A checkpoint that gives every clip the same logits, peaked on `labels[index]`."""
    model = StackedLSTMClassifier(
        labels, FeatureConfig(), ModelConfig(hidden_size=8, num_layers=1, conv_channels=0)
    )
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[index] = 4.0
    return model.save(path)


def _data(corpus: Path, **kwargs: object) -> DataConfig:
    return DataConfig(root=str(corpus), words=list(SMALL_WORDS), **kwargs)


@pytest.fixture(scope="module")
def forced_report(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("forced")
    ckpt = _forced_model(tmp / "forced.pt", LABELS, FORCED)
    return evaluate(ckpt, _data(small_corpus), report_dir=tmp / "report", progress=False)


def test_metrics_match_hand_computed_values(small_corpus: Path, forced_report: Path) -> None:
    metrics = json.loads((forced_report / "metrics.json").read_text())
    targets = load_split(_data(small_corpus), "test", LABELS).targets
    n, hits = len(targets), int((targets == FORCED).sum())
    confidence = np.exp(4.0) / (np.exp(4.0) + len(LABELS) - 1)
    present = sorted(set(targets.tolist()))

    assert metrics["clips"] == n
    assert metrics["accuracy"] == pytest.approx(hits / n)
    others = [i for i in range(len(LABELS)) if i != FORCED][:2]  # ties resolve to lowest index
    assert metrics["top3_accuracy"] == pytest.approx(np.isin(targets, [FORCED, *others]).mean())
    ece = metrics["expected_calibration_error"]
    assert ece == pytest.approx(abs(hits / n - confidence), abs=1e-6)
    yes = metrics["per_class"]["yes"]
    assert yes["precision"] == pytest.approx(hits / n) and yes["recall"] == 1.0
    assert yes["support"] == hits
    f1_yes = 2 * (hits / n) / (1 + hits / n)
    assert metrics["macro"]["f1"] == pytest.approx(f1_yes / len(present))
    assert metrics["weighted"]["f1"] == pytest.approx(f1_yes * hits / n)
    matrix = np.array(metrics["confusion"]["matrix"])
    assert matrix.sum() == n and matrix[:, FORCED].sum() == n
    assert metrics["confusion"]["labels"] == LABELS
    assert metrics["split"] == "test" and len(metrics["checkpoint_sha256"]) == 64
    assert metrics["parameters"] > 0 and metrics["per_speaker"]["speakers"] >= 1


def test_errors_csv_lists_exactly_the_wrong_clips(small_corpus: Path, forced_report: Path) -> None:
    clips = load_split(_data(small_corpus), "test", LABELS)
    expected = {p for p, t in zip(clips.paths, clips.targets, strict=True) if t != FORCED}
    with (forced_report / "errors.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["path"] for r in rows} == expected and len(rows) == len(expected)
    assert all(r["predicted"] == "yes" and r["true"] != "yes" for r in rows)


def test_report_files_are_complete_and_offline(forced_report: Path) -> None:
    for name in ("confusion.png", "per_class.png", "calibration.png"):
        with Image.open(forced_report / name) as image:
            image.verify()
        with Image.open(forced_report / name) as image:
            assert min(image.size) >= 300
    confusion = list(csv.reader((forced_report / "confusion.csv").open()))
    assert confusion[0][1:] == LABELS and len(confusion) == len(LABELS) + 1
    page = (forced_report / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "data:audio/wav;base64,"))
                           for s in sources)  # fmt: skip
    markdown = (forced_report / "report.md").read_text()
    for heading in (
        "Headline",
        "Most confused pairs",
        "Per-class accuracy",
        "Per-speaker accuracy",
    ):
        assert f"## {heading}" in markdown and heading in page
    per_class = markdown.split("## Per-class accuracy", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in per_class.splitlines() if line.startswith("| ")]
    assert rows[0] == "label" and sorted(rows[1:]) == sorted(
        LABELS
    )  # every label, not only the worst


def test_metrics_of_perfect_predictions() -> None:
    targets = np.array([0, 1, 2, 2])
    probs = np.eye(3)[targets] * 0.9 + 0.1 / 3
    metrics = classification_metrics(targets, probs, ["a", "b", "c"], ["s1", "s1", "s2", ""])
    assert metrics["accuracy"] == 1.0 and metrics["macro"]["f1"] == 1.0
    assert metrics["most_confused"] == [] and metrics["per_speaker"]["std"] == 0.0
    assert metrics["per_speaker"]["speakers"] == 2  # the clip without a speaker is not one
    assert metrics["expected_calibration_error"] == pytest.approx(1 - (0.9 + 0.1 / 3))


def test_words_outside_the_labels_count_as_unknown(small_corpus: Path, tmp_path: Path) -> None:
    labels = ["_silence_", "_unknown_", "yes", "no"]
    ckpt = _forced_model(tmp_path / "m.pt", labels, 2)
    data = _data(small_corpus, unknown_share=1.0)  # as many _unknown_ clips as known ones
    report = evaluate(ckpt, data, report_dir=tmp_path / "r", progress=False)
    support = json.loads((report / "metrics.json").read_text())["per_class"]
    assert support["_unknown_"]["support"] == support["yes"]["support"] + support["no"]["support"]
    clips = load_split(data, "test", labels)
    pairs = zip(clips.paths, clips.targets, strict=True)
    unknown_words = {path.split("/")[0] for path, target in pairs if target == 1}
    assert unknown_words and unknown_words <= {"up", "down", "left", "right", "bird", "cat", "dog"}


def test_missing_and_corrupt_checkpoints(small_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        evaluate(tmp_path / "nope.ckpt", _data(small_corpus), report_dir=tmp_path / "r")
    (tmp_path / "bad.ckpt").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        evaluate(tmp_path / "bad.ckpt", _data(small_corpus), report_dir=tmp_path / "r")


def test_labels_sharing_nothing_with_the_corpus(small_corpus: Path, tmp_path: Path) -> None:
    ckpt = _forced_model(tmp_path / "m.pt", ["_silence_", "_unknown_", "zebra", "apple"], 2)
    with pytest.raises(DataError, match=r"words \(zebra, apple\) share nothing with the test"):
        evaluate(ckpt, _data(small_corpus), report_dir=tmp_path / "r", progress=False)


def test_cli_writes_report_and_fails_in_one_line(small_corpus: Path, tmp_path: Path) -> None:
    ckpt = _forced_model(tmp_path / "m.pt", LABELS, FORCED)
    words = ",".join(f'"{w}"' for w in SMALL_WORDS)
    common = [f"data.root={small_corpus}", f"data.words=[{words}]"]
    ok = run_console(
        "speechrnn-eval",
        f"ckpt_path={ckpt}",
        *common,
        f"report_dir={tmp_path}/rep",
        "split=validation",
    )
    assert ok.returncode == 0, ok.stderr
    assert "accuracy" in ok.stdout and (tmp_path / "rep" / "report.html").is_file()
    assert "lowest per-class accuracy" in ok.stdout and "yes (" in ok.stdout  # all taken for yes
    assert "per speaker (" in ok.stdout
    bad = run_console(
        "speechrnn-eval", f"ckpt_path={tmp_path}/missing.ckpt", *common, f"report_dir={tmp_path}/r2"
    )
    # exit 2: a missing, corrupt or invalid model file (docs/robustness.md)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "checkpoint not found" in lines[0]
    assert "Traceback" not in bad.stderr
