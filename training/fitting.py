"""Fitting the forecasts and the action-response model on labelled snapshots and treated
rows, weighted for sampled rows (no holdout, no MLflow: :mod:`paycadence.training.train` does
that)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from paycadence.config import Params, Policy, TrainParams
from paycadence.data import Tables
from paycadence.errors import InputError
from paycadence.features import FEATURES
from paycadence.models import LateRiskModel, RiskModels, calibration
from paycadence.models.calibration import Calibrator
from paycadence.models.hazard import BIN_FEATURES
from paycadence.models.response import ACTION_FEATURES, design, response_rows
from paycadence.training.history import fit_params, history_plan
from paycadence.training.matrices import (
    feature_frame,
    frame_of,
    hazard_rows,
    narrow,
    sample_weights,
    self_weighting,
    weighted,
)
from paycadence.training.snapshots import snapshots, treated_rows
from paycadence.training.valuerows import fit_value


def fit_models(tables: Tables, params: Params, policy: Policy | None = None) -> RiskModels:
    """Fit the forecasts, the response model and the value model on a whole history, without
    a holdout or MLflow (the backtest's learnt policy; ``train`` is the tracked, gated way).
    ``policy``: the fee and cost of capital the value model's continuation is counted with.
    A short history is fit with the smaller model (:func:`paycadence.training.history.fit_params`)
    as ``train`` fits it."""
    snaps, last = snapshots(tables, params)
    params = fit_params(params, history_plan(tables, params))
    treated = treated_rows(tables, before=last + dt.timedelta(days=1),
                           horizon_days=params.train.horizon_days, data_end=last)
    models = fit(snaps, params, treated)
    return with_value(models, tables, snaps, before=last + dt.timedelta(days=1),
                      policy=policy or Policy(), seed=params.train.seed,
                      n_estimators=value_rounds(params.train))


def value_rounds(train: TrainParams) -> int:
    """Boosting rounds of the value model's boosters: half of ``train.n_estimators`` (the
    forecasts' bound), so 150 with the shipped 300; smaller training params (tests, quick
    runs) give a smaller value model as well."""
    return max(1, train.n_estimators // 2)


def with_value(models: RiskModels, tables: Tables, snaps: pl.DataFrame, *, before: dt.date,
               policy: Policy, seed: int, n_estimators: int | None = None) -> RiskModels:
    """``models`` with the book's value model (:func:`paycadence.training.valuerows.fit_value`)
    learnt from the history before ``before``, when there is enough of it; ``n_estimators``:
    its boosting rounds (:func:`value_rounds`; None: the estimators' default)."""
    value, card = fit_value(tables, snaps, before=before, fee_rate=policy.collection_fee_rate,
                            annual_rate=policy.annual_cost_of_capital, seed=seed,
                            n_estimators=n_estimators)
    models.card.update(card)
    if value is not None:
        models.boosters.update(value.boosters())
        models.card["value"] = value.meta()
        models._derived.clear()
    return models


#: Boosting stops when the later days' log-loss has not improved for this many rounds.
EARLY_STOPPING_ROUNDS = 30


def fit(train: pl.DataFrame, params: Params, treated: pl.DataFrame | None = None,
        acted: pl.DataFrame | None = None) -> RiskModels:
    """Fit the forecasts on labelled snapshots (censored rows left out per target).

    ``p_late``: a LightGBM classifier on all but the latest ``train.calibration_share`` of the
    training days, its number of trees chosen by early stopping on those latest days, then
    calibrated on them (none, Platt or isotonic, whichever has the lowest log-loss across
    their two halves). Settlement: the hazard model on person-period rows of every training
    snapshot (sampled above ``train.hazard_max_rows``), its number of trees chosen the same
    way and then refit on all training days. ``train.n_estimators`` is the upper bound.

    Snapshots of a stratified sample (``sampled_share`` differing between rows) weigh
    1 / share in every fit, so that each model learns the whole book's rates; the rows that
    stop boosting early and calibrate p_late are first thinned to one share
    (:func:`self_weighting`). Unsampled or uniformly sampled snapshots are fitted unweighted.
    Treated rows that are a sample (``sampled_share`` below 1) weigh 1 / share as well; they
    need ``acted``, the keys of every logged action (:func:`acted_keys`).
    """
    p = params.train
    kw = {"n_estimators": p.n_estimators, "learning_rate": p.learning_rate,
          "num_leaves": p.num_leaves, "min_child_samples": p.min_child_samples,
          "random_state": p.seed}
    late_rows = narrow(train, "y_late", "as_of").filter(pl.col("y_late").is_not_null())
    if late_rows.height == 0:
        raise InputError("no snapshot has a known 'y_late' label: the history is too short")
    days = late_rows["as_of"].unique().sort()
    cut = days[min(int(len(days) * (1 - p.calibration_share)), len(days) - 1)]
    fit_rows = late_rows.filter(pl.col("as_of") < cut)
    calib_rows = late_rows.filter(pl.col("as_of") >= cut)
    if fit_rows.height == 0 or len(days) < 3:
        fit_rows, calib_rows = late_rows, late_rows.clear()
    stop = {"early_stopping_rounds": EARLY_STOPPING_ROUNDS}
    calib_rows = self_weighting(calib_rows, seed=p.seed)
    calib_X = feature_frame(calib_rows) if calib_rows.height else None
    late = LateRiskModel(**kw, **stop, max_depth=p.late_max_depth).fit(
        feature_frame(fit_rows), fit_rows["y_late"].to_numpy(),
        sample_weight=sample_weights(fit_rows) if weighted(train) else None,
        eval_set=(calib_X, calib_rows["y_late"].to_numpy()) if calib_rows.height else None)
    del late_rows, fit_rows  # each fit's rows are freed once it is made
    calibrator = overdue_calibrator = Calibrator()
    if calib_rows.height:
        raw = late.predict_proba(calib_X)[:, 1]
        calibrator, overdue_calibrator = calibration.by_stage(
            raw, calib_rows["y_late"].to_numpy(), calib_rows["as_of"].to_physical().to_numpy(),
            calib_rows["days_past_due"].to_numpy() > 0)
    del calib_X
    # the settlement model: rounds chosen on the same split of days, then refit on all days
    columns = [*FEATURES, *BIN_FEATURES]
    periods = narrow(train, "as_of", "t_settle", "t_observed")
    scale = weighted(train)
    later = periods.filter(pl.col("as_of") >= cut)
    X_a, y_a, w_a = hazard_rows(periods.filter(pl.col("as_of") < cut),
                                max_rows=p.hazard_max_rows, seed=p.seed, weights=scale)
    X_b, y_b, _ = hazard_rows(self_weighting(later, seed=p.seed) if scale else later,
                              max_rows=p.hazard_max_rows, seed=p.seed)
    del later
    rounds = _early_rounds(kw, columns, X_a, y_a, X_b, y_b, weight=w_a)
    del X_a, y_a, w_a, X_b, y_b
    X, y, w = hazard_rows(periods, max_rows=p.hazard_max_rows, seed=p.seed, weights=scale)
    del periods
    if y.size == 0:
        raise InputError("no snapshot was followed long enough to learn when invoices are paid")
    hazard = LateRiskModel(**(kw | {"n_estimators": rounds})).fit(frame_of(X, columns), y,
                                                                  sample_weight=w)
    del X, w
    response, card = None, {}
    if treated is not None and treated.height:
        response, card = fit_response(train, treated, cut, kw, acted)
    return RiskModels.from_estimators(
        FEATURES, late, hazard, response=response, calibrator=calibrator,
        overdue_calibrator=overdue_calibrator,
        card={"calibration_rows": calib_rows.height, "hazard_rows": int(y.size),
              "late_trees": int(late.best_iteration_), "hazard_trees": int(rounds), **card})


def _early_rounds(kw: dict, columns: list[str], X_a: np.ndarray, y_a: np.ndarray,
                  X_b: np.ndarray, y_b: np.ndarray, weight: np.ndarray | None = None) -> int:
    """Trees to keep: boosting on the earlier rows, stopped early on the later ones (the
    ``n_estimators`` bound when either side is empty or the later rows hold one class)."""
    if not (y_a.size and y_b.size and len(np.unique(y_b)) == 2):
        return kw["n_estimators"]
    return LateRiskModel(**kw, early_stopping_rounds=EARLY_STOPPING_ROUNDS).fit(
        frame_of(X_a, columns), y_a, sample_weight=weight,
        eval_set=(frame_of(X_b, columns), y_b)).best_iteration_


def treated_sampled(treated: pl.DataFrame) -> bool:
    """Whether treated rows are a sample of the logged actions (``sampled_share`` below 1)."""
    return "sampled_share" in treated.columns and bool((treated["sampled_share"] < 1).any())


def response_rows_weighted(train: pl.DataFrame, treated: pl.DataFrame,
                           acted: pl.DataFrame | None = None) -> pl.DataFrame:
    """:func:`paycadence.models.response.response_rows`, the rows of a sample weighted by
    1 / their share as well: the waited rows of a stratified sample of snapshots, and the
    treated rows when they are a sample of the logged actions (then the snapshot rows named
    by any logged action, ``acted``, are not waited rows, whether their treated row was kept
    or not)."""
    sampled = treated_sampled(treated)
    if not (weighted(train) or sampled):
        return response_rows(train, treated)
    if sampled:
        if acted is None:
            raise ValueError("a sample of treated rows needs the keys of every logged action")
        train = train.join(acted, on=["invoice_id", "as_of"], how="anti", maintain_order="left")
    parts = (train.group_by("sampled_share", maintain_order=True) if weighted(train)
             else [((1.0,), train)])
    waited = [response_rows(part, treated).filter(pl.col("action") == "wait").with_columns(
        pl.col("weight") / share) for (share,), part in parts]
    acts = [response_rows(train.clear(), part).with_columns(pl.col("weight") / share)
            for (share,), part in (treated.group_by("sampled_share", maintain_order=True)
                                   if sampled else [((1.0,), treated)])]
    return pl.concat([*waited, *acts], how="vertical_relaxed")


def fit_response(train: pl.DataFrame, treated: pl.DataFrame, cut: dt.date, kw: dict,
                 acted: pl.DataFrame | None = None):
    """The action-response model (:mod:`paycadence.models.response`): rounds chosen by early
    stopping on the days from ``cut`` on, then refit on all rows, inverse-propensity weighted
    (and inverse-share weighted, for a sample of snapshots or of treated rows)."""
    rows = response_rows_weighted(
        narrow(train, "invoice_id", "as_of", "t_settle", "t_observed"), treated, acted)
    if rows.height == 0 or rows["y"].n_unique() < 2:
        return None, {}
    columns = [*FEATURES, *ACTION_FEATURES]
    early, later = rows.filter(pl.col("as_of") < cut), rows.filter(pl.col("as_of") >= cut)
    rounds = _early_rounds(kw, columns, design(early), early["y"].to_numpy(), design(later),
                           later["y"].to_numpy(), weight=early["weight"].to_numpy())
    del early, later
    model = LateRiskModel(**(kw | {"n_estimators": rounds})).fit(
        frame_of(design(rows), columns), rows["y"].to_numpy(),
        sample_weight=rows["weight"].to_numpy())
    counts = rows.group_by("action").len()
    return model, {"response_trees": int(rounds), "response_rows": rows.height,
                   "response_rows_by_action": dict(counts.iter_rows())}
