#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/pytest -n 2 --dist loadgroup --nbmake tests notebooks "$@"
