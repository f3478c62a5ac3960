"""The first policy: the reference schedule, sharpened by the risk forecasts, behind the guard.

For each debtor it finds the invoices whose next reminder step is due, picks the channel the
step calls for (stronger when the forecast says the money will not come by itself, later when it
says it will), checks the choice with :mod:`paycadence.guard`, explores a little with an exact
propensity, and says when to look again. Every choice carries a plain-language reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field

from paycadence.config import OPTABLE_CHANNELS, Policy
from paycadence.guard import (
    WINDOW_DAYS,
    DebtorState,
    InvoiceState,
    allowed_actions,
    contact_allowed_today,
    violations,
)

#: p_late at or above which a reminder escalates to a more personal channel.
HIGH_RISK = 0.6
#: p_late below which the first reminder waits a few more days (the money is likely coming).
LOW_RISK = 0.25
LOW_RISK_DELAY_DAYS = 5
#: p_unpaid_90d from which a debtor who has paid before merits a payment-plan offer.
PLAN_MERIT = 0.2
#: Open amount from which a high-risk second reminder is a phone call rather than an sms.
PHONE_FROM_AMOUNT = 500.0
CONTACTS = ("email", "sms", "letter", "phone", "payment_plan")
STRENGTH = {"wait": 0, "email": 1, "sms": 2, "payment_plan": 3, "letter": 3, "phone": 4,
            "collection": 5}


@dataclass(frozen=True)
class InvoiceRisk:
    """Forecast for one open invoice (see :class:`paycadence.models.RiskModels`)."""

    invoice_id: str
    p_late: float
    p_unpaid_90d: float
    expected_days_late: float


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


def _uniform(seed: int, debtor_id: str, on: dt.date) -> tuple[float, float]:
    """Two reproducible uniforms in [0, 1) for (seed, debtor, day)."""
    digest = hashlib.blake2b(f"{seed}|{debtor_id}|{on.isoformat()}".encode(), digest_size=16)
    raw = digest.digest()
    a = int.from_bytes(raw[:8], "big") / 2**64
    b = int.from_bytes(raw[8:], "big") / 2**64
    return a, b


def _step_day(policy: Policy, step: int, p_late: float) -> int | None:
    """Days past due at which reminder ``step`` (1, 2, 3) is due; None past the last one."""
    sched = policy.schedule
    days = {1: sched.first_reminder, 2: sched.second_reminder, 3: sched.final_notice}.get(step)
    if days is None:
        return None
    if step == 1 and p_late < LOW_RISK:
        days += LOW_RISK_DELAY_DAYS
    return days


def _channel(step: int, p_late: float, open_amount: float, merits_plan: bool,
             opted_out: frozenset) -> str:
    """The channel a reminder step calls for, given the risk and what the debtor allows."""
    if step >= 3:
        wanted = ["letter", "phone", "email"]
    elif step == 2:
        wanted = ["payment_plan"] if merits_plan else []
        if p_late >= HIGH_RISK:
            wanted += ["phone", "sms"] if open_amount >= PHONE_FROM_AMOUNT else ["sms", "phone"]
        wanted += ["email", "letter"]
    else:
        wanted = (["sms"] if p_late >= HIGH_RISK else []) + ["email", "sms", "letter"]
    for channel in wanted:
        if channel not in OPTABLE_CHANNELS or channel not in opted_out:
            return channel
    return "letter"


def next_contact_day(state: DebtorState, on: dt.date, policy: Policy, contacted: bool) -> dt.date:
    """Earliest day after ``on`` on which the guard allows a contact again."""
    days = list(state.contact_days) + ([on] if contacted else [])
    probe = DebtorState(state.debtor_id, state.invoices, tuple(days), state.opted_out)
    day = on + dt.timedelta(days=1)
    for _ in range(WINDOW_DAYS + policy.rules.min_days_between_contacts + 1):
        if contact_allowed_today(probe, day, policy):
            return day
        day += dt.timedelta(days=1)
    return day


def decide(
    state: DebtorState,
    risks: dict[str, InvoiceRisk],
    on: dt.date,
    policy: Policy,
    *,
    merits_plan: bool = False,
) -> Choice:
    """Choose the debtor's action for ``on``.

    Parameters
    ----------
    state
        The debtor as the guard sees it on the morning of ``on``.
    risks
        Forecasts per open invoice id.
    merits_plan
        Whether the debtor merits a payment-plan offer (has paid before, likely to struggle).

    Returns
    -------
    Choice
        Never an action the guard refuses; ``propensity`` is the exact probability of it.
    """
    allowed = allowed_actions(state, on, policy)
    greedy, ids, step, reason = _greedy(state, risks, on, policy, allowed, merits_plan)
    chosen, chosen_ids, step, propensity, explored, reason, options = _explore_and_guard(
        state, on, policy, allowed, greedy, ids, step, reason, merits_plan)
    review = _next_review(state, risks, on, policy, chosen, chosen_ids)
    return Choice(chosen, tuple(chosen_ids), step, review, float(propensity), explored, reason,
                  options)


def _explore_and_guard(state, on, policy, allowed, greedy, ids, step, reason, merits_plan):
    """Let the guard check the greedy action, explore with share ``exploration.share`` among
    the candidates :func:`_candidates` names (uniformly, exact propensity), and number the
    reminder.

    Returns ``(action, invoice ids, step, propensity, explored, reason, options)`` where
    ``options`` maps every action the decision could have taken today to its probability and
    the invoices it would have named: the whole distribution the decision was drawn from.
    """
    broken = violations(greedy, ids, state, on, policy)
    if broken:  # the guard has the last word, whatever chose the action
        greedy, ids, step = "wait", (), None
        reason = f"held back by the rules: {broken[0]}"
    named = {greedy: tuple(ids)}
    for action in _candidates(greedy, allowed, policy, merits_plan):
        if action in named:
            continue
        cand = _explored_ids(state, on, action, allowed.get(action, ()))
        if not violations(action, cand, state, on, policy):
            named[action] = cand
    names = sorted(named, key=lambda a: STRENGTH[a] * 10 + len(a))
    explore = policy.exploration.share if len(names) > 1 else 0.0
    probs = {a: explore / len(names) + (1.0 - explore) * (a == greedy) for a in names}
    chosen, explored = greedy, False
    u_explore, u_pick = _uniform(policy.exploration.seed, state.debtor_id, on)
    if explore > 0 and u_explore < explore:
        pick = names[min(int(u_pick * len(names)), len(names) - 1)]
        if pick != greedy:
            chosen, explored, step = pick, True, None
            reason = (f"exploring: {pick} chosen at random among {len(names)} candidate "
                      f"actions instead of {greedy}")
    chosen_ids = named[chosen]
    if chosen in CONTACTS and step is None:
        chosen_set = frozenset(chosen_ids)  # membership in a set: linear in the invoices
        step = 1 + max((inv.contacts for inv in state.invoices if inv.invoice_id in chosen_set),
                       default=0)
    options = {a: (probs[a], named[a]) for a in names}
    return chosen, chosen_ids, step, probs[chosen], explored, reason, options


def _candidates(greedy: str, allowed: dict[str, tuple], policy: Policy,
                merits_plan: bool) -> list[str]:
    """Actions exploration may draw besides ``greedy`` (see :class:`Exploration`).

    ``near_best``: on a contact day the other contacts the guard allows (a payment plan only
    for a debtor who merits one) and waiting; on a hand-over day waiting; on a day the policy
    waits, nothing — exploring never adds a contact. ``all``: every allowed action.
    """
    if policy.exploration.among == "all":
        return [a for a in allowed]
    if greedy == "collection":
        return ["wait"]
    if greedy not in CONTACTS:
        return []
    return [a for a in CONTACTS if a in allowed and (a != "payment_plan" or merits_plan)] + \
        ["wait"]


def _explored_ids(state: DebtorState, on: dt.date, action: str, eligible: tuple) -> tuple:
    """Invoices an explored action names: a contact the overdue eligible ones (else all
    eligible); a payment plan and a hand-over every eligible one; waiting none."""
    if action == "wait":
        return ()
    if action in ("payment_plan", "collection"):
        return tuple(eligible)
    overdue = {i.invoice_id for i in state.invoices if (on - i.due_date).days > 0}
    return tuple(i for i in eligible if i in overdue) or tuple(eligible)


def _greedy(state, risks, on, policy, allowed, merits_plan):
    """The schedule's action, sharpened by risk, restricted to what the guard allows."""
    # every membership test below is in a set: a debtor's decision stays linear in its open
    # invoices (tuples made it quadratic: 40,000 open invoices took 45 s)
    sets = {action: frozenset(ids) for action, ids in allowed.items()}
    if "collection" in allowed and _collection_due(state, on, policy, sets["collection"]):
        ids = tuple(i.invoice_id for i in state.invoices if i.invoice_id in sets["collection"]
                    and (on - i.due_date).days >= policy.schedule.collection)
        return "collection", ids, None, (
            f"{len(ids)} invoice(s) at least {policy.schedule.collection} days past due after "
            f"{policy.rules.min_reminders_before_collection} or more reminders: hand over to "
            "collection"
        )
    due_steps = []
    reachable = sets.get("email", frozenset()) | sets.get("letter", frozenset()) | \
        sets.get("sms", frozenset())
    for inv in state.invoices:
        if inv.invoice_id not in reachable:
            continue
        risk = risks.get(inv.invoice_id)
        p_late = risk.p_late if risk else 0.5
        step = inv.contacts + 1
        day = _step_day(policy, step, p_late)
        if day is not None and (on - inv.due_date).days >= day:
            due_steps.append((step, inv, p_late))
    if not due_steps:
        return "wait", (), None, _wait_reason(state, risks, on)
    step, inv, p_late = max(due_steps, key=lambda t: (t[0], t[2]))
    open_amount = sum(i.open_amount for i in state.invoices)
    channel = _channel(step, p_late, open_amount, merits_plan and step == 2, state.opted_out)
    if channel not in allowed:
        fallback = [c for c in ("email", "letter", "sms") if c in allowed]
        if not fallback:
            return "wait", (), None, "a reminder is due but no channel is allowed today"
        channel = fallback[0]
    overdue = {i.invoice_id for i in state.invoices if (on - i.due_date).days > 0}
    ids = tuple(i for i in allowed[channel] if i in overdue) or (inv.invoice_id,)
    days = (on - inv.due_date).days
    why = f"reminder {step} due: {days} days past due"
    if p_late >= HIGH_RISK:
        why += f"; high risk (p_late {p_late:.2f}) calls for a more personal channel"
    if channel == "payment_plan":
        why += "; debtor has paid before and may struggle: payment plan offered"
    return channel, ids, step, why


def _collection_due(state, on, policy, ids) -> bool:
    ids = frozenset(ids)
    invs = [i for i in state.invoices if i.invoice_id in ids]
    return any((on - i.due_date).days >= policy.schedule.collection for i in invs)


def _wait_reason(state, risks, on) -> str:
    if not state.invoices:
        return "nothing open"
    overdue = [i for i in state.invoices if (on - i.due_date).days > 0]
    if not overdue:
        return "nothing overdue yet"
    if all(i.disputed or i.in_collection for i in overdue):
        return "overdue invoices are disputed or with the collection agency"
    return "next reminder not due yet"


def _next_review(state, risks, on, policy, action, ids) -> dt.date:
    """When waiting stops being the answer: the next step's day, once a contact is allowed."""
    contacted = action not in ("wait", "collection")
    ids = frozenset(ids)
    earliest_contact = next_contact_day(state, on, policy, contacted)
    candidates = []
    for inv in state.invoices:
        if inv.in_collection or inv.disputed or (action == "collection" and inv.invoice_id in ids):
            continue
        risk = risks.get(inv.invoice_id)
        step = inv.contacts + 1 + (1 if contacted and inv.invoice_id in ids else 0)
        day = _step_day(policy, step, risk.p_late if risk else 0.5)
        if day is None:
            day = max(policy.schedule.collection, policy.rules.min_days_overdue_for_collection)
        candidates.append(inv.due_date + dt.timedelta(days=day))
    if not candidates:
        return on + dt.timedelta(days=7)
    return max(min(candidates), earliest_contact)


def present_value(amount: float, p_unpaid: float, settle_in_days: float, annual_rate: float):
    """Expected present value (currency) of an open amount under the forecasts."""
    return amount * (1 - p_unpaid) * math.exp(-annual_rate * max(settle_in_days, 0) / 365)


#: Channels the value policy weighs against waiting (collection keeps the schedule's rule).
VALUE_CHANNELS = ("email", "sms", "letter", "phone", "payment_plan")


@dataclass(frozen=True)
class ActionValue:
    """What one allowed action is worth today for one debtor (currency)."""

    action: str
    invoice_ids: tuple[str, ...]
    gain: float  # expected value of the extra money brought in within the response window
    cost: float
    value: float  # gain − cost; waiting is worth 0


def action_values(
    state: DebtorState,
    on: dt.date,
    policy: Policy,
    uplift: dict[str, dict[str, float]],
    worth: dict[str, float],
    allowed: dict[str, tuple],
    merits_plan: bool,
) -> list[ActionValue]:
    """Value of every allowed contact against waiting.

    Parameters
    ----------
    uplift
        action → invoice id → q(x, action) − q(x, wait): the extra chance the invoice is
        settled within the response window if the action is taken today.
    worth
        invoice id → value of one currency unit of it arriving within the window rather than
        as it would otherwise (its open amount × (p_unpaid_90d + the cost of capital over the
        wait it saves)); see :func:`worth_of_speed`.
    merits_plan
        A payment plan is only weighed for a debtor who merits one.
    """
    out = []
    overdue = {i.invoice_id for i in state.invoices if (on - i.due_date).days > 0}
    for action in VALUE_CHANNELS:
        if action not in allowed or (action == "payment_plan" and not merits_plan):
            continue
        ids = tuple(i for i in allowed[action] if i in overdue)
        if not ids:
            continue
        gain = sum(max(uplift[action].get(i, 0.0), -1.0) * worth.get(i, 0.0) for i in ids)
        cost = policy.costs.of(action)
        out.append(ActionValue(action, ids, gain, cost, gain - cost))
    return out


def worth_of_speed(open_amount: float, p_unpaid_90d: float, wait_days: float,
                   annual_rate: float) -> float:
    """Value (currency) of an invoice's open amount arriving now rather than as forecast:
    the share that would otherwise never come (``p_unpaid_90d``) plus the cost of capital
    over the days it would otherwise take."""
    carry = (1.0 - p_unpaid_90d) * (1.0 - math.exp(-annual_rate * max(wait_days, 0.0) / 365))
    return open_amount * (p_unpaid_90d + carry)


def decide_value(
    state: DebtorState,
    risks: dict[str, InvoiceRisk],
    on: dt.date,
    policy: Policy,
    *,
    uplift: dict[str, dict[str, float]],
    worth: dict[str, float],
    merits_plan: bool = False,
    responds: dict[str, float] | None = None,
    patient: PaymentRecord | None = None,
) -> Choice:
    """The adaptive decision: the schedule's timing, the channel worth most for this debtor.

    When a reminder is due (the risk-sharpened schedule of :func:`decide`), each contact the
    guard allows is valued by :func:`action_values` (learnt response against waiting, times
    what speed is worth, minus the action's cost) and the best one is sent. Timing and
    collection keep the schedule's rules: the logged history varies the channel far more than
    the day (the schedule explored a channel on its decision days, while a wait only shifted a
    reminder by a day), so the learnt response is trusted for the channel, not yet for
    skipping a reminder. A debtor whose record shows it pays late but pays (``patient``, see
    :func:`_patience`) gets :data:`PATIENCE_DAYS` more before an invoice is handed over. With
    share ``exploration.share`` an allowed action is drawn uniformly
    instead (exact propensity), and the guard has the last word.
    """
    allowed = allowed_actions(state, on, policy)
    greedy, ids, step, reason = _greedy(state, risks, on, policy, allowed, merits_plan)
    if greedy == "collection":
        greedy, ids, reason = _worth_handing_over(state, policy, ids, reason)
    if greedy == "collection" and patient is not None:
        held = _patience(state, on, policy, ids, patient)
        if held is not None:
            greedy, ids, step, reason = "wait", (), None, held
    early = None
    if greedy == "wait":
        early = _early_reminder(state, on, allowed, responds or {})
        if early is not None:  # its channel is the one the debtor answers: kept as is
            greedy, ids, reason = early
    elif greedy in CONTACTS and _coming_anyway(state, risks, on, ids, policy):
        greedy, ids, step = "wait", (), None
        reason = (f"the reminder can wait: the settlement model expects the money within "
                  f"{SOON_DAYS} days (a contact saved; asked again tomorrow)")
    if greedy in CONTACTS and early is None:
        # the schedule says a reminder is due today: the channel is the one worth most for
        # this debtor (learnt response, net of cost), among those the guard allows
        wanted = frozenset(ids)
        values = [v for v in action_values(state, on, policy, uplift, worth, allowed,
                                           merits_plan) if not wanted.isdisjoint(v.invoice_ids)]
        best = max(values, key=lambda v: (v.value, -STRENGTH[v.action]), default=None)
        if best is not None and best.action != greedy:
            scheduled = next((v for v in values if v.action == greedy), None)
            greedy, ids = best.action, best.invoice_ids
            over = scheduled.action if scheduled else "the schedule's channel"
            reason += (f"; {best.action} chosen over {over}: worth {best.value:.2f} for this "
                       f"debtor (expected {best.gain:.2f} sooner, cost {best.cost:.2f})")
            if scheduled is not None:
                reason += f" against {scheduled.value:.2f}"
        elif best is not None:
            reason += f"; {best.action} is the channel worth most for this debtor"
    chosen, chosen_ids, step, propensity, explored, reason, options = _explore_and_guard(
        state, on, policy, allowed, greedy, ids, step, reason, merits_plan)
    review = _value_review(state, on, policy, chosen)
    return Choice(chosen, tuple(chosen_ids), step, review, float(propensity), explored, reason,
                  options)


#: A debtor with a reminder record (``resp_<channel>`` known for a channel the guard allows) is
#: reminded on an earlier cadence: as soon as an invoice is overdue and again REMIND_AGAIN_DAYS
#: after the last contact (its first two reminders), on the channel it answered best, rather
#: than on the schedule's days (due + 2, due + 18); the schedule takes over from the third.
#: A debtor who paid within a week after at least RESPONSIVE of its reminders on that channel
#: is told so in the reason ("responds to reminders"). Measured in docs/policy.md.
RESPONSIVE = 0.5
REMIND_AGAIN_DAYS = 10
#: Channels in the order the early cadence prefers them when the records tie.
TIE_ORDER = ("sms", "phone", "letter", "email")
#: A due reminder is held back while every invoice it names is expected (median) to be paid
#: within this many days, for at most GRACE_DAYS after the reminder's day.
SOON_DAYS = 3
GRACE_DAYS = 7


def _coming_anyway(state: DebtorState, risks: dict[str, InvoiceRisk], on: dt.date,
                   ids: tuple[str, ...], policy: Policy) -> bool:
    """Whether every invoice a due reminder names is expected to be paid within SOON_DAYS
    days without it, and the reminder is at most GRACE_DAYS late by then."""
    if not ids:
        return False
    ids = frozenset(ids)
    for inv in state.invoices:
        if inv.invoice_id not in ids:
            continue
        risk = risks.get(inv.invoice_id)
        past_due = (on - inv.due_date).days
        if risk is None or risk.expected_days_late - past_due > SOON_DAYS or \
                risk.p_unpaid_90d > 0.05 or past_due > _step_day_of(inv, policy) + GRACE_DAYS:
            return False
    return True


def _step_day_of(inv: InvoiceState, policy: Policy) -> int:
    """Days past due of the invoice's next reminder by the policy file's schedule."""
    s = policy.schedule
    return (s.first_reminder, s.second_reminder, s.final_notice)[min(inv.contacts, 2)]


def _early_reminder(state: DebtorState, on: dt.date, allowed: dict[str, tuple],
                    responds: dict[str, float]):
    """(channel, invoice ids, reason) of a reminder on the early cadence (see
    :data:`REMIND_AGAIN_DAYS`) for a debtor with a reminder record, or None. ``responds``:
    channel → the debtor's share of reminders on it that were followed by payment within a
    week (features ``resp_<channel>``; None or NaN: never reminded on it)."""
    ranked = sorted(((rate, -TIE_ORDER.index(ch), ch) for ch, rate in responds.items()
                     if rate is not None and not math.isnan(rate) and rate >= 0
                     and ch in allowed and ch in TIE_ORDER), reverse=True)
    if not ranked:
        return None
    last = max(state.contact_days, default=None)
    if last is not None and (on - last).days < REMIND_AGAIN_DAYS:
        return None
    rate, _, channel = ranked[0]
    reachable = frozenset(allowed[channel])
    ids = tuple(i.invoice_id for i in state.invoices if i.invoice_id in reachable
                and (on - i.due_date).days >= 1 and i.contacts < 2)
    if not ids:
        return None
    if rate >= RESPONSIVE:
        return channel, ids, (f"responds to reminders: paid within a week after {rate:.0%} of "
                              f"its {channel} reminders, so it is reminded now rather than on "
                              "the schedule's day")
    return channel, ids, (f"known debtor, early cadence: reminded as soon as overdue and "
                          f"{REMIND_AGAIN_DAYS} days after the last contact rather than on the "
                          f"schedule's days; {channel} is the channel it answered best "
                          f"({rate:.0%} of its reminders on it were followed by payment within "
                          "a week)")


@dataclass(frozen=True)
class PaymentRecord:
    """What a debtor's history says about its paying (features ``n_settled``,
    ``median_days_late``, ``n_broken_plans``; ``days_since_payment``: days since its last
    payment on any invoice, None when it never paid)."""

    n_settled: float
    median_days_late: float | None
    n_broken_plans: float
    days_since_payment: float | None = None


#: A debtor with at least PATIENT_MIN_SETTLED paid invoices, typically paid at most
#: PATIENT_MAX_DAYS_LATE days late and no broken payment plan, pays late but pays: an invoice of
#: its is handed to collection PATIENCE_DAYS after the schedule's collection day rather than on
#: it. Handing over costs the agency's fee on money that, for such a debtor, mostly comes anyway
#: (measured in docs/policy.md).
PATIENT_MIN_SETTLED = 3
PATIENT_MAX_DAYS_LATE = 40
PATIENCE_DAYS = 21
#: A debtor that paid something, on any invoice, within the last PAYING_DAYS days is paying:
#: while it keeps paying, its invoices are handed to collection no earlier than PAYING_EXTRA_DAYS
#: after the schedule's collection day. A hand-over stops the payments that were coming (and
#: the agency recovers only part of them, for a fee); a debtor who stops paying for
#: PAYING_DAYS is handed over at once (docs/policy.md).
PAYING_DAYS = 14
PAYING_EXTRA_DAYS = 40


def _worth_handing_over(state: DebtorState, policy: Policy, ids: tuple[str, ...],
                        reason: str) -> tuple[str, tuple[str, ...], str]:
    """The hand-over of ``ids`` without the invoices it cannot pay for: an invoice whose open
    amount, recovered in full, would not cover the agency's fee and the hand-over's cost
    (open amount × (1 − ``collection_fee_rate``) ≤ ``costs.collection``) stays with the
    company. Returns ``(action, invoice ids, reason)``; waiting when none is left."""
    cost, keep = policy.costs.of("collection"), 1.0 - policy.collection_fee_rate
    wanted = frozenset(ids)
    named = [i for i in state.invoices if i.invoice_id in wanted]
    worth = tuple(i.invoice_id for i in named if i.open_amount * keep > cost)
    if len(worth) == len(named):
        return "collection", ids, reason
    small = max(i.open_amount for i in named if i.invoice_id not in worth)
    why = (f"a hand-over costs {cost:.2f} plus {policy.collection_fee_rate:.0%} of what is "
           f"recovered: more than an open amount of {small:.2f} can bring back")
    if not worth:
        return "wait", (), f"not handed to collection: {why}"
    return "collection", worth, f"{reason}; {len(named) - len(worth)} smaller one(s) kept: {why}"


def _patience(state: DebtorState, on: dt.date, policy: Policy, ids: tuple[str, ...],
              record: PaymentRecord) -> str | None:
    """Why a due hand-over of ``ids`` waits today, or None when it should go ahead."""
    wanted = frozenset(ids)
    named = [i for i in state.invoices if i.invoice_id in wanted]
    if not named:
        return None
    oldest = max((on - i.due_date).days for i in named)
    late = record.median_days_late
    if record.n_settled >= PATIENT_MIN_SETTLED and late is not None and not math.isnan(late) \
            and late <= PATIENT_MAX_DAYS_LATE and record.n_broken_plans <= 0:
        until = policy.schedule.collection + PATIENCE_DAYS
        if oldest < until:
            return (f"pays late but pays: {record.n_settled:.0f} invoices paid, typically "
                    f"{late:.0f} days late, no broken plan; the hand-over to collection waits "
                    f"until {until} days past due ({until - oldest} more days), saving the "
                    "agency's fee on money that is likely to come")
    since = record.days_since_payment
    if since is not None and not math.isnan(since) and since <= PAYING_DAYS:
        until = policy.schedule.collection + PAYING_EXTRA_DAYS
        if oldest < until:
            return (f"still paying: last payment {since:.0f} days ago; the hand-over to "
                    f"collection waits while payments keep coming (at most until {until} days "
                    f"past due, {until - oldest} more days), since handing over stops them")
    return None


def _value_review(state: DebtorState, on: dt.date, policy: Policy, action: str) -> dt.date:
    """When to look again: the next day a contact is allowed while something is overdue,
    else the day after the next due date (a week when nothing is open)."""
    open_ = [i for i in state.invoices if not (i.in_collection or i.disputed)]
    if not open_:
        return on + dt.timedelta(days=7)
    earliest = next_contact_day(state, on, policy, action in CONTACTS)
    if any((on - i.due_date).days > 0 for i in open_):
        return earliest
    first_due = min(i.due_date for i in open_) + dt.timedelta(days=1)
    return max(first_due, earliest)
