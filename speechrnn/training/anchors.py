"""Anchors: a model's embeddings (its head's inputs) of clips of its own classes, kept beside a
released model so that teaching it a new word keeps the old classes without the corpus."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import CheckpointError
from speechrnn.labels import keywords
from speechrnn.model import StackedLSTMClassifier
from speechrnn.training.warmstart import HEAD

ANCHORS_FORMAT = "speechrnn-anchors/1"
MAX_ANCHOR_BYTES = 64 * 2**20


def body_fingerprint(model: StackedLSTMClassifier) -> str:
    """sha256 of every tensor but the head's: embeddings depend on these alone, so anchors
    stay valid for every model taught a word from this one."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name not in HEAD:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def head_inputs(
    model: StackedLSTMClassifier, waves: np.ndarray, batch_size: int = 128
) -> torch.Tensor:
    """(N, T) float32 clips -> (N, S, D) what the head reads (eval mode): S = 1 for a pooled
    model, one row per step for a causal one."""
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, waves.shape[0], batch_size):
                model(torch.from_numpy(np.ascontiguousarray(waves[first : first + batch_size])))
    finally:
        hook.remove()
    return torch.cat([x if x.dim() == 3 else x[:, None] for x in captured]).float()  # (N, S, D)


def answered_step(model: StackedLSTMClassifier, inputs: torch.Tensor) -> torch.Tensor:
    """(N, S, D) head inputs -> (N, 1, D): the step the model answers a clip with."""
    if inputs.shape[1] == 1:
        return inputs
    with torch.inference_mode():
        logits = model.head(inputs)  # (N, S, C)
        pick = (logits.softmax(-1) * model.keyword).sum(-1).argmax(dim=1)  # (N,)
    return inputs[torch.arange(inputs.shape[0]), pick][:, None]  # (N, 1, D)


@dataclass(frozen=True)
class Anchors:
    """Embeddings of clips of a model's classes, the word each clip says, and the body they
    were computed with."""

    embeddings: np.ndarray  # (N, 1, D) float16
    words: list[str]  # each clip's word folder (`_silence_` for noise)
    body: str  # body_fingerprint of the model

    def save(self, path: Path) -> Path:
        with path.open("wb") as out:
            np.savez_compressed(
                out,
                format=np.array(ANCHORS_FORMAT),
                embeddings=self.embeddings,
                words=np.array(self.words),
                body=np.array(self.body),
            )
        return path

    @classmethod
    def load(cls, path: Path) -> Anchors:
        """CheckpointError when the file is not a plain anchors file (nothing pickled is read)."""
        try:
            if path.stat().st_size > MAX_ANCHOR_BYTES:
                raise ValueError(f"larger than {MAX_ANCHOR_BYTES:,} bytes")
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != ANCHORS_FORMAT:
                    raise ValueError(f"format {str(data['format'])[:40]!r}")
                embeddings = np.asarray(data["embeddings"], np.float16)
                words, body = [str(w) for w in data["words"]], str(data["body"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{path}: not a speechrnn anchors file ({exc})") from None
        if embeddings.ndim != 3 or embeddings.shape[0] != len(words):
            raise CheckpointError(f"{path}: embeddings and words do not match")
        return cls(embeddings, words, body)


def corpus_anchors(
    model: StackedLSTMClassifier,
    root: str,
    splits: Sequence[str] = ("train",),
    per_label: int = 96,
    seed: int = 0,
) -> Anchors:
    """Anchors of `model` from the clips of `splits` of the GSC-layout corpus at `root`, mapped
    to its labels as training maps them: up to `per_label` clips of each label, evenly spread."""
    words = tuple(keywords(model.labels))
    waves, names = [], []
    for split in splits:
        clips = load_split(DataConfig(root=root, words=words), split, model.labels, seed=seed)
        for target in np.unique(clips.targets):
            rows = np.flatnonzero(clips.targets == target)
            rows = rows[np.linspace(0, rows.size - 1, min(per_label, rows.size)).astype(int)]
            waves.append(np.asarray(clips.waves[rows], np.float32) / 32768.0)  # (n, T)
            names += [_word(clips.paths[r]) for r in rows]
    embedded = answered_step(model, head_inputs(model, np.concatenate(waves)))  # (N, 1, D)
    return Anchors(embedded.numpy().astype(np.float16), names, body_fingerprint(model))


def _word(path: str) -> str:
    """The word a corpus clip says: its folder (`_silence_/<noise>#<offset>` for silence)."""
    return path.split("/", 1)[0]
