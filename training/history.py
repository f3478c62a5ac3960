"""How much history a book has, and what training makes of a short one (docs/models.md,
"Short histories").

A book is trained once it has ``train.required_history_days`` of history, counted from its
first invoice's issue day to the last day any row carries, both included; with fewer,
:func:`history_plan` refuses it and says how many more days it needs. A history too short for
``features.min_snapshot_dates`` of the usual snapshot days is snapshot every
``features.short_every_days`` after a warm-up cut to leave ``features.short_snapshot_days``
(:func:`plan_between`); one shorter than ``train.short_history_days`` is fit with the smaller
model of ``train.short_model`` (:func:`fit_params`). Both were chosen by measurement
(``benchmarks/short_history.py``, docs/models.md).

What a model of a short history could not learn yet is said plainly (:func:`not_learnt`):
what it is, what stands in for it, and after how many more days of history it will be learnt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from paycadence.config import Params, Policy
from paycadence.errors import InputError
from paycadence.features.snapshots import dates_between
from paycadence.models import RiskModels
from paycadence.models.hazard import CASH_WEEKS
from paycadence.training.snapshots import embargo_of, split_day
from paycadence.training.valuerows import CONTINUATION_SEEN_DAYS, RECOVERY_SEEN_DAYS

#: Days after a snapshot day the settlement model must see to learn the 13 weeks of the cash
#: forecast, and so ``p_unpaid_90d`` of an invoice on its due date.
FOLLOWED_DAYS = 7 * CASH_WEEKS
#: How far ahead :func:`days_until` looks for the day something can be learnt (days).
LOOK_AHEAD_DAYS = 3 * 365


@dataclass(frozen=True)
class HistoryPlan:
    """A book's history and the snapshots training takes of it.

    Attributes
    ----------
    first, last
        The first invoice's issue day and the last day any row carries.
    warmup_days
        Days from ``first`` to the first snapshot day.
    every_days
        Days between snapshot days.
    short
        Whether the history is shorter than ``train.short_history_days`` (it is then fit with
        ``train.short_model``).
    """

    first: dt.date
    last: dt.date
    warmup_days: int
    every_days: int
    short: bool

    @property
    def days(self) -> int:
        """Days of history, ``first`` and ``last`` both counted."""
        return (self.last - self.first).days + 1

    def dates(self) -> list[dt.date]:
        """The snapshot days (ascending)."""
        return dates_between(self.first, self.last, every_days=self.every_days,
                             min_history_days=self.warmup_days)

    def card(self) -> dict:
        """The plan as the model card records it."""
        return {"days": self.days, "first": self.first.isoformat(),
                "last": self.last.isoformat(), "warmup_days": self.warmup_days,
                "every_days": self.every_days, "short": self.short}


def plan_between(first: dt.date, last: dt.date, params: Params) -> HistoryPlan:
    """The :class:`HistoryPlan` of a history from ``first`` to ``last`` (both included),
    whatever its length: the usual snapshots (``features.min_history_days`` of warm-up, then
    a day every ``features.snapshot_every_days``) when they number at least
    ``features.min_snapshot_dates``; otherwise a day every ``features.short_every_days``,
    after a warm-up cut, when need be, to leave ``features.short_snapshot_days`` days of
    snapshots."""
    f, days = params.features, (last - first).days + 1
    warmup, every = f.min_history_days, f.snapshot_every_days
    usual = (days - 1 - warmup) // every + 1 if days > warmup else 0
    if usual < f.min_snapshot_dates:
        warmup = max(0, min(warmup, days - f.short_snapshot_days))
        every = f.short_every_days
    return HistoryPlan(first, last, warmup, every, days < params.train.short_history_days)


def first_day(tables) -> dt.date | None:
    """The first invoice's issue day (tables in memory or scanned)."""
    return tables.invoices.lazy().select(pl.col("issue_date").min()).collect().item()


def history_plan(tables, params: Params) -> HistoryPlan:
    """The :class:`HistoryPlan` of ``tables`` (in memory or scanned).

    Raises
    ------
    InputError
        No invoice, or fewer than ``train.required_history_days`` days of history: the
        message says how many more days are needed.
    """
    first, last = first_day(tables), tables.last_date
    if first is None or last is None:
        raise InputError("no invoices to train on")
    plan = plan_between(first, last, params)
    need = params.train.required_history_days
    if plan.days < need:
        raise InputError(f"{plan.days} days of history; at least {need} are needed to train "
                         f"({need - plan.days} more days)")
    return plan


def fit_params(params: Params, plan: HistoryPlan) -> Params:
    """``params`` with ``train.short_model``'s settings when the history is short (unchanged
    otherwise, or when ``train.short_model`` is null): never a larger model than the usual
    settings, so fewer leaves and trees and more rows per leaf of the two are taken."""
    small, usual = params.train.short_model, params.train
    if not plan.short or small is None:
        return params
    train = usual.model_copy(update={
        "num_leaves": min(usual.num_leaves, small.num_leaves),
        "n_estimators": min(usual.n_estimators, small.n_estimators),
        "min_child_samples": max(usual.min_child_samples, small.min_child_samples)})
    return params.model_copy(update={"train": train})


def days_until(plan: HistoryPlan, params: Params,
               ready: Callable[[HistoryPlan], bool]) -> int | None:
    """How many more days of history until ``ready`` holds of the book's plan (0: it already
    does; None: not within :data:`LOOK_AHEAD_DAYS`)."""
    for more in range(LOOK_AHEAD_DAYS + 1):
        if ready(plan_between(plan.first, plan.last + dt.timedelta(days=more), params)):
            return more
    return None


def _split(plan: HistoryPlan, params: Params) -> tuple[list[dt.date], dt.date, dt.date] | None:
    """The snapshot days, the split day and the first day after the training days (the split
    less its embargo) of ``plan``; None when there are too few snapshot days."""
    dates = plan.dates()
    if len(dates) < 4:
        return None
    split = split_day(dates, holdout_share=params.train.holdout_share)
    return dates, split, split - dt.timedelta(days=embargo_of(dates, split,
                                                               params.train.embargo_days))


def value_ready(plan: HistoryPlan, params: Params) -> bool:
    """Whether a snapshot day before the split was followed long enough for the value model's
    continuation (:data:`~paycadence.training.valuerows.CONTINUATION_SEEN_DAYS` days)."""
    split = _split(plan, params)
    return split is not None and (split[1] - split[0][0]).days >= CONTINUATION_SEEN_DAYS


def calibration_ready(plan: HistoryPlan, params: Params) -> bool:
    """Whether the training days (before the split's embargo) are enough for ``fit`` to hold
    the latest back to calibrate ``p_late`` on: three or more."""
    split = _split(plan, params)
    return split is not None and sum(day < split[2] for day in split[0]) >= 3


def followed_days(plan: HistoryPlan) -> int:
    """Days of data after the first snapshot day, that day included: the longest the
    settlement model sees an invoice followed."""
    dates = plan.dates()
    return (plan.last - dates[0]).days + 1 if dates else 0


def _after(more: int | None) -> str:
    """When something not learnt yet will be, for a sentence ending "... learnt"."""
    if more is None:
        return "not within three more years of history at these settings will it be"
    if more == 0:  # long enough: what it is learnt from is missing from the data itself
        return "the history is long enough, so as outcomes come in it will be"
    return f"after about {more} more days of history it will be"


def not_learnt(models: RiskModels, plan: HistoryPlan, params: Params,
               policy: Policy) -> list[str]:
    """What ``models``, fit on the history of ``plan`` with ``params``, could not learn yet:
    one plain sentence each (what, what stands in for it, and after how many more days of
    history it will be learnt); empty when nothing is missing."""
    out = []
    followed = followed_days(plan)
    if followed < FOLLOWED_DAYS:
        more = days_until(plan, params, lambda p: followed_days(p) >= FOLLOWED_DAYS)
        out.append(
            f"payments more than {followed} days ahead (the settlement model): no snapshot day "
            "has been followed longer, so expected days late, p_unpaid_90d and the cash "
            f"forecast after week {max(1, followed // 7)} carry the nearer days' payment rates "
            "forward, and the holdout's days-late error counts only the invoices paid by "
            f"{plan.last} (the early ones); {_after(more)} learnt")
    value = models.value_model
    if value is None:
        more = days_until(plan, params, lambda p: value_ready(p, params))
        why = (f"no snapshot day before the holdout has been followed for "
               f"{CONTINUATION_SEEN_DAYS} days" if more
               else "the log before the holdout has no payment to learn from")
        out.append(
            f"what each reminder is worth (the value model): {why}, so the policy file's "
            f"schedule decides every reminder and hand-over; {_after(more)} learnt")
    else:
        need = policy.learning.min_support
        counts = [n for bands in value.support.values() for n in bands]
        if not counts or max(counts) < need:
            out.append(
                f"when to depart from the schedule: the log holds fewer than {need:g} "
                "exploring decisions (policy learning.min_support) in every band of days past "
                "due, so the schedule decides; they come as the policy keeps exploring")
        if value.recovery.mean_ is None:
            out.append(
                "what the collection agency recovers: no hand-over was followed for "
                f"{RECOVERY_SEEN_DAYS} days, so hand-overs follow the schedule; they come with "
                "the first hand-overs' outcomes")
    if not models.has_response:
        out.append(
            "what a reminder changes today (the action-response model): the log before the "
            "holdout has no action with both outcomes after it; it comes with the first logged "
            "reminders' outcomes")
    if not models.card.get("calibration_rows"):
        more = days_until(plan, params, lambda p: calibration_ready(p, params))
        out.append(
            "p_late's calibration: too few training days to hold the latest back, so p_late "
            f"is the booster's own; {_after(more)} learnt")
    return out


def check_holdout(holdout: pl.DataFrame, split: dt.date, plan: HistoryPlan) -> None:
    """Refuse to go on when the holdout cannot score ``p_late``: none of its invoices not yet
    due has a known outcome (a history too short for the snapshot days held out to be
    followed to a due date). The message says after how many more days one will have."""
    due = holdout.filter(pl.col("days_past_due") <= 0)
    if due.filter(pl.col("y_late").is_not_null()).height:
        return
    soonest = due["due_date"].min()
    when = (f"after {max(1, (soonest - plan.last).days)} more days of history it will"
            if soonest is not None else "with more days of history it will")
    raise InputError(
        f"nothing to evaluate a model on: no invoice held out (snapshot days from {split}) "
        f"was due by {plan.last}, the data's last day; {when} (or lower "
        "train.holdout_share)")


def summary(card: dict) -> list[str]:
    """Lines for a person, from a model card (:meth:`HistoryPlan.card` under ``history``,
    :func:`not_learnt` under ``not_learnt``): the days learnt from and how, then each thing
    not learnt yet; none for a long history that learnt everything."""
    plan, missing = card.get("history"), list(card.get("not_learnt") or [])
    if not plan or not (plan.get("short") or missing):
        return []
    every = "every day" if plan["every_days"] == 1 else f"every {plan['every_days']} days"
    model = "; fit with the smaller model of train.short_model" if plan.get("short") else ""
    return [f"learnt from {plan['days']} days of history ({plan['first']} to {plan['last']}; "
            f"snapshots {every} after a {plan['warmup_days']}-day warm-up{model})",
            *(f"not learnt yet: {line}" for line in missing)]


def history_tags(card: dict) -> dict[str, str]:
    """MLflow tags of a model card's history: ``history_days`` and, when something was not
    learnt yet, ``not_learnt`` (its sentences, joined by "; ")."""
    plan, missing = card.get("history"), card.get("not_learnt") or []
    tags = {"history_days": str(plan["days"])} if plan else {}
    if missing:
        tags["not_learnt"] = "; ".join(missing)
    return tags
