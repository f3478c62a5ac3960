"""Holdout metrics of the forecasts (or of the naive reference) and of the strongest simple
references: ``p_late`` on the invoices not yet due (the contract's meaning: settles after its
due date; per stage), ``p_open_7d`` on those past due (still unpaid seven days later),
``p_unpaid_90d``, days late and the weekly cash forecast's error."""

from __future__ import annotations

import numpy as np
import polars as pl

from paycadence.models import RiskModels, naive_forecast
from paycadence.models.hazard import CASH_WEEKS
from paycadence.training import metrics as M
from paycadence.training.matrices import sample_weights, weighted
from paycadence.training.references import (
    DAYS_REFERENCE,
    LATE_REFERENCES,
    BookPrior,
    best,
    days_reference,
    late_references,
)
from paycadence.training.snapshots import LABELS

#: Stages of an invoice's life on the snapshot day, for p_late metrics per stage (both are
#: invoices not yet due: one past due is scored as ``p_open_7d``).
STAGES = {
    "new": pl.col("age_days") < 7,
    "before_due": pl.col("days_past_due") <= 0,
}
PAST_DUE = pl.col("days_past_due") > 0


def predictions(models: RiskModels | None, holdout: pl.DataFrame) -> pl.DataFrame:
    """The holdout's labels beside the forecasts of ``models`` (None: the naive reference).

    A snapshot's ``y_late`` label reads "settled after the due date" for an invoice not yet
    due and "still unpaid seven days later" for one past due
    (:func:`paycadence.features.label`); here the first is ``y_late`` (null past due, where
    ``p_late`` is 1 by definition) and the second ``y_open_7d`` (null before due)."""
    pred = naive_forecast(holdout) if models is None else models.predict(holdout)
    return holdout.select(
        pl.when(PAST_DUE).then(None).otherwise(pl.col("y_late")).alias("y_late"),
        *(c for c in LABELS.values() if c != "y_late"), "as_of", "open_amount", "t_settle",
        "t_observed", y_open_7d=pl.when(PAST_DUE).then(pl.col("y_late")),
        stage=pl.struct(**STAGES)).with_columns(
        pred.select("p_late", "p_open_7d", "expected_days_late", "p_unpaid_90d", "cash_weeks"))


def evaluate(models: RiskModels | None, holdout: pl.DataFrame, prefix: str = "",
             horizon_days: int = 120) -> dict:
    """Holdout metrics of ``models`` (None: the naive reference).

    ``late_*`` (``p_late`` on the invoices not yet due), ``open7_*`` (``p_open_7d`` on those
    past due) and ``unpaid_*``: AUC, Brier, log-loss, ECE (and ``late_auc_<stage>``,
    ``late_ece_<stage>`` for invoices new and before due); ``days_mae``: days late,
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
    for key, label, col in (("late", "y_late", "p_late"), ("open7", "y_open_7d", "p_open_7d"),
                            ("unpaid", "y_unpaid_90d", "p_unpaid_90d")):
        rows = frame.filter(pl.col(label).is_not_null())
        if rows.height == 0:
            continue
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


def reference_scores(holdout: pl.DataFrame, prior: BookPrior, horizon_days: int = 120
                     ) -> dict[str, float]:
    """Holdout metrics of the simple references (:mod:`paycadence.training.references`),
    priors estimated before the holdout: ``ref_<name>_late_*`` (AUC, Brier, log-loss, ECE of
    each ``p_late`` reference on the invoices not yet due), ``ref_median_days_mae``, and the
    best of them, ``ref_best_late_auc`` / ``ref_best_late_brier`` (each the best on its own
    metric; :func:`best_reference` names the one with the best AUC)."""
    scale = weighted(holdout)
    rows = holdout.filter(~PAST_DUE & pl.col("y_late").is_not_null())
    out: dict[str, float] = {}
    if rows.height:
        y, w = rows["y_late"].to_numpy(), sample_weights(rows) if scale else None
        for name, p in late_references(rows, prior).items():
            for metric, value in M.binary_metrics(y, p, w).items():
                out[f"ref_{name}_late_{metric}"] = value
        out["ref_best_late_auc"] = best({k: out[f"ref_{k}_late_auc"]
                                         for k in LATE_REFERENCES})[1]
        out["ref_best_late_brier"] = best({k: out[f"ref_{k}_late_brier"]
                                           for k in LATE_REFERENCES}, higher=False)[1]
    rows = holdout.filter(pl.col("y_days_late").is_not_null())
    if rows.height:
        guess = np.minimum(days_reference(rows, prior), horizon_days)
        out[f"ref_{DAYS_REFERENCE}_days_mae"] = M.regression_metrics(
            rows["y_days_late"].to_numpy(), guess,
            sample_weights(rows) if scale else None)["mae"]
    return out


def best_reference(scores: dict[str, float]) -> tuple[str, float]:
    """The ``p_late`` reference with the highest holdout AUC in ``scores`` (the metrics of
    :func:`reference_scores`), and that AUC; ``("", nan)`` without them."""
    return best({k: scores.get(f"ref_{k}_late_auc", float("nan")) for k in LATE_REFERENCES})


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
