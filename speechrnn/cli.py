"""Hydra at the edge: console-script entry points that decorate the plain pipeline functions."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from speechrnn import CONFIG_DIR
from speechrnn.config import register_configs
from speechrnn.console import fail, guarded, internal_error, one_line
from speechrnn.errors import CheckpointError, SpeechRNNError

BAD_MODEL = 2  # exit status for a missing, corrupt, unsafe or invalid model file


# Overrides for a process that is not global rank 0 of a multi-process run: rank 0 alone writes
# the run dir, so this one keeps Hydra's config files and log file out of it (logs go to stdout).
FOLLOWER_OVERRIDES = ("hydra.output_subdir=null", "hydra/job_logging=stdout")
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def launched_as_follower() -> bool:
    """Whether a launcher (torchrun, srun, Lightning's DDP) started this process as a rank > 0."""
    ranks = [os.environ.get(name, "") for name in RANK_VARIABLES]
    return any(r.isdigit() and int(r) > 0 for r in ranks)


def follower_overrides(argv: list[str]) -> list[str]:
    """FOLLOWER_OVERRIDES whose key `argv` does not set already."""
    keys = {arg.split("=", 1)[0] for arg in argv}
    return [o for o in FOLLOWER_OVERRIDES if o.split("=", 1)[0] not in keys]


def run_hydra_app(config_name: str, task: str) -> None:
    """Run `task(cfg)` ("module:function", imported inside the job so errors in overrides come
    back before torch and Lightning load) as a Hydra app on CONFIG_DIR; user errors are one line.
    The task's return value goes back to Hydra: a sweeper (Optuna) reads it as the objective;
    a process started as rank > 0 writes nothing into the run dir (FOLLOWER_OVERRIDES)."""
    import hydra
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print one line, not its report
    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def app(cfg: Any) -> Any:
        module, function = task.split(":")
        try:  # inside the job: a SystemExit passes Hydra by, so it adds no report of its own
            return getattr(importlib.import_module(module), function)(cfg)
        except (SpeechRNNError, OmegaConfBaseException) as exc:
            fail(one_line(exc), BAD_MODEL if isinstance(exc, CheckpointError) else 1)
        except Exception as exc:  # inside the job, so Hydra adds no "Error executing job" line
            internal_error(exc)

    if launched_as_follower():
        sys.argv += follower_overrides(sys.argv[1:])
    try:
        app()
    except OverrideParseException as exc:
        fail(f"cannot parse override {_unparsable_override()!r}: {one_line(exc)}")
    except (HydraException, OmegaConfBaseException) as exc:
        fail(one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


def _unparsable_override() -> str:
    """The first command-line override that Hydra's grammar rejects."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in sys.argv[1:]:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            return arg
    return " ".join(sys.argv[1:])


def _entry(config_name: str, task: str, doc: str) -> Callable[[], None]:
    """A console script's main: `task` as a Hydra app on conf/<config_name>.yaml, guarded."""

    def main() -> None:
        run_hydra_app(config_name, task)

    main.__doc__ = doc
    return guarded(main)


train_main = _entry("train", "speechrnn.training.job:train_job", "speechrnn-train: train a model.")
eval_main = _entry(
    "eval",
    "speechrnn.evaluation.evaluate:evaluate_config",
    "speechrnn-eval: write an evaluation report for a checkpoint.",
)
export_main = _entry(
    "export", "speechrnn.inference.export:export_config", "speechrnn-export: export to ONNX."
)
download_main = _entry(
    "download",
    "speechrnn.data.corpus:download_config",
    "speechrnn-download: fetch, verify, extract, index and cache a corpus.",
)
