"""Teach a trained model a new word from a few takes: the body frozen, a new head row fitted
against negatives the package can make, calibrated, saved as a checkpoint and ONNX."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechrnn.augment import NoiseBank
from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.files import sha256_file
from speechrnn.errors import ConfigError
from speechrnn.inference.export import export_onnx
from speechrnn.inference.streaming import StreamConfig
from speechrnn.inference.takes import Takes
from speechrnn.labels import RESERVED_PREFIX
from speechrnn.model import StackedLSTMClassifier
from speechrnn.settings import bounded, check_ranges
from speechrnn.training.anchors import Anchors, body_fingerprint, head_inputs
from speechrnn.training.enroll_clips import (
    augmented,
    noise_bank,
    noise_clips,
    reversed_takes,
    spoken_words,
    take_augmentation,
)
from speechrnn.training.new_row import Row, RowFit, calibrate, fit_row
from speechrnn.training.warmstart import copy_weights
from speechrnn.validation import MAX_LABELS

WORD = re.compile(r"[\w'-]+( [\w'-]+)*")
MAX_WORD_CHARS = 40
HELD_OUT = 4  # every 4th negative clip is held out for the calibration
ANCHORS_SUFFIX = ".anchors.npz"


@dataclass(frozen=True)
class EnrollSettings:
    """How a word is taught: clips made, the row's fit, the calibration's target."""

    copies: int = bounded(32, 1, 512)  # augmented copies of each take
    noise: int = bounded(512, 0, 20_000)  # noise clips (negatives)
    voices: int = bounded(3, 0, 20)  # espeak-ng voices per word, negatives without anchors
    steps: int = bounded(300, 1, 20_000)  # Adam steps of the row's fit
    lr: float = bounded(0.05, 1e-5, 1.0)
    weight_decay: float = bounded(1e-3, 0.0, 10.0)
    false_accepts: float = bounded(0.005, 0.0, 0.5)  # of held-out negatives, at `threshold`
    threshold: float = bounded(StreamConfig().threshold, 0.0, 1.0)  # the detector's default
    seed: int = bounded(0, 0, 2**32 - 1)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class Enrolled:
    """The taught model's files and what the teaching measured."""

    checkpoint: Path
    onnx: Path
    word: str
    labels: list[str]
    summary: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        files = {"checkpoint": str(self.checkpoint), "onnx": str(self.onnx)}
        return {"word": self.word, "labels": self.labels, "files": files, **self.summary}


def anchors_beside(checkpoint: Path) -> Path:
    """Where a model's anchors file lives: `<name>.anchors.npz` beside `<name>.pt`."""
    return checkpoint.with_name(checkpoint.stem + ANCHORS_SUFFIX)


def folder_for(parent: Path, word: str) -> Path:
    """A new folder under `parent` for a model taught `word`: <word>-<date>-<time>[-n]."""
    name = re.sub(r"[^\w-]", "_", word.strip())[:MAX_WORD_CHARS]
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = parent / stem, 1
    while folder.exists():
        n += 1
        folder = parent / f"{stem}-{n}"
    return folder


def check_word(word: str, labels: list[str]) -> str:
    """The new label: words of letters, digits, ' and -, not reserved, not already a label."""
    word = word.strip()
    if len(word) > MAX_WORD_CHARS or not WORD.fullmatch(word) or word.startswith(RESERVED_PREFIX):
        raise ConfigError(
            f"word {word[:MAX_WORD_CHARS]!r}: give 1 to {MAX_WORD_CHARS} characters of letters, "
            "digits, ' and -, single spaces between words, not starting with _"
        )
    if word in labels:
        raise ConfigError(
            f"word {word!r} is already one of the model's labels ({' '.join(labels)})"
        )
    if len(labels) >= MAX_LABELS:
        raise ConfigError(f"the model already has {len(labels)} labels, the most a model may have")
    return word


def enroll(
    base: Path,
    word: str,
    takes: Takes,
    out: Path,
    settings: EnrollSettings = EnrollSettings(),
    log: Callable[[str], None] = lambda _line: None,
) -> Enrolled:
    """Teach the checkpoint `base` the word `word` from `takes`; write `out`/model.pt,
    model.onnx (checked against the checkpoint), model.anchors.npz and enroll.json."""
    began = time.monotonic()
    model = load_checkpoint(base)
    word = check_word(word, model.labels)
    row, negatives = teach_row(model, anchors_beside(base), word, takes, settings, log)
    taught = _with_row(model, word, row, str(base))
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = taught.save(out / "model.pt")
    if "anchors" in negatives:  # the body is unchanged: its anchors still hold
        shutil.copyfile(anchors_beside(base), anchors_beside(checkpoint))
    onnx = export_onnx(checkpoint, out / "model.onnx").path
    summary = {
        "base": {"path": str(base), "sha256": sha256_file(base, progress=False)},
        "takes": takes.to_dict(),
        "negatives": negatives,
        "calibration": {
            "threshold": settings.threshold,
            "target_false_accepts": settings.false_accepts,
            "false_accepts": round(row.false_accepts, 4),
            "recall": round(row.recall, 4),
            "bias_drop": row.bias_drop,
        },
        "settings": asdict(settings),
        "seconds": round(time.monotonic() - began, 1),
    }
    result = Enrolled(checkpoint, onnx, word, taught.labels, summary)
    (out / "enroll.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def teach_row(
    model: StackedLSTMClassifier,
    anchors: Path,
    word: str,
    takes: Takes,
    settings: EnrollSettings,
    log: Callable[[str], None],
) -> tuple[Row, dict[str, int]]:
    """The calibrated head row of `word` on `model`'s frozen body, and the negatives it was
    fitted against (clips by source)."""
    torch.manual_seed(settings.seed)
    bank = noise_bank(takes, settings.seed)
    config = take_augmentation(takes)

    def embed(clips: np.ndarray) -> torch.Tensor:
        return head_inputs(model, clips)  # (N, S, D)

    positives = embed(augmented(takes.clips, settings.copies, bank, config, settings.seed))
    held_positives = embed(augmented(takes.clips, 8, bank, config, settings.seed + 1))
    kept = _anchors(anchors, model, word, log)
    sources = _negatives(model.labels, word, takes, settings, bank, speech=kept is None)
    if kept is not None:
        sources["anchors"] = kept
    counts = {name: int(clips.shape[0]) for name, clips in sources.items()}
    log(
        f"{takes.clips.shape[0]} takes, {positives.shape[0]} augmented copies; negatives: "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
    )
    fitted, held = [], []
    for name, clips in sources.items():
        embedded = clips if name == "anchors" else embed(clips)  # (N, S, D)
        rows = np.arange(embedded.shape[0])
        held.append(embedded[rows % HELD_OUT == 0])
        fitted.append(embedded[rows % HELD_OUT != 0].flatten(0, 1))  # (n * S, D)
    fit = RowFit(settings.steps, settings.lr, settings.weight_decay)
    row = fit_row(model.head, positives, torch.cat(fitted), fit)
    row = calibrate(
        model.head, row, held, held_positives, settings.threshold, settings.false_accepts
    )
    log(
        f"calibrated: {100 * row.false_accepts:.2f}% of held-out negatives and "
        f"{100 * row.recall:.1f}% of held-out takes reach {settings.threshold:g} "
        f"(bias lowered by {row.bias_drop:g})"
    )
    return row, counts


def _negatives(
    labels: list[str],
    word: str,
    takes: Takes,
    settings: EnrollSettings,
    bank: NoiseBank,
    speech: bool,
) -> dict[str, np.ndarray]:
    """Negative clips by source: noise, the takes backwards and, with `speech`, espeak-ng words
    when it is installed (measured: they stand in for anchors, and hurt beside them)."""
    config, seed = take_augmentation(takes), settings.seed
    backwards = reversed_takes(takes.clips)  # (N, T)
    sources = {
        "noise": noise_clips(bank, settings.noise, seed),
        "reversed takes": augmented(
            backwards, max(1, settings.copies // 4), bank, config, seed + 2
        ),
    }
    spoken = (
        spoken_words(labels, word, settings.voices, seed) if speech and settings.voices else None
    )
    if spoken is not None:
        sources["espeak-ng words"] = augmented(spoken, 2, bank, config, seed + 3)
    return {name: clips for name, clips in sources.items() if clips.shape[0]}


def _anchors(
    path: Path, model: StackedLSTMClassifier, word: str, log: Callable[[str], None]
) -> torch.Tensor | None:
    """(N, 1, D) embeddings of the old classes' clips from the anchors file `path` when it was
    made with this very body (clips of `word` itself left out); None otherwise."""
    if not path.is_file():
        return None
    anchors = Anchors.load(path)
    if anchors.body != body_fingerprint(model):
        log(f"{path}: anchors of another model's body, not used")
        return None
    keep = [i for i, w in enumerate(anchors.words) if w.lower() != word.lower()]
    return torch.from_numpy(anchors.embeddings[keep].astype(np.float32))


def _with_row(
    model: StackedLSTMClassifier, word: str, row: Row, where: str
) -> StackedLSTMClassifier:
    """`model` with `word` appended to its labels and `row` as that label's head row."""
    taught = StackedLSTMClassifier([*model.labels, word], model.feature_config, model.config)
    copy_weights(taught, model, where)
    with torch.no_grad():
        taught.head.weight[-1] = row.weight
        taught.head.bias[-1] = row.bias
    return taught.eval()
