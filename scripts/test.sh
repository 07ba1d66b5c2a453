#!/usr/bin/env bash
# The README's test command: install the Debian programs the tests need (espeak-ng; chromium and
# chromedriver for the browser tests; as root, otherwise it says how), make or reuse .venv, install
# speechrnn with its test extras, run pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, scripts/test.sh tests/test_audio.py).
# The test files are shared out over one one-thread pytest-xdist worker per core (at most 4;
# -n 0: none).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/debian.sh
need_commands espeak-ng=espeak-ng chromium=chromium chromedriver=chromium-driver
source scripts/venv.sh
install_speechrnn test
workers=$(nproc 2>/dev/null || echo 1)
if ((workers > 4)); then workers=4; fi
if ((workers < 2)); then exec "$VENV_PY" -m pytest "$@"; fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one thread per worker: no oversubscribed cores
# Files in collection order (conftest.py puts the longest first), not xdist's largest-first.
exec "$VENV_PY" -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
