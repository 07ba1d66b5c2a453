"""speechrnn-serve in headless Chromium: a recording as the microphone, the page lists its words."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speechrnn.inference.predict import load_model

from support.browser import headless_chromium
from support.cli import console_script
from support.inference import split_clips, spoken_recording, write

SCRIPT = ["yes", "cat", "down", "no"]  # cat is an _unknown_ word: never listed
LEAD = 1.5  # seconds of silence before the first word
TOLERANCE = 0.3  # seconds: the live start times against the words' true starts
LATENCY = 1.0  # seconds the page may lag the file: the microphone starts before the stream


@pytest.fixture(scope="module")
def server(trained_checkpoint: Path) -> Iterator[tuple[str, list[str]]]:
    """speechrnn-serve on the session's trained model at a free port: (URL, its first lines)."""
    process = subprocess.Popen(
        [console_script("speechrnn-serve"), str(trained_checkpoint), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(2)]  # type: ignore[union-attr]
        assert lines[0].startswith("speechrnn-serve: "), process.stderr.read()  # type: ignore
        yield lines[0].split(" at ")[-1], lines
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """start(microphone WAV) -> a headless Chromium whose microphone plays that file."""

    def start(microphone: Path) -> object:
        drivers.append(
            headless_chromium(
                Path(tempfile.mkdtemp(dir=tmp_path)),
                "--window-size=1200,1000",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
            )
        )
        return drivers[-1]

    drivers: list[Any] = []
    yield start
    for driver in drivers:
        driver.quit()


def _wait(check: object, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():  # type: ignore[operator]
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_the_page_lists_spoken_commands_live_and_predicts_a_dropped_file(
    server: tuple[str, list[str]],
    browser: object,
    trained_checkpoint: Path,
    small_corpus: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    url, banner = server
    assert url.startswith("http://127.0.0.1:") and "this computer only" in banner[1]
    model = load_model(trained_checkpoint)
    wave, truth = spoken_recording(model, small_corpus, SCRIPT, lead=LEAD)
    recording = write(tmp_path / "microphone.wav", wave)
    driver = browser(recording)  # type: ignore[operator]
    driver.get(url)
    _wait(lambda: "labels" in driver.find_element(By.ID, "model-line").text, 30, "the model")
    driver.find_element(By.ID, "listen").click()

    def listed() -> list[tuple[str, float]]:
        items = driver.find_elements(By.CSS_SELECTOR, "#detections li")
        return [
            (i.get_attribute("data-label"), float(i.get_attribute("data-start"))) for i in items
        ]

    heard = _wait(lambda: len(listed()) >= len(truth) and listed(), 20 + wave.size / 16000, "words")
    assert [label for label, _ in heard[: len(truth)]] == [word for word, _, _ in truth]
    lags = [found - start for (_, found), (_, start, _) in zip(heard, truth, strict=False)]
    assert all(-TOLERANCE <= lag <= LATENCY + TOLERANCE for lag in lags), (heard, truth)
    assert max(lags) - min(lags) <= 2 * TOLERANCE, (heard, truth)  # the same lag for every word
    level = driver.find_element(By.ID, "level").value_of_css_property("width")
    assert float(level.removesuffix("px")) >= 0

    driver.find_element(By.ID, "file-input").send_keys(str(recording))
    shown = _wait(lambda: driver.find_elements(By.ID, "result-label"), 30, "the file's answer")
    expected = model.predict(recording)
    assert shown[0].text == expected.label
    marks = driver.find_elements(By.CSS_SELECTOR, "#timeline span")
    assert [m.get_attribute("data-label") for m in marks] == [d.label for d in expected.detections]
    assert [m.get_attribute("data-label") for m in marks] == [word for word, _, _ in truth]
    screenshot = tmp_path / "serve.png"
    driver.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def _teaching_server(checkpoint: Path, words: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [console_script("speechrnn-serve"), str(checkpoint), "--port", "0", "--words-dir",
         str(words)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    banner = process.stdout.readline().strip()  # type: ignore[union-attr]
    assert banner.startswith("speechrnn-serve: "), process.stderr.read()  # type: ignore[union-attr]
    return process, banner.split(" at ")[-1]


def test_the_page_is_taught_a_word_from_the_microphone_then_hears_it(
    browser: object, trained_checkpoint: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """Record six takes of "dog" (an `_unknown_` word of the model) in the Teach a word panel,
    teach it, and the page, switched to the new model without a restart, lists "dog" live."""
    from selenium.webdriver.common.by import By

    gap = np.zeros(int(0.7 * 16000))
    takes = [sf.read(p)[0] for p in split_clips(small_corpus, "dog", "train")[:6]]
    wave = np.concatenate([np.zeros(16000), *(x for t in takes for x in (t, gap)), np.zeros(48000)])
    microphone = write(tmp_path / "takes.wav", wave.astype(np.float32))
    process, url = _teaching_server(trained_checkpoint, tmp_path / "words")
    try:
        driver = browser(microphone)  # type: ignore[operator]
        driver.get(url)
        _wait(lambda: "labels" in driver.find_element(By.ID, "model-line").text, 30, "the model")
        driver.find_element(By.ID, "teach-word").send_keys("dog")
        driver.find_element(By.ID, "teach-record").click()
        time.sleep(wave.size / 16000 - 1.5)  # stop in the quiet after the last take
        driver.find_element(By.ID, "teach-record").click()
        takes_found = _wait(
            lambda: driver.find_elements(By.CSS_SELECTOR, "#teach-takes li"), 30, "the takes"
        )
        status = driver.find_element(By.ID, "teach-status").text
        assert len(takes_found) == 6, status  # type: ignore[arg-type]
        driver.find_element(By.ID, "teach-go").click()
        taught = lambda: driver.find_element(By.ID, "teach-status").get_attribute("data-word")  # noqa: E731
        assert _wait(taught, 600, "the word to be taught") == "dog", driver.find_element(
            By.ID, "teach-status"
        ).text
        _wait(lambda: "9 labels" in driver.find_element(By.ID, "model-line").text, 30, "new model")
        driver.find_element(By.ID, "listen").click()

        def heard() -> list[str]:
            items = driver.find_elements(By.CSS_SELECTOR, "#detections li")
            return [i.get_attribute("data-label") for i in items]

        assert "dog" in _wait(lambda: "dog" in heard() and heard(), 60, "dog, live")  # type: ignore[operator]
        assert list((tmp_path / "words").glob("dog-*/model.onnx"))  # saved as a file
    finally:
        process.terminate()
        process.wait(timeout=30)
