"""Keep the libraries' own chatter out of a command's or a notebook's output."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """MLflow's INFO lines (its database set-up, "Validating input example against model
    signature"), its artifact download bars and tqdm's "IProgress not found" warning are not
    what a command or a notebook is run for: they are left out. MLflow's warnings and errors,
    and every warning of paycadence's own, still show.

    Call it before the first import that loads MLflow (``paycadence.training``); it also
    quiets an MLflow already imported. A value the user set in the environment is kept.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message="IProgress not found")
    level = getattr(logging, os.environ["MLFLOW_LOGGING_LEVEL"].upper(), logging.WARNING)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(level)
