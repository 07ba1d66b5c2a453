"""The released model in this checkout's speechrnn/models/: its files are those of its
manifest, its metadata is complete, and it scores on the dev corpus's test split what the
manifest says; and the wheel that carries it stays small."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechrnn.inference.released import PACKAGE_MODELS

from support.real import REAL_DEV
from support.released import build_wheel, release_accuracy, verify_release

DEV_CORPUS = REAL_DEV
MAX_WHEEL_MB = 8.0  # docs/model-card.md: the code, the page, conf/ and the released model


def test_the_shipped_files_are_those_of_the_manifest() -> None:
    found = verify_release(PACKAGE_MODELS)
    assert {"onnx", "weights", "anchors"} <= set(found.files)
    assert found.manifest["labels"][:2] == ["_silence_", "_unknown_"]
    assert len(found.manifest["labels"]) == 12


def test_the_shipped_model_scores_what_its_manifest_says() -> None:
    found = verify_release(PACKAGE_MODELS)
    test = found.manifest["figures"]["test"]
    accuracy, clips = release_accuracy(found, DEV_CORPUS)
    assert clips == test["clips"]
    assert accuracy == pytest.approx(test["accuracy"], abs=0.5 / clips)  # the same clips right


def test_the_wheel_stays_small(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    size = wheel.stat().st_size / 1e6
    assert size <= MAX_WHEEL_MB, f"{wheel.name}: {size:.1f} MB"
    print(f"{wheel.name}: {size:.2f} MB")
