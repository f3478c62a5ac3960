"""The oracle of the backtest: the simulator's true model, used greedily.

:class:`OraclePolicy` knows what no product can: each debtor's hidden traits (kind, pace,
responsiveness per channel, insolvency, a coming change of kind) and the world's mechanics
(:func:`~paycadence.data.sim_world.daily_hazard`, the kind's never-pay share, plan acceptance
and keeping, agency recovery). It does *not* know the company's random draws: every value is an
expectation over the world's randomness, given what the company has seen so far (an invoice
still open after many days is more likely one that is never paid voluntarily).

Every morning with something open it values each action the guard allows as the true expected
net value of "this action today, then waiting" minus that of "waiting": money in discounted to
``value_from`` (the backtest's switch day) at ``annual_cost_of_capital`` (as
:func:`~paycadence.training.scoring.outcome` scores it), minus the action's cost and the
agency's fee. It takes the best action if it beats waiting. Being one-step greedy, it is a
strong reference, not the optimum.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping

import numpy as np

from paycadence.config import ACTIONS, CONTACT_CHANNELS, Policy
from paycadence.data.sim_policy import DebtorContext, Decision, contact_step
from paycadence.data.sim_world import (
    MAX_EFFECT_DAYS,
    N_OFFERS,
    Debtor,
    daily_hazard,
    insolvent_on,
    plan_accept_chance,
    plan_keep_chance,
    recovery_chance,
)
from paycadence.guard import DebtorState, InvoiceState, allowed_actions

logger = logging.getLogger(__name__)

#: Share of the open amount a partial payment pays, on average (the engine draws 35-70 %).
PARTIAL_MEAN = 0.525
#: Days after the offer a plan's first instalment is due (the engine draws 3 … 7).
PLAN_BEGIN_DAYS = 5


class OraclePolicy:
    """The simulator's true expected net value of every allowed action, used greedily.

    Parameters
    ----------
    policy : Policy
        Rules (the guard's own check chooses among allowed actions only), costs, fee, cost of
        capital and plan terms.
    debtors : Mapping
        debtor id → the true :class:`~paycadence.data.sim_world.Debtor` (traits and world),
        e.g. :func:`paycadence.data.simulate.company_debtors` for the simulated company.
    start : datetime.date
        First day of the run (the engine's day 0).
    value_from : datetime.date or None
        The day money is discounted to, as the backtest scores it (its switch day); ``start``
        when None. Costs are paid on the day, so the day matters: gains are in currency of
        that day.
    horizon_days : int
        Days valued one by one; what is still expected after them is valued as if the last
        day's chance of paying went on for ever (never dropped).
    """

    def __init__(self, policy: Policy, debtors: Mapping[str, Debtor], *, start: dt.date,
                 value_from: dt.date | None = None, horizon_days: int = 180):
        if horizon_days < MAX_EFFECT_DAYS + 2:
            raise ValueError(f"horizon_days must be at least {MAX_EFFECT_DAYS + 2}, a "
                             f"contact's effect lasts {MAX_EFFECT_DAYS} days")
        self.policy, self.debtors, self.start = policy, debtors, start
        self.horizon_days = horizon_days
        self.daily_discount = math.exp(-policy.annual_cost_of_capital / 365)
        # money is discounted to ``start`` inside; a cost paid in currency of ``value_from``
        # weighs this much there, and every gain is divided by it at the end
        self._weight = self.daily_discount ** ((value_from or start) - start).days
        self.decisions = 0
        # what the company has seen of each invoice, morning by morning (no hidden draw)
        self._amount: dict[str, float] = {}
        self._disputed: set[str] = set()
        self._resolved: dict[str, int] = {}
        self._log_open: dict[str, float] = {}  # log P(no payment event so far | pays at all)
        self._pending: dict[str, float] = {}  # yesterday's log(1 − h), confirmed if still open

    # -- the protocol of the engine ---------------------------------------------------------
    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        """Every morning something is open (and keeps what the company sees of each invoice)."""
        self._observe(state, on, context)
        return bool(state.invoices)

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        """The allowed action of the highest true expected gain over waiting, or ``wait``."""
        self.decisions += 1
        allowed = allowed_actions(state, on, self.policy)
        best, ids, gain = "wait", (), 0.0
        if len(allowed) > 1:
            for action, (value, named) in self.gains(state, on, context, allowed).items():
                if value > gain:
                    best, ids, gain = action, named, value
        return Decision(best, ids, 1.0, False, contact_step(state, best, ids), best,
                        len(allowed))

    # -- valuation --------------------------------------------------------------------------
    def gains(self, state: DebtorState, on: dt.date, context: DebtorContext,
              allowed: Mapping[str, tuple] | None = None
              ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """action → (true expected net value over waiting, invoices it names), for every
        allowed action but ``wait`` (currency, discounted to ``value_from``)."""
        allowed = allowed_actions(state, on, self.policy) if allowed is None else allowed
        debtor = self.debtors[state.debtor_id]
        t = (on - self.start).days
        kind = debtor.kind_on(on)
        by_id = {inv.invoice_id: inv for inv in state.invoices}
        contacts = _contacts_by_invoice(context, self.start)
        fee, weight = self.policy.collection_fee_rate, self._weight

        def cost(action: str) -> float:
            return self.policy.costs.of(action) * weight

        waiting: dict[str, float] = {}

        def wait_value(inv: InvoiceState) -> float:
            if inv.invoice_id not in waiting:
                waiting[inv.invoice_id] = self._voluntary(debtor, inv, t, context,
                                                          contacts.get(inv.invoice_id, []))
            return waiting[inv.invoice_id]

        out = {}
        for action in ACTIONS[1:]:
            if action not in allowed:
                continue
            eligible = [by_id[i] for i in allowed[action]]
            if action == "collection":
                recovery = self._recovery_value(t, debtor.world)
                parts = [(inv.invoice_id, inv.open_amount * (recovery - fee) * recovery_chance(
                    debtor, kind, context.days_past_due[inv.invoice_id])
                    - cost(action) - wait_value(inv)) for inv in eligible]
                named = tuple(i for i, g in parts if g > 0)
                if named:
                    out[action] = (sum(g for _, g in parts if g > 0), named)
                else:  # nothing worth handing over: the least bad, for the record
                    i, g = max(parts, key=lambda p: p[1])
                    out[action] = (g, (i,))
            elif action == "payment_plan":
                offers = sum(1 for _, a, ids in context.contacts
                             if a == "payment_plan" and eligible[0].invoice_id in ids)
                accept = plan_accept_chance(debtor, kind) if offers < N_OFFERS else 0.0
                value = sum(self._offered(debtor, inv, t, context,
                                          contacts.get(inv.invoice_id, []), accept)
                            - wait_value(inv) for inv in eligible)
                out[action] = (value - cost(action),
                               tuple(inv.invoice_id for inv in eligible))
            else:
                parts = [(inv.invoice_id, self._voluntary(
                    debtor, inv, t, context, contacts.get(inv.invoice_id, []) + [(t, action)])
                    - wait_value(inv)) for inv in eligible]
                named = tuple(i for i, g in parts if g > 1e-9)
                if named:
                    out[action] = (sum(g for _, g in parts if g > 1e-9) - cost(action),
                                   named)
        return {a: (g / weight, ids) for a, (g, ids) in out.items()}

    def _voluntary_rate(self, debtor: Debtor, inv: InvoiceState, t: int,
                        context: DebtorContext, contacts: list[tuple[int, str]]) -> np.ndarray:
        """Expected share of the open amount paid voluntarily on each day ``t`` … ``t + H``,
        per unit still open that morning (the hazard times the share a payment pays)."""
        due = t - context.days_past_due[inv.invoice_id]
        resolved = self._resolved.get(inv.invoice_id)
        partial = debtor.world.kinds[debtor.kind_on(self.start + dt.timedelta(days=t))].partial
        paid_share = 1.0 - partial * (1.0 - PARTIAL_MEAN) if inv.open_amount > 20 else 1.0
        change = None if debtor.changed_on is None else (debtor.changed_on - self.start).days
        hazards = np.empty(self.horizon_days)
        for j in range(self.horizon_days):
            day = t + j
            kind = debtor.kind_after if change is not None and day >= change else debtor.kind
            hazards[j] = daily_hazard(debtor, kind, day - due, contacts, day, resolved)
        return hazards * paid_share

    def _flow_value(self, rate: np.ndarray, first_day: int) -> float:
        """Discounted money per unit open on ``first_day``, paying ``rate`` a day from then
        on, the last day's rate going on after the horizon."""
        still = np.concatenate(([1.0], np.cumprod(1.0 - rate)))
        days = first_day + np.arange(len(rate))
        disc = self.daily_discount ** days
        value = float((still[:-1] * rate * disc).sum())
        last, d = float(rate[-1]), self.daily_discount
        if last > 0:
            value += still[-1] * d ** (first_day + len(rate) - 1) * last * d / (
                1.0 - (1.0 - last) * d)
        return value

    def _pays_at_all(self, debtor: Debtor, inv: InvoiceState, context: DebtorContext,
                     t: int) -> float:
        """Chance the invoice is not one of those never paid voluntarily, given that it is
        still open today (Bayes on the kind's never-pay share; a part paid rules it out)."""
        if inv.open_amount < self._amount.get(inv.invoice_id, inv.open_amount) - 0.004:
            return 1.0
        issued = self.start + dt.timedelta(days=t - context.days_past_due[inv.invoice_id]
                                           - debtor.term_days)
        kind = debtor.kind_on(issued)
        never = 1.0 if insolvent_on(debtor, kind) else debtor.world.kinds[kind].never_pay
        if never <= 0:
            return 1.0
        open_if_pays = math.exp(self._log_open.get(inv.invoice_id, 0.0))
        return (1 - never) * open_if_pays / (never + (1 - never) * open_if_pays)

    def _voluntary(self, debtor: Debtor, inv: InvoiceState, t: int, context: DebtorContext,
                   contacts: list[tuple[int, str]]) -> float:
        """True expected discounted money from an invoice left to the debtor from today."""
        if inv.in_collection or inv.invoice_id in context.on_plan or inv.disputed:
            return 0.0  # nothing a contact changes there (an agency or a kept plan pays)
        rate = self._voluntary_rate(debtor, inv, t, context, contacts)
        return inv.open_amount * self._pays_at_all(debtor, inv, context, t) * self._flow_value(
            rate, t)

    def _offered(self, debtor: Debtor, inv: InvoiceState, t: int, context: DebtorContext,
                 contacts: list[tuple[int, str]], accept: float) -> float:
        """True expected money from an invoice offered a plan today, then left alone."""
        with_offer = contacts + [(t, "payment_plan")]
        if inv.in_collection or inv.invoice_id in context.on_plan or inv.disputed:
            return 0.0
        rate = self._voluntary_rate(debtor, inv, t, context, with_offer)
        pays = self._pays_at_all(debtor, inv, context, t)
        refused = inv.open_amount * pays * self._flow_value(rate, t)
        if accept <= 0:
            return refused
        n = self.policy.payment_plan.installments
        share = round(inv.open_amount / n, 2)
        kept_value, kept = 0.0, 1.0
        for j in range(n):
            day = t + PLAN_BEGIN_DAYS + 30 * j
            keep = plan_keep_chance(debtor, debtor.kind_on(self.start + dt.timedelta(days=day)))
            rest = inv.open_amount - share * j
            after = day + 1 - t  # a broken plan leaves the invoice to the debtor the next day
            if after < len(rate):
                fallback = self._flow_value(rate[after:], day + 1)
            else:
                fallback = self._flow_value(rate[-1:], day + 1)
            kept_value += kept * (1 - keep) * pays * rest * fallback
            amount = share if j < n - 1 else rest
            kept_value += kept * keep * amount * self.daily_discount ** day
            kept *= keep
        return accept * kept_value + (1 - accept) * refused

    def _recovery_value(self, t: int, world) -> float:
        """Discount factor of an agency's recovery of an invoice handed over today, over the
        world's delays (:func:`paycadence.data.sim_world.recovery_delay_days`, before bank
        days)."""
        low, span = world.recovery_delay
        return float(np.mean(self.daily_discount ** (t + low + np.arange(max(span, 1)))))

    # -- what the company sees --------------------------------------------------------------
    def _observe(self, state: DebtorState, on: dt.date, context: DebtorContext) -> None:
        """Amounts first billed, dispute resolutions, and how long each invoice has stayed
        open under the debtor's true hazard (for :meth:`_pays_at_all`)."""
        if not state.invoices:
            return
        t = (on - self.start).days
        debtor = self.debtors.get(state.debtor_id)
        contacts = None
        for inv in state.invoices:
            key = inv.invoice_id
            self._amount.setdefault(key, inv.open_amount)
            if key in self._pending:  # yesterday passed without a payment
                self._log_open[key] = self._log_open.get(key, 0.0) + self._pending.pop(key)
            if inv.disputed:
                self._disputed.add(key)
                continue
            if key in self._disputed and key not in self._resolved:
                self._resolved[key] = t
            if debtor is None or inv.in_collection or key in context.on_plan:
                continue
            if contacts is None:
                contacts = _contacts_by_invoice(context, self.start)
            due = t - context.days_past_due[key]
            h = daily_hazard(debtor, debtor.kind_on(on), t - due, contacts.get(key, []), t,
                             self._resolved.get(key))
            self._pending[key] = math.log1p(-h)


def _contacts_by_invoice(context: DebtorContext, start: dt.date
                         ) -> dict[str, list[tuple[int, str]]]:
    """invoice id → (day index, channel) of its contacts, oldest first, as the engine keeps
    them (collections are not contacts)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for day, action, ids in context.contacts:
        if action in CONTACT_CHANNELS:
            t = (day - start).days
            for i in ids:
                out.setdefault(i, []).append((t, action))
    return out
