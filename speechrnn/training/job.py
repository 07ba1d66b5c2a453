"""The run's settings checked before anything heavy loads, and speechrnn-train's Hydra task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechrnn.augment import AugmentConfig
from speechrnn.config import from_mapping, hydra_multirun, hydra_output_dir, top_level
from speechrnn.data.settings import DataConfig
from speechrnn.errors import ConfigError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig
from speechrnn.training.distil import DistilConfig
from speechrnn.training.settings import OptimConfig, RunConfig, TrainerConfig
from speechrnn.training.warmstart import warm_start_checkpoint


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
    seed: int
    run_dir: Path
    ckpt_path: Path | None
    init_from: Path | None
    evaluate: bool
    test_checkpoint: str
    test: bool
    objective: str | None

    @classmethod
    def from_config(cls, cfg: Any) -> TrainSettings:
        run = top_level(RunConfig, cfg, "train")
        run_dir = Path(run.run_dir or hydra_output_dir())
        ckpt = run.ckpt_path
        if run.resume and not ckpt:
            ckpt = str(run_dir / "checkpoints" / "last.ckpt")
            if not Path(ckpt).is_file():
                raise ConfigError(
                    f"resume=true but {ckpt} does not exist (set hydra.run.dir=<run>)"
                )
        if ckpt and not Path(ckpt).is_file():
            raise ConfigError(f"ckpt_path: {ckpt} does not exist")
        trainer = from_mapping(TrainerConfig, cfg.trainer, "trainer")
        trainer.check_precision()
        if trainer.strategy.startswith("ddp") and trainer.devices != 1 and hydra_multirun():
            raise ConfigError(
                "trainer.strategy=ddp cannot run in a -m sweep: Lightning starts each further "
                "process by running the whole command again; run the settings one at a time"
            )
        data = from_mapping(DataConfig, cfg.data, "data")
        if data.fit_on != "train":
            _check_final_fit(data.fit_on, run, trainer)
        return cls(
            data=data,
            model=from_mapping(ModelConfig, cfg.model, "model"),
            trainer=trainer,
            features=from_mapping(FeatureConfig, cfg.features, "features"),
            augment=from_mapping(AugmentConfig, cfg.augment, "augment"),
            optim=from_mapping(OptimConfig, cfg.optim, "optim"),
            distil=from_mapping(DistilConfig, cfg.distil, "distil"),
            seed=run.seed,
            run_dir=run_dir,
            ckpt_path=Path(ckpt) if ckpt else None,
            init_from=warm_start_checkpoint(run.init_from) if run.init_from else None,
            evaluate=run.evaluate,
            test_checkpoint=run.test_checkpoint,
            test=run.test,
            objective=run.objective,
        )


def _check_final_fit(fit_on: str, run: RunConfig, trainer: TrainerConfig) -> None:
    """A final fit trains on the validation clips, so nothing may be chosen on them."""
    chooses = {
        "test_checkpoint=best": run.test_checkpoint == "best",
        "trainer.early_stopping_patience": trainer.early_stopping_patience > 0,
        "objective=best_val_acc": run.objective == "best_val_acc",
    }
    for what, used in chooses.items():
        if used:
            raise ConfigError(
                f"data.fit_on={fit_on} trains on the validation clips, so {what} cannot choose "
                "on them: choose the settings with data.fit_on=train first"
            )


def train_job(cfg: Any) -> dict[str, Any] | float | None:
    """speechrnn-train's Hydra task: train(cfg)'s metrics, or with `objective` set the one number
    that a sweeper optimises (None in a process other than global rank 0). A wrong setting is
    one line before Lightning loads (about 6 s)."""
    TrainSettings.from_config(cfg)
    from speechrnn.training.train import train

    metrics = train(cfg)
    objective = cfg.get("objective")
    if not objective:
        return metrics
    return float(metrics[objective]) if metrics else None
