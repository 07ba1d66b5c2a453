"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13-word tone corpus in GSC layout, 10 speakers; read-only (copy it to change it)."""
    from speechrnn.data.toy import write_toy_corpus

    return write_toy_corpus(tmp_path_factory.mktemp("toy") / "corpus")
