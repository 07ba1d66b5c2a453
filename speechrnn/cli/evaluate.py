"""speechrnn-eval: the Hydra task that writes an evaluation report for a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechrnn.cli.hydra_app import hydra_main, hydra_output_dir


def eval_task(cfg: Any) -> Path:
    """Evaluate the model `cfg` names on its split; with streaming=true also on a long recording."""
    from speechrnn.data.settings import DataConfig
    from speechrnn.evaluation.evaluate import evaluate
    from speechrnn.evaluation.longform import LongformConfig
    from speechrnn.evaluation.settings import EvalConfig, SpottingConfig
    from speechrnn.evaluation.streaming_eval import StreamingSettings
    from speechrnn.inference.streaming import StreamConfig
    from speechrnn.settings import from_mapping, top_level

    settings = top_level(EvalConfig, cfg, "eval")
    streaming = None
    if settings.streaming:
        streaming = StreamingSettings(
            from_mapping(LongformConfig, cfg.longform, "longform"),
            from_mapping(StreamConfig, cfg.stream, "stream"),
            from_mapping(SpottingConfig, cfg.spotting, "spotting"),
        )
    return evaluate(
        settings.ckpt_path,
        from_mapping(DataConfig, cfg.data, "data"),
        split=settings.split,
        report_dir=settings.report_dir or hydra_output_dir(),
        batch_size=settings.batch_size,
        device=settings.device,
        audio_examples=settings.audio_examples,
        streaming=streaming,
    )


main = hydra_main(
    "eval", "speechrnn.cli.evaluate:eval_task", "speechrnn-eval: write an evaluation report."
)
