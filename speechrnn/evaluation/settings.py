"""speechrnn-eval and speechrnn-calibrate settings with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from speechrnn.errors import ConfigError
from speechrnn.inference.operating_point import TARGET_FA_PER_HOUR
from speechrnn.labels import SPLITS
from speechrnn.settings import bounded, check_ranges


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


@dataclass(frozen=True)
class CalibrateConfig:
    """The top-level keys of speechrnn-calibrate; ckpt_path and out are required."""

    ckpt_path: str  # a causal checkpoint (model=listener)
    out: str  # the calibrated copy: a new checkpoint file
    target_fa_per_hour: float = bounded(TARGET_FA_PER_HOUR, 0.0, 3600.0)  # false-alarm budget
    split: str = "validation"  # the clips the long recording is built from
    shared: bool = True  # one threshold for every keyword; false: one each (overfits an hour)
    tolerance: float = bounded(0.5, 0.0, 10.0, " seconds")  # as spotting.tolerance
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
