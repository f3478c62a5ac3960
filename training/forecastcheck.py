"""How well ``p_late`` ranks a backtest's future invoices, beside the strongest simple references.

The backtest trains on the company's own past and runs its future. The invoices due from the
switch day on whose fate is known by the end (due at least
:data:`~paycadence.training.scoring.SCORED_BEFORE_END` days before it) and still open on the
first morning the future sees them — the switch day, or their issue day when later — are each
forecast on that morning with the history known then (a dunning engine's first
``/recommend`` call that sees the invoice, on or before its due date), and scored against what
happened under the fixed schedule: **late** = not settled by the due date (the contract's
meaning of ``p_late``, CONTRACT.md §4), **days late** = settlement day − due day, capped at the
training horizon (never settled: the cap). Beside the model, the simple references of
:mod:`paycadence.training.references` (the debtor's share late smoothed, shrunk toward the
book's rate by empirical Bayes, its recency-weighted share shrunk; its median days late shrunk
toward the book's), their priors estimated on what was settled before the switch day.

With ``truth`` (the simulator's true probability of each scored invoice being late, from its
latent state: :mod:`paycadence.training.ceiling`) the same scores are computed for it: the
ceiling, so that a figure says how far the model is from the best possible forecast, not only
how far above a reference (:attr:`ForecastCheck.gap_closed`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from paycadence.data import Tables, settlements
from paycadence.features.pit import features_at
from paycadence.models import RiskModels
from paycadence.training.metrics import expected_calibration_error
from paycadence.training.references import (
    DAYS_REFERENCE,
    LATE_REFERENCES,
    BookPrior,
    best,
    book_prior,
    days_reference,
    late_references,
)


@dataclass(frozen=True)
class ForecastCheck:
    """Scores of the model, each reference (and the truth, when known) on ``invoices``
    invoices, ``late_share`` of them late: ``auc``, ``brier``, ``ece``, ``mean`` (name →
    score, for ``p_late``) and ``days_mae`` (``model`` and ``median``: mean absolute error of
    ``expected_days_late``, days); ``prior``: the references' :class:`BookPrior`."""

    invoices: int
    late_share: float
    auc: dict[str, float] = field(default_factory=dict)
    brier: dict[str, float] = field(default_factory=dict)
    ece: dict[str, float] = field(default_factory=dict)
    days_mae: dict[str, float] = field(default_factory=dict)
    prior: BookPrior = field(default_factory=BookPrior)
    #: the mean ``p_late`` of each (against ``late_share``: a bias shows there)
    mean: dict[str, float] = field(default_factory=dict)

    @property
    def best_reference(self) -> tuple[str, float]:
        """The reference with the highest AUC, and that AUC."""
        return best({k: self.auc[k] for k in LATE_REFERENCES if k in self.auc})

    @property
    def gap_closed(self) -> float:
        """The share of the way from the best reference's AUC to the truth's that the model
        covers (NaN without the truth, or when the truth is no better than the reference)."""
        ref = self.best_reference[1]
        truth = self.auc.get("truth", float("nan"))
        if not truth > ref:
            return float("nan")
        return (self.auc["model"] - ref) / (truth - ref)


def first_sight(tables: Tables, *, switch: dt.date, due_by: dt.date) -> pl.DataFrame:
    """The features of the invoices due from ``switch`` to ``due_by``, each on the first
    morning from ``switch`` on that knows it (its ``first_seen``) and open then, with
    ``late`` (1.0: not settled by its due date) and ``days_late`` (settlement − due, null when
    never settled), sorted by invoice."""
    new = tables.invoices.filter((pl.col("due_date") >= switch)
                                 & (pl.col("due_date") <= due_by)).with_columns(
        first_seen=pl.max_horizontal("issue_date", pl.lit(switch, dtype=pl.Date)))
    return forecast_rows(tables, new, "first_seen")


def forecast_rows(tables: Tables, invoices: pl.DataFrame, day: str) -> pl.DataFrame:
    """The features of ``invoices`` (rows with ``invoice_id``, ``debtor_id`` and a date column
    ``day``), each on its own ``day`` with the history known that morning and open then, with
    ``settled_on``, ``late`` (1.0: not settled by its due date) and ``days_late`` (settlement
    − due, null when never settled), sorted by invoice; empty without invoices."""
    if invoices.height == 0:
        return pl.DataFrame()
    feats = features_at(tables, invoices.select("debtor_id", as_of=day).unique()).collect()
    feats = feats.join(invoices.select("invoice_id", day), on="invoice_id").filter(
        pl.col("as_of") == pl.col(day)).sort("invoice_id")
    done = settlements(tables.invoices.lazy(), tables.payments.lazy()).collect()
    return feats.join(done.select("invoice_id", "settled_on"), on="invoice_id", how="left",
                      maintain_order="left").with_columns(
        late=(pl.col("settled_on").is_null() | (pl.col("settled_on") > pl.col("due_date")))
        .cast(pl.Float64),
        days_late=(pl.col("settled_on") - pl.col("due_date")).dt.total_days().cast(pl.Float64))


def forecast_check(tables: Tables, models: RiskModels | None, *, switch: dt.date,
                   due_by: dt.date, horizon_days: int = 120,
                   truth: pl.DataFrame | None = None) -> ForecastCheck | None:
    """Score the model and the references on the invoices of :func:`first_sight` (see the
    module docstring); ``truth``: ``invoice_id`` and ``p_late_true`` of (some of) them, the
    ceiling (invoices it lacks are left out of every score). None without models or when the
    invoices scored are all late or all on time."""
    from sklearn.metrics import roc_auc_score

    if models is None:
        return None
    feats = first_sight(tables, switch=switch, due_by=due_by)
    if truth is not None and feats.height:
        feats = feats.join(truth.select("invoice_id", "p_late_true"), on="invoice_id",
                           how="inner", maintain_order="left")
    if feats.height == 0:
        return None
    y = feats["late"].to_numpy()
    if y.min() == y.max():
        return None
    ref = book_prior(tables, switch)
    forecast = models.predict(feats)
    p = {"model": forecast["p_late"].to_numpy(), **late_references(feats, ref)}
    if truth is not None:
        p["truth"] = feats["p_late_true"].to_numpy()
    days = feats["days_late"].fill_null(float(horizon_days)).clip(
        upper_bound=horizon_days).to_numpy()
    mae = {"model": float(np.mean(np.abs(np.minimum(
               forecast["expected_days_late"].to_numpy(), horizon_days) - days))),
           DAYS_REFERENCE: float(np.mean(np.abs(np.minimum(
               days_reference(feats, ref), horizon_days) - days)))}
    return ForecastCheck(
        int(feats.height), float(y.mean()),
        auc={k: float(roc_auc_score(y, v)) for k, v in p.items()},
        brier={k: float(np.mean((v - y) ** 2)) for k, v in p.items()},
        ece={k: expected_calibration_error(y, v) for k, v in p.items()},
        days_mae=mae, prior=ref, mean={k: float(np.mean(v)) for k, v in p.items()})
