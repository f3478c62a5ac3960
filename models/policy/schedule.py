"""The policy file's schedule: what the book does when the log does not say better.

Reminder 1, 2 and 3 (email, email, letter) on the schedule's days past due, then the hand-over
to collection; when the rules refuse a channel, the next of letter, email, sms. This is the
very schedule the backtest runs as its reference (:mod:`paycadence.data.sim_policy`), read
through the guard's state only, so the product and the reference never drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from paycadence.config import Policy
from paycadence.data.sim_policy import DebtorContext, contact_step, schedule_choice
from paycadence.guard import DebtorState

_NO_CONTEXT = DebtorContext(segment="", country="", days_past_due={})


def scheduled(state: DebtorState, on: dt.date, policy: Policy,
              allowed: Mapping[str, tuple]) -> tuple[str, tuple[str, ...], str]:
    """(action, invoice ids, reason) of the schedule on ``on``, among ``allowed``."""
    action, ids = schedule_choice(state, on, policy, _NO_CONTEXT, allowed)
    if action == "wait":
        return action, ids, _wait_reason(state, on)
    if action == "collection":
        return action, ids, (f"{len(ids)} invoice(s) at least {policy.schedule.collection} "
                             "days past due after the schedule's reminders: hand over to "
                             "collection")
    named = frozenset(ids)
    step = contact_step(state, action, ids)
    days = max((on - i.due_date).days for i in state.invoices if i.invoice_id in named)
    return action, ids, f"the schedule's reminder {step} is due: {days} days past due"


def _wait_reason(state: DebtorState, on: dt.date) -> str:
    if not state.invoices:
        return "nothing open"
    overdue = [i for i in state.invoices if (on - i.due_date).days > 0]
    if not overdue:
        return "nothing overdue yet"
    if all(i.disputed or i.in_collection for i in overdue):
        return "overdue invoices are disputed or with the collection agency"
    return "no reminder due on the schedule today"
