"""Decision policies the simulator can run: the logging schedule, or anything that decides.

A policy sees what the guard sees (:class:`paycadence.guard.DebtorState`) plus a read-only
:class:`DebtorContext`, and returns a :class:`Decision` with the exact probability with which it
chose that action. :class:`ScheduleLoggingPolicy` is the history's logging policy: the typical
fixed schedule, exploring part of the time uniformly among the actions the guard allows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from paycadence.config import Policy
from paycadence.guard import DebtorState, allowed_actions


@dataclass(frozen=True)
class Decision:
    """An action for one debtor on one day, with the probability it was chosen with."""

    action: str
    invoice_ids: tuple[str, ...]
    propensity: float
    explored: bool = False
    step: int | None = None
    schedule_action: str | None = None


@dataclass(frozen=True)
class DebtorContext:
    """Read-only facts a policy may use beyond the guard's state.

    Attributes
    ----------
    days_past_due : dict
        invoice id → days past due on the decision day (negative: not yet due).
    contacts : tuple
        The debtor's earlier actions as (date, channel, invoice ids).
    segment : str
        ``b2b`` or ``b2c``.
    """

    days_past_due: dict[str, int]
    contacts: tuple[tuple[dt.date, str, tuple[str, ...]], ...]
    segment: str


class DecisionPolicy(Protocol):
    """Anything that decides a debtor's action on a day."""

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision: ...

    def is_decision_day(self, state: DebtorState, on: dt.date) -> bool: ...


def schedule_step(policy: Policy, contacts: int) -> int | None:
    """Days past due at which the schedule's next step falls, after ``contacts`` reminders."""
    s = policy.schedule
    steps = [s.first_reminder, s.second_reminder, s.final_notice]
    return steps[contacts] if contacts < len(steps) else None


class ScheduleLoggingPolicy:
    """The fixed schedule (email, email, letter, collection), exploring with share ``epsilon``.

    On a decision day — an open, contactable invoice reaches its next step, or the collection
    day — the schedule's action is taken with probability ``1 − ε`` (plus ``ε / k``), and each of
    the ``k`` actions the guard allows, wait included, with ``ε / k``.
    """

    def __init__(self, policy: Policy, epsilon: float, rng: np.random.Generator):
        self.policy = policy
        self.epsilon = epsilon
        self.rng = rng

    def _due(self, state: DebtorState, on: dt.date) -> tuple[list, list]:
        contact_due, collect_due = [], []
        for inv in state.invoices:
            if inv.in_collection or inv.disputed or inv.open_amount <= 0:
                continue
            overdue = (on - inv.due_date).days
            step_day = schedule_step(self.policy, inv.contacts)
            if step_day is not None and overdue >= step_day:
                contact_due.append(inv)
            elif step_day is None and overdue >= self.policy.schedule.collection:
                collect_due.append(inv)
        return contact_due, collect_due

    def is_decision_day(self, state: DebtorState, on: dt.date) -> bool:
        contact_due, collect_due = self._due(state, on)
        return bool(contact_due or collect_due)

    def scheduled(self, state: DebtorState, on: dt.date, allowed: dict) -> tuple[str, tuple, int]:
        """The schedule's own action (or its fallback when the guard forbids it)."""
        contact_due, collect_due = self._due(state, on)
        if collect_due and "collection" in allowed:
            ids = tuple(i.invoice_id for i in collect_due if i.invoice_id in allowed["collection"])
            if ids:
                return "collection", ids, None
        if contact_due:
            step = max(i.contacts for i in contact_due) + 1
            wanted = ["letter", "email", "sms"] if step >= 3 else ["email", "letter", "sms"]
            for channel in wanted:
                if channel in allowed:
                    ids = tuple(i.invoice_id for i in contact_due
                                if i.invoice_id in allowed[channel])
                    if ids:
                        return channel, ids, step
        return "wait", (), None

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        allowed = allowed_actions(state, on, self.policy)
        action, ids, step = self.scheduled(state, on, allowed)
        options = sorted(allowed)
        k = len(options)
        eps = self.epsilon
        if eps > 0 and k > 1 and self.rng.random() < eps:
            pick = options[int(self.rng.integers(k))]
            if pick != action:
                overdue = {i for i, d in context.days_past_due.items() if d > 0}
                pick_ids = tuple(i for i in allowed[pick] if i in overdue) or allowed[pick]
                step_n = None
                if pick not in ("wait", "collection"):
                    step_n = 1 + max((inv.contacts for inv in state.invoices
                                      if inv.invoice_id in pick_ids), default=0)
                return Decision(pick, pick_ids, eps / k, True, step_n, action)
        propensity = (1 - eps) + eps / k if k > 1 else 1.0
        return Decision(action, ids, propensity, False, step, action)
