"""The docs agree with the code: option tables are the dataclass defaults; README is a guide."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from speechrnn.cli.registry import defaults_of, train_sections

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `([\w.]+)` \| `([^`]*)` \|", re.M)


def _documented() -> dict[str, object]:
    """key -> default, from every `| key | default | meaning |` table under docs/."""
    rows: dict[str, object] = {}
    for page in sorted((ROOT / "docs").glob("*.md")):
        for table in page.read_text().split("| key | default | meaning |")[1:]:
            body = table.split("\n\n", 1)[0]
            for key, default in ROW.findall(body):
                assert key not in rows, f"{page.name}: {key} documented twice"
                rows[key] = yaml.safe_load(default)
    return rows


def _code() -> dict[str, object]:
    return {
        f"{section}.{name}" if section else name: value
        for section, cls in train_sections().items()
        for name, value in defaults_of(cls).items()
    }


def test_option_tables_are_the_dataclass_defaults() -> None:
    documented, code = _documented(), _code()
    assert sorted(documented) == sorted(code), "docs and dataclasses list different keys"
    wrong = {k: (documented[k], v) for k, v in code.items() if documented[k] != v}
    assert not wrong, f"documented defaults differ from the code (docs, code): {wrong}"


def test_readme_is_a_short_user_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 16_000
    for page in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / page).is_file(), page


@pytest.mark.parametrize("phrase", ["this machine", "this CPU", "this 2-core machine"])
def test_no_record_names_hardware_as_this(phrase: str) -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert phrase.lower() not in page.read_text().lower(), f"{page.name}: {phrase!r}"


def test_no_absolute_path_of_a_machine_in_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"(?<![\w.~])/(?:work|root|home|Users|tmp/pytest)/\w")
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".wav", ".onnx", ".ckpt"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not found, found


def test_layout_page_lists_every_module_and_only_those() -> None:
    """docs/layout.md's tree names each module of the package (a sub-package's __init__.py is its
    folder), and nothing else."""
    files = subprocess.run(
        ["git", "ls-files", "speechrnn"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = {f for f in files if f.endswith(".py") and not f.endswith("/__init__.py")}
    modules.add("speechrnn/__init__.py")
    tree = (ROOT / "docs" / "layout.md").read_text().split("```")[1]
    listed, folders = set(), ["speechrnn"]
    for line in tree.splitlines()[1:]:
        match = re.match(r"^( +)(\S+)", line)
        if not match or not line.startswith("  "):
            continue
        depth, name = len(match.group(1)) // 2, match.group(2)
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif name.endswith(".py"):
            listed.add("/".join([*folders, name]))
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))
