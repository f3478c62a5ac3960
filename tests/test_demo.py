"""The demo end to end on a small company, with MLflow in a local store under the work dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "paycadence"


def test_demo_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    r = subprocess.run([str(BIN), "demo", "--debtors", "80", "--days", "420", "--quiet"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "what paycadence recommends" in r.stdout
    assert "where everything went" in r.stdout
    assert (tmp_path / "mlflow.db").exists()
    recs = (tmp_path / "demo-output" / "recommendations.csv").read_text().splitlines()
    assert len(recs) > 1
    assert (tmp_path / "demo-output" / "clean" / "quarantine.csv").exists()
