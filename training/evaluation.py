"""Holdout metrics of the forecasts (or of the naive reference): p_late and p_unpaid_90d
per stage, days late and the weekly cash forecast's error."""

from __future__ import annotations

import numpy as np
import polars as pl

from paycadence.models import RiskModels, naive_forecast
from paycadence.models.hazard import CASH_WEEKS
from paycadence.training import metrics as M
from paycadence.training.matrices import sample_weights, weighted
from paycadence.training.snapshots import LABELS

#: Stages of an invoice's life on the snapshot day, for p_late metrics per stage.
STAGES = {
    "new": pl.col("age_days") < 7,
    "before_due": pl.col("days_past_due") <= 0,
    "after_due": pl.col("days_past_due") > 0,
}


def predictions(models: RiskModels | None, holdout: pl.DataFrame) -> pl.DataFrame:
    """The holdout's labels beside the forecasts of ``models`` (None: the naive reference)."""
    pred = naive_forecast(holdout) if models is None else models.predict(holdout)
    return holdout.select(*LABELS.values(), "as_of", "open_amount", "t_settle", "t_observed",
                          stage=pl.struct(**STAGES)).with_columns(
        pred.select("p_late", "expected_days_late", "p_unpaid_90d", "cash_weeks"))


def evaluate(models: RiskModels | None, holdout: pl.DataFrame, prefix: str = "",
             horizon_days: int = 120) -> dict:
    """Holdout metrics of ``models`` (None: the naive reference).

    ``late_*`` and ``unpaid_*``: AUC, Brier, log-loss, ECE (and ``late_auc_<stage>``,
    ``late_ece_<stage>`` for invoices new, before and after due); ``days_mae``: days late,
    both sides capped at ``horizon_days`` as the labels are; ``cash_wape``: the weekly cash
    forecast of the held-out book against what came in (:func:`cash_error`).
    """
    frame = predictions(models, holdout).with_columns(
        pl.col("expected_days_late").clip(upper_bound=horizon_days))
    scale = weighted(holdout)
    frame = frame.with_columns(weight=pl.Series(sample_weights(holdout)) if scale else pl.lit(1.0))

    def w(rows: pl.DataFrame) -> np.ndarray | None:
        return rows["weight"].to_numpy() if scale else None

    out = {}
    for key, label, col in (("late", "y_late", "p_late"), ("unpaid", "y_unpaid_90d",
                                                             "p_unpaid_90d")):
        rows = frame.filter(pl.col(label).is_not_null())
        for name, value in M.binary_metrics(rows[label].to_numpy(), rows[col].to_numpy(),
                                            w(rows)).items():
            out[f"{prefix}{key}_{name}"] = value
    for stage in STAGES:
        rows = frame.filter(pl.col("y_late").is_not_null() & pl.col("stage").struct.field(stage))
        if rows.height:
            m = M.binary_metrics(rows["y_late"].to_numpy(), rows["p_late"].to_numpy(), w(rows))
            out |= {f"{prefix}late_auc_{stage}": m["auc"], f"{prefix}late_ece_{stage}": m["ece"],
                    f"{prefix}late_n_{stage}": m["n"]}
    rows = frame.filter(pl.col("y_days_late").is_not_null())
    for name, value in M.regression_metrics(rows["y_days_late"].to_numpy(),
                                            rows["expected_days_late"].to_numpy(),
                                            w(rows)).items():
        out[f"{prefix}days_{name}"] = value
    out[f"{prefix}cash_wape"] = cash_error(frame)
    return out


def cash_error(frame: pl.DataFrame) -> float:
    """Weighted absolute percentage error of the weekly cash forecast, over the snapshot days
    followed for all 13 weeks: Σ |forecast − received| / Σ received, per (day, week) of the
    held-out book (an invoice's open amount counts as received in the week it settled).
    With a ``weight`` column (a stratified sample) both sides are weighted sums: estimates of
    the whole book's."""
    weeks = CASH_WEEKS
    rows = frame.filter(pl.col("t_observed") >= 7 * weeks)
    if rows.height == 0:
        return float("nan")
    days = rows["as_of"].to_physical().to_numpy()
    day_ix = np.unique(days, return_inverse=True)[1]
    forecast = np.zeros((day_ix.max() + 1, weeks))
    cash = np.asarray(rows["cash_weeks"].to_list(), dtype=np.float64)
    amount = rows["open_amount"].to_numpy()
    if "weight" in rows.columns and rows["weight"].n_unique() > 1:
        weight = rows["weight"].to_numpy()
        cash, amount = cash * weight[:, None], amount * weight
    np.add.at(forecast, day_ix, cash)
    received = np.zeros_like(forecast)
    t = rows["t_settle"].fill_null(np.inf).to_numpy()
    inside = t < 7 * weeks
    np.add.at(received, (day_ix[inside], (t[inside] // 7).astype(int)), amount[inside])
    total = received.sum()
    return float(np.abs(forecast - received).sum() / total) if total > 0 else float("nan")
