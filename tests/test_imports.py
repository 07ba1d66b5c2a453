"""The import contract (the layers of docs/layout.md) and every import that must stay lazy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import console_script

ROOT = Path(__file__).resolve().parents[1]
# What importing each module may not load, and why: every import inside a function that keeps
# one of these out is there for a line of this table.
LAZY = {
    "speechrnn": ({"torch", "lightning", "hydra"}, "`import speechrnn` is free of torch"),
    "speechrnn.cli.predict": ({"torch", "lightning", "hydra"}, "ONNX prediction needs no torch"),
    "speechrnn.cli.serve": ({"torch", "lightning", "hydra"}, "an ONNX server needs no torch"),
    "speechrnn.inference.backends": ({"torch"}, "the ONNX backend needs no torch"),
    "speechrnn.cli.train": ({"torch", "lightning"}, "--help and bad overrides answer at once"),
    "speechrnn.cli.evaluate": ({"torch", "lightning"}, "--help answers at once"),
    "speechrnn.cli.export": ({"torch", "lightning"}, "--help answers at once"),
    "speechrnn.cli.download": ({"torch", "lightning"}, "--help answers at once"),
    "speechrnn.cli.calibrate": ({"torch", "lightning"}, "--help answers at once"),
    "speechrnn.inference.listening": ({"torch"}, "an ONNX listener needs no torch"),
    "speechrnn.training.settings": ({"lightning"}, "settings are checked before Lightning"),
    "speechrnn.metadata": ({"torch"}, "ONNX metadata is read without torch"),
    "speechrnn.settings": ({"torch"}, "settings are typed without torch"),
}


def _loaded(code: str) -> set[str]:
    """Top-level packages in sys.modules after `code` runs in a fresh interpreter."""
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = f"{code}\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_layers_contract_holds() -> None:
    """cli > training > evaluation > inference > data > checkpoint > model > basics: no module
    imports one of a layer above it, at module level or inside a function (import-linter)."""
    done = subprocess.run(
        [console_script("lint-imports")], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("module", sorted(LAZY))
def test_imports_that_must_stay_lazy(module: str) -> None:
    forbidden, why = LAZY[module]
    loaded = _loaded(f"import {module}")
    assert not loaded & forbidden, f"{module} loads {sorted(loaded & forbidden)}: {why}"


def test_hydra_help_loads_no_lightning() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['speechrnn-train', '--help']\n"
        "from speechrnn.cli.train import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded(code)
    assert "hydra" in loaded and "lightning" not in loaded
