"""Holdout metrics for the forecasts, each beside the naive reference it must beat.

Each takes optional row weights (``weight``): a stratified sample of snapshots weights each
row by the inverse of its stratum's share, so that the metrics estimate those of the whole
book. Without weights they are the plain metrics.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10,
                               weight: np.ndarray | None = None) -> float:
    """ECE: the mean |observed rate − mean forecast| over equal-width bins, weighted by count
    (by total weight with ``weight``)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    if weight is not None:
        w = np.asarray(weight, float)
        total = 0.0
        for b in range(bins):
            mask = idx == b
            if mask.any():
                wb = w[mask]
                total += wb.sum() * abs(np.average(y[mask], weights=wb)
                                        - np.average(p[mask], weights=wb))
        return float(total / w.sum())
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def binary_metrics(y: np.ndarray, p: np.ndarray,
                   weight: np.ndarray | None = None) -> dict[str, float]:
    """AUC, Brier score, log-loss and ECE of probabilities ``p`` for outcomes ``y`` (0/1);
    ``n`` counts rows whatever their weights."""
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), EPS, 1 - EPS)
    w = None if weight is None else np.asarray(weight, float)
    out = {"brier": float(brier_score_loss(y, p, sample_weight=w)),
           "ece": expected_calibration_error(y, p, weight=w),
           "log_loss": float(log_loss(y, p, labels=[0, 1], sample_weight=w)),
           "n": float(len(y))}
    if w is None:
        out["base_rate"] = float(y.mean()) if len(y) else float("nan")
    else:
        out["base_rate"] = float(np.average(y, weights=w)) if len(y) else float("nan")
    out["auc"] = float(roc_auc_score(y, p, sample_weight=w)) if len(np.unique(y)) == 2 \
        else float("nan")
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray,
                       weight: np.ndarray | None = None) -> dict[str, float]:
    """Mean absolute error (days) and count."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    if not len(y):
        return {"mae": float("nan"), "n": 0.0}
    err = np.abs(y - pred)
    mae = np.mean(err) if weight is None else np.average(err, weights=np.asarray(weight, float))
    return {"mae": float(mae), "n": float(len(y))}
