"""speechrnn-calibrate: the Hydra task that fits a listener's operating point into its model."""

from __future__ import annotations

from typing import Any

from speechrnn.cli.hydra_app import hydra_main


def calibrate_task(cfg: Any) -> Any:
    """Calibrate the causal checkpoint `cfg` names on a long recording; print the point."""
    from speechrnn.data.settings import DataConfig
    from speechrnn.evaluation.calibrate_model import calibrate_checkpoint
    from speechrnn.evaluation.longform import LongformConfig
    from speechrnn.evaluation.settings import CalibrateConfig
    from speechrnn.evaluation.shipped_point import point_text
    from speechrnn.settings import from_mapping, top_level

    settings = top_level(CalibrateConfig, cfg, "calibrate")
    done = calibrate_checkpoint(
        settings,
        from_mapping(DataConfig, cfg.data, "data"),
        from_mapping(LongformConfig, cfg.longform, "longform"),
    )
    summary, hours = done.summary, done.seconds / 3600
    print(f"operating point: {point_text(done.point.to_metadata())}")
    print(
        f"on the {settings.split} split's {hours:.2f} h recording: {summary['hits']} of "
        f"{done.commands} commands hit, {summary['misses']} missed, {summary['false_alarms']} "
        f"false alarms ({summary['false_alarms'] / hours:.2f} FA/h)"
    )
    print(f"wrote {done.path}")
    return done


main = hydra_main(
    "calibrate",
    "speechrnn.cli.calibrate:calibrate_task",
    "speechrnn-calibrate: fit a listener's operating point into a copy of its checkpoint.",
)
