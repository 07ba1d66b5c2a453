"""Hydra at the edge: a command's config composed on CONFIG_DIR, its task run, one-line errors."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speechrnn import CONFIG_DIR
from speechrnn.cli.registry import register_configs
from speechrnn.console import fail, guarded, internal_error, one_line
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError, Stopped, exit_code

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


def hydra_output_dir() -> Path:
    """The active Hydra run's output dir, for outputs whose location the config leaves unset."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ConfigError("no output dir is set and no Hydra run is active")
    return Path(HydraConfig.get().runtime.output_dir)


def hydra_multirun() -> bool:
    """Whether this is a job of a Hydra `-m` sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_hydra_app(config_name: str, task: Callable[[Any], Any]) -> None:
    """Run `task(cfg)` as a Hydra app on conf/<config_name>.yaml; user errors are one line.

    The task's return value goes back to Hydra: a sweeper reads it as the objective; a process
    started as rank > 0 writes nothing into the run dir (FOLLOWER_OVERRIDES).
    """
    import hydra
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print one line, not its report
    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def app(cfg: Any) -> Any:
        try:  # inside the job: a SystemExit passes Hydra by, so it adds no report of its own
            return task(cfg)
        except Stopped as exc:
            if launched_as_follower():  # rank 0 says it, with its status; a follower exiting
                sys.exit(ExitCode.OK)  # non-zero would make Lightning's observer kill rank 0
            fail(one_line(exc), exc.code)
        except SpeechRNNError as exc:
            fail(one_line(exc), exit_code(exc))
        except OmegaConfBaseException as exc:
            fail(one_line(exc), ExitCode.USAGE)
        except Exception as exc:  # inside the job, so Hydra adds no "Error executing job" line
            internal_error(exc)

    if launched_as_follower():
        sys.argv += follower_overrides(sys.argv[1:])
    try:
        app()
    except OverrideParseException as exc:
        fail(f"cannot parse override {_unparsable_override()!r}: {one_line(exc)}", ExitCode.USAGE)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(one_line(exc), ExitCode.USAGE)


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


def hydra_main(config_name: str, task: str, doc: str) -> Callable[[], None]:
    """A console script's main: the task "module:function" as a Hydra app, guarded. The task is
    imported inside the job, so errors in overrides come back before torch and Lightning load."""

    def run_task(cfg: Any) -> Any:
        module, function = task.split(":")
        return getattr(importlib.import_module(module), function)(cfg)

    def main() -> None:
        run_hydra_app(config_name, run_task)

    main.__doc__ = doc
    return guarded(main)
