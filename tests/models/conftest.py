"""Data the tree-reading tests share (SHAP tables, blocked forests)."""

from __future__ import annotations

import numpy as np
import pytest


def awkward_data(n: int = 3000, d: int = 8, seed: int = 0):
    """Features with NaNs, exact zeros and repeated values; a label depending on several."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 1] = np.round(X[:, 1])  # few distinct values: rows sit on thresholds
    X[rng.random(n) < 0.15, 2] = np.nan
    X[rng.random(n) < 0.25, 3] = 0.0
    X[rng.random(n) < 0.10, 4] = np.nan
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.5 * np.nan_to_num(X[:, 2], nan=1.5) \
        + X[:, 3] * X[:, 5] + (X[:, 3] == 0) - np.isnan(X[:, 4])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture
def data():
    """:func:`awkward_data`, to call with its size and seed."""
    return awkward_data
