#!/usr/bin/env bash
# README command 1: set up, then run the main job (simulate → ingest → train → recommend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/paycadence demo "$@"
