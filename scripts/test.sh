#!/usr/bin/env bash
# The README's test command: make or reuse .venv, install speechrnn with its test extras, run pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, scripts/test.sh tests/test_audio.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$VENV_PY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec "$VENV_PY" -m pytest "$@"
