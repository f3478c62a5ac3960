"""The strongest simple forecasts a credit manager could compute in a spreadsheet, which every
evaluation scores the models against.

A model earns its keep only by beating what the debtor's own past already says. The weakest
such reference — the debtor's past share of late invoices, smoothed toward one half — flatters
any model: a debtor with one late invoice in two is not a coin toss in a book where nine in ten
invoices are paid on time. So every evaluation (``train``'s holdout, ``evaluate``, the report's
recent check, the backtest and the benchmarks) scores these, and reports the model's gain
against the best of them on the same rows:

``p_late`` (the invoice settles after its due date)

- ``laplace``: the debtor's share late, ``(late + 1) / (settled + 2)`` — the rule-based
  fallback (:func:`paycadence.models.naive_forecast`), kept as ``naive_*`` in MLflow;
- ``shrunk``: the share shrunk toward the book's rate ``r`` with a prior of strength ``m``,
  ``(late + m·r) / (settled + m)``, both estimated from the past (empirical Bayes,
  beta-binomial, method of moments: :func:`book_prior`);
- ``recent``: the recency-weighted share (``late_ewm``: each settled invoice weighs one half
  per :data:`~paycadence.features.pit.LATE_HALF_LIFE` invoices settled after it) shrunk the
  same way, with the weights' sum in place of the count.

``expected_days_late``

- ``median``: the debtor's past median days late shrunk toward the book's median,
  ``(n·median + k·book median) / (n + k)``, ``k`` by the method of moments over the debtors'
  mean days late (:func:`book_prior`); never earlier than the invoice's days past due.

The priors are estimated on what was settled before a cut day (the holdout's split, the
backtest's switch), so no reference knows the future either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from paycadence.data import Tables, settlements
from paycadence.features.pit import LATE_HALF_LIFE

#: Debtors with fewer settled invoices than this say nothing on the spread between debtors.
MIN_SETTLED = 2
#: The prior strengths are kept within these bounds (the upper one when debtors differ no
#: more than chance says).
STRENGTH = (1.0, 100.0)
#: The names of the ``p_late`` references, and of the days-late one.
LATE_REFERENCES = ("laplace", "shrunk", "recent")
DAYS_REFERENCE = "median"


@dataclass(frozen=True)
class BookPrior:
    """What the book's past says before a debtor's own: ``rate`` (its share of late
    invoices) with ``strength`` (the beta prior's ``m``), and ``median_days`` (its median days
    late) with ``days_strength`` (``k``); ``settled`` invoices were counted."""

    rate: float = 0.5
    strength: float = 2.0
    median_days: float = 0.0
    days_strength: float = STRENGTH[1]
    settled: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"rate": self.rate, "strength": self.strength, "median_days": self.median_days,
                "days_strength": self.days_strength, "settled": float(self.settled)}


def book_prior(tables: Tables, before: dt.date) -> BookPrior:
    """The book's :class:`BookPrior` from the invoices issued and settled before ``before``.

    ``m`` and ``k`` come from the method of moments over debtors with at least
    :data:`MIN_SETTLED` settled invoices: the spread of their shares (mean days late) beyond
    what chance gives with their counts is the spread between debtors; the prior is as strong
    as chance is large against it (within :data:`STRENGTH`).
    """
    inv = tables.invoices.lazy().filter(pl.col("issue_date") < before)
    pay = tables.payments.lazy().filter(pl.col("paid_on") < before)
    settled = inv.join(settlements(inv, pay), on="invoice_id").filter(
        pl.col("settled_on").is_not_null()).with_columns(
        days=(pl.col("settled_on") - pl.col("due_date")).dt.total_days().cast(pl.Float64)
    ).with_columns(late=(pl.col("days") > 0).cast(pl.Float64)).collect()
    if settled.height == 0:
        return BookPrior()
    r = float(settled["late"].mean())
    median = float(settled["days"].median())
    per = settled.group_by("debtor_id").agg(
        n=pl.len(), share=pl.col("late").mean(), mean=pl.col("days").mean(),
        var=pl.col("days").var()).filter(pl.col("n") >= MIN_SETTLED)
    if per.height < 2:
        return BookPrior(r, STRENGTH[1], median, STRENGTH[1], settled.height)
    n = per["n"].to_numpy().astype(float)
    # beta-binomial: the shares' spread beyond chance is r(1 − r) / (m + 1)
    m = _ratio(per["share"].to_numpy(), r * (1 - r), n)
    within = float(np.average(per["var"].fill_null(0.0).to_numpy(), weights=n - 1))
    k = _ratio(per["mean"].to_numpy(), within, n)
    return BookPrior(r, _bounded(None if m is None else m - 1.0), median, _bounded(k),
                     settled.height)


def _ratio(means: np.ndarray, within: float, n: np.ndarray) -> float | None:
    """``within / between``, where ``between`` is the variance of the debtors' ``means``
    beyond chance's ``within / n``; None when there is none (the debtors differ no more than
    chance says); 0 when each debtor is constant and they differ (all signal)."""
    between = float(np.var(means) - np.mean(within / n))
    if between <= 0:
        return None
    return max(within, 0.0) / between


def _bounded(strength: float | None) -> float:
    """A prior strength within :data:`STRENGTH` (its upper bound for None)."""
    return STRENGTH[1] if strength is None else float(np.clip(strength, *STRENGTH))


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()


def late_references(features: pl.DataFrame, prior: BookPrior) -> dict[str, np.ndarray]:
    """Each ``p_late`` reference of :data:`LATE_REFERENCES` for the rows of ``features``
    (:func:`paycadence.features.invoice_features` frames, or snapshots), as the invoice's
    probability of settling after its due date (1 for one already past due, as the contract
    defines ``p_late``)."""
    n = _column(features, "n_settled")
    late = _column(features, "share_late") * n
    q = 0.5 ** (1.0 / LATE_HALF_LIFE)
    weights = (1.0 - q ** n) / (1.0 - q)  # the recency weights' sum over n settled invoices
    r, m = prior.rate, prior.strength
    out = {"laplace": (late + 1.0) / (n + 2.0),
           "shrunk": (late + m * r) / (n + m),
           "recent": (_column(features, "late_ewm") * weights + m * r) / (weights + m)}
    overdue = _column(features, "days_past_due") > 0
    return {k: np.where(overdue, 1.0, v) for k, v in out.items()}


def days_reference(features: pl.DataFrame, prior: BookPrior) -> np.ndarray:
    """The ``median`` reference of ``expected_days_late``: the debtor's past median days late
    shrunk toward the book's (:class:`BookPrior`), never before the invoice's days past due."""
    n = _column(features, "n_settled")
    own = _column(features, "median_days_late")
    k = prior.days_strength
    shrunk = (n * own + k * prior.median_days) / (n + k)
    return np.maximum(shrunk, _column(features, "days_past_due"))


def best(scores: dict[str, float], *, higher: bool = True) -> tuple[str, float]:
    """The best reference of ``scores`` (name → score; NaNs ignored): the highest when
    ``higher`` (AUC), else the lowest (Brier, MAE). ``("", nan)`` when none is finite."""
    finite = {k: v for k, v in scores.items() if v == v}
    if not finite:
        return "", float("nan")
    name = (max if higher else min)(finite, key=finite.get)
    return name, finite[name]
