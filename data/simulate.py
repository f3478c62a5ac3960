"""A seeded simulator of a company's receivables, written as the five contract tables.

Debtors (``data/sim_world.py``) receive invoices, pay them — early, late, in parts, after a
reminder, through a payment plan or a collection agency, or never — dispute some, and change
behaviour now and then. A decision policy (by default the fixed schedule that explores, from
``data/sim_policy.py``) decides every morning what to send; the guard checks every action. The
output is what an ERP would export, plus the decision log (waits included) and the hidden truth.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.config import CONTACT_CHANNELS, Policy
from paycadence.data.sim_policy import (
    DebtorContext,
    Decision,
    DecisionPolicy,
    ScheduleLoggingPolicy,
)
from paycadence.data.sim_world import (
    COLLECTION_RECOVERY,
    DEFAULT_RECOVERY,
    DISPUTE_RATE,
    NEVER_PAY,
    OTHER_DISPUTE_RATE,
    PARTIAL_KINDS,
    PLAN_ACCEPT,
    Debtor,
    daily_hazard,
    draw_debtor,
    invoice_days,
)
from paycadence.data.tables import COLUMNS, Tables
from paycadence.guard import DebtorState, InvoiceState

logger = logging.getLogger(__name__)

DECISIONS_SCHEMA = {"debtor_id": pl.String, "decided_on": pl.Date, "action": pl.String,
                    "invoice_ids": pl.String, "propensity": pl.Float64, "explored": pl.Boolean,
                    "schedule_action": pl.String}


@dataclass(frozen=True)
class SimulationResult:
    """The contract tables, the decision log (waits included) and the debtors' hidden truth."""

    tables: Tables
    decisions: pl.DataFrame
    truth: pl.DataFrame


@dataclass
class _Invoice:
    invoice_id: str
    issue: int
    due: int
    amount: float
    paid: float = 0.0
    contacts: list = field(default_factory=list)  # (day, channel) of contacts
    in_collection: bool = False
    recover_on: int | None = None
    never_pay: bool = False
    dispute: tuple[int, int | None] | None = None
    plan: list = field(default_factory=list)  # (day, amount) installments still to pay

    @property
    def rest(self) -> float:
        return round(self.amount - self.paid, 2)

    def disputed_on(self, t: int) -> bool:
        if self.dispute is None:
            return False
        opened, resolved = self.dispute
        return opened <= t and (resolved is None or resolved > t)


def simulate(
    n_debtors: int = 500,
    *,
    days: int = 730,
    seed: int = 1,
    start: dt.date = dt.date(2024, 1, 1),
    policy: Policy | None = None,
    logging_policy: DecisionPolicy | None = None,
    exploration_share: float = 0.10,
) -> SimulationResult:
    """Simulate ``n_debtors`` debtors over ``days`` days from ``start``.

    Parameters
    ----------
    policy
        Rules and schedule the decisions follow (the shipped default when None).
    logging_policy
        Who decides; default :class:`ScheduleLoggingPolicy` exploring with
        ``exploration_share``. Debtors and their invoices depend only on ``seed``, so two
        policies can be compared on the same company.
    """
    policy = policy or Policy()
    root = np.random.SeedSequence(seed)
    trait_seqs, world_seqs = root.spawn(2)
    traits = trait_seqs.spawn(n_debtors)
    worlds = world_seqs.spawn(n_debtors)
    decider = logging_policy or ScheduleLoggingPolicy(
        policy, exploration_share, np.random.default_rng(np.random.SeedSequence([seed, 104729])))
    rows: dict[str, list] = {n: [] for n in ("debtors", "invoices", "payments", "actions",
                                             "disputes", "decisions", "truth")}
    for i in range(n_debtors):
        trait_rng = np.random.default_rng(traits[i])
        debtor = draw_debtor(i, trait_rng, start, days)
        issued = invoice_days(debtor, trait_rng, start, days)
        _run_debtor(debtor, issued, trait_rng, np.random.default_rng(worlds[i]), start, days,
                    policy, decider, rows)
    frames = {n: pl.DataFrame(rows[n], schema=COLUMNS[n], orient="row") for n in
              ("debtors", "invoices", "payments", "actions", "disputes")}
    decisions = pl.DataFrame(rows["decisions"], schema=DECISIONS_SCHEMA, orient="row")
    truth = pl.DataFrame(rows["truth"], orient="row", schema={
        "debtor_id": pl.String, "kind": pl.String, "segment": pl.String, "country": pl.String,
        "changed_on": pl.Date, "kind_after": pl.String, "preferred_channel": pl.String,
        "pace": pl.Float64, "subscription": pl.Boolean})
    logger.info("simulated %d debtors, %d invoices, %d actions", n_debtors,
                frames["invoices"].height, frames["actions"].height)
    return SimulationResult(Tables(**frames), decisions, truth)


def _run_debtor(debtor: Debtor, issued, trait_rng, rng, start, days, policy, decider, rows):
    """Simulate one debtor day by day, appending its rows."""
    day = [start + dt.timedelta(days=t) for t in range(days)]
    rows["debtors"].append((debtor.debtor_id, debtor.country, debtor.segment, debtor.created_on,
                            ";".join(debtor.opted_out) or None))
    rows["truth"].append((debtor.debtor_id, debtor.kind, debtor.segment, debtor.country,
                          debtor.changed_on, debtor.kind_after, debtor.preferred, debtor.pace,
                          debtor.subscription))
    currency = "GBP" if debtor.country == "GB" else "EUR"
    pending = []
    for k, (issue_day, amount) in enumerate(issued):
        t_issue = (issue_day - start).days
        inv = _Invoice(f"{debtor.debtor_id}-{k + 1:04d}", t_issue, t_issue + debtor.term_days,
                       amount)
        kind = debtor.kind_on(issue_day)
        inv.never_pay = trait_rng.random() < NEVER_PAY.get(kind, 0.0)
        if trait_rng.random() < DISPUTE_RATE.get(kind, OTHER_DISPUTE_RATE):
            opened = inv.due + int(trait_rng.integers(-5, 11))
            opened = max(opened, inv.issue)
            resolved = None if trait_rng.random() < 0.1 else opened + int(
                trait_rng.integers(10, 61))
            inv.dispute = (opened, resolved)
        pending.append(inv)
        rows["invoices"].append((inv.invoice_id, debtor.debtor_id, issue_day,
                                 start + dt.timedelta(days=inv.due), amount, currency))
        if inv.dispute is not None and inv.dispute[0] < days:
            resolved = inv.dispute[1]
            rows["disputes"].append((inv.invoice_id, start + dt.timedelta(days=inv.dispute[0]),
                                     start + dt.timedelta(days=resolved)
                                     if resolved is not None and resolved < days else None))
    pending.sort(key=lambda x: x.issue)
    open_: list[_Invoice] = []
    contact_days: list[dt.date] = []
    history: list[tuple] = []
    nxt = 0
    for t in range(days):
        today = day[t]
        while nxt < len(pending) and pending[nxt].issue <= t:
            open_.append(pending[nxt])
            nxt += 1
        if not open_:
            continue
        kind = debtor.kind_on(today)
        state = DebtorState(
            debtor.debtor_id,
            tuple(InvoiceState(x.invoice_id, start + dt.timedelta(days=x.due), x.rest,
                               len(x.contacts), x.disputed_on(t), x.in_collection)
                  for x in open_),
            tuple(contact_days), frozenset(debtor.opted_out))
        if decider.is_decision_day(state, today):
            context = DebtorContext({x.invoice_id: t - x.due for x in open_}, tuple(history),
                                    debtor.segment)
            decision = decider.decide(state, today, context)
            _log(decision, debtor, today, rows)
            _apply(decision, open_, t, today, kind, debtor, rng, contact_days, history, policy)
        if today.weekday() < 5:
            _payments(open_, t, today, kind, debtor, rng, rows)
        open_ = [x for x in open_ if x.rest > 0.004]


def _log(decision: Decision, debtor: Debtor, today: dt.date, rows) -> None:
    rows["decisions"].append((debtor.debtor_id, today, decision.action,
                              ";".join(decision.invoice_ids), decision.propensity,
                              decision.explored, decision.schedule_action))
    if decision.action == "wait":
        return
    for invoice_id in decision.invoice_ids:
        rows["actions"].append((invoice_id, today, decision.action, decision.step,
                                round(decision.propensity, 6)))


def _apply(decision, open_, t, today, kind, debtor, rng, contact_days, history, policy) -> None:
    """The world's reaction to an action: contacts remembered, plans accepted, hand-overs."""
    if decision.action == "wait":
        return
    named = [x for x in open_ if x.invoice_id in decision.invoice_ids]
    history.append((today, decision.action, decision.invoice_ids))
    if decision.action in CONTACT_CHANNELS:
        contact_days.append(today)
        for x in named:
            x.contacts.append((t, decision.action))
    if decision.action == "payment_plan" and rng.random() < PLAN_ACCEPT[kind]:
        n = policy.payment_plan.installments
        for x in named:
            share = round(x.rest / n, 2)
            x.plan = [(t + 3 + 30 * j, share) for j in range(n - 1)] + [(t + 3 + 30 * (n - 1),
                                                                        None)]
    if decision.action == "collection":
        for x in named:
            x.in_collection = True
            x.plan = []
            if rng.random() < COLLECTION_RECOVERY.get(kind, DEFAULT_RECOVERY):
                x.recover_on = t + int(rng.integers(7, 61))


def _pay(x: _Invoice, amount: float, today: dt.date, rows) -> None:
    amount = round(min(amount, x.rest), 2)
    if amount <= 0:
        return
    x.paid = round(x.paid + amount, 2)
    rows["payments"].append((x.invoice_id, today, amount))


def _payments(open_, t, today, kind, debtor, rng, rows) -> None:
    """What arrives on a bank day: plan instalments, agency recoveries, ordinary payments."""
    for x in open_:
        if x.disputed_on(t):
            continue
        if x.in_collection:
            if x.recover_on is not None and t >= x.recover_on:
                _pay(x, x.rest, today, rows)
            continue
        if x.plan:
            due_now = [p for p in x.plan if p[0] <= t]
            if due_now:
                when, amount = due_now[0]
                if rng.random() < 0.9:
                    _pay(x, x.rest if amount is None else amount, today, rows)
                    x.plan.remove((when, amount))
                else:
                    x.plan = []  # the plan broke
            continue
        if x.never_pay:
            continue
        h = daily_hazard(debtor, kind, t - x.due, x.contacts, t)
        if rng.random() < h:
            partial = PARTIAL_KINDS.get(kind, 0.0)
            if rng.random() < partial and x.rest > 20:
                _pay(x, x.rest * float(rng.uniform(0.3, 0.6)), today, rows)
            else:
                _pay(x, x.rest, today, rows)


def write_simulation(result: SimulationResult, out_dir: str | Path) -> list[Path]:
    """Write the five tables as contract CSV, plus ``decisions.csv`` and ``truth.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in result.tables.items():
        path = out_dir / f"{name}.csv"
        frame.write_csv(path, date_format="%Y-%m-%d")
        paths.append(path)
    for name, frame in (("decisions", result.decisions), ("truth", result.truth)):
        path = out_dir / f"{name}.csv"
        frame.write_csv(path, date_format="%Y-%m-%d")
        paths.append(path)
    return paths
