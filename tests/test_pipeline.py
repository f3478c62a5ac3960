"""`dvc repro` reproduces simulate → train → recommend, and a second run has nothing to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.xdist_group("pipeline")
def test_dvc_repro_on_a_small_company(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["simulate"].update(debtors=60, days=400, start=str(params["simulate"]["start"]))
    params["train"].update(n_estimators=40)
    params["recommend"]["as_of"] = "2025-02-04"  # start + 400 days
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    def dvc(*args):
        return subprocess.run([str(BIN / "dvc"), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    assert dvc("init", "--no-scm").returncode == 0
    first = dvc("repro")
    assert first.returncode == 0, first.stdout + first.stderr
    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())
    assert metrics["late_auc"] > 0.5
    recs = (tmp_path / "artifacts" / "recommendations.csv").read_text().splitlines()
    assert recs[0].startswith("debtor_id,action") and len(recs) > 1
    second = dvc("repro")
    assert second.returncode == 0
    assert "didn't change" in second.stdout or "up to date" in second.stdout, second.stdout
    shown = dvc("metrics", "show")
    assert "late_auc" in shown.stdout
