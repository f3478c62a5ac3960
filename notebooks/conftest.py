"""Quick settings for the notebooks when pytest runs them (``--nbmake notebooks``): smaller
boosters, the same steps and the same checks. Opened in Jupyter, a notebook keeps its own
settings (docs/notebooks.md); a value already in the environment is left as it is."""

from __future__ import annotations

import os

import pytest

#: Environment variables the notebooks read, set for the kernel of each notebook run here.
QUICK = {"PAYCADENCE_NOTEBOOK_N_ESTIMATORS": "60"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Set :data:`QUICK` around each notebook's run (nbmake starts its kernel in this call,
    with this process's environment)."""
    added = {k: v for k, v in QUICK.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)
