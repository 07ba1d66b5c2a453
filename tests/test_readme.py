"""The README's two set-up commands are the scripts that CI and the demo test run."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", section, flags=re.S)
    return [ln.split("#")[0].strip() for block in blocks for ln in block.splitlines() if ln.strip()]


def test_readme_names_the_demo_and_test_scripts() -> None:
    commands = _quick_start_commands()
    assert commands[:2] == ["scripts/demo.sh", "scripts/test.sh"]
    for command in commands[:2]:
        script = ROOT / command
        assert script.is_file() and os.access(script, os.X_OK), command


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    runs = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert runs[-1] == "exec scripts/test.sh"
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert "install_speechrnn test" in test_sh and "-m pytest" in test_sh
    assert "pip install" in (ROOT / "scripts" / "venv.sh").read_text()
    assert "need_commands espeak-ng=espeak-ng chromium=chromium" in test_sh  # the browser tests


def test_demo_test_runs_the_readme_demo_command() -> None:
    demo_test = (ROOT / "tests" / "test_demo.py").read_text()
    assert '"scripts" / "demo.sh"' in demo_test
