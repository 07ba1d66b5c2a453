"""Hydra at the edge: console-script entry points that decorate the plain pipeline functions."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from speechrnn import CONFIG_DIR
from speechrnn.errors import SpeechRNNError


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line on stderr and exit non-zero."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def one_line(exc: BaseException) -> str:
    """An exception's message, with its cause, folded onto one line."""
    parts = [str(exc)]
    if exc.__cause__ is not None and str(exc.__cause__) not in parts[0]:
        parts.append(str(exc.__cause__))
    lines = [ln.strip() for part in parts for ln in part.splitlines()]
    kept = [
        ln for ln in lines if ln and not ln.startswith(("full_key:", "object_type=", "See https"))
    ]
    return " ".join(kept) or type(exc).__name__


def run_hydra_app(config_name: str, task: Callable[[Any], object]) -> None:
    """Run `task(cfg)` as a Hydra app on CONFIG_DIR; any user error becomes one line."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print one line, not its report

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def app(cfg: Any) -> None:
        try:
            task(cfg)
        except SpeechRNNError as exc:  # here, before Hydra's job runner prints its own line
            fail(str(exc))

    try:
        app()
    except SpeechRNNError as exc:
        fail(str(exc))
    except (HydraException, OmegaConfBaseException) as exc:
        fail(one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


def train_main() -> None:
    """speechrnn-train: train a model (conf/train.yaml)."""
    from speechrnn.train import train

    run_hydra_app("train", train)


def eval_main() -> None:
    """speechrnn-eval: write an evaluation report for a checkpoint (conf/eval.yaml)."""
    from speechrnn.evaluate import evaluate_config

    run_hydra_app("eval", evaluate_config)


def export_main() -> None:
    """speechrnn-export: export a checkpoint to ONNX (conf/export.yaml)."""
    from speechrnn.export import export_config

    run_hydra_app("export", export_config)


def download_main() -> None:
    """speechrnn-download: fetch, verify, extract, index and cache a corpus (conf/download.yaml)."""
    from speechrnn.data.prepare import download_config

    run_hydra_app("download", download_config)
