"""speechrnn-eval settings with their defaults: the report's keys and the spotting score."""

from __future__ import annotations

from dataclasses import dataclass

from speechrnn.errors import ConfigError


@dataclass(frozen=True)
class EvalConfig:
    """The top-level keys of speechrnn-eval; ckpt_path is required."""

    ckpt_path: str
    split: str = "test"  # train | validation | test
    report_dir: str | None = None  # null: Hydra's run dir
    batch_size: int = 512
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    audio_examples: int = 20  # misclassified clips playable in report.html, worst first
    streaming: bool = False  # also score the keyword detector on a long recording


@dataclass(frozen=True)
class SpottingConfig:
    """How detections are scored, and an optional user recording to score instead of a built one."""

    tolerance: float = 0.5  # seconds a detection may lie outside its word and still hit it
    thresholds: tuple[float, ...] | None = None  # null: 0.05 ... 0.999
    audio: str | None = None  # a long recording of your own ...
    labels: str | None = None  # ... and its words: word,start[,end] per line (seconds)
    negatives: str | None = None  # a negative-speech benchmark dir (speechrnn-synth --bench)

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ConfigError(f"spotting.tolerance cannot be negative, got {self.tolerance}")
        if (self.audio is None) != (self.labels is None):
            raise ConfigError("spotting.audio and spotting.labels go together: set both or neither")
