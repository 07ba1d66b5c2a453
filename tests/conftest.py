"""Shared fixtures: the small synthetic corpus and a loopback HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import LoopbackServer, serve

SMALL_CORPUS_WORDS = ("yes", "no", "up", "down", "left", "right", "bird", "cat", "dog")
SMALL_CORPUS_SPEAKERS = 36


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic corpus in exact GSC layout, built once per session (~3 s; needs espeak-ng).

    9 words: the commands yes no up down left right plus bird cat dog (non-command words, i.e.
    `_unknown_` in the 12-class task); 36 espeak-ng speakers split by the GSC hash rule into
    28 training, 4 validation and 4 testing speakers; one 1 s clip per speaker and word (324 clips);
    `_background_noise_/` with 5 files of 60 s; `validation_list.txt`, `testing_list.txt`.
    Shared by all tests: treat it as read-only (copy it before changing anything).
    """
    from speechrnn.data.synthetic import synthesize

    out = tmp_path_factory.mktemp("small_corpus") / "gsc"
    return synthesize(out, SMALL_CORPUS_WORDS, SMALL_CORPUS_SPEAKERS, seed=0, progress=False)


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A loopback HTTP server (port 0) in a thread; put bytes in `.files` to serve them."""
    state = LoopbackServer()
    server, thread = serve(state)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13-word tone corpus in GSC layout, 10 speakers; read-only (copy it to change it)."""
    from speechrnn.data.toy import write_toy_corpus

    return write_toy_corpus(tmp_path_factory.mktemp("toy") / "corpus")
