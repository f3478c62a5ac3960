"""Holdout metrics for the forecasts, each beside the naive reference it must beat."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |observed rate − mean forecast| over equal-width bins, weighted by count."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, Brier score, log-loss and ECE of probabilities ``p`` for outcomes ``y`` (0/1)."""
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), EPS, 1 - EPS)
    out = {"brier": float(brier_score_loss(y, p)), "ece": expected_calibration_error(y, p),
           "log_loss": float(log_loss(y, p, labels=[0, 1])), "n": float(len(y)),
           "base_rate": float(y.mean()) if len(y) else float("nan")}
    out["auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Mean absolute error (days) and count."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {"mae": float(np.mean(np.abs(y - pred))) if len(y) else float("nan"),
            "n": float(len(y))}
