"""The fault-injection suite (issue 19): each test reproduces an attack or a fault on real
processes, files and databases. It shares the serving suite's fixtures (a real PostgreSQL
server, feedback databases, in-process clients)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SERVING = Path(__file__).resolve().parents[1] / "serving" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_paycadence_serving_conftest", _SERVING)
_serving = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _serving  # dataclasses look their module up there
_spec.loader.exec_module(_serving)

ON_POSTGRES = _serving.ON_POSTGRES
BACKENDS = _serving.BACKENDS
request_for = _serving.request_for
build_request = _serving.build_request
postgres = _serving.postgres
postgres_url = _serving.postgres_url
database_url = _serving.database_url
fallback_env = _serving.fallback_env
make_client = _serving.make_client
