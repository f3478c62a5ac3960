#!/usr/bin/env bash
# Set up (idempotently) the project's virtual environment in .venv with the pinned versions.
# Re-running it does nothing unless pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: paycadence needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  "$PY" -m venv .venv
fi
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
stamp=.venv/.paycadence-installed
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing paycadence and its pinned dependencies into .venv (a few minutes, once)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
  # setuptools tells every editable install to "be careful with folders in your working
  # directory" (an InformationOnly warning, printed even with --quiet): the layout is meant
  .venv/bin/python -W "ignore:Editable installation:UserWarning" -m pip install --quiet \
    --disable-pip-version-check -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
