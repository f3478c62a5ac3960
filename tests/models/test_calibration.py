"""Calibration is chosen by measurement on later data and makes forecasts honest."""

from __future__ import annotations

import numpy as np

from paycadence.models.calibration import Calibrator, choose, fit
from paycadence.training.metrics import expected_calibration_error


def _outcomes(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    p_true = rng.beta(2, 2, n)
    y = (rng.random(n) < p_true).astype(float)
    return p_true, y, np.arange(n)


def test_a_calibrated_model_is_left_alone_or_barely_moved():
    p, y, order = _outcomes()
    cal = choose(p, y, order)
    assert cal.method in ("none", "platt")
    assert np.abs(cal.apply(p) - p).max() < 0.05


def test_an_overconfident_model_is_pulled_back():
    p, y, order = _outcomes()
    sharp = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))  # log-odds tripled
    cal = choose(sharp, y, order)
    assert cal.method in ("platt", "isotonic")
    assert expected_calibration_error(y, cal.apply(sharp)) < \
        expected_calibration_error(y, sharp) / 3


def test_calibration_is_monotone_and_round_trips():
    p, y, _ = _outcomes()
    for method in ("platt", "isotonic"):
        cal = fit(method, p ** 2, y)
        grid = np.linspace(0, 1, 101)
        assert np.all(np.diff(cal.apply(grid)) >= -1e-12)
        again = Calibrator.from_dict(cal.to_dict())
        assert np.array_equal(again.apply(grid), cal.apply(grid))
