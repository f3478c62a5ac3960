"""Decision policies the simulator can run: the logging schedule, or anything that decides.

A policy sees what the guard sees (:class:`paycadence.guard.DebtorState`) plus a read-only
:class:`DebtorContext`, and returns a :class:`Decision` with the exact probability with which it
chose that action. :class:`ScheduleLoggingPolicy` is the history's logging policy: the typical
fixed schedule, exploring part of the time uniformly among the actions the guard allows, and
exploring the timing of contacts on the days between (``exploration.timing``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from paycadence.config import ACTIONS, CONTACT_CHANNELS, Policy
from paycadence.data.tables import Tables
from paycadence.guard import DebtorState, InvoiceState, allowed_actions

logger = logging.getLogger(__name__)

#: Channel of schedule step 1, 2, 3 (later steps, needed when the rules ask for more reminders
#: before collection than the schedule has, repeat the last).
SCHEDULE_CHANNELS = ("email", "email", "letter")
#: Channels tried, in order, when the rules forbid the schedule's own channel.
FALLBACK_CHANNELS = ("letter", "email", "sms")
#: An open invoice due within this many days (or overdue) makes a day on which the schedule
#: waits eligible for timing exploration (``exploration.timing``): a contact then can come
#: before the due date, between the schedule's reminders, or earlier than its days.
TIMING_DAYS_BEFORE_DUE = 7


@dataclass(frozen=True)
class Decision:
    """An action for one debtor on one day, with the probability it was chosen with.

    Attributes
    ----------
    action : str
        One of :data:`paycadence.config.ACTIONS`.
    invoice_ids : tuple of str
        Invoices the action names (empty for ``wait``).
    propensity : float
        Probability in (0, 1] with which the policy chose ``action`` on this day.
    explored : bool
        The policy's exploration draw came up (the action was drawn uniformly).
    step : int or None
        Reminder number of the contact (highest over the named invoices).
    schedule_action : str or None
        What the policy would have done without exploring.
    n_allowed : int or None
        Number of actions the guard allowed (wait included): the ``k`` of the propensity on a
        schedule decision day (a timing day's propensity counts the allowed contacts only).
    """

    action: str
    invoice_ids: tuple[str, ...]
    propensity: float
    explored: bool = False
    step: int | None = None
    schedule_action: str | None = None
    n_allowed: int | None = None


@dataclass(frozen=True)
class DebtorContext:
    """Read-only facts a policy may use beyond the guard's state, on the decision morning.

    Attributes
    ----------
    segment, country : str
        The debtor's segment (``b2b``/``b2c``) and ISO country.
    days_past_due : Mapping
        invoice id → days past due on the decision day (negative: not yet due), open invoices.
    contacts : tuple
        The debtor's earlier actions as ``(date, channel, invoice ids)``, oldest first
        (collections included).
    on_plan : frozenset
        Open invoices under an accepted payment plan that is being kept (the company knows
        the arrangement; dunning pauses on them).
    """

    segment: str
    country: str
    days_past_due: Mapping[str, int]
    contacts: tuple[tuple[dt.date, str, tuple[str, ...]], ...] = ()
    on_plan: frozenset[str] = frozenset()
    history_rows: Callable[[], Tables] | None = field(default=None, repr=False, compare=False)

    def history(self) -> Tables:
        """The debtor's five tables as known on the decision morning (CONTRACT.md §1)."""
        if self.history_rows is None:
            return Tables.from_frames()
        return self.history_rows()


class DecisionPolicy(Protocol):
    """Anything that decides a debtor's action on a decision day.

    A policy may also define ``is_decision_day(state, on, context) -> bool``; without it the
    simulator asks on the schedule's decision days (:func:`schedule_decision_day`). And it may
    define ``decide_many(requests) -> list[Decision]``, ``requests`` being ``decide``'s
    arguments for every debtor deciding on one morning: the simulator then asks once per
    morning (a policy whose single decision has a fixed cost, like a call to ``recommend``,
    pays it once a day instead of once a debtor-day). It must decide each debtor as ``decide``
    would.
    """

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision: ...


def due_for_schedule(state: DebtorState, on: dt.date, policy: Policy,
                     on_plan: frozenset[str] = frozenset()
                     ) -> tuple[list[InvoiceState], list[InvoiceState]]:
    """Invoices that reached their next schedule step, and those due for collection.

    An open invoice that is not disputed, not in collection and not under a kept plan, with
    ``c`` earlier contacts, is due for step ``c + 1`` once it is ``schedule[c]`` days past due
    (first reminder, second reminder, final notice); after the final notice it is due for
    collection once it is ``schedule.collection`` days past due.
    """
    s = policy.schedule
    steps = (s.first_reminder, s.second_reminder, s.final_notice)
    contact_due, collect_due = [], []
    for inv in state.invoices:
        if inv.in_collection or inv.disputed or inv.open_amount <= 0 or inv.invoice_id in on_plan:
            continue
        overdue = (on - inv.due_date).days
        if inv.contacts < len(steps):
            if overdue >= steps[inv.contacts]:
                contact_due.append(inv)
        elif overdue >= s.collection:
            collect_due.append(inv)
    return contact_due, collect_due


def schedule_decision_day(state: DebtorState, on: dt.date, policy: Policy,
                          context: DebtorContext) -> bool:
    """A decision day: an invoice reached its next schedule step or its collection day."""
    contact_due, collect_due = due_for_schedule(state, on, policy, context.on_plan)
    return bool(contact_due or collect_due)


def schedule_choice(state: DebtorState, on: dt.date, policy: Policy, context: DebtorContext,
                    allowed: Mapping[str, tuple]) -> tuple[str, tuple[str, ...]]:
    """The schedule's own action on ``on`` and the invoices it names, among ``allowed``.

    Collection of the invoices due for it comes first. When the rules refuse collection only
    because an invoice has too few reminders, it gets a further reminder instead. A contact
    uses the channel of the highest step due, or the first allowed of
    :data:`FALLBACK_CHANNELS`; when no contact is allowed the schedule waits.
    """
    contact_due, collect_due = due_for_schedule(state, on, policy, context.on_plan)
    # sets for membership: linear in the debtor's open invoices, not quadratic
    sets = {action: frozenset(ids) for action, ids in allowed.items()}
    if collect_due:
        ids = tuple(i.invoice_id for i in collect_due
                    if i.invoice_id in sets.get("collection", ()))
        if ids:
            return "collection", ids
        need = policy.rules.min_reminders_before_collection
        contact_due = contact_due + [i for i in collect_due if i.contacts < need]
    if not contact_due:
        return "wait", ()
    step = max(i.contacts for i in contact_due) + 1
    own = SCHEDULE_CHANNELS[min(step, len(SCHEDULE_CHANNELS)) - 1]
    for channel in (own, *FALLBACK_CHANNELS):
        ids = tuple(i.invoice_id for i in contact_due if i.invoice_id in sets.get(channel, ()))
        if ids:
            return channel, ids
    return "wait", ()


def near_due_invoices(state: DebtorState, on: dt.date,
                      days_before: int = TIMING_DAYS_BEFORE_DUE) -> tuple[str, ...]:
    """Open invoices overdue or due within ``days_before`` days of ``on``, neither disputed nor
    in collection: those that make a day eligible for timing exploration."""
    return tuple(i.invoice_id for i in state.invoices
                 if i.open_amount > 0 and not i.disputed and not i.in_collection
                 and (i.due_date - on).days <= days_before)


def timing_uniforms(seed: int, debtor_id: str, on: dt.date) -> tuple[float, float]:
    """Two reproducible uniforms in [0, 1) for (seed, debtor, day): the timing draws.

    A hash rather than the debtor's stream, so that the days explored for timing never shift
    the draws of the schedule's own decision days.
    """
    raw = hashlib.blake2b(f"{seed}|timing|{debtor_id}|{on.isoformat()}".encode(),
                          digest_size=16).digest()
    return int.from_bytes(raw[:8], "big") / 2**64, int.from_bytes(raw[8:], "big") / 2**64


def contact_step(state: DebtorState, action: str, invoice_ids: tuple[str, ...]) -> int | None:
    """Reminder number of a contact: 1 + the most earlier contacts among the named invoices."""
    if action not in CONTACT_CHANNELS:
        return None
    named = set(invoice_ids)
    return 1 + max((i.contacts for i in state.invoices if i.invoice_id in named), default=0)


class ScheduleLoggingPolicy:
    """The fixed schedule (email, email, letter, collection), exploring with share ``epsilon``.

    On a schedule decision day it draws ``u``; when ``u < ε`` it explores: it picks uniformly
    one of the ``k`` actions the guard allows, wait included. The logged propensity of the
    action taken is exactly ``(1 − ε) · [action = schedule action] + ε / k``; a drawn ``wait``
    delays the scheduled reminder by a day (its invoice stays due for the step), never skips it.

    On any other day with an invoice overdue or due within :data:`TIMING_DAYS_BEFORE_DUE` days
    (:func:`near_due_invoices`) on which the guard allows at least one contact, it also decides
    when ``timing`` > 0: with probability ``timing`` it contacts, on one of the ``k`` allowed
    contacts drawn uniformly (propensity ``timing / k``), else it waits (``1 − timing``).

    Parameters
    ----------
    policy : Policy
        Rules (through the guard) and the schedule's days past due.
    epsilon : float
        Exploration share in [0, 1].
    seed : int
        Seed of the exploration draws; each debtor gets its own stream, so one debtor's
        decisions never shift another's. The timing draws are a hash of (seed, debtor, day).
    timing : float or None
        Share of the eligible days between the schedule's on which it contacts, in [0, 1].
        None: the policy file's ``exploration.timing`` when ``epsilon`` > 0, and 0 when
        ``epsilon`` is 0 — the fixed schedule, the backtest's baseline, explores nothing.
    """

    def __init__(self, policy: Policy | None = None, epsilon: float = 0.10, seed: int = 0,
                 *, timing: float | None = None):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.policy = policy or Policy()
        self.epsilon = float(epsilon)
        self.seed = int(seed)
        if timing is None:
            timing = self.policy.exploration.timing if self.epsilon > 0 else 0.0
        if not 0.0 <= timing <= 1.0:
            raise ValueError(f"timing must be in [0, 1], got {timing}")
        self.timing = float(timing)
        self._rngs: dict[str, np.random.Generator] = {}
        # the guard's answer for the morning last asked (is_decision_day, then decide)
        self._asked: tuple[DebtorState, dt.date, dict[str, tuple] | None] | None = None

    def _rng(self, debtor_id: str) -> np.random.Generator:
        rng = self._rngs.get(debtor_id)
        if rng is None:
            key = zlib.crc32(debtor_id.encode())
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED, key]))
            self._rngs[debtor_id] = rng
        return rng

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        """Whether an invoice of the debtor reached a schedule step on ``on``, or (timing > 0)
        the day is eligible for timing exploration."""
        return schedule_decision_day(state, on, self.policy, context) or (
            self._timing_allowed(state, on) is not None)

    def _timing_allowed(self, state: DebtorState, on: dt.date) -> dict[str, tuple] | None:
        """The guard's allowed actions on a day eligible for timing exploration, else None
        (no invoice near or past its due date, or no contact allowed, or timing 0)."""
        if self.timing <= 0 or not near_due_invoices(state, on):
            return None
        asked = self._asked
        if asked is not None and asked[0] is state and asked[1] == on:
            return asked[2]
        allowed = allowed_actions(state, on, self.policy)
        found = allowed if any(a in allowed for a in CONTACT_CHANNELS) else None
        self._asked = (state, on, found)
        return found

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        """The schedule's action, or with probability ε a uniformly drawn allowed one; between
        the schedule's days, a uniformly drawn allowed contact with probability ``timing``."""
        if self.timing > 0 and not schedule_decision_day(state, on, self.policy, context):
            allowed = self._timing_allowed(state, on)
            if allowed is not None:
                return self._timing_decision(state, on, allowed)
        allowed = allowed_actions(state, on, self.policy)
        scheduled, ids = schedule_choice(state, on, self.policy, context, allowed)
        options = [a for a in ACTIONS if a in allowed]
        k, eps = len(options), self.epsilon
        rng = self._rng(state.debtor_id)
        explored = bool(rng.random() < eps)
        action = scheduled
        if explored:
            action = options[int(rng.integers(k))]
            if action != scheduled:
                ids = self._explored_ids(action, allowed[action], context)
        propensity = (1.0 - eps) * (action == scheduled) + eps / k
        return Decision(action, ids, propensity, explored, contact_step(state, action, ids),
                        scheduled, k)

    def _timing_decision(self, state: DebtorState, on: dt.date,
                         allowed: Mapping[str, tuple]) -> Decision:
        """Wait (``1 − timing``), or one of the ``k`` allowed contacts (``timing / k`` each),
        naming the near-due invoices it may (a payment plan every invoice it may)."""
        contacts = [a for a in CONTACT_CHANNELS if a in allowed]
        k, tau = len(contacts), self.timing
        u, v = timing_uniforms(self.seed, state.debtor_id, on)
        if u >= tau:
            return Decision("wait", (), 1.0 - tau, False, None, "wait", len(allowed))
        action = contacts[min(int(v * k), k - 1)]
        ids = tuple(allowed[action])
        if action != "payment_plan":
            near = frozenset(near_due_invoices(state, on))
            ids = tuple(i for i in ids if i in near)
        return Decision(action, ids, tau / k, True, contact_step(state, action, ids), "wait",
                        len(allowed))

    @staticmethod
    def _explored_ids(action: str, eligible: tuple[str, ...],
                      context: DebtorContext) -> tuple[str, ...]:
        """Invoices an explored action names: the overdue eligible ones (else all eligible);
        a payment plan and a collection name every eligible invoice."""
        if action in ("wait", "payment_plan", "collection"):
            return tuple(eligible)
        overdue = tuple(i for i in eligible if context.days_past_due.get(i, 0) > 0)
        return overdue or tuple(eligible)
