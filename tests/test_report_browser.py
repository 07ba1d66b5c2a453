"""report.html in a real headless browser: it renders, every image loads, every clip can play."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechrnn.data.settings import DataConfig
from speechrnn.evaluation.evaluate import evaluate
from speechrnn.evaluation.longform import LongformConfig
from speechrnn.evaluation.streaming_eval import StreamingSettings

from support.browser import headless_chromium

MEDIA_STATE = """
const done = arguments[arguments.length - 1];
const audio = [...document.querySelectorAll('audio')];
const wait = a => a.readyState >= 1 ? Promise.resolve() : new Promise(r => {
  a.addEventListener('loadedmetadata', r, {once: true});
  a.addEventListener('error', r, {once: true}); a.load(); });
Promise.all(audio.map(wait)).then(() => done({
  images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth})),
  audio: audio.map(a => ({type: a.canPlayType('audio/wav'), ready: a.readyState,
                          duration: a.duration, error: a.error ? a.error.code : null})),
  headings: [...document.querySelectorAll('h2')].map(h => h.textContent)}));
"""


@pytest.fixture(scope="module")
def report(
    tone_checkpoint: Path, toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A report with everything: streaming scores, misclassified clips, learning curves."""
    data = DataConfig(root=str(toy_corpus), words=("yes", "no", "up", "down"))
    streaming = StreamingSettings(longform=LongformConfig(duration=60.0))
    out = tmp_path_factory.mktemp("browser") / "report"
    return evaluate(tone_checkpoint, data, report_dir=out, progress=False, audio_examples=4,
                    streaming=streaming)  # fmt: skip


def test_report_holds_streaming_scores_clips_and_curves(report: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    overall = metrics["streaming"]["overall"]
    assert len(overall["frr"]) == len(metrics["streaming"]["thresholds"])
    assert (report / "streaming_labels.tsv").is_file() and (report / "det.png").is_file()
    assert (report / "learning_curves.png").is_file()
    wavs = sorted((report / "clips").glob("*.wav"))
    wrong = metrics["clips"] - round(metrics["accuracy"] * metrics["clips"])
    assert len(wavs) == min(4, wrong) and wavs
    markdown = (report / "report.md").read_text()
    for heading in ("Streaming: misses and false alarms", "Misclassified clips", "Learning curves"):
        assert f"## {heading}" in markdown
    assert f"(clips/{wavs[0].name})" in markdown


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    driver = headless_chromium(tmp_path / "profile")
    try:
        driver.set_script_timeout(60)
        driver.get((report / "report.html").as_uri())
        state = driver.execute_async_script(MEDIA_STATE)
    finally:
        driver.quit()
    assert "Misclassified clips" in state["headings"] and "Learning curves" in state["headings"]
    assert len(state["images"]) == 5  # confusion, per class, calibration, curves, DET
    assert all(image["complete"] and image["width"] > 0 for image in state["images"])
    assert state["audio"]
    for clip in state["audio"]:
        assert clip["type"] and clip["error"] is None, clip
        assert clip["ready"] >= 1 and clip["duration"] == pytest.approx(1.0, abs=0.01), clip
