# Sourced by the scripts: create .venv with a Python >= 3.11 if it is missing, reuse it otherwise.
# Sets VENV_PY. Override the interpreter used to create it with PYTHON=/path/to/python3.
if [ ! -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: speechrnn needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
VENV_PY="$PWD/.venv/bin/python"

# install_speechrnn [EXTRAS]: the checkout, editable, into .venv, quietly (setuptools' notice that
# an editable install maps the package through a finder says nothing about this project).
install_speechrnn() {
  PYTHONWARNINGS="ignore:Editable installation" "$VENV_PY" -m pip install --quiet \
    --disable-pip-version-check -e ".${1:+[$1]}"
}
