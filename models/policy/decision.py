"""The decision: every allowed action valued against waiting, the schedule where the log is
silent, exploration around the choice, the guard's last word.

Every day a debtor has something open, each action the guard allows (wait, email, sms, letter,
phone, payment_plan, collection; a contact also up to ``learning.before_due_days`` before the
due date) gets a value in currency: the value model's expected money with it minus without it
(:mod:`paycadence.models.policy.value`), minus its cost (and for a hand-over the agency's fee
on what it recovers). The best action is taken when it differs from the schedule's only where
the log supports it and explored the band of days past due (:func:`supported`) and the
advantage is sure: the payment models learnt from each half of the book's debtors both find it
(a cross-fitted lower bound above zero), and a saved cost alone, where the models see no
difference in the money coming in, does not move the policy; otherwise the schedule's action
is. Then :func:`~paycadence.models.policy.exploration.explore` may draw another option, with
its exact probability. The ``reason`` says which rule decided, with the values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from paycadence.config import CONTACT_CHANNELS, Policy
from paycadence.data.sim_policy import contact_step
from paycadence.guard import (
    WINDOW_DAYS,
    DebtorState,
    allowed_actions,
    contact_allowed_today,
    violations,
)
from paycadence.models.policy.exploration import STRENGTH, explore, near_ids
from paycadence.models.policy.schedule import scheduled
from paycadence.models.policy.value import (
    BANDS,
    EXPLORED,
    REMINDER_BUCKETS,
    band_of,
    explored_slot,
)

CONTACTS = CONTACT_CHANNELS


@dataclass(frozen=True)
class Choice:
    """A decision for one debtor on one day."""

    action: str
    invoice_ids: tuple[str, ...]
    step: int | None
    next_review_on: dt.date
    propensity: float
    explored: bool
    reason: str
    #: action → (probability, invoice ids): every action the decision could have drawn today
    options: dict = field(default_factory=dict)
    #: the learnt worth of ``action`` against waiting (currency, net of its cost); None when
    #: no value model valued it
    worth: float | None = None


@dataclass(frozen=True)
class Valued:
    """What one allowed action is worth today for one debtor, against waiting (currency)."""

    action: str
    invoice_ids: tuple[str, ...]
    value: float  # expected money it adds, minus its cost (and the agency's fee)
    cost: float
    #: half the difference between the two halves' payment models on ``value`` (each half's
    #: value is ``value ± gap``); 0 with one payment model
    gap: float = 0.0


@dataclass(frozen=True)
class BookValues:
    """What the decision knows of one debtor's invoices from the value model.

    ``per_unit``: invoice id → action → present value per unit open if the action is taken
    today (``wait`` included; ``collection``: the agency's recovery per unit, before its
    fee). ``support``: action → number of logged exploring decisions (propensity below one
    half) per band of days past due (:data:`~paycadence.models.policy.value.BANDS`).
    ``gaps``: invoice id → action → half the difference between the two halves' payment
    models on the action's advantage over waiting per unit open (none: 0).
    """

    per_unit: Mapping[str, Mapping[str, float]]
    support: Mapping[str, list]
    gaps: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def candidates(state: DebtorState, on: dt.date, policy: Policy,
               allowed: Mapping[str, tuple]) -> dict[str, tuple]:
    """Every allowed action but waiting, with the invoices whose value it is judged on: a
    contact's near ones (overdue or due within ``learning.before_due_days``), every invoice a
    payment plan or a hand-over may cover."""
    return {action: eligible if action in ("payment_plan", "collection") else
            near_ids(state, on, policy, eligible)
            for action, eligible in allowed.items() if action != "wait"}


def valued_ids(state: DebtorState, on: dt.date, policy: Policy,
               allowed: Mapping[str, tuple]) -> dict[str, frozenset[str]]:
    """The invoices whose values :func:`decide` reads for this debtor on ``on``, per action
    (``wait``: all of them, every action is judged against it), given the guard's ``allowed``
    actions: none when it allows only waiting (the decision then values nothing), so that a
    call values only what it decides on."""
    if len(allowed) <= 1:
        return {}
    out = {a: frozenset(ids) for a, ids in candidates(state, on, policy, allowed).items()}
    out["wait"] = frozenset().union(*out.values())
    return out


def action_values(state: DebtorState, on: dt.date, policy: Policy,
                  allowed: Mapping[str, tuple], values: BookValues) -> dict[str, Valued]:
    """The value of every allowed action but waiting; a contact names the invoices it adds
    money on (the best one when none), a payment plan every invoice it may cover."""
    by_id = {i.invoice_id: i for i in state.invoices}
    fee = policy.collection_fee_rate
    out = {}
    for action, ids in candidates(state, on, policy, allowed).items():
        gains, gaps = {}, {}
        for i in ids:
            v = values.per_unit.get(i)
            if v is None or action not in v or "wait" not in v:
                continue
            worth = v[action] * (1.0 - fee) if action == "collection" else v[action]
            gains[i] = by_id[i].open_amount * (worth - v["wait"])
            gaps[i] = by_id[i].open_amount * values.gaps.get(i, {}).get(action, 0.0)
        if not gains or (action == "payment_plan" and len(gains) < len(ids)):
            continue
        named = tuple(gains) if action == "payment_plan" else \
            tuple(i for i, g in gains.items() if g > 0) or (max(gains, key=gains.get),)
        cost = policy.costs.of(action)
        out[action] = Valued(action, named, sum(gains[i] for i in named) - cost, cost,
                             sum(gaps[i] for i in named))
    return out


def supported(action: str, ids: tuple[str, ...], state: DebtorState, on: dt.date,
              policy: Policy, support: Mapping[str, list], asked_from: int | None = None
              ) -> float:
    """How many logged exploring decisions of ``action`` the log has in the band of days past
    due of the invoices it names (their latest); waiting is always known (every quiet day of
    the log is one). ``action`` :data:`~paycadence.models.policy.value.EXPLORED`: exploring
    decisions of any action there about an invoice with as many earlier contacts (0, 1, 2,
    3 or more) as the latest named one. ``asked_from``: the days past due from which the
    schedule asks for the step (:func:`schedule_step_day`): a step asked again later, because
    an earlier day did not take it, is the same decision, counted where the schedule takes it."""
    if action == "wait":
        return float("inf")
    days, contacts = _latest(ids, state, on)
    if asked_from is not None:
        days = min(days, asked_from)
    counts = support.get(action) or []
    band = band_of(days)
    if action == EXPLORED and len(counts) == len(BANDS) * REMINDER_BUCKETS:
        band = explored_slot(band, contacts)  # ... with as many earlier contacts
    return float(counts[band]) if band < len(counts) else 0.0


def _latest(ids: tuple[str, ...], state: DebtorState, on: dt.date) -> tuple[int, int]:
    """(days past due, earlier contacts) of the latest of the invoices ``ids`` names."""
    named = frozenset(ids)
    return max((((on - i.due_date).days, i.contacts) for i in state.invoices
                if i.invoice_id in named), default=(0, 0))


def schedule_step_day(action: str, ids: tuple[str, ...], state: DebtorState,
                      policy: Policy) -> int | None:
    """Days past due from which the schedule asks for its ``action`` on the latest of the
    invoices it names: ``schedule.collection`` for a hand-over, the reminder's own day for
    reminder 1, 2 or 3 (None for waiting or an invoice past the schedule's reminders).

    The schedule asks again every day until the step is taken, so an invoice the policy did
    not hand over on its collection day is asked about at 60, 90, 120 days past due, where the
    log, which followed the schedule, has hardly an invoice left: the log's exploration of
    that decision is where the schedule takes it, not where a declined step has drifted to.
    """
    if action == "wait":
        return None
    s = policy.schedule
    named = frozenset(ids)
    latest = min((i for i in state.invoices if i.invoice_id in named), default=None,
                 key=lambda i: i.due_date)
    if latest is None:
        return None
    if action == "collection":
        return s.collection
    steps = (s.first_reminder, s.second_reminder, s.final_notice)
    return steps[latest.contacts] if latest.contacts < len(steps) else None


def decide(state: DebtorState, on: dt.date, policy: Policy,
           values: BookValues | None = None, allowed: Mapping[str, tuple] | None = None
           ) -> Choice:
    """Choose the debtor's action for ``on`` (see the module docstring).

    Without ``values`` (no value model: the fallback, or a book without a log) the schedule
    decides, with exploration. ``allowed``: the guard's :func:`allowed_actions` of ``state`` on
    ``on``, when the caller has them already.
    """
    if allowed is None:
        allowed = allowed_actions(state, on, policy)
    sched, sched_ids, reason = scheduled(state, on, policy, allowed)
    chosen, ids = sched, sched_ids
    named, worth = {}, {}
    if values is not None and len(allowed) > 1:
        worth = action_values(state, on, policy, allowed, values)
        named = {a: v.invoice_ids for a, v in worth.items()}
        chosen, ids, reason = _by_value(state, on, policy, values, worth, sched, sched_ids,
                                        reason)
    broken = violations(chosen, ids, state, on, policy)
    if broken:  # the guard has the last word, whatever chose the action
        chosen, ids, reason = "wait", (), f"held back by the rules: {broken[0]}"
    known = None
    if values is not None:
        def known(option: str, option_ids: tuple) -> bool:
            return supported(option, option_ids, state, on, policy,
                             values.support) >= policy.learning.min_support
    action, ids, propensity, explored, options = explore(state, on, policy, allowed, chosen,
                                                         tuple(ids), named, known)
    if explored:
        reason = (f"exploring: {action} drawn at random (probability {propensity:.3f}) "
                  f"instead of {chosen}, so that the log keeps showing what it does")
    step = contact_step(state, action, tuple(ids))
    value = None if values is None else (
        worth[action].value if action in worth else 0.0 if action == "wait" else None)
    return Choice(action, tuple(ids), step, next_review(state, on, policy, action),
                  float(propensity), explored, reason, options, value)


def _by_value(state, on, policy, values, worth, sched, sched_ids, reason):
    """The best action among those the log supports (waiting always is), when the log explored the
    schedule's situation too (exploring decisions of any action in the band) and the
    payment models of both halves of the debtors find it better than the schedule's (its
    advantage exceeds the halves' gap on it); else the schedule's."""
    need = policy.learning.min_support
    wait = Valued("wait", (), 0.0, 0.0)
    own = wait if sched == "wait" else worth.get(sched)
    shown = ", ".join(f"{v.action} {v.value:+.2f}" for v in sorted(
        worth.values(), key=lambda v: -v.value)[:4])
    n = {a: supported(a, v.invoice_ids, state, on, policy, values.support)
         for a, v in worth.items()}
    # the schedule's own action is what the log chose there: the contrast with it is what the
    # log explored there, whatever it drew (an older bundle counts the action's own draws)
    own_key = EXPLORED if EXPLORED in values.support else sched
    asked = schedule_step_day(sched, sched_ids, state, policy)
    n_own = supported(own_key if sched != "wait" else sched, sched_ids, state, on, policy,
                      values.support, asked)
    if own is None or n_own < need:
        late = _latest(sched_ids, state, on)[0]
        where = "in this band of days past due" if asked is None or band_of(
            min(late, asked)) == band_of(late) else \
            f"where the schedule takes this step ({asked} days past due)"
        why = "it is not valued" if own is None else (
            f"the log has {_n(n_own)} exploring decisions "
            f"{'about invoices reminded as often ' if own_key == EXPLORED else 'of it '}"
            f"{where}")
        return sched, sched_ids, f"{reason}; the schedule's action is kept: {why} (< {need:g})"
    top = max([wait, *worth.values()], key=lambda v: (v.value, -STRENGTH[v.action]))
    sure = max([wait, *(v for a, v in worth.items() if n[a] >= need)],
               key=lambda v: (v.value, -STRENGTH[v.action]))
    thin = "" if top.action == sure.action else (
        f"; {top.action} looks worth {top.value:+.2f} but the log has only {_n(n[top.action])} "
        f"exploring decisions of it in this band of days past due (< {need:g})")
    if sure.action == sched:
        return sched, sched_ids, f"{reason}; also worth most by the learnt values ({shown}, " \
            f"waiting 0){thin}"
    theirs = "waiting" if sched == "wait" else f"the schedule's {sched}"
    doubt = _unsure(sure, own, theirs)
    if doubt is not None:
        return sched, sched_ids, f"{reason}; the schedule's action is kept: {doubt} ({shown}, " \
            "waiting 0)"
    if sure.action != "wait" and sched != "wait" and sure.value <= abs(sure.gap):
        # surely better than the schedule's action, not surely better than doing nothing: the
        # log does not show that acting pays here, so the policy waits if that surely beats
        # the schedule's action too, and otherwise keeps it
        not_acting = _unsure(wait, own, theirs)
        why = (f"{sure.action} looks worth {sure.value - own.value:+.2f} more than {theirs}, "
               f"but against waiting only {sure.value:+.2f}, and the payment models of the two "
               f"halves of the book's debtors differ by ±{abs(sure.gap):.2f} on that")
        if not_acting is not None:
            return sched, sched_ids, f"{reason}; the schedule's action is kept: {why}, while " \
                f"{not_acting} ({shown}, waiting 0)"
        sure, thin = wait, f"{thin}; {why}"
    what = "waiting" if sure.action == "wait" else sure.action
    apart = abs(sure.gap - own.gap)
    n_sure = float("inf") if sure.action == "wait" else n[sure.action]
    of_own = "of any action about invoices reminded as often" if own_key == EXPLORED else \
        f"of {sched}"
    return sure.action, sure.invoice_ids, (
        f"learnt from this book's log: {what} is worth {sure.value:+.2f} against "
        f"{own.value:+.2f} for {theirs} ({shown}, waiting 0), by the payment models of both "
        f"halves of the book's debtors (they differ by ±{apart:.2f}); the log has "
        f"{_n(n_sure)} exploring decisions of {what} and {_n(n_own)} "
        f"{of_own} in this band of days past due (at least {need:g}){thin}")


def _unsure(better: Valued, own: Valued, theirs: str) -> str | None:
    """Why ``better`` is not surely worth more than ``own`` (the schedule's action, named
    ``theirs``), or None when it is: its advantage exceeds the two halves' gap on it, and it
    brings in more money, not only saves a cost."""
    what = "waiting" if better.action == "wait" else better.action
    ahead, apart = better.value - own.value, abs(better.gap - own.gap)
    brings = ahead + better.cost - own.cost  # the money it brings in more, costs left aside
    if ahead <= apart:  # one half of the debtors' payment model does not find it better
        return (f"{what} looks worth {ahead:+.2f} more than {theirs}, but the payment models "
                f"learnt from the two halves of the book's debtors differ by ±{apart:.2f} on it")
    if abs(brings) <= apart:  # only the cost saved: the models see no difference in money
        return (f"{what} saves its cost, but the payment models see it bring in {brings:+.2f} "
                f"against {theirs} (± {apart:.2f}): no learnt difference to stand on")
    return None


def _n(x: float) -> str:
    return "all days" if x == float("inf") else f"{x:.0f}"


def next_contact_day(state: DebtorState, on: dt.date, policy: Policy, contacted: bool
                     ) -> dt.date:
    """Earliest day after ``on`` on which the guard allows a contact again."""
    days = list(state.contact_days) + ([on] if contacted else [])
    probe = DebtorState(state.debtor_id, state.invoices, tuple(days), state.opted_out)
    day = on + dt.timedelta(days=1)
    for _ in range(WINDOW_DAYS + policy.rules.min_days_between_contacts + 1):
        if contact_allowed_today(probe, day, policy):
            return day
        day += dt.timedelta(days=1)
    return day


def next_review(state: DebtorState, on: dt.date, policy: Policy, action: str) -> dt.date:
    """When to look again: the next day a contact is allowed while an invoice is overdue or
    near its due date, else the day the first one comes near it (a week when nothing is
    open)."""
    open_ = [i for i in state.invoices if not (i.in_collection or i.disputed)]
    if not open_:
        return on + dt.timedelta(days=7)
    earliest = next_contact_day(state, on, policy, action in CONTACTS)
    ahead = dt.timedelta(days=policy.learning.before_due_days)
    near = min(i.due_date for i in open_) - ahead
    return max(near, earliest)
