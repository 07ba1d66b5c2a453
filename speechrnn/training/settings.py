"""Training settings with their defaults (optimiser, Trainer, run) and the whole run, checked."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechrnn.augment import AugmentConfig
from speechrnn.data.settings import DataConfig
from speechrnn.errors import ConfigError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig
from speechrnn.settings import checked, from_mapping, plain, top_level
from speechrnn.training.mixtures import DetectionConfig
from speechrnn.training.warmstart import warm_start_checkpoint

SCHEDULES = ("cosine", "onecycle")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and loss settings (the `optim:` section)."""

    lr: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    mixup: float = 0.0  # > 0: training batches mixed at Beta(mixup, mixup) weights

    def __post_init__(self) -> None:
        if self.mixup < 0:
            raise ConfigError(f"optim.mixup cannot be negative, got {self.mixup}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.warmup_epochs < 0 or self.grad_clip < 0:
            raise ConfigError("optim.weight_decay, warmup_epochs and grad_clip cannot be negative")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )


@dataclass(frozen=True)
class DistilConfig:
    """The `distil:` section: which teachers, and how their soft labels weigh in the loss."""

    teachers: tuple[str, ...] | str = ()  # checkpoints, run dirs or sweep dirs; (): no distilling
    weight: float = 0.5  # share of the loss on the teachers' soft labels (the rest: true labels)
    temperature: float = 4.0  # softens teachers and student alike; the soft term is scaled by T^2

    def __post_init__(self) -> None:
        if isinstance(self.teachers, str):  # distil.teachers=runs/teachers: one entry
            object.__setattr__(self, "teachers", (self.teachers,))
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"distil.weight must be in [0, 1], got {self.weight}")
        if self.temperature <= 0:
            raise ConfigError(f"distil.temperature must be positive, got {self.temperature}")


PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true")
TEST_CHECKPOINTS = ("best", "last")
OBJECTIVES = {"val_error": "best_val_acc", "test_error": "test_acc"}  # 1 - that metrics.json number


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning Trainer settings (the `trainer` group)."""

    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"
    max_epochs: int = 150
    early_stopping_patience: int = 0
    fast_dev_run: bool = False
    limit_train_batches: float = 1.0
    log_every_n_steps: int = 20
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.num_nodes < 1 or self.log_every_n_steps < 1:
            raise ConfigError("trainer.max_epochs, num_nodes and log_every_n_steps must be >= 1")
        if self.early_stopping_patience < 0:
            raise ConfigError("trainer.early_stopping_patience cannot be negative")
        if not 0.0 < self.limit_train_batches <= 1.0:
            raise ConfigError("trainer.limit_train_batches must be in (0, 1]")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision must be one of {', '.join(PRECISIONS)}")
        if self.accelerator in ("gpu", "cuda") and not _cuda():
            raise ConfigError(
                f"trainer.accelerator={self.accelerator} but torch sees no CUDA GPU; "
                "use trainer=cpu or trainer=auto"
            )

    def check_precision(self) -> None:
        """bf16-mixed on a CPU without native bfloat16 fails inside oneDNN's LSTM: say so first."""
        cpu = self.accelerator == "cpu" or (self.accelerator == "auto" and not _cuda())
        if self.resolved_precision() == "bf16-mixed" and cpu and not cpu_has_bf16():
            raise ConfigError(
                "trainer.precision=bf16-mixed on the CPU needs native bfloat16 (AVX512-BF16 or "
                "AMX), which this CPU lacks; use trainer.precision=32-true"
            )

    def resolved_precision(self) -> str:
        """auto: bf16-mixed on a GPU that supports it, else 32-true (bf16 cost accuracy on CPU)."""
        if self.precision != "auto":
            return self.precision
        gpu = self.accelerator in ("gpu", "cuda", "auto") and _cuda()
        if not gpu:
            return "32-true"
        import torch

        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"


@dataclass(frozen=True)
class RunConfig:
    """The top-level keys of speechrnn-train: the seed, the run dir, resuming, the final test."""

    seed: int = 0
    run_dir: str | None = None  # null: Hydra's run dir
    ckpt_path: str | None = None  # resume from this Lightning checkpoint
    resume: bool = False  # resume from <run dir>/checkpoints/last.ckpt
    init_from: str | None = None  # start from these weights (checkpoint or run dir), new schedule
    test: bool = True  # false: no test split at all (a search's objective is validation accuracy)
    evaluate: bool = True  # write the test-split report into <run dir>/report at the end
    objective: str = "val_error"  # the one number the Hydra task returns (a sweeper minimises it)
    test_checkpoint: str = "last"  # weights that the test split and the report use

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2^32), got {self.seed}")
        if self.test_checkpoint not in TEST_CHECKPOINTS:
            raise ConfigError(
                f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, "
                f"got {self.test_checkpoint!r}"
            )
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}")
        if self.init_from and (self.ckpt_path or self.resume):
            raise ConfigError(
                "init_from starts a new run from a model's weights; ckpt_path and resume continue "
                "a run: set one of them"
            )
        if self.objective == "test_error" and not self.test:
            raise ConfigError("objective=test_error needs test=true")

    def objective_value(self, metrics: Mapping[str, Any]) -> float:
        """The objective of a finished run: one minus its validation or test accuracy."""
        value = metrics.get(OBJECTIVES[self.objective])
        return 1.0 - float(value) if value is not None else math.nan


# Trainer arguments speechrnn sets itself, and the setting that controls each instead.
RESERVED_TRAINER_ARGS = {
    "callbacks": "callbacks (a mapping of name: {_target_: ...})",
    "logger": "logger=[csv,tensorboard,wandb,mlflow]",
    "default_root_dir": "run_dir",
    "gradient_clip_val": "optim.grad_clip",
    "enable_progress_bar": "trainer.progress_bar",
    "use_distributed_sampler": "none: the data module shards every batch itself",
    "plugins": "none: checkpoints are written atomically by speechrnn",
}


@dataclass(frozen=True)
class TrainSettings:
    """Every section of conf/train.yaml, typed and checked before anything heavy starts."""

    data: DataConfig
    model: ModelConfig
    trainer: TrainerConfig
    features: FeatureConfig
    augment: AugmentConfig
    optim: OptimConfig
    distil: DistilConfig
    run: RunConfig
    run_dir: Path
    ckpt_path: Path | None = None
    init_from: Path | None = None
    trainer_args: dict[str, Any] = field(default_factory=dict)  # further Lightning arguments
    loggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name: {_target_: ...}
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name: {_target_: ...}
    detection: DetectionConfig = field(default_factory=DetectionConfig)

    def __post_init__(self) -> None:
        self.detection.check_run(self.model.causal, self.optim.mixup, self.distil.teachers)

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], output_dir: Path | None = None, multirun: bool = False
    ) -> TrainSettings:
        """The settings of a composed config; `output_dir` is the run dir when run_dir is unset
        (Hydra's), `multirun` whether this is a job of a sweep."""
        run = top_level(RunConfig, cfg, "train")
        if not run.run_dir and output_dir is None:
            raise ConfigError("run_dir: no run dir is set and no Hydra run is active")
        run_dir = Path(run.run_dir or output_dir)  # type: ignore[arg-type]
        ckpt = run.ckpt_path
        if run.resume and not ckpt:
            ckpt = str(run_dir / "checkpoints" / "last.ckpt")
            if not Path(ckpt).is_file():
                raise ConfigError(
                    f"resume=true but {ckpt} does not exist (set hydra.run.dir=<run>)"
                )
        if ckpt and not Path(ckpt).is_file():
            raise ConfigError(f"ckpt_path: {ckpt} does not exist")
        trainer_values = dict(plain(cfg.get("trainer")) or {})
        extra = {k: trainer_values.pop(k) for k in list(trainer_values) if k not in _TRAINER_KEYS}
        trainer = from_mapping(TrainerConfig, trainer_values, "trainer")
        trainer.check_precision()
        if trainer.strategy.startswith("ddp") and trainer.devices != 1 and multirun:
            raise ConfigError(
                "trainer.strategy=ddp cannot run in a -m sweep: Lightning starts each further "
                "process by running the whole command again; run the settings one at a time"
            )
        data = from_mapping(DataConfig, cfg.get("data"), "data")
        if data.fit_on != "train":
            _check_final_fit(data.fit_on, run, trainer, multirun)
        return cls(
            data=data,
            model=from_mapping(ModelConfig, cfg.get("model"), "model"),
            trainer=trainer,
            features=from_mapping(FeatureConfig, cfg.get("features"), "features"),
            augment=from_mapping(AugmentConfig, cfg.get("augment"), "augment"),
            optim=from_mapping(OptimConfig, cfg.get("optim"), "optim"),
            distil=from_mapping(DistilConfig, cfg.get("distil"), "distil"),
            run=run,
            run_dir=run_dir,
            ckpt_path=Path(ckpt) if ckpt else None,
            init_from=warm_start_checkpoint(run.init_from) if run.init_from else None,
            trainer_args=_trainer_args(extra),
            loggers=_targets(cfg.get("logger"), "logger"),
            callbacks=_targets(cfg.get("callbacks"), "callbacks"),
            detection=from_mapping(DetectionConfig, cfg.get("detection"), "detection"),
        )


_TRAINER_KEYS = frozenset(TrainerConfig.__dataclass_fields__)


def _trainer_args(extra: dict[str, Any]) -> dict[str, Any]:
    """Further Lightning Trainer arguments (`+trainer.KEY=VALUE`); the names speechrnn sets
    itself are refused here, the rest are checked against Trainer's signature before it is built."""
    for key in extra:
        if key in RESERVED_TRAINER_ARGS:
            raise ConfigError(
                f"trainer.{key} is set by speechrnn; use {RESERVED_TRAINER_ARGS[key]} instead"
            )
    return checked(extra, "trainer")


def _targets(section: Any, name: str) -> dict[str, dict[str, Any]]:
    """A `name: {_target_: dotted.path, ...}` mapping (loggers, callbacks), checked for shape."""
    specs = plain(section) or {}
    if not isinstance(specs, dict):
        raise ConfigError(f"{name}: expected a mapping of name: {{_target_: ...}}, got {specs!r}")
    for key, spec in specs.items():
        if not (isinstance(spec, dict) and isinstance(spec.get("_target_"), str)):
            raise ConfigError(f"{name}.{key}: needs a _target_ (a class's dotted path)")
    return checked(specs, name)


def _check_final_fit(fit_on: str, run: RunConfig, trainer: TrainerConfig, multirun: bool) -> None:
    """A final fit trains on the validation clips, so nothing may be chosen on them."""
    chooses = {
        "test_checkpoint=best": run.test_checkpoint == "best",
        "trainer.early_stopping_patience": trainer.early_stopping_patience > 0,
        "a sweep's objective=val_error": multirun and run.objective == "val_error",
    }
    for what, used in chooses.items():
        if used:
            raise ConfigError(
                f"data.fit_on={fit_on} trains on the validation clips, so {what} cannot choose "
                "on them: choose the settings with data.fit_on=train first"
            )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (oneDNN's LSTM needs it for bf16-mixed)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
