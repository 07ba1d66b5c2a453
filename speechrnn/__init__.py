"""speechrnn: speech-command recognition with stacked LSTMs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from speechrnn.version import __version__


def _config_dir() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "conf"
    return installed if (installed / "train.yaml").is_file() else here.parent / "conf"


CONFIG_DIR: Path = _config_dir()

if TYPE_CHECKING:
    from speechrnn.inference.predict import load_model


def __getattr__(name: str) -> object:
    # Lazy, so `import speechrnn` stays free of torch for the ONNX path.
    if name == "load_model":
        from speechrnn.inference.predict import load_model

        return load_model
    raise AttributeError(f"module 'speechrnn' has no attribute {name!r}")


__all__ = ["CONFIG_DIR", "__version__", "load_model"]
