#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
bash scripts/postgres.sh install  # the feedback tests start a PostgreSQL server with it
bash scripts/chromium.sh install  # the report test opens the report in headless Chromium
exec .venv/bin/pytest -n 2 --dist loadgroup --nbmake tests notebooks "$@"
