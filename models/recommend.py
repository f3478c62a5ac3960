"""From tables to recommendations: features → forecasts → policy → explained decisions.

One function, :func:`recommend`, serves the batch command, the HTTP API and the demo. It reads
history only through :func:`paycadence.features.invoice_features`, so a stateless request and a
stored debtor get the very same treatment.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from paycadence.config import Policy
from paycadence.data import Tables
from paycadence.errors import PaycadenceError
from paycadence.features import UNPAID_DAYS, debtor_states, describe, invoice_features
from paycadence.features.state import states_of, stored_opted_out
from paycadence.guard import allowed_actions
from paycadence.models.hazard import CASH_WEEKS
from paycadence.models.policy import BookValues, decide, valued_ids
from paycadence.models.policy.value import VALUED
from paycadence.models.risk import RiskModels

logger = logging.getLogger(__name__)

FALLBACK_VERSION = "fallback"
TOP_REASONS = 3


def present_value(amount: float, p_unpaid: float, settle_in_days: float, annual_rate: float):
    """Expected present value (currency) of an open amount under the forecasts."""
    return amount * (1 - p_unpaid) * math.exp(-annual_rate * max(settle_in_days, 0) / 365)


def naive_forecast(features: pl.DataFrame) -> pl.DataFrame:
    """Rule-based forecasts from the debtor's own past, used when no model can be loaded.

    The debtor's share of late invoices, smoothed towards one half ((late + 1) / (paid + 2)),
    is ``p_late`` of an invoice not yet due (1 once past due) and ``p_open_7d`` of every one;
    days late follow its past median; ``p_unpaid_90d`` is 1 once an invoice is 90 days
    overdue, otherwise a tenth of that share; the open amount is expected in full in the week
    of the expected settlement.
    """
    n = pl.col("n_settled").fill_null(0.0)
    late = (pl.col("share_late").fill_null(0.0) * n + 1) / (n + 2)
    days = pl.max_horizontal(pl.col("median_days_late").fill_null(0.0), pl.col("days_past_due"))
    out = features.select(
        "invoice_id", "debtor_id",
        p_late=pl.when(pl.col("days_past_due") > 0).then(1.0).otherwise(late),
        p_open_7d=late,
        expected_days_late=days.round(2),
        expected_settled_on=pl.col("due_date") + pl.duration(days=days.round(0).cast(pl.Int64)),
        p_unpaid_90d=pl.when(pl.col("days_past_due") > UNPAID_DAYS).then(1.0)
        .otherwise(late / 10),
    )
    week = ((out["expected_settled_on"] - features["as_of"]).dt.total_days() // 7).to_numpy()
    cash = np.zeros((features.height, CASH_WEEKS))
    inside = (week >= 0) & (week < CASH_WEEKS)
    cash[np.flatnonzero(inside), week[inside].astype(int)] = \
        features["open_amount"].to_numpy()[inside]
    return out.with_columns(cash_weeks=pl.Series(np.round(cash, 2).tolist(),
                                                 dtype=pl.List(pl.Float64)))


def recommend(
    tables: Tables,
    *,
    as_of: dt.date,
    policy: Policy,
    models: RiskModels | None,
    model_version: str = FALLBACK_VERSION,
    debtor_ids: Iterable[str] | None = None,
    opted_out: dict[str, frozenset] | None = None,
    open_invoice_ids: Iterable[str] | None = None,
    explain: bool = True,
    scored: ScoredBook | None = None,
) -> list[dict]:
    """Recommendations for every debtor with an open invoice on ``as_of`` (or those named).

    Parameters
    ----------
    tables
        History; rows dated after ``as_of`` are ignored.
    models
        The champion forecasts; None falls back to :func:`naive_forecast`.
    debtor_ids
        Debtors to answer for, even those with nothing open (they get ``wait``).
    open_invoice_ids
        Only these invoices count as open (a caller's list of its open invoices).
    explain
        Add the SHAP reasons (the backtest skips them: it only needs the decisions).
    scored
        The whole book scored on ``as_of`` by :func:`score_book` with these ``models`` (the
        service keeps one per day for its stored debtors): the debtors' rows are read from it,
        and ``tables`` and ``open_invoice_ids`` are not used.

    Returns
    -------
    list of dict
        One contract recommendation (CONTRACT.md §4) per debtor, plus ``reason``,
        ``explored`` and ``alternatives`` (every action the decision could have drawn, with its
        probability and invoices: the distribution ``propensity`` comes from).
    """
    allowed: dict[str, dict] = {}  # the guard's allowed actions, per debtor, once
    if scored is not None:
        if scored.models is not models:
            raise ValueError("the scored book was made with other models")
        wanted = list(dict.fromkeys(debtor_ids)) if debtor_ids is not None else \
            list(scored.positions)
        rows, X = scored.take(wanted)
        states = None  # from the rows' dicts below
    else:
        features = invoice_features(tables, as_of=as_of, invoice_ids=open_invoice_ids)
        if debtor_ids is not None:
            wanted = list(dict.fromkeys(debtor_ids))
            features = features.filter(pl.col("debtor_id").is_in(
                pl.Series(wanted, dtype=pl.String).implode()))
        else:
            wanted = features["debtor_id"].unique(maintain_order=True).to_list()
        states = debtor_states(tables, features, as_of=as_of, opted_out=opted_out)
        # value only what the decisions will read: many debtors may only wait today, and an
        # action is judged only on the invoices it may name
        only: dict[str, set] | None = None
        if models is not None and models.value_model is not None:
            only = {}
            allowed = {d: allowed_actions(s, as_of, policy) for d, s in states.items()}
            for debtor_id, state in states.items():
                for action, ids in valued_ids(state, as_of, policy, allowed[debtor_id]).items():
                    only.setdefault(action, set()).update(ids)
        rows, X = _scored_rows(features, models, policy.learning.before_due_days,
                               policy.annual_cost_of_capital, only)
    rows = rows.with_row_index("_i")
    by_debtor: dict[str, list[dict]] = {}
    dicts = rows.to_dicts()  # one conversion for the whole call, then grouped
    if states is None:
        states = scored.states(dicts, wanted, opted_out)
    for row in dicts:
        by_debtor.setdefault(row["debtor_id"], []).append(row)
    support = models.value_model.support if models is not None and \
        models.value_model is not None else None
    out = [_one(debtor_id, by_debtor.get(debtor_id), states.get(debtor_id), as_of, policy,
                model_version, support, allowed.get(debtor_id)) for debtor_id in wanted]
    if explain:
        _explain(out, dicts, models, X)
    else:
        for rec in out:
            rec.pop("_focus", None)
    return out


#: Valued actions' columns in the scored rows: present value per unit open (``collection``: the
#: agency's recovery per unit, before its fee); null where the invoice is not valued.
VALUE_COLUMNS = tuple(f"val_{a}" for a in (*VALUED, "collection"))
#: ... and how far apart the two halves' payment models are on each action's advantage over
#: waiting, per unit open (:meth:`~paycadence.models.policy.value.ValueModel.per_unit_gaps`).
GAP_COLUMNS = tuple(f"gap_{a}" for a in (*VALUED[1:], "collection"))


def _scored_rows(features: pl.DataFrame, models: RiskModels | None, ahead: int = 7,
                 annual_rate: float = 0.08, only: Mapping[str, set] | None = None
                 ) -> tuple[pl.DataFrame, np.ndarray | None]:
    """The feature rows with their forecasts and, when the models have a value model, the
    value of each action for the invoices overdue or due within ``ahead`` days (when ``only``
    is given, each action only for the invoice ids it names there:
    :func:`~paycadence.models.policy.decision.valued_ids` of the call's debtors); and their
    feature matrix (built once for the forecasts, the values and the reasons; None without
    models)."""
    X = models.matrix(features) if models is not None and features.height else None
    forecasts = naive_forecast(features) if models is None else models.predict(features, X)
    rows = features.with_columns(
        forecasts.select("p_late", "p_open_7d", "expected_days_late", "expected_settled_on",
                         "p_unpaid_90d", "cash_weeks")
    ).with_columns(_values(features, models, X, ahead, annual_rate, only))
    return rows, X


def _values(features: pl.DataFrame, models: RiskModels | None, X: np.ndarray | None,
            ahead: int, annual_rate: float, only: Mapping[str, set] | None = None
            ) -> list[pl.Series]:
    """:data:`VALUE_COLUMNS` and :data:`GAP_COLUMNS` of the rows (none without a value model:
    the schedule decides); with ``only``, null where an action is not to be valued."""
    value = None if models is None else models.value_model
    if value is None or features.height == 0:
        return []
    near = features["days_past_due"].to_numpy() >= -ahead
    ids = features["invoice_id"]
    if only is not None:
        near &= ids.is_in(pl.Series(list(only.get("wait", ())), dtype=pl.String).implode()
                          ).to_numpy()
    near = np.flatnonzero(near)
    out = {c: np.full(features.height, np.nan) for c in (*VALUE_COLUMNS, *GAP_COLUMNS)}
    if near.size:
        Xv = np.column_stack([X[near], features["last_channel"].to_numpy()[near]])
        rows_of = None
        if only is not None:
            named = ids.gather(near)
            rows_of = {a: np.flatnonzero(named.is_in(pl.Series(list(only.get(a, ())),
                                                               dtype=pl.String).implode()))
                       for a in VALUED}
        values, gaps = value.per_unit_gaps(Xv, annual_rate, rows_of)
        for action, v in values.items():
            out[f"val_{action}"][near] = v
        for action, v in gaps.items():
            out[f"gap_{action}"][near] = v
    return [pl.Series(c, v).fill_nan(None) for c, v in out.items()]


@dataclass(frozen=True)
class ScoredBook:
    """Every open invoice of a book on one day with its forecasts and uplifts, made once by
    :func:`score_book` so that calls about a few of its debtors only look their rows up.

    A row's forecasts, values and SHAP values depend on that row alone, so a debtor's rows
    taken from here are exactly those a call about that debtor alone computes (tested).
    """

    rows: pl.DataFrame  # the features with the forecast and ``up_<action>`` columns
    X: np.ndarray | None  # their feature matrix (None without models)
    positions: dict[str, np.ndarray]  # each debtor's row numbers, in row order
    contact: dict[str, tuple]  # contact days per debtor
    opted_out: dict[str, frozenset]  # each debtor's own ``opted_out``
    models: RiskModels | None

    def take(self, debtor_ids: list[str]) -> tuple[pl.DataFrame, np.ndarray | None]:
        """The rows and matrix of ``debtor_ids`` (in that order, each debtor's rows in book
        order)."""
        found = [self.positions[d] for d in debtor_ids if d in self.positions]
        at = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        return self.rows[at], (self.X[at] if self.X is not None else None)

    def states(self, rows: list[dict], debtor_ids: list[str],
               overrides: dict[str, frozenset] | None) -> dict:
        """The guard states of ``debtor_ids`` from their rows as dicts (:meth:`take`'s, as
        the call converts them anyway); ``overrides``: opted-out channels from the request."""
        ids = [d for d in debtor_ids if d in self.positions]
        return states_of(rows, ids, self.contact, overrides or {}, self.opted_out)


def score_book(tables: Tables, features: pl.DataFrame, contact: dict[str, tuple],
               models: RiskModels | None) -> ScoredBook:
    """Score every row of ``features`` (``invoice_features`` of ``tables`` on one day, with
    ``contact``: their ``contact_days``) for :func:`recommend`'s ``scored``."""
    rows, X = _scored_rows(features, models)
    # each debtor's row numbers (in row order within a group)
    groups = rows.select("debtor_id").with_row_index("_i").group_by(
        "debtor_id", maintain_order=True).agg("_i")
    positions = {d: np.asarray(at, dtype=np.int64) for d, at in groups.iter_rows()}
    return ScoredBook(rows, X, positions, contact, stored_opted_out(tables), models)


def _one(debtor_id, recs, state, as_of, policy, model_version, models_support=None,
         allowed=None) -> dict:
    """One debtor's recommendation from its feature-and-forecast rows ``recs`` (``allowed``: the
    guard's allowed actions of ``state``, when the call has them already)."""
    if not recs or state is None:
        return {
            "debtor_id": debtor_id, "action": "wait", "invoice_ids": [], "step": None,
            "next_review_on": (as_of + dt.timedelta(days=7)).isoformat(),
            "risk": {"p_late": 0.0, "expected_days_late": 0.0, "p_unpaid_90d": 0.0,
                     "p_open_7d": 0.0},
            "invoices": [], "cash_forecast": cash_forecast([], as_of),
            "expected_value": 0.0, "propensity": 1.0,
            "alternatives": [{"action": "wait", "probability": 1.0, "invoice_ids": []}],
            "explanation": [{"feature": "n_open", "value": 0.0, "contribution": 0.0,
                             "text": "no open invoice"}],
            "model_version": model_version, "reason": "nothing open", "explored": False,
        }
    values = None
    if models_support is not None and "val_wait" in recs[0]:
        per_unit, gaps = {}, {}
        for r in recs:
            if r["val_wait"] is None:
                continue
            per_unit[r["invoice_id"]] = {a: r[f"val_{a}"] for a in (*VALUED, "collection")
                                         if r[f"val_{a}"] is not None}
            gaps[r["invoice_id"]] = {a: r[f"gap_{a}"] for a in (*VALUED[1:], "collection")
                                     if r.get(f"gap_{a}") is not None}
        values = BookValues(per_unit, models_support, gaps)
    choice = decide(state, as_of, policy, values, allowed)
    # the debtor's risk: its invoices' forecasts weighted by open amount
    weights = [max(r["open_amount"], 1e-9) for r in recs]
    total = sum(weights)
    risk = {k: sum(r[k] * w for r, w in zip(recs, weights, strict=True)) / total
            for k in ("p_late", "expected_days_late", "p_unpaid_90d", "p_open_7d")}
    rate = policy.annual_cost_of_capital
    value = sum(present_value(r["open_amount"], r["p_unpaid_90d"],
                              (r["expected_settled_on"] - as_of).days, rate) for r in recs)
    value -= policy.costs.of(choice.action)
    named = frozenset(choice.invoice_ids)
    if choice.action == "collection":
        value -= policy.collection_fee_rate * sum(
            present_value(r["open_amount"], r["p_unpaid_90d"],
                          (r["expected_settled_on"] - as_of).days, rate)
            for r in recs if r["invoice_id"] in named)
    focus_pool = [r for r in recs if r["invoice_id"] in named] or recs
    # the invoice most at stake: open amount × the figure its reasons explain (p_late before
    # the due date, p_open_7d after it)
    focus = max(focus_pool, key=lambda r: (r["open_amount"] * _at_risk(r), r["invoice_id"]))
    return {
        "debtor_id": debtor_id,
        "action": choice.action,
        "invoice_ids": list(choice.invoice_ids),
        "step": choice.step,
        "next_review_on": choice.next_review_on.isoformat(),
        "risk": {k: round(v, 4) for k, v in risk.items()},
        "invoices": [
            {"invoice_id": r["invoice_id"], "p_late": round(r["p_late"], 4),
             "p_open_7d": round(r["p_open_7d"], 4),
             "expected_days_late": round(r["expected_days_late"], 2),
             "expected_settled_on": r["expected_settled_on"].isoformat(),
             "p_unpaid_90d": round(r["p_unpaid_90d"], 4),
             "open_amount": round(r["open_amount"], 2),
             "expected_cash_by_week": r["cash_weeks"]}  # rounded to cents by the forecast
            for r in recs
        ],
        "cash_forecast": cash_forecast([r["cash_weeks"] for r in recs], as_of),
        "expected_value": round(float(value), 2),
        "propensity": round(choice.propensity, 6),
        "alternatives": [{"action": a, "probability": round(prob, 6), "invoice_ids": list(ids)}
                         for a, (prob, ids) in choice.options.items()],
        "explanation": [],
        "_focus": focus["_i"],  # the invoice whose factors _explain adds
        "model_version": model_version,
        "reason": choice.reason,
        "explored": choice.explored,
        # the learnt worth of the action against waiting (currency, net of its cost; None
        # where nothing learnt valued it: the fallback, a book without a log)
        "value_vs_wait": None if choice.worth is None else round(float(choice.worth), 2),
    }


def cash_forecast(weeks: list[list[float]], as_of: dt.date) -> list[dict]:
    """Expected cash per week for the next 13 weeks (week 1 starts on ``as_of``), summed over
    invoices' ``cash_weeks``: ``[{"week", "start", "end", "expected"}]``."""
    total = np.sum(np.asarray(weeks, dtype=np.float64), axis=0) if weeks else \
        np.zeros(CASH_WEEKS)
    return [{"week": week, "start": start, "end": end, "expected": round(float(cash), 2)}
            for (week, start, end), cash in zip(_weeks(as_of), total.tolist(), strict=True)]


@functools.lru_cache(maxsize=64)
def _weeks(as_of: dt.date) -> tuple[tuple[int, str, str], ...]:
    """The 13 forecast weeks from ``as_of``: (number, first day, last day) as ISO dates."""
    return tuple((w + 1, (as_of + dt.timedelta(days=7 * w)).isoformat(),
                  (as_of + dt.timedelta(days=7 * w + 6)).isoformat()) for w in range(CASH_WEEKS))


def book_cash_forecast(recs: list[dict], as_of: dt.date) -> list[dict]:
    """The whole book's weekly cash forecast: the recommendations' forecasts summed."""
    return cash_forecast([[w["expected"] for w in r["cash_forecast"]] for r in recs
                          if r.get("cash_forecast")], as_of)


class NonFiniteOutputError(PaycadenceError):
    """An output would carry a non-finite number (infinity or NaN): it is refused, never
    written (JSON has no such numbers; orjson would write ``null``, json ``Infinity``)."""


def _has_non_finite(value) -> bool:
    """Whether a JSON-like value holds an infinity or a NaN: the quick walk over every answer
    (:func:`non_finite` builds paths only when it finds one)."""
    kind = type(value)
    if kind is float:
        return not math.isfinite(value)
    if kind is dict:
        value = value.values()
    elif not (kind is list or kind is tuple):
        if kind is str or kind is int or kind is bool or value is None:
            return False
        return isinstance(value, float | np.floating) and not math.isfinite(value)
    for v in value:  # a loop, not any(): a generator per container cost twice the time
        if _has_non_finite(v):
            return True
    return False


def non_finite(value, where: str = "") -> list[str]:
    """Paths (``invoices[0].expected_days_late``) of the non-finite numbers in ``value``, a
    recommendation, a cash forecast or any JSON-like value."""
    if not _has_non_finite(value):
        return []
    found = []
    stack = [(where, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float | np.floating):
            if not np.isfinite(v):
                found.append(path or "$")
        elif isinstance(v, dict):
            stack.extend((f"{path}.{k}" if path else str(k), x) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return sorted(found)


def refuse_non_finite(recs: list[dict], cash: list[dict] | None = None, *,
                      where: str) -> None:
    """The last check before an output leaves (API answer, batch file, cash forecast): every
    number in it is finite.

    Raises
    ------
    NonFiniteOutputError
        Naming the first debtors and fields with a non-finite number (also logged as an error
        with ``where``); nothing is written then.
    """
    bad = [f"debtor '{rec.get('debtor_id')}' {path}" for rec in recs
           for path in non_finite(rec)[:1]]
    if cash:
        bad += [f"the book's cash forecast {path}" for path in non_finite(cash, "cash_forecast")
                [:1]]
    if not bad:
        return
    message = (f"{where}: not written, a forecast is not a finite number ({'; '.join(bad[:3])}"
               f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}): amounts or dates "
               "beyond what the models can forecast")
    logger.error(message)
    raise NonFiniteOutputError(message)


def _at_risk(row: dict) -> float:
    """The figure an invoice's reasons explain: ``p_open_7d`` once past due, else ``p_late``."""
    return row["p_open_7d"] if (row.get("days_past_due") or 0) > 0 else row["p_late"]


def _explain(recs: list[dict], rows: list[dict], models: RiskModels | None,
             X: np.ndarray | None) -> None:
    """Fill each recommendation's explanation with the top factors behind its focus invoice's
    ``p_late``: exact SHAP values (log-odds), computed only for the focus rows (``rows``: the
    call's feature-and-forecast rows as dicts, ``X``: their matrix, in the same order)."""
    # the focus rows are picked by position: no frame to filter (a polars filter of the wide
    # rows waited on polars' thread pool when calls ran at once)
    at = sorted(r["_focus"] for r in recs if "_focus" in r)
    if not at:
        return
    position = {i: k for k, i in enumerate(at)}
    if models is None:
        for rec in recs:
            if "_focus" in rec:
                row = rows[at[position[rec.pop("_focus")]]]
                rec["explanation"] = [{
                    "feature": "share_late", "value": row.get("share_late"),
                    "contribution": 0.0,
                    "text": describe("share_late", row) + " (rule-based fallback, no model)"}]
        return
    values, base = models.contributions(None, X=X[at])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :TOP_REASONS]
    raw = [float(base[k] + values[k].sum()) for k in range(len(at))]
    top = np.take_along_axis(values, order, axis=1)
    overdue = np.array([(rows[i].get("days_past_due") or 0) > 0 for i in at])
    sizes = _points(models, np.repeat(raw, order.shape[1]), top.ravel(),
                    np.repeat(overdue, order.shape[1])).reshape(order.shape)
    for rec in recs:
        if "_focus" not in rec:
            continue
        k = position[rec.pop("_focus")]
        row = rows[at[k]]
        rec["explanation"] = [_reason(models.features[j], float(top[k, n]), row,
                                      float(sizes[k, n]))
                              for n, j in enumerate(order[k])]


def points(models: RiskModels, raw: float, contribution: float, overdue: bool = False
           ) -> float:
    """Size of one factor in percentage points of the calibrated ``late`` booster (``p_late``
    before the due date, ``p_open_7d`` after it: ``overdue``): the forecast (raw log-odds
    ``raw``) against the same forecast without the factor's SHAP contribution."""
    with_it, without = models.calibrate(
        1.0 / (1.0 + np.exp(-np.array([raw, raw - contribution]))), np.array([overdue] * 2))
    return 100.0 * (float(with_it) - float(without))


def _points(models: RiskModels, raw: np.ndarray, contribution: np.ndarray,
            overdue: np.ndarray) -> np.ndarray:
    """:func:`points` of many factors in one pass: the same operations, element by element."""
    both = np.empty(2 * raw.shape[0])
    both[0::2], both[1::2] = raw, raw - contribution
    calibrated = models.calibrate(1.0 / (1.0 + np.exp(-both)), np.repeat(overdue, 2))
    return 100.0 * (calibrated[0::2] - calibrated[1::2])


#: Features whose value is read against a natural zero that says "worse than usual" when
#: positive: a factor of theirs that lowers the risk while the value says worse (or raises it
#: while the value says better) is worded as the model's finding despite the fact ("…, yet
#: this lowers …"), never as a reason that reads backwards.
WORSE_WHEN_POSITIVE = frozenset({"late_trend", "days_late_trend", "behaviour_change"})


def _reason(feature: str, contribution: float, row: dict, size: float) -> dict:
    """One explanation entry: the feature, its value, its SHAP contribution (log-odds), its
    size in points and its words, in the terms of the figure it moves: "paid 4 of the last 5
    invoices late: raises the risk of paying late by 21 points" for an invoice not yet due,
    "… the chance it is still unpaid a week from now …" for one past due (its ``p_open_7d``,
    which the same booster gives there, docs/models.md)."""
    effect = "raises" if contribution > 0 else "lowers"
    size = round(size, 2)
    amount = f"{abs(size):.1f}" if abs(size) < 1 else f"{abs(size):.0f}"
    unit = "point" if amount == "1" else "points"
    figure = ("the chance it is still unpaid a week from now"
              if (row.get("days_past_due") or 0) > 0 else "the risk of paying late")
    fact = describe(feature, row)
    value = row.get(feature)
    against = (feature in WORSE_WHEN_POSITIVE and value is not None and value == value
               and value != 0 and (value > 0) != (contribution > 0))
    joint = ", yet this " if against else ": "
    return {"feature": feature,
            "value": None if value is None else round(float(value), 4),
            "contribution": round(contribution, 4), "effect": effect,
            "points": size,
            "text": f"{fact}{joint}{effect} {figure} by {amount} {unit}"}
