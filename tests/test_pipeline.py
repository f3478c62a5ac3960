"""`dvc repro` reproduces simulate → ingest → features → train → evaluate / recommend / report;
a second run has nothing to do, a changed training param reruns only what depends on it, and
`dvc metrics show`, `dvc plots show` and `dvc exp run` work on the result."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _ran(stdout: str) -> set[str]:
    """Stages DVC ran (not the ones it skipped as unchanged)."""
    return set(re.findall(r"Running stage '([\w-]+)'", stdout))


@pytest.mark.xdist_group("pipeline")
@pytest.mark.slow
def test_dvc_pipeline_on_a_small_company(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["simulate"].update(debtors=30, days=400, start=str(params["simulate"]["start"]))
    params["train"].update(n_estimators=40, ope_max_debtors=12)  # 3 trainings: keep them quick
    params["recommend"]["as_of"] = "2025-02-04"  # start + 400 days
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / ".gitignore").write_text("artifacts/\nmlflow.db\nmlartifacts/\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}

    def run(*args):
        return subprocess.run(list(args), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)

    def dvc(*args):
        done = run(str(BIN / "dvc"), *args)
        assert done.returncode == 0, f"dvc {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run("git", "init", "-q")
    dvc("init", "-q")
    assert run("git", "add", "-A").returncode == 0
    assert run("git", "commit", "-qm", "pipeline").returncode == 0

    first = dvc("repro")
    assert _ran(first) == {"simulate", "ingest", "features", "train", "evaluate", "recommend",
                           "report"}
    art = tmp_path / "artifacts"
    metrics = json.loads((art / "metrics.json").read_text())
    assert metrics["late_auc"] > 0.5
    evaluation = json.loads((art / "evaluation.json").read_text())
    assert evaluation["decisions"] > 0 and evaluation["dr_low"] <= evaluation["dr_value"] <= \
        evaluation["dr_high"]
    assert (art / "clean" / "decisions.csv").is_file()  # ingest kept the decision log
    recs = (art / "recommendations.csv").read_text().splitlines()
    assert recs[0].startswith("debtor_id,action") and len(recs) > 1
    assert "<html" in (art / "report.html").read_text()[:500].lower()

    assert _ran(dvc("repro")) == set()  # nothing changed: nothing runs

    params["train"]["learning_rate"] = 0.08
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    again = dvc("repro")
    assert _ran(again) == {"train", "evaluate", "recommend", "report"}, again
    assert json.loads((art / "metrics.json").read_text())["version"] != metrics["version"]

    shown = dvc("metrics", "show")
    assert "late_auc" in shown and "dr_value" in shown
    dvc("plots", "show", "-o", "plots-html")
    page = (tmp_path / "plots-html" / "index.html").read_text()
    assert "calibration" in page and "mean_forecast" in page

    assert run("git", "add", "-A").returncode == 0
    assert run("git", "commit", "-qm", "learning rate 0.08").returncode == 0
    dvc("exp", "run", "-S", "train.learning_rate=0.05")
    table = dvc("exp", "show", "--no-pager", "--csv")
    header, *rows = table.splitlines()
    column = header.split(",").index("train.learning_rate")
    assert "0.05" in {row.split(",")[column] for row in rows}, table
