"""A simulated company with a trained champion in a throwaway MLflow store, for benchmarks."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Company:
    tmp: Path  # holds mlflow.db and the clean tables in clean/
    tables: object  # paycadence.data.Tables
    trained: object  # paycadence.training.TrainResult
    as_of: dt.date  # the day before the last day of data
    request_for: object  # tests/serving/conftest.py's request builder


def company(debtors: int, days: int, *, prefix: str, seed: int = 7) -> Company:
    """Simulate ``debtors`` over ``days``, write its clean tables and train the champion into
    a new temporary MLflow store (``MLFLOW_TRACKING_URI`` is set for this process and its
    children)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "serving"))
    from conftest import request_for  # the request builder the tests use

    from paycadence.config import load_params
    from paycadence.data import write_tables
    from paycadence.data.simulate import simulate
    from paycadence.training import train

    tables = simulate(debtors, days=days, seed=seed).tables
    write_tables(tables, tmp / "clean")
    trained = train(tables, params=load_params())
    return Company(tmp, tables, trained, tables.last_date - dt.timedelta(days=1), request_for)
