"""The day loop of one simulated debtor: decisions in the morning, the world's answer after.

Each morning the debtor is described as the guard sees it (open invoices, contacts, disputes,
hand-overs, as known on that morning by CONTRACT.md §1); on a decision day the policy decides
and the guard checks the decision. Then the day's payments arrive: kept plan instalments,
agency recoveries, and voluntary payments. A voluntary payment happens on the first day the
invoice's cumulative hazard ``Σ −log(1 − h)`` reaches an exponential threshold drawn at issue,
which is the same, in distribution, as a daily coin with chance ``h``, and keeps the company's
randomness independent of the policy (common random numbers).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
from collections.abc import Callable, Generator
from functools import lru_cache

import numpy as np
import polars as pl

from paycadence.config import ACTIONS, CONTACT_CHANNELS, Policy
from paycadence.data.sim_policy import DebtorContext, Decision, DecisionPolicy
from paycadence.data.sim_world import (
    N_EVENTS,
    N_INSTALMENTS,
    N_OFFERS,
    U_ACCEPT,
    U_DISPUTE,
    U_DISPUTE_DAYS,
    U_DISPUTE_EARLY,
    U_DISPUTE_OFFSET,
    U_FRACTION,
    U_KEEP,
    U_NEVER,
    U_PARTIAL,
    U_PLAN_DELAY,
    U_RECOVER,
    U_RECOVER_DAYS,
    U_THRESHOLD,
    U_UNRESOLVED,
    U_WIDTH,
    Debtor,
    Kind,
    bank_day,
    daily_hazard,
    plan_accept_chance,
    plan_keep_chance,
    recovery_chance,
    recovery_delay_days,
)
from paycadence.data.tables import COLUMNS, Tables
from paycadence.guard import DebtorState, InvoiceState, violations

logger = logging.getLogger(__name__)

TABLES = ("invoices", "payments", "actions", "disputes")
DecideDay = Callable[[DebtorState, dt.date, DebtorContext], bool]
#: What a debtor's run asks its decider on a decision morning: ``decide``'s arguments.
Request = tuple[DebtorState, dt.date, DebtorContext]


@lru_cache(maxsize=4)
def _dates(start: dt.date, n: int) -> tuple[dt.date, ...]:
    """The calendar dates of day indices 0 … n − 1 from ``start``."""
    return tuple(start + dt.timedelta(days=t) for t in range(n))


def advance(steps: Generator[Request, Decision, None], decision: Decision | None = None
            ) -> Request | None:
    """Send ``decision`` to a run's :meth:`DebtorRun.steps` (None to start it); its next
    request, or None once it has simulated its last day."""
    try:
        return steps.send(decision)
    except StopIteration:
        return None


class PolicyError(ValueError):
    """A decision policy returned an action the guard refuses, or a bad propensity."""


class _Invoice:
    """One invoice's ledger and its fixed random draws (row of uniforms ``u``)."""

    __slots__ = ("invoice_id", "issue", "due", "amount", "paid", "u", "contacts", "collection",
                 "recover_on", "never_pay", "dispute_on", "resolve_on", "disputed_from", "plan",
                 "offers", "pending", "cum_hazard", "events", "rest", "seen")

    def __init__(self, invoice_id: str, issue: int, due: int, amount: float, u: list[float]):
        self.invoice_id, self.issue, self.due, self.amount = invoice_id, issue, due, amount
        self.paid = 0.0
        self.rest = amount  # amount − paid, cents
        self.seen: InvoiceState | None = None  # the guard's view, rebuilt after a change
        self.u = u
        self.contacts: list[tuple[int, str]] = []
        self.collection = False
        self.recover_on: int | None = None
        self.never_pay = False
        self.dispute_on: int | None = None  # planned opening day
        self.resolve_on: int | None = None  # planned resolution day (None: never)
        self.disputed_from: int | None = None  # opening day once the dispute is opened
        self.plan: list[tuple[int, float | None]] = []  # instalments (day, amount; None=rest)
        self.offers = 0
        self.pending: tuple[int, float] | None = None  # a weekend payment booked on Monday
        self.cum_hazard = 0.0
        self.events = 0

    def copy(self) -> _Invoice:
        """A ledger of its own (the draws ``u`` shared: the engine never changes them)."""
        twin = _Invoice.__new__(_Invoice)
        for name in _Invoice.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.contacts, twin.plan = list(self.contacts), list(self.plan)
        return twin

    def disputed(self, t: int) -> bool:
        return self.disputed_from is not None and self.disputed_from <= t and (
            self.resolve_on is None or t < self.resolve_on)


def _plan_dispute(inv: _Invoice, kind: Kind) -> None:
    """Whether and when this invoice will be disputed, from its own draws."""
    u = inv.u
    if u[U_DISPUTE] >= kind.dispute:
        return
    if u[U_DISPUTE_EARLY] < 0.4:  # soon after issue: the goods or the bill look wrong
        opened = inv.issue + 1 + int(u[U_DISPUTE_OFFSET] * 10)
    else:  # around the due date, when the money is asked for
        opened = inv.due - 3 + int(u[U_DISPUTE_OFFSET] * 14)
    inv.dispute_on = max(opened, inv.issue)
    if u[U_UNRESOLVED] >= 0.08:
        inv.resolve_on = inv.dispute_on + 14 + int(u[U_DISPUTE_DAYS] * 47)


class DebtorRun:
    """Simulates one debtor day by day and collects its rows.

    Parameters
    ----------
    debtor, issued
        The debtor's traits and its invoices as (issue day index, amount).
    world
        The debtor's world stream: one row of outcome draws per invoice, drawn up front.
    start, days
        First day and length of the history, days.
    policy, decider, decision_day
        Rules, the deciding policy, and the rule saying which days are decision days.
    until
        Stop before this day (an offset from ``start``): the rows before it are exactly those
        of the whole run, since each day's draws come in day order.
    """

    def __init__(self, debtor: Debtor, issued: list[tuple[int, float]],
                 world: np.random.Generator, start: dt.date, days: int, policy: Policy,
                 decider: DecisionPolicy, decision_day: DecideDay, until: int | None = None):
        self.debtor, self.start, self.days = debtor, start, days
        self.stop = days if until is None else max(0, min(until, days))
        self.policy, self.decider, self.decision_day = policy, decider, decision_day
        self.weekday = start.weekday()
        self.dates = _dates(start, days + 100)
        draws = world.random((len(issued), U_WIDTH)).tolist()
        self.invoices: list[_Invoice] = []
        for k, (t, amount) in enumerate(issued):
            inv = _Invoice(f"{debtor.debtor_id}-{k + 1:04d}", t, t + debtor.term_days, amount,
                           draws[k])
            self._plan(inv)
            self.invoices.append(inv)
        self.rows: dict[str, list[tuple]] = {name: [] for name in (*TABLES, "decisions")}
        self.contact_days: tuple[dt.date, ...] = ()
        self.history: tuple[tuple[dt.date, str, tuple[str, ...]], ...] = ()
        self.opted_out = frozenset(debtor.opted_out)
        self.paid_today = False

    def _plan(self, inv: _Invoice) -> None:
        """Whether the invoice is never paid voluntarily, and its dispute, from its own draws
        and the debtor's kind on its issue day."""
        debtor = self.debtor
        kind = debtor.kind_on(self.dates[inv.issue])
        inv.never_pay = debtor.insolvent and kind == "defaulting" or (
            inv.u[U_NEVER] < debtor.world.kinds[kind].never_pay)
        _plan_dispute(inv, debtor.world.kinds[kind])

    # -- replays (the simulator itself never calls these) -----------------------------------
    def fork(self, decider: DecisionPolicy | None = None,
             decision_day: DecideDay | None = None) -> DebtorRun:
        """A copy of the run between two days, to carry on apart (:meth:`steps` with
        ``begin``): the invoices' ledgers and the rows are its own; the debtor, the rules, the
        dates and the draws are shared. ``decider`` and ``decision_day`` replace the deciding
        policy and its decision days (None: shared with this run, state and all)."""
        twin = copy.copy(self)
        twin.invoices = [inv.copy() for inv in self.invoices]
        twin.rows = {name: list(rows) for name, rows in self.rows.items()}
        twin.decider = self.decider if decider is None else decider
        twin.decision_day = self.decision_day if decision_day is None else decision_day
        return twin

    def redraw(self, k: int, u: list[float]) -> None:
        """From now on invoice ``k`` (0-based, in issue order) has the draws ``u`` (a row of
        :data:`~paycadence.data.sim_world.U_WIDTH` uniforms, kept, not copied).

        Its never-pay and its planned dispute follow from them as at issue, and the threshold
        of its next voluntary payment counts from now (its cumulative hazard restarts at 0).
        What already happened stays: payments, contacts, a plan, a hand-over, a dispute already
        opened (whose resolution follows the new draws). Between days only; for replays of
        one invoice's luck (training/ceiling.py).
        """
        if len(u) != U_WIDTH:
            raise ValueError(f"a row of draws has {U_WIDTH} uniforms, got {len(u)}")
        inv = self.invoices[k]
        inv.u, inv.dispute_on, inv.resolve_on, inv.cum_hazard = u, None, None, 0.0
        self._plan(inv)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> dict[str, list[tuple]]:
        """Simulate every day, asking the decider one morning at a time; returns the rows per
        table plus ``decisions``."""
        steps = self.steps()
        request = advance(steps)
        while request is not None:
            request = advance(steps, self.decider.decide(*request))
        return self.rows

    def steps(self, begin: int = 0, end: int | None = None
              ) -> Generator[Request, Decision, None]:
        """Simulate every day, yielding each decision morning's request and carrying on with
        the :class:`Decision` sent back; the rows are in :attr:`rows` when it ends. Runs of
        several debtors can so be stepped side by side and decided together
        (:func:`paycadence.data.simulate.simulate` does, for a decider with ``decide_many``).

        ``begin`` and ``end`` (day indices) simulate only the days ``begin`` … ``end − 1`` (at
        most to the run's stop) of a run whose days before ``begin`` are done: a run stepped
        piece by piece gives the rows of one stepped whole, and can be copied between the
        pieces (:meth:`fork`).
        """
        debtor, waiting = self.debtor, self.invoices
        nxt = sum(1 for inv in waiting if inv.issue < begin)  # issued in day order
        open_ = [inv for inv in waiting[:nxt] if inv.rest > 0.004]  # as a whole run's
        for t in range(begin, self.stop if end is None else min(end, self.stop)):
            today = self.dates[t]
            while nxt < len(waiting) and waiting[nxt].issue <= t:
                inv = waiting[nxt]
                self.rows["invoices"].append((inv.invoice_id, debtor.debtor_id, today,
                                              self.dates[inv.due], inv.amount, debtor.currency))
                open_.append(inv)
                nxt += 1
            if not open_:
                continue
            for inv in open_:
                if inv.dispute_on == t:
                    self._open_dispute(inv, t)
                elif inv.resolve_on == t and inv.disputed_from is not None:
                    inv.seen = None  # resolved this morning
            yield from self._morning(open_, t, today)
            self._payments(open_, t, debtor.kind_on(today))
            if self.paid_today:
                open_ = [inv for inv in open_ if inv.rest > 0.004]
                self.paid_today = False

    def _open_dispute(self, inv: _Invoice, t: int) -> None:
        """Open the planned dispute unless the invoice is paid, handed over or on a plan."""
        if inv.collection or inv.plan or inv.pending is not None:
            return
        inv.disputed_from, inv.seen = t, None
        resolved = self.dates[inv.resolve_on] if inv.resolve_on is not None and (
            inv.resolve_on < self.days) else None
        self.rows["disputes"].append((inv.invoice_id, self.dates[t], resolved))

    def _morning(self, open_: list[_Invoice], t: int, today: dt.date
                 ) -> Generator[Request, Decision, None]:
        """Describe the debtor as the guard sees it; on a decision day ask (yield) for the
        decision, check it and act on it."""
        debtor = self.debtor
        seen = []
        for inv in open_:
            if inv.seen is None:
                inv.seen = InvoiceState(inv.invoice_id, self.dates[inv.due], inv.rest,
                                        len(inv.contacts), inv.disputed(t), inv.collection)
            seen.append(inv.seen)
        state = DebtorState(debtor.debtor_id, tuple(seen), self.contact_days, self.opted_out)
        sizes = [len(self.rows[name]) for name in TABLES]
        context = DebtorContext(
            debtor.segment, debtor.country, {inv.invoice_id: t - inv.due for inv in open_},
            self.history,
            frozenset(inv.invoice_id for inv in open_ if inv.plan and not inv.collection),
            history_rows=lambda: self._known(sizes, today))
        if not self.decision_day(state, today, context):
            return
        decision = yield state, today, context
        self._check(decision, state, today)
        self._log(decision, state, today)
        if decision.action != "wait":
            self._act(decision, open_, t, today)

    def _check(self, decision: Decision, state: DebtorState, today: dt.date) -> None:
        if decision.action not in ACTIONS:
            raise PolicyError(f"{state.debtor_id} on {today}: unknown action "
                              f"{decision.action!r}")
        if not 0.0 < decision.propensity <= 1.0:
            raise PolicyError(f"{state.debtor_id} on {today}: propensity "
                              f"{decision.propensity} not in (0, 1]")
        broken = violations(decision.action, decision.invoice_ids, state, today, self.policy)
        if broken:
            raise PolicyError(f"{state.debtor_id} on {today}: {decision.action} refused by "
                              f"the guard: {'; '.join(broken)}")

    def _log(self, decision: Decision, state: DebtorState, today: dt.date) -> None:
        ids = tuple(decision.invoice_ids) if decision.action != "wait" else ()
        self.rows["decisions"].append((
            self.debtor.debtor_id, today, decision.action, ";".join(ids),
            float(decision.propensity), bool(decision.explored), decision.step,
            decision.schedule_action, decision.n_allowed))
        if decision.action == "wait":
            return
        contacts = {inv.invoice_id: inv.contacts for inv in state.invoices}
        contact = decision.action in CONTACT_CHANNELS
        for invoice_id in ids:
            step = contacts[invoice_id] + 1 if contact else None
            self.rows["actions"].append((invoice_id, today, decision.action, step,
                                         float(decision.propensity)))

    def _act(self, decision: Decision, open_: list[_Invoice], t: int, today: dt.date) -> None:
        """The world's reaction: contacts remembered, plans accepted or not, hand-overs."""
        action, ids = decision.action, set(decision.invoice_ids)
        named = [inv for inv in open_ if inv.invoice_id in ids]
        self.history = (*self.history, (today, action, tuple(decision.invoice_ids)))
        for inv in named:
            inv.seen = None
        kind_name = self.debtor.kind_on(today)
        if action in CONTACT_CHANNELS:
            self.contact_days = (*self.contact_days, today)
            for inv in named:
                inv.contacts.append((t, action))
        if action == "payment_plan" and named:
            first = named[0]
            accept = plan_accept_chance(self.debtor, kind_name)
            accepted = first.u[U_ACCEPT + first.offers % N_OFFERS] < accept
            for inv in named:
                inv.offers += 1
            if accepted:
                n = self.policy.payment_plan.installments
                for inv in named:
                    if inv.plan or inv.pending is not None:
                        continue
                    begin = t + 3 + int(inv.u[U_PLAN_DELAY] * 5)
                    share = round(inv.rest / n, 2)
                    inv.plan = [(self._bank(begin + 30 * j), share if j < n - 1 else None)
                                for j in range(n)]
        if action == "collection":
            for inv in named:
                inv.collection, inv.plan = True, []
                chance = recovery_chance(self.debtor, kind_name, t - inv.due)
                if inv.u[U_RECOVER] < chance:
                    delay = recovery_delay_days(self.debtor.world, inv.u[U_RECOVER_DAYS])
                    inv.recover_on = bank_day(t + delay, self.weekday)

    # -- payments ---------------------------------------------------------------------------
    def _bank(self, t: int) -> int:
        """Day index a b2b transfer ordered on ``t`` is booked (b2c pays any day)."""
        return bank_day(t, self.weekday) if self.debtor.segment == "b2b" else t

    def _pay(self, inv: _Invoice, amount: float, t: int) -> None:
        amount = round(min(amount, inv.rest), 2)
        if amount <= 0:
            return
        inv.paid = round(inv.paid + amount, 2)
        inv.rest = round(inv.amount - inv.paid, 2)
        inv.seen = None
        self.paid_today = True
        self.rows["payments"].append((inv.invoice_id, self.dates[t], amount, None))

    def _payments(self, open_: list[_Invoice], t: int, kind: str) -> None:
        """What arrives on day ``t``: booked transfers, instalments, recoveries, payments."""
        debtor = self.debtor
        k = debtor.world.kinds[kind]
        for inv in open_:
            if inv.pending is not None:
                if inv.pending[0] <= t:
                    self._pay(inv, inv.pending[1], t)
                    inv.pending = None
                continue
            if inv.rest <= 0.004:
                continue
            if inv.collection:
                if inv.recover_on is not None and inv.recover_on <= t:
                    self._pay(inv, inv.rest, t)
                continue
            if inv.disputed(t):
                continue
            if inv.plan:
                when, amount = inv.plan[0]
                if when <= t:
                    j = self.policy.payment_plan.installments - len(inv.plan)
                    if inv.u[U_KEEP + j % N_INSTALMENTS] < plan_keep_chance(debtor, kind):
                        self._pay(inv, inv.rest if amount is None else amount, t)
                        inv.plan.pop(0)
                    else:
                        inv.plan = []  # the plan broke: back to the usual behaviour
                continue
            if inv.never_pay:
                continue
            resolved = inv.resolve_on if inv.disputed_from is not None else None
            h = daily_hazard(debtor, kind, t - inv.due, inv.contacts, t, resolved)
            inv.cum_hazard -= math.log1p(-h)
            e = inv.events
            if inv.cum_hazard < -math.log1p(-inv.u[U_THRESHOLD + e]):
                continue
            inv.cum_hazard, inv.events = 0.0, min(e + 1, N_EVENTS - 1)
            rest = inv.rest
            amount = rest
            if e < N_EVENTS - 1 and rest > 20 and inv.u[U_PARTIAL + e] < k.partial:
                amount = round(rest * (0.35 + 0.35 * inv.u[U_FRACTION + e]), 2)
            booked = self._bank(t)
            if booked == t:
                self._pay(inv, amount, t)
            elif booked < self.days:
                inv.pending = (booked, amount)

    # -- the history a policy may read ------------------------------------------------------
    def _known(self, sizes: list[int], on: dt.date) -> Tables:
        """The debtor's rows as known on the morning of ``on`` (sizes taken that morning)."""
        d = self.debtor
        frames = {name: pl.DataFrame(self.rows[name][:size], schema=COLUMNS[name], orient="row")
                  for name, size in zip(TABLES, sizes, strict=True)}
        frames["disputes"] = frames["disputes"].with_columns(
            pl.when(pl.col("resolved_on") <= on).then(pl.col("resolved_on"))
            .alias("resolved_on"))
        frames["debtors"] = pl.DataFrame(
            [(d.debtor_id, d.country, d.segment, d.created_on, ";".join(d.opted_out) or None)],
            schema=COLUMNS["debtors"], orient="row")
        return Tables.from_frames(**frames)
