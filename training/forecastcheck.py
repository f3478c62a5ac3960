"""How well ``p_late`` ranks a backtest's future invoices, beside the strongest simple references.

The backtest trains on the company's own past and runs its future. The invoices due from the
switch day on whose fate is known by the end (due at least
:data:`~paycadence.training.scoring.SCORED_BEFORE_END` days before it) and still open on the
first morning the future sees them — the switch day, or their issue day when later — are each
forecast on that morning with the history known then (a dunning engine's first
``/recommend`` call that sees the invoice, on or before its due date), and scored against what
happened under the fixed schedule: **late** = not settled by the due date (the contract's
meaning of ``p_late``, CONTRACT.md §4). Beside the model, three references a credit manager
could compute in a spreadsheet from the same history:

- ``laplace``: the debtor's share of late invoices so far, smoothed toward one half,
  ``(late + 1) / (settled + 2)`` (the project's rule-based fallback, :func:`naive_forecast`);
- ``shrunk``: the same share shrunk toward the book's rate ``r`` with a prior strength ``m``
  estimated from the past by the method of moments (empirical Bayes, beta-binomial):
  ``(late + m·r) / (settled + m)``;
- ``recent``: the share among the debtor's last five settled invoices, shrunk the same way.

The ceiling — the true probability from the world's latent state — is not computed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from paycadence.data import Tables, settlements
from paycadence.features.pit import RECENT, features_at
from paycadence.models import RiskModels
from paycadence.models.recommend import naive_forecast

#: Debtors with fewer settled invoices than this say nothing on the spread between debtors.
MIN_SETTLED = 2


@dataclass(frozen=True)
class ForecastCheck:
    """AUC of ``p_late`` of the model and of each reference (``auc``: name → AUC) on
    ``invoices`` invoices, ``late_share`` of them late; ``prior_strength``: the ``m`` of the
    shrunk references, ``book_rate`` their ``r``."""

    invoices: int
    late_share: float
    auc: dict[str, float] = field(default_factory=dict)
    prior_strength: float = 0.0
    book_rate: float = 0.0

    @property
    def best_reference(self) -> tuple[str, float]:
        refs = {k: v for k, v in self.auc.items() if k != "model"}
        name = max(refs, key=refs.get)
        return name, refs[name]


def prior(tables: Tables, before: dt.date) -> tuple[float, float]:
    """``(r, m)``: the book's share of late invoices among those settled before ``before``,
    and the beta prior's strength, by the method of moments over debtors with at least
    :data:`MIN_SETTLED` settled invoices (``m`` in [1, 100]; 100 when debtors differ no more
    than chance says)."""
    inv = tables.invoices.lazy().filter(pl.col("issue_date") < before)
    pay = tables.payments.lazy().filter(pl.col("paid_on") < before)
    settled = inv.join(settlements(inv, pay), on="invoice_id").filter(
        pl.col("settled_on").is_not_null()).with_columns(
        late=(pl.col("settled_on") > pl.col("due_date")).cast(pl.Float64)).collect()
    if settled.height == 0:
        return 0.5, 2.0
    r = float(settled["late"].mean())
    per = settled.group_by("debtor_id").agg(n=pl.len(), share=pl.col("late").mean()).filter(
        pl.col("n") >= MIN_SETTLED)
    if per.height < 2 or r in (0.0, 1.0):
        return r, 100.0
    n, share = per["n"].to_numpy().astype(float), per["share"].to_numpy()
    between = float(np.var(share) - np.mean(r * (1 - r) / n))
    m = r * (1 - r) / between - 1 if between > 0 else 100.0
    return r, float(np.clip(m, 1.0, 100.0))


def forecast_check(tables: Tables, models: RiskModels | None, *, switch: dt.date,
                   due_by: dt.date) -> ForecastCheck | None:
    """Score the model and the references on the invoices due from ``switch`` to ``due_by``
    and open on the first morning from ``switch`` on that knows them, each forecast on that
    morning (see the module docstring); None without models or when the invoices scored are
    all late or all on time."""
    from sklearn.metrics import roc_auc_score

    if models is None:
        return None
    new = tables.invoices.filter((pl.col("due_date") >= switch)
                                 & (pl.col("due_date") <= due_by)).with_columns(
        first_seen=pl.max_horizontal("issue_date", pl.lit(switch, dtype=pl.Date)))
    if new.height == 0:
        return None
    feats = features_at(tables, new.select("debtor_id", as_of="first_seen")).collect().join(
        new.select("invoice_id", "first_seen"), on="invoice_id").filter(
        pl.col("as_of") == pl.col("first_seen")).sort("invoice_id")
    done = settlements(tables.invoices.lazy(), tables.payments.lazy()).collect()
    y = feats.select("invoice_id", "due_date").join(
        done, on="invoice_id", how="left", maintain_order="left").select(
        late=(pl.col("settled_on").is_null() | (pl.col("settled_on") > pl.col("due_date")))
        .cast(pl.Float64))["late"].to_numpy()
    if feats.height == 0 or y.min() == y.max():
        return None
    r, m = prior(tables, switch)
    n = feats["n_settled"].fill_null(0.0).to_numpy()
    late = feats["share_late"].fill_null(0.0).to_numpy() * n
    n_recent = np.minimum(n, RECENT)
    late_recent = feats["n_late_last_5"].fill_null(0.0).to_numpy()
    p = {"model": models.predict(feats)["p_late"].to_numpy(),
         "laplace": naive_forecast(feats)["p_late"].to_numpy(),
         "shrunk": (late + m * r) / (n + m),
         "recent": (late_recent + m * r) / (n_recent + m)}
    auc = {k: float(roc_auc_score(y, v)) for k, v in p.items()}
    return ForecastCheck(int(feats.height), float(y.mean()), auc, m, r)
