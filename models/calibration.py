"""Calibration of a probability on a time-based slice: none, Platt or isotonic, by measurement.

:func:`choose` fits each method on one half of the calibration slice (by time), scores its
log-loss on the other half and the other way round, and keeps the method with the lower mean;
it is then refit on the whole slice. The result is a plain, JSON-able :class:`Calibrator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

METHODS = ("none", "platt", "isotonic")
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from a model's probability to a calibrated one.

    ``method`` is ``none``, ``platt`` (``params``: ``a``, ``b`` of σ(a·logit(p) + b)) or
    ``isotonic`` (``params``: ``x``, ``y`` knots, linear between them, flat outside).
    """

    method: str = "none"
    params: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``p``."""
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            z = self.params["a"] * _logit(p) + self.params["b"]
            return 1.0 / (1.0 + np.exp(-z))
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        return p

    def to_dict(self) -> dict:
        return {"method": self.method, "params": self.params, "scores": self.scores}

    @classmethod
    def from_dict(cls, data: dict | None) -> Calibrator:
        data = data or {}
        if data.get("method", "none") not in METHODS:
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        return cls(data.get("method", "none"), dict(data.get("params", {})),
                   dict(data.get("scores", {})))


def fit(method: str, p: np.ndarray, y: np.ndarray) -> Calibrator:
    """Fit one method on probabilities ``p`` and outcomes ``y`` (0/1)."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if method == "none" or len(np.unique(y)) < 2:
        return Calibrator()
    if method == "platt":
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(_logit(p).reshape(-1, 1), y)
        return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(),
                                       "y": iso.y_thresholds_.tolist()})
    raise ValueError(f"unknown calibration method {method!r}")


def choose(p: np.ndarray, y: np.ndarray, order: np.ndarray) -> Calibrator:
    """The method with the lowest log-loss across two time-ordered halves, refit on all.

    Parameters
    ----------
    p, y
        Model probabilities and outcomes on the calibration slice.
    order
        A sortable time per row (e.g. the snapshot day): the halves are earlier and later.
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) < 50 or len(np.unique(y)) < 2:
        return Calibrator(scores={"rows": float(len(y))})
    cut = np.median(np.asarray(order))
    early = np.asarray(order) <= cut
    halves = [(early, ~early), (~early, early)] if early.any() and (~early).any() else []
    scores = {}
    for method in METHODS:
        losses = []
        for a, b in halves:
            if len(np.unique(y[b])) < 2:
                continue
            cal = fit(method, p[a], y[a])
            losses.append(log_loss(y[b], np.clip(cal.apply(p[b]), EPS, 1 - EPS),
                                   labels=[0, 1]))
        scores[method] = float(np.mean(losses)) if losses else float("inf")
    best = min(METHODS, key=lambda m: (scores[m], METHODS.index(m)))
    chosen = fit(best, p, y)
    return Calibrator(chosen.method, chosen.params,
                      {f"log_loss_{m}": s for m, s in scores.items()} | {"rows": float(len(y))})


def by_stage(p: np.ndarray, y: np.ndarray, order: np.ndarray, overdue: np.ndarray
             ) -> tuple[Calibrator, Calibrator]:
    """One :func:`choose` for the rows not yet due and one for those ``overdue``: the
    booster's two meanings (settled after the due date; still unpaid seven days later) are
    calibrated each on its own rows. A side with too few rows to choose (fewer than 50, or one
    outcome only) takes the calibrator chosen on all rows."""
    p, y, order, overdue = (np.asarray(a) for a in (p, y, order, overdue))
    joint = None
    out = []
    for rows in (~overdue, overdue):
        if rows.sum() >= 50 and len(np.unique(y[rows])) == 2:
            out.append(choose(p[rows], y[rows], order[rows]))
        else:
            joint = joint or choose(p, y, order)
            out.append(joint)
    return out[0], out[1]
