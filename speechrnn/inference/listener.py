"""Continuous audio through a causal model: chunks of any size in, per-step posteriors out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import CheckpointError
from speechrnn.inference.backends import open_session
from speechrnn.validation import check_labels

STREAM_FORMAT = "speechrnn-stream-onnx/1"
STATE = ("samples", "frames", "h", "c")  # the state tensors, in the step's argument order

State = tuple[np.ndarray, ...]


class Step(Protocol):
    """A causal model's step: (1, n * step_samples) audio and the state -> (1, n, classes)
    probabilities and the next state."""

    labels: list[str]
    step_samples: int

    def initial_state(self) -> State: ...

    def __call__(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]: ...


class TorchStep:
    """A causal StackedLSTMClassifier stepped by torch (eval mode, no gradients)."""

    def __init__(self, model: Any) -> None:
        import torch

        from speechrnn.model import StreamState

        self.model, self._torch, self._state = model.eval(), torch, StreamState
        self.labels = list(model.labels)
        self.step_samples = int(model.step_samples)

    def initial_state(self) -> State:
        return tuple(t.cpu().numpy() for t in self.model.initial_state(1))

    def __call__(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        torch = self._torch
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            tensors = self._state(*(torch.from_numpy(s).to(device) for s in state))
            logits, after = self.model.stream(torch.from_numpy(audio).to(device), tensors)
            probs = logits.softmax(dim=-1).float().cpu().numpy()  # (1, n, classes)
        return probs, tuple(t.cpu().numpy() for t in after)


class OnnxStep:
    """An exported stream step (speechrnn.inference.stream_export) run by onnxruntime: no torch."""

    def __init__(self, path: str | Path, session: Any = None) -> None:
        path = Path(path)
        self.session = open_session(path) if session is None else session
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        if meta.get("format") != STREAM_FORMAT:
            raise CheckpointError(f"{path}: not a speechrnn stream model (format {STREAM_FORMAT})")
        try:
            stream = json.loads(meta.get("stream", "{}"))
            self.labels = check_labels(json.loads(meta.get("labels", "")), str(path))
            self.step_samples = int(stream["step_samples"])
            if not 0 < self.step_samples <= SAMPLE_RATE:
                raise ValueError(f"step_samples {self.step_samples}")
            self._shapes = {name: list(map(int, stream["state"][name])) for name in STATE}
            self._fill = float(stream["frames_fill"])
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise CheckpointError(f"{path}: not a speechrnn stream model ({exc})") from None

    def initial_state(self) -> State:
        """One stream's state: the metadata's shapes with a batch axis of 1 put back."""
        state = []
        for name in STATE:
            shape = list(self._shapes[name])
            shape.insert(1 if name in ("h", "c") else 0, 1)
            state.append(np.full(shape, self._fill if name == "frames" else 0.0, np.float32))
        return tuple(state)

    def __call__(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """The graph takes one step a call: the n steps go through it in turn."""
        steps = audio.astype(np.float32, copy=False).reshape(audio.shape[0], -1, self.step_samples)
        out = []
        for i in range(steps.shape[1]):
            probs, *after = self.session.run(
                None, dict(zip(("audio", *STATE), (steps[:, i], *state), strict=True))
            )
            out.append(probs)  # (1, 1, classes)
            state = tuple(after)
        return np.concatenate(out, axis=1), state  # (1, n, classes), the next state


def open_step(path: str | Path) -> Step:
    """An OnnxStep for `.onnx` files, else a TorchStep of the checkpoint (a causal model)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return OnnxStep(path)
    from speechrnn.checkpoint import load_checkpoint

    model = load_checkpoint(path)
    if not model.config.causal:
        raise CheckpointError(f"{path}: not a causal model (model.causal=false): it cannot stream")
    return TorchStep(model)


class Listener:
    """One stream: `feed` audio in pieces of any size, get the posteriors of every step it
    completes. Any cutting of the same audio gives the same posteriors (to float rounding)."""

    def __init__(self, step: Step, max_steps: int = 64) -> None:
        self.step, self.max_steps = step, max_steps  # steps per call at most: bounded memory
        self.labels = step.labels
        self.reset()

    def reset(self) -> None:
        self.state = self.step.initial_state()
        self._pending = np.zeros(0, np.float32)  # (< step_samples,) of an unfinished step
        self.steps = 0

    def step_end(self, index: int) -> float:
        """Seconds from the stream's start to the end of step `index`: when it is known."""
        return (index + 1) * self.step.step_samples / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """(T,) float32 samples at 16 kHz -> (n, classes) posteriors of the n steps completed."""
        audio = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        size = self.step.step_samples
        whole = audio.shape[0] // size * size
        self._pending = audio[whole:]
        out = [np.zeros((0, len(self.labels)), np.float32)]
        for lo in range(0, whole, size * self.max_steps):
            piece = audio[lo : min(whole, lo + size * self.max_steps)][None]  # (1, n * size)
            probs, self.state = self.step(piece, self.state)
            out.append(probs[0])
        posteriors = np.concatenate(out)  # (n, classes)
        self.steps += posteriors.shape[0]
        return posteriors
