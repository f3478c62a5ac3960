"""The per-invoice forecasts: ``p_late``, ``expected_days_late`` and ``p_unpaid_90d``.

:class:`RiskModels` bundles three fitted LightGBM boosters with the feature list they were
trained on. It saves to plain LightGBM text files plus a JSON card (no pickles), loads from the
same, predicts on the frame :func:`paycadence.features.invoice_features` returns, and gives exact
SHAP contributions from LightGBM's own TreeSHAP (``pred_contrib``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from paycadence.features import UNPAID_DAYS

logger = logging.getLogger(__name__)

TARGETS = {"late": "p_late", "days": "expected_days_late", "unpaid": "p_unpaid_90d"}
CARD = "card.json"


def _booster(model) -> lgb.Booster | None:
    return getattr(model, "booster_", model)


@dataclass
class RiskModels:
    """Three boosters and the features they expect.

    Attributes
    ----------
    features : tuple of str
        Column order the boosters were trained on.
    boosters : dict
        ``late``, ``days``, ``unpaid`` → ``lightgbm.Booster`` (None: see ``constants``).
    constants : dict
        Constant predictions for a target whose training labels had one class only.
    card : dict
        Free metadata saved with the model (version, horizon, training data fingerprint...).
    """

    features: tuple[str, ...]
    boosters: dict[str, lgb.Booster | None]
    constants: dict[str, float] = field(default_factory=dict)
    card: dict = field(default_factory=dict)

    @classmethod
    def from_estimators(cls, features, late, days, unpaid, card=None) -> RiskModels:
        """Bundle fitted :mod:`paycadence.models.estimators` (or boosters)."""
        boosters, constants = {}, {}
        for key, est in {"late": late, "days": days, "unpaid": unpaid}.items():
            booster = _booster(est)
            boosters[key] = booster
            if booster is None:
                constants[key] = float(est.constant_)
        return cls(tuple(features), boosters, constants, dict(card or {}))

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``<target>.txt`` booster files and ``card.json``; returns the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for key, booster in self.boosters.items():
            if booster is not None:
                booster.save_model(directory / f"{key}.txt")
        card = {**self.card, "features": list(self.features), "constants": self.constants}
        (directory / CARD).write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RiskModels:
        """Read a directory written by :meth:`save`.

        Raises
        ------
        ValueError
            When the card is missing or a booster's features differ from the card's.
        """
        directory = Path(directory)
        card = json.loads((directory / CARD).read_text(encoding="utf-8"))
        features = tuple(card.pop("features"))
        constants = card.pop("constants", {})
        boosters = {}
        for key in TARGETS:
            path = directory / f"{key}.txt"
            if key in constants:
                boosters[key] = None
                continue
            booster = lgb.Booster(model_file=str(path))
            if tuple(booster.feature_name()) != features:
                raise ValueError(f"{path}: trained on other features than the card lists")
            boosters[key] = booster
        return cls(features, boosters, constants, card)

    # -- prediction ------------------------------------------------------------------------
    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The feature matrix in training order; a missing column is an error, not a guess."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"feature frame lacks {missing}")
        return frame.select(self.features).to_numpy().astype(np.float64, copy=False)

    def _raw(self, key: str, X: np.ndarray) -> np.ndarray:
        booster = self.boosters[key]
        if booster is None:
            return np.full(X.shape[0], self.constants[key])
        return booster.predict(X, num_threads=1)

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Forecasts for every row of a feature frame.

        Returns
        -------
        polars.DataFrame
            ``invoice_id``, ``debtor_id``, ``p_late``, ``expected_days_late`` (days after the
            due date; never before ``as_of``), ``expected_settled_on`` (date, ≥ ``as_of``) and
            ``p_unpaid_90d`` (1 once the invoice is already 90 days overdue and open).
        """
        if frame.height == 0:
            return frame.select("invoice_id", "debtor_id").with_columns(
                p_late=pl.lit(None, pl.Float64), expected_days_late=pl.lit(None, pl.Float64),
                expected_settled_on=pl.lit(None, pl.Date), p_unpaid_90d=pl.lit(None, pl.Float64))
        p_late, days, p_unpaid = self.predict_matrix(self.matrix(frame))
        out = frame.select("invoice_id", "debtor_id", "due_date").with_columns(
            p_late=pl.Series(p_late),
            expected_days_late=pl.Series(np.round(days, 2)),
            p_unpaid_90d=pl.Series(p_unpaid),
        )
        return out.with_columns(
            expected_settled_on=pl.col("due_date")
            + pl.duration(days=pl.col("expected_days_late").round(0).cast(pl.Int64))
        ).select("invoice_id", "debtor_id", "p_late", "expected_days_late",
                 "expected_settled_on", "p_unpaid_90d")

    def predict_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p_late, expected_days_late, p_unpaid_90d)`` for a matrix in :attr:`features` order.

        Forecasts are made consistent with the invoice being open on ``as_of``: it settles
        on ``as_of`` at the earliest, and one already 90 days overdue is unpaid at 90 days.
        When the days-late regression (trained up to the horizon) has nothing left to say about
        an overdue invoice, the remaining wait follows from ``p_late`` as a geometric wait.
        """
        p_late = np.clip(self._raw("late", X), 0.0, 1.0)
        days = self._raw("days", X)
        p_unpaid = np.clip(self._raw("unpaid", X), 0.0, 1.0)
        past_due = X[:, self.features.index("days_past_due")]
        # An overdue invoice the regression already sees as settled (it saturates at the
        # training horizon) waits as long as a weekly chance of 1 − p_late of being paid
        # implies: a geometric wait of 7 / q days, counted from mid-week.
        weekly = np.clip(1.0 - p_late, 1 / 52, 1.0)
        waited = past_due + 7.0 / weekly - 3.5
        days = np.where((past_due > 0) & (days < past_due + 1), waited, days)
        days = np.maximum(days, past_due)
        p_unpaid = np.where(past_due > UNPAID_DAYS, 1.0, p_unpaid)
        return p_late, days, p_unpaid

    def contributions(self, frame: pl.DataFrame, key: str = "late"):
        """Exact TreeSHAP values of one target's raw output (log-odds for binary targets).

        Returns
        -------
        (values, base)
            ``values`` has shape (n, d) in the order of :attr:`features`; ``base`` has shape
            (n,). ``base + values.sum(axis=1)`` equals the raw model output.
        """
        X = self.matrix(frame)
        booster = self.boosters[key]
        if booster is None:
            return np.zeros_like(X), np.full(X.shape[0], self.constants[key])
        contrib = booster.predict(X, pred_contrib=True, num_threads=1)
        return contrib[:, :-1], contrib[:, -1]

    def raw(self, frame: pl.DataFrame, key: str = "late") -> np.ndarray:
        """Raw output (log-odds for binary targets) of one target."""
        booster = self.boosters[key]
        X = self.matrix(frame)
        if booster is None:
            return np.full(X.shape[0], self.constants[key])
        return booster.predict(X, raw_score=True, num_threads=1)


def expected_settled(as_of: dt.date, due: dt.date, days_late: float) -> dt.date:
    """Expected settlement date: the due date plus expected days late, never before ``as_of``."""
    return max(as_of, due + dt.timedelta(days=round(days_late)))
