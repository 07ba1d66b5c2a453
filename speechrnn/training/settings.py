"""Training settings with their defaults: the optimiser and schedule, and the Lightning Trainer."""

from __future__ import annotations

from dataclasses import dataclass

from speechrnn.errors import ConfigError

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


PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true")
TEST_CHECKPOINTS = ("best", "last")
OBJECTIVES = ("best_val_acc", "test_acc")  # metrics.json numbers that a sweeper can optimise


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
    objective: str | None = None  # best_val_acc: the Hydra task returns this one number (optuna)
    test_checkpoint: str = "last"  # weights that the test split and the report use

    def __post_init__(self) -> None:
        if self.test_checkpoint not in TEST_CHECKPOINTS:
            raise ConfigError(
                f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, "
                f"got {self.test_checkpoint!r}"
            )
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)} or null")
        if self.init_from and (self.ckpt_path or self.resume):
            raise ConfigError(
                "init_from starts a new run from a model's weights; ckpt_path and resume continue "
                "a run: set one of them"
            )
        if self.objective == "test_acc" and not self.test:
            raise ConfigError("objective=test_acc needs test=true")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (oneDNN's LSTM needs it for bf16-mixed)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
