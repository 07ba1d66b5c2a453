"""speechrnn-serve's API in process: every endpoint, every refusal, concurrency, the live stream."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from speechrnn.cli.predict import main as predict_main
from speechrnn.cli.serve import main as serve_main
from speechrnn.inference.predict import Predictor, load_model
from speechrnn.inference.serve.app import create_app
from speechrnn.inference.streaming import StreamConfig

from support.inference import LABELS, speechlike, tiny_checkpoint, write
from support.tones import ToneBackend, tone_scene

RATE = 16_000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("serve") / "tiny.ckpt")


@pytest.fixture(scope="module")
def client(model: Path) -> TestClient:
    return TestClient(create_app(load_model(model, top_k=3), model, 2**20))


@pytest.fixture
def tone_client(tmp_path: Path) -> TestClient:
    """An app over the tone stand-in model, which really spots its two tones."""
    predictor = Predictor(ToneBackend(), top_k=2, stream=StreamConfig(batch_size=8))
    return TestClient(create_app(predictor, write(tmp_path / "any.wav", np.zeros(10)), 2**20))


def test_health_model_and_page(client: TestClient, model: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    assert info["labels"] == ["yes", "no", "up", "_silence_", "_unknown_"]
    assert info["kind"] == "checkpoint" and info["model"] == "tiny.ckpt"
    assert info["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert info["settings"]["top_k"] == 3 and info["settings"]["stream"]["stride"] == 0.1
    page = client.get("/")
    assert page.status_code == 200 and 'id="listen"' in page.text
    for name in ("app.js", "worklet.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text


@pytest.mark.parametrize("seconds", [1.0, 3.5])
def test_predict_returns_what_the_cli_prints(
    client: TestClient,
    model: Path,
    tmp_path: Path,
    seconds: float,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wave = np.concatenate([speechlike(i) for i in range(int(np.ceil(seconds)))])
    write(tmp_path / "take.wav", wave[: int(seconds * RATE)])
    monkeypatch.chdir(tmp_path)
    assert predict_main([str(model), "take.wav", "--json", "--top-k", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    data = (tmp_path / "take.wav").read_bytes()
    multipart = client.post("/api/predict", files={"file": ("take.wav", data, "audio/wav")})
    raw = client.post("/api/predict?name=take.wav", content=data)
    assert multipart.status_code == raw.status_code == 200
    assert multipart.json() == raw.json() == printed
    assert (printed["detections"] is None) == (seconds < 1.25)


def test_bad_uploads_get_a_400_naming_the_problem(
    client: TestClient, model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    answer = client.post("/api/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert answer.status_code == 400
    assert answer.json()["file"] == "notes.txt"
    assert "notes.txt: cannot decode audio" in answer.json()["error"]
    empty = client.post("/api/predict", content=b"")
    assert empty.status_code == 400 and "empty file" in empty.json()["error"]
    fields = client.post("/api/predict", files={"text": (None, b"no file here")})  # a field
    assert fields.status_code == 400 and "no file" in fields.json()["error"]
    broken = client.post(
        "/api/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}
    )
    assert broken.status_code == 400 and "multipart" in broken.json()["error"]


def test_uploads_over_the_limit_get_a_413(model: Path) -> None:
    small = TestClient(create_app(load_model(model), model, 10_000))
    big = bytes(20_000)
    declared = small.post("/api/predict", content=big)
    assert declared.status_code == 413 and "max-upload-mb" in declared.json()["error"]
    chunked = small.post("/api/predict", content=iter([big[:8000], big[8000:]]))  # no length
    assert chunked.status_code == 413
    form = small.post("/api/predict", files={"file": ("big.wav", big, "audio/wav")})
    assert form.status_code == 413
    assert small.get("/healthz").status_code == 200


def test_concurrent_requests_get_their_own_answers(client: TestClient, tmp_path: Path) -> None:
    files = [write(tmp_path / f"c{i}.wav", speechlike(i, seconds=0.5 + 0.4 * i)) for i in range(8)]
    alone = [client.post("/api/predict", content=f.read_bytes()).json() for f in files]

    async def together() -> list[dict]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
            answers = await asyncio.gather(
                *(http.post("/api/predict", content=f.read_bytes()) for f in files)
            )
        return [a.json() for a in answers]

    for solo, joint in zip(alone, asyncio.run(together()), strict=True):
        assert solo["duration"] == joint["duration"] and solo["label"] == joint["label"]
        assert solo["probability"] == pytest.approx(joint["probability"], abs=1e-5)


def _pcm(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def test_stream_reports_what_the_file_scan_finds(tone_client: TestClient, tmp_path: Path) -> None:
    wave = tone_scene([("low", 1.0), ("noise", 2.2), ("high", 3.6), ("low", 6.1)], 8.0)
    pcm = _pcm(wave)
    with tone_client.websocket_connect("/api/stream") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "ready" and hello["labels"][:2] == ["low", "high"]
        events = []
        for at in range(0, len(pcm), 3200):  # 100 ms frames, as the page sends
            ws.send_bytes(pcm[at : at + 3200])
            while (event := ws.receive_json())["type"] != "posteriors":
                events.append(event)
            assert len(event["probabilities"]) == 4 and event["time"] <= (at + 3200) / 2 / RATE
        ws.send_text(json.dumps({"type": "stop"}))
        while (event := ws.receive_json())["type"] != "end":
            events.append(event)
    assert event["time"] == pytest.approx(8.0)
    found = [e for e in events if e["type"] == "detection"]
    reread = tone_client.post("/api/predict?name=s.wav", content=write(tmp_path / "s.wav", wave)
                              .read_bytes()).json()  # fmt: skip
    assert [(e["label"], e["start"], e["end"]) for e in found] == [
        (d["label"], d["start"], d["end"]) for d in reread["detections"]
    ]
    assert [e["label"] for e in found] == ["low", "high", "low"]
    assert all(e["time"] < 8.0 for e in found)  # reported while the audio still streamed


@pytest.mark.parametrize(
    ("frame", "problem"),
    [(b"\x01\x02\x03", "even"), ("hello", "JSON"), ('{"type": "play"}', "unknown command")],
)
def test_malformed_frames_close_that_stream_only(
    tone_client: TestClient, frame: bytes | str, problem: str
) -> None:
    with tone_client.websocket_connect("/api/stream") as bad:
        bad.receive_json()
        bad.send_bytes(frame) if isinstance(frame, bytes) else bad.send_text(frame)
        error = bad.receive_json()
        assert error["type"] == "error" and problem in error["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            bad.receive_json()
        assert closed.value.code == 1007
    with tone_client.websocket_connect("/api/stream") as good:
        assert good.receive_json()["type"] == "ready"
        good.send_bytes(_pcm(np.zeros(RATE)))
        assert good.receive_json()["type"] == "posteriors"
    assert tone_client.get("/healthz").status_code == 200


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_a_missing_or_corrupt_model_stops_the_server_with_one_line(
    tmp_path: Path, content: bytes | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.ckpt"
    if content is not None:
        path.write_bytes(content)
    assert serve_main([str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0]


def test_a_busy_port_is_one_error_line(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert serve_main([str(model), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")


@dataclass
class FakeTaught:
    """What a teacher returns: here, a ready-made model with one more label."""

    checkpoint: Path
    onnx: Path
    word: str

    def to_dict(self) -> dict[str, object]:
        return {"word": self.word, "files": {"checkpoint": str(self.checkpoint)},
                "calibration": {"recall": 1.0}}  # fmt: skip


def _takes_recording(count: int) -> np.ndarray:
    gap = np.zeros(RATE // 2, np.float32)
    return np.concatenate(
        [x for seed in range(count) for x in (gap, speechlike(seed)[5000:-5000])] + [gap]
    )


def _teaching_client(model: Path, tmp_path: Path, teacher: object) -> TestClient:
    return TestClient(create_app(load_model(model), model, 2**20, teacher=teacher))  # type: ignore[arg-type]


def test_takes_are_found_in_a_recording(client: TestClient, tmp_path: Path) -> None:
    recording = write(tmp_path / "takes.wav", _takes_recording(6))
    answer = client.post("/api/takes", files={"file": ("takes.wav", recording.read_bytes())})
    assert answer.status_code == 200, answer.text
    takes = answer.json()["takes"]
    assert len(takes) == 6 and all(t["file"] == "takes.wav" for t in takes)
    silent = write(tmp_path / "silent.wav", np.zeros(RATE))
    refused = client.post("/api/takes", files={"file": ("silent.wav", silent.read_bytes())})
    assert refused.status_code == 400
    assert refused.json()["problems"] == [
        "silent.wav: silent (loudest 25 ms at -100 dBFS); check the microphone and its level"
    ]


def test_teaching_swaps_the_model_for_new_requests_and_streams(model: Path, tmp_path: Path) -> None:
    bigger = tiny_checkpoint(tmp_path / "taught.ckpt", labels=[*LABELS, "lights"])
    asked: list[tuple[str, int]] = []

    def teacher(word: str, takes: object) -> FakeTaught:
        asked.append((word, takes.clips.shape[0]))  # type: ignore[attr-defined]
        return FakeTaught(bigger, tmp_path / "unused.onnx", word)

    app = _teaching_client(model, tmp_path, teacher)
    assert app.get("/api/model").json()["teach"] == {"enabled": True}
    with app.websocket_connect("/api/stream") as old:
        assert old.receive_json()["labels"] == LABELS
        recording = write(tmp_path / "takes.wav", _takes_recording(5)).read_bytes()
        answer = app.post(
            "/api/enroll", data={"word": "lights"}, files={"file": ("t.wav", recording)}
        )
        assert answer.status_code == 200, answer.text
        assert asked == [("lights", 5)]
        assert answer.json()["model"]["labels"] == [*LABELS, "lights"]
        assert app.get("/api/model").json()["model"] == "taught.ckpt"
        old.send_bytes(np.zeros(1600, "<i2").tobytes())  # the stream under way keeps its model
        with app.websocket_connect("/api/stream") as new:
            assert new.receive_json()["labels"] == [*LABELS, "lights"]
    clip = write(tmp_path / "clip.wav", speechlike(3)).read_bytes()
    predicted = app.post("/api/predict", files={"file": ("clip.wav", clip)}).json()
    assert len(predicted["top_k"]) == 1 and predicted["label"] in [*LABELS, "lights"]


def test_teaching_refusals(model: Path, tmp_path: Path) -> None:
    recording = write(tmp_path / "takes.wav", _takes_recording(5)).read_bytes()
    off = TestClient(create_app(load_model(model), model, 2**20, no_teacher="teaching is off (x)"))
    assert off.get("/api/model").json()["teach"] == {
        "enabled": False,
        "reason": "teaching is off (x)",
    }
    refused = off.post("/api/enroll", data={"word": "a"}, files={"file": ("t.wav", recording)})
    assert refused.status_code == 403 and refused.json()["error"] == "teaching is off (x)"

    from speechrnn.errors import ConfigError

    def bad_word(word: str, takes: object) -> FakeTaught:
        raise ConfigError(f"word {word!r} is already one of the model's labels")

    app = _teaching_client(model, tmp_path, bad_word)
    answer = app.post("/api/enroll", data={"word": "yes"}, files={"file": ("t.wav", recording)})
    assert (
        answer.status_code == 400 and "already one of the model's labels" in answer.json()["error"]
    )
    few = write(tmp_path / "few.wav", _takes_recording(2)).read_bytes()
    answer = app.post("/api/enroll", data={"word": "x"}, files={"file": ("t.wav", few)})
    assert answer.status_code == 400 and "2 takes found in 1 recordings" in answer.json()["error"]


def test_one_word_is_taught_at_a_time(model: Path, tmp_path: Path) -> None:
    import threading

    started, release = threading.Event(), threading.Event()

    def slow(word: str, takes: object) -> FakeTaught:
        started.set()
        release.wait(30)
        return FakeTaught(model, tmp_path / "unused.onnx", word)

    app = _teaching_client(model, tmp_path, slow)
    recording = write(tmp_path / "takes.wav", _takes_recording(5)).read_bytes()
    send = lambda: app.post("/api/enroll", data={"word": "a"}, files={"file": ("t.wav", recording)})  # noqa: E731
    first: list[object] = []
    thread = threading.Thread(target=lambda: first.append(send()))
    thread.start()
    assert started.wait(30)
    busy = send()
    release.set()
    thread.join(30)
    assert busy.status_code == 409 and "already teaching a word" in busy.json()["error"]
    assert first[0].status_code == 200  # type: ignore[attr-defined]
