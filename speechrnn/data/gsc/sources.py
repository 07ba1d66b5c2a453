"""Where the GSC archives live and their published SHA-256 checksums: the one place for both."""

from __future__ import annotations

_BASE = "https://storage.googleapis.com/download.tensorflow.org/data"

# version -> (URL, SHA-256 or None when none is published). The official test sets hold the ten
# words + _silence_ + _unknown_ folders; v0.02's checksum is TFDS's (url_checksums), and no
# SHA-256 of v0.01's is published.
SOURCES: dict[str, tuple[str, str | None]] = {
    "v0.02": (
        f"{_BASE}/speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
    "v0.01": (
        f"{_BASE}/speech_commands_v0.01.tar.gz",
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "test_v0.02": (
        f"{_BASE}/speech_commands_test_set_v0.02.tar.gz",
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
    ),
    "test_v0.01": (f"{_BASE}/speech_commands_test_set_v0.01.tar.gz", None),
}


def source_url(version: str) -> str:
    """The archive URL of a GSC version (v0.02, v0.01, test_v0.02, test_v0.01)."""
    return SOURCES[version][0]


def source_sha256(version: str) -> str | None:
    """The published SHA-256 of a GSC version's archive; None when there is none."""
    return SOURCES[version][1]
