"""The released model shipped in the package (speechrnn/models/): its manifest and its files,
used when no model is named; $SPEECHRNN_MODELS points at another folder of the same layout."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechrnn.errors import CheckpointError

RELEASE_FORMAT = "speechrnn-release/1"
MANIFEST = "release.json"
MODELS_ENV = "SPEECHRNN_MODELS"
PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "models"
ROLES = ("onnx", "weights", "anchors")  # the int8 ONNX model, its float checkpoint, anchors
MAX_MANIFEST_BYTES = 2**20


@dataclass(frozen=True)
class ReleasedFile:
    """One file of a release: where it is, and what the manifest says of it."""

    path: Path
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Release:
    """The released model: name, folder, files by role and the manifest as written."""

    name: str
    folder: Path
    files: dict[str, ReleasedFile]
    manifest: dict[str, Any]

    @property
    def onnx(self) -> Path:
        return self.files["onnx"].path

    @property
    def weights(self) -> Path:
        return self.files["weights"].path

    def describe(self) -> str:
        """One line naming it, e.g. `the released speechrnn model (gsc12-v1, sha256 1a2b...)`."""
        return (
            f"the released speechrnn model ({self.name}, sha256 {self.files['onnx'].sha256[:12]})"
        )


def models_dir() -> Path:
    """$SPEECHRNN_MODELS when set, else the package's own speechrnn/models/."""
    override = os.environ.get(MODELS_ENV)
    return Path(override).expanduser() if override else PACKAGE_MODELS


def find_release(folder: Path | None = None) -> Release:
    """The release in `folder` (default `models_dir()`); CheckpointError (one line, exit 2) when
    it holds none or its manifest is unreadable."""
    folder = folder or models_dir()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        where = f"${MODELS_ENV}={folder}" if os.environ.get(MODELS_ENV) else "this package"
        raise CheckpointError(
            f"no released model in {where} (no {MANIFEST}); give a model file, or build the "
            "release with scripts/release.sh"
        )
    try:
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"over {MAX_MANIFEST_BYTES:,} bytes")
        data = json.loads(manifest.read_text())
        if data.get("format") != RELEASE_FORMAT:
            raise ValueError(f"format {str(data.get('format'))[:40]!r}, expected {RELEASE_FORMAT}")
        files = {
            role: ReleasedFile(
                folder / Path(entry["path"]).name, str(entry["sha256"]), int(entry["bytes"])
            )
            for role, entry in data["files"].items()
            if role in ROLES
        }
        name = str(data["name"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{manifest}: not a readable release manifest ({exc})") from None
    missing = [r for r in ("onnx", "weights") if r not in files or not files[r].path.is_file()]
    if missing:
        raise CheckpointError(f"{manifest}: the release's {' and '.join(missing)} file is missing")
    return Release(name, folder, files, data)
