"""Where the real GSC recordings are: $SPEECHRNN_REAL_DEV, else ../shared/gsc_real_dev."""

from __future__ import annotations

import os
from pathlib import Path

REAL_DEV = Path(
    os.environ.get("SPEECHRNN_REAL_DEV")
    or Path(__file__).resolve().parents[3] / "shared" / "gsc_real_dev"
)
