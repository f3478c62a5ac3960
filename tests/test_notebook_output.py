"""A notebook's output is the analysis: no library chatter (MLflow's INFO lines and download
bars, tqdm's widget warning) on its stderr. The suite runs every notebook with nbmake; this
runs the one that trains and registers (in a folder of its own, beside nbmake's run), and
reads what each cell wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_the_retraining_notebook_writes_nothing_on_stderr(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOKS / "02-retrain-and-compare.ipynb", as_version=4)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "PAYCADENCE_NOTEBOOK_N_ESTIMATORS": "60"}
    held = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel starts with this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in held.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    noise = [o["text"] for c in nb.cells for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert noise == []
