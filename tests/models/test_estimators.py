"""The LightGBM estimators follow scikit-learn's contract and behave as a manager expects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from paycadence.models import LateRiskModel


@parametrize_with_checks([LateRiskModel(n_estimators=5, min_child_samples=1, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _payers(n=400, seed=0):
    rng = np.random.default_rng(seed)
    share_late = rng.uniform(0, 1, n)
    X = pd.DataFrame({"share_late": share_late, "amount": rng.uniform(10, 1000, n)})
    y = (rng.uniform(0, 1, n) < share_late).astype(int)
    return X, y


def test_more_late_history_means_more_risk():
    """DIR: raising a debtor's past share of late invoices raises its p_late."""
    X, y = _payers()
    model = LateRiskModel(n_estimators=50, random_state=0).fit(X, y)
    probe = pd.DataFrame({"share_late": [0.0, 0.5, 1.0], "amount": [100.0] * 3})
    p = model.predict_proba(probe)[:, 1]
    assert p[0] < p[1] < p[2]


def test_always_early_payer_gets_low_risk():
    """MFT: a debtor who never paid late gets a low p_late."""
    X, y = _payers()
    model = LateRiskModel(n_estimators=50, random_state=0).fit(X, y)
    p = model.predict_proba(pd.DataFrame({"share_late": [0.0], "amount": [500.0]}))[0, 1]
    assert p < 0.2


def test_amount_alone_does_not_move_risk_much():
    """INV: with lateness fixed, the amount (pure noise here) barely changes p_late."""
    X, y = _payers()
    model = LateRiskModel(n_estimators=50, random_state=0).fit(X, y)
    probe = pd.DataFrame({"share_late": [0.5, 0.5], "amount": [20.0, 900.0]})
    p = model.predict_proba(probe)[:, 1]
    assert abs(p[0] - p[1]) < 0.25


def test_same_seed_same_model_bit_for_bit():
    X, y = _payers()
    a = LateRiskModel(n_estimators=30, random_state=3).fit(X, y).predict_proba(X)
    b = LateRiskModel(n_estimators=30, random_state=3).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("bad", [[[1.0, 2.0]], np.array([[np.inf, 1.0]])], ids=["few", "inf"])
def test_bad_input_is_refused(bad):
    with pytest.raises(ValueError):
        LateRiskModel(n_estimators=2).fit(bad, [0] * len(bad) if len(bad) > 1 else [0, 1])
