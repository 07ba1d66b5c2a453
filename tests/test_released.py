"""The released model as the default: load_model(), speechrnn-predict AUDIO, speechrnn-serve and
speechrnn-enroll use it when no model is named (a release built here from a tiny checkpoint, in
$SPEECHRNN_MODELS); an explicit model wins; a package without one says so in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from speechrnn.errors import CheckpointError
from speechrnn.inference import released
from speechrnn.inference.predict import load_model

from support.cli import console_script
from support.inference import (
    LABELS,
    cli_env,
    modules_loaded_by_cli,
    run_cli,
    speechlike,
    tiny_checkpoint,
    write,
)
from support.released import build_release, verify_release

NO_RELEASE = (
    r"error: no released model in \$SPEECHRNN_MODELS=.* \(no release\.json\); "
    r"give a model file, or build the release with scripts/release\.sh"
)


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("release")
    return build_release(folder / "models", tiny_checkpoint(folder / "tiny-run.pt"))


@pytest.fixture
def shipped(release_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(released.MODELS_ENV, str(release_dir))
    return release_dir


@pytest.fixture
def nothing_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(released.MODELS_ENV, str(tmp_path))
    yield tmp_path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("clips") / "clip.wav", speechlike(1))


def test_the_release_is_its_manifest_and_its_metadata(release_dir: Path) -> None:
    found = verify_release(release_dir)
    assert found.name == "tiny" and found.onnx.name == "tiny.int8.onnx"
    assert found.manifest["labels"] == LABELS
    assert found.describe().startswith("the released speechrnn model (tiny, sha256 ")


def test_load_model_without_a_path_loads_the_release(shipped: Path, clip: Path) -> None:
    model = load_model()
    assert model.source is not None and model.source.released
    assert model.source.path == shipped / "tiny.int8.onnx"
    assert model.labels == LABELS
    explicit = load_model(shipped / "tiny.pt")  # an explicit model wins
    assert not explicit.source.released and explicit.predict(clip).label in LABELS  # type: ignore[union-attr]


def test_predict_without_a_model_names_the_release_first_and_imports_no_torch(
    shipped: Path, clip: Path
) -> None:
    done = run_cli(clip, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("model: the released speechrnn model (tiny, sha256 ")
    assert json.loads(done.stdout)["label"] in LABELS
    assert "torch" not in modules_loaded_by_cli(clip)


def test_predict_still_takes_a_model_first_or_with_m(shipped: Path, clip: Path) -> None:
    model = shipped / "tiny.pt"
    for args in ((model, clip), ("-m", model, clip), ("--model", model, clip)):
        done = run_cli(*args, "--json")
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
        assert json.loads(done.stdout)["file"] == str(clip)
    alone = run_cli(shipped / "tiny.int8.onnx")
    assert alone.returncode == 2
    assert alone.stderr.strip().endswith("tiny.int8.onnx is a model file: name the audio after it")


def test_help_names_the_default_model() -> None:
    for script in ("speechrnn-predict", "speechrnn-serve"):
        done = subprocess.run([console_script(script), "--help"], capture_output=True, text=True)
        assert "released model shipped with speechrnn" in " ".join(done.stdout.split()), script


def test_no_release_is_one_line_and_exit_2(nothing_shipped: Path, clip: Path) -> None:
    with pytest.raises(CheckpointError, match=NO_RELEASE.removeprefix("error: ")):
        load_model()
    done = run_cli(clip)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert re.fullmatch(NO_RELEASE, done.stderr.strip())
    for module, args in (
        ("speechrnn.cli.serve", ["--port", "0"]),
        ("speechrnn.cli.enroll", ["lights", str(clip)]),
    ):
        code = f"import sys; from {module} import main; sys.exit(main())"
        run = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True, text=True, timeout=120, env=cli_env(),
        )  # fmt: skip
        assert run.returncode == 2, (module, run.stderr)
        assert re.fullmatch(NO_RELEASE, run.stderr.strip()), run.stderr


def test_the_package_folder_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(released.MODELS_ENV, raising=False)
    assert released.models_dir() == Path(released.__file__).resolve().parents[1] / "models"
    monkeypatch.setattr(released, "PACKAGE_MODELS", tmp_path)
    with pytest.raises(CheckpointError, match="no released model in this package"):
        released.find_release()


def test_a_damaged_manifest_is_one_line(tmp_path: Path, release_dir: Path) -> None:
    (tmp_path / "release.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"release\.json: not a readable release manifest"):
        released.find_release(tmp_path)
    manifest = json.loads((release_dir / "release.json").read_text())
    (tmp_path / "release.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="the release's onnx and weights file is missing"):
        released.find_release(tmp_path)


def test_serve_without_a_model_serves_the_release(shipped: Path) -> None:
    from urllib.request import urlopen

    process = subprocess.Popen(
        [console_script("speechrnn-serve"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        banner = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert banner.startswith("speechrnn-serve: the released speechrnn model (tiny, sha256 ")
        url = banner.split(" at ")[-1]
        info = json.loads(urlopen(url + "api/model", timeout=30).read())
        assert info["released"] and info["model"] == "tiny.int8.onnx" and info["kind"] == "onnx"
        assert info["teach"] == {"enabled": True}  # the release's float weights can learn
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_card_figures_come_from_the_manifest(release_dir: Path, tmp_path: Path) -> None:
    import release

    page = tmp_path / "card.md"
    card = (Path(release.__file__).parents[1] / "docs" / "model-card.md").read_text()
    page.write_text(card)
    release.card(release_dir / "release.json", page)
    text = page.read_text()
    sha = json.loads((release_dir / "release.json").read_text())["files"]["onnx"]["sha256"]
    assert f"sha256 `{sha}`" in text and "No release has been built" not in text
    assert text.split(release.END)[1] == card.split(release.END)[1]  # the rest is untouched
    assert np.isfinite(float(text.split("**")[1].split(" %")[0]))
