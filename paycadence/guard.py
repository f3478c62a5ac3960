"""The rule guard: the one place where the policy file's rules are read and enforced.

Every stage that decides an action (the simulator's logging policy, the recommender, the
backtest) describes the debtor as a :class:`DebtorState` and asks this module which actions are
allowed, or checks a proposed action. :func:`audit_actions` counts violations over a whole
action log exactly as CONTRACT.md §2 reads the rules, for tests and outside checks.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from paycadence.config import ACTIONS, CONTACT_CHANNELS, OPTABLE_CHANNELS, Policy

WINDOW_DAYS = 30


@dataclass(frozen=True)
class InvoiceState:
    """One open invoice of a debtor, as known on the morning of the decision day.

    Attributes
    ----------
    contacts : int
        Distinct earlier days with a contact (email, sms, letter, phone, payment_plan)
        naming this invoice.
    disputed : bool
        A dispute on this invoice is open on the decision day.
    in_collection : bool
        The invoice was already handed to collection.
    open_amount : float
        Amount still to pay, in the invoice currency.
    """

    invoice_id: str
    due_date: dt.date
    open_amount: float
    contacts: int = 0
    disputed: bool = False
    in_collection: bool = False


@dataclass(frozen=True)
class DebtorState:
    """What the guard needs to know about a debtor on the decision day.

    ``contact_days`` are the distinct days before the decision day with at least one contact.
    """

    debtor_id: str
    invoices: tuple[InvoiceState, ...]
    contact_days: tuple[dt.date, ...] = ()
    opted_out: frozenset[str] = field(default_factory=frozenset)


def parse_opted_out(value: str | Iterable[str] | None) -> frozenset[str]:
    """Read an ``opted_out`` cell (``"sms;phone"``) or list into a set of channels."""
    if value is None:
        return frozenset()
    items = value.split(";") if isinstance(value, str) else list(value)
    return frozenset(s.strip().lower() for s in items if s and s.strip())


def contact_allowed_today(state: DebtorState, on: dt.date, policy: Policy) -> bool:
    """Whether any contact is allowed on ``on`` by spacing and the 30-day cap."""
    rules = policy.rules
    earlier = [d for d in state.contact_days if d < on]
    if earlier and (on - max(earlier)).days < rules.min_days_between_contacts:
        return False
    window_start = on - dt.timedelta(days=WINDOW_DAYS - 1)
    in_window = sum(1 for d in earlier if d >= window_start)
    return in_window + 1 <= rules.max_contacts_per_30_days


def _contactable(inv: InvoiceState, policy: Policy) -> bool:
    if inv.in_collection or inv.open_amount <= 0:
        return False
    return policy.rules.contact_disputed_invoices or not inv.disputed


def eligible_invoices(state: DebtorState, action: str, on: dt.date, policy: Policy) -> tuple:
    """Ids of the open invoices that ``action`` may name on ``on`` (empty: not allowed)."""
    if action == "wait":
        return ()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    rules = policy.rules
    if action == "collection":
        return tuple(
            inv.invoice_id
            for inv in state.invoices
            if _contactable(inv, policy)
            and inv.contacts >= rules.min_reminders_before_collection
            and (on - inv.due_date).days >= rules.min_days_overdue_for_collection
        )
    if action in OPTABLE_CHANNELS and action in state.opted_out:
        return ()
    if not contact_allowed_today(state, on, policy):
        return ()
    ids = tuple(inv.invoice_id for inv in state.invoices if _contactable(inv, policy))
    if action == "payment_plan":
        plan = policy.payment_plan
        # sets for membership: linear in the debtor's open invoices, not quadratic
        contactable = frozenset(ids)
        ready = tuple(
            inv.invoice_id
            for inv in state.invoices
            if inv.invoice_id in contactable and inv.contacts >= plan.min_reminders_before_offer
        )
        ready_set = frozenset(ready)
        open_amount = sum(inv.open_amount for inv in state.invoices
                          if inv.invoice_id in ready_set)
        return ready if ready and open_amount >= plan.min_open_amount else ()
    return ids


def allowed_actions(state: DebtorState, on: dt.date, policy: Policy) -> dict[str, tuple]:
    """Every action allowed on ``on``, with the invoices it may name; ``wait`` is always in."""
    allowed: dict[str, tuple] = {"wait": ()}
    for action in ACTIONS[1:]:
        ids = eligible_invoices(state, action, on, policy)
        if ids:
            allowed[action] = ids
    return allowed


def violations(
    action: str, invoice_ids: Iterable[str], state: DebtorState, on: dt.date, policy: Policy
) -> list[str]:
    """Rules broken by doing ``action`` about ``invoice_ids`` on ``on``; empty when none."""
    ids = list(invoice_ids)
    if action not in ACTIONS:
        return [f"unknown action {action!r}"]
    if action == "wait":
        return []
    if not ids:
        return [f"{action} names no invoice"]
    if len(set(ids)) != len(ids):
        return [f"{action} names an invoice twice"]
    found: list[str] = []
    known = {inv.invoice_id: inv for inv in state.invoices}
    rules = policy.rules
    for invoice_id in ids:
        inv = known.get(invoice_id)
        if inv is None:
            found.append(f"{invoice_id}: not an open invoice of {state.debtor_id}")
            continue
        if inv.disputed and not rules.contact_disputed_invoices:
            found.append(f"{invoice_id}: has an open dispute")
        if inv.in_collection:
            found.append(f"{invoice_id}: already handed to collection")
        if action == "collection":
            if inv.contacts < rules.min_reminders_before_collection:
                found.append(
                    f"{invoice_id}: {inv.contacts} reminders before collection, "
                    f"needs {rules.min_reminders_before_collection}"
                )
            overdue = (on - inv.due_date).days
            if overdue < rules.min_days_overdue_for_collection:
                found.append(
                    f"{invoice_id}: {overdue} days overdue at collection, "
                    f"needs {rules.min_days_overdue_for_collection}"
                )
        plan_min = policy.payment_plan.min_reminders_before_offer
        if action == "payment_plan" and inv.contacts < plan_min:
            found.append(f"{invoice_id}: payment plan offered before enough reminders")
    if action in CONTACT_CHANNELS:
        if action in OPTABLE_CHANNELS and action in state.opted_out:
            found.append(f"{state.debtor_id}: opted out of {action}")
        if not contact_allowed_today(state, on, policy):
            found.append(f"{state.debtor_id}: contact too soon or over the 30-day cap")
        if action == "payment_plan":
            total = sum(known[i].open_amount for i in ids if i in known)
            if total < policy.payment_plan.min_open_amount:
                found.append(
                    f"{state.debtor_id}: payment plan on {total:.2f} open, "
                    f"needs {policy.payment_plan.min_open_amount:.2f}"
                )
    return found


@dataclass(frozen=True)
class Violation:
    """One rule broken by one logged action row (or contact day)."""

    debtor_id: str
    on: dt.date
    rule: str
    detail: str


def audit_actions(
    actions: Iterable[Mapping],
    invoices: Iterable[Mapping],
    disputes: Iterable[Mapping] = (),
    debtors: Iterable[Mapping] = (),
    policy: Policy | None = None,
) -> list[Violation]:
    """Count rule violations over a whole action log, reading the rules as CONTRACT.md §2 does.

    Parameters
    ----------
    actions, invoices, disputes, debtors
        Rows as mappings with the contract's column names (dates as ``datetime.date``).
    policy
        The policy whose rules apply (the shipped default when None).

    Returns
    -------
    list of Violation
        Empty when the log breaks no rule.
    """
    policy = policy or Policy()
    rules = policy.rules
    owner = {r["invoice_id"]: r["debtor_id"] for r in invoices}
    due = {r["invoice_id"]: r["due_date"] for r in invoices}
    opted = {r["debtor_id"]: parse_opted_out(r.get("opted_out")) for r in debtors}
    spans = defaultdict(list)
    for r in disputes:
        spans[r["invoice_id"]].append((r["opened_on"], r.get("resolved_on")))

    def disputed(invoice_id: str, on: dt.date) -> bool:
        return any(o <= on and (res is None or res > on) for o, res in spans[invoice_id])

    rows = sorted(actions, key=lambda r: r["sent_on"])
    found: list[Violation] = []
    contact_days: dict[str, set] = defaultdict(set)
    invoice_contact_days: dict[str, set] = defaultdict(set)
    for r in rows:
        inv, on, channel = r["invoice_id"], r["sent_on"], r["channel"]
        debtor = owner.get(inv, "?")
        if channel in CONTACT_CHANNELS:
            contact_days[debtor].add(on)
        if inv in spans and disputed(inv, on) and not rules.contact_disputed_invoices:
            found.append(Violation(debtor, on, "contact_disputed_invoices", inv))
        if channel in OPTABLE_CHANNELS and channel in opted.get(debtor, frozenset()):
            found.append(Violation(debtor, on, "opted_out", f"{inv} by {channel}"))
        if channel == "collection":
            if inv in due and (on - due[inv]).days < rules.min_days_overdue_for_collection:
                found.append(Violation(debtor, on, "min_days_overdue_for_collection", inv))
    for r in rows:
        if r["channel"] in CONTACT_CHANNELS:
            invoice_contact_days[r["invoice_id"]].add(r["sent_on"])
    for r in rows:
        if r["channel"] == "collection":
            inv, on = r["invoice_id"], r["sent_on"]
            earlier = sum(1 for d in invoice_contact_days[inv] if d < on)
            if earlier < rules.min_reminders_before_collection:
                found.append(
                    Violation(owner.get(inv, "?"), on, "min_reminders_before_collection", inv)
                )
    for debtor, days in contact_days.items():
        ordered = sorted(days)
        for prev, cur in zip(ordered, ordered[1:], strict=False):
            if (cur - prev).days < rules.min_days_between_contacts:
                found.append(Violation(debtor, cur, "min_days_between_contacts", str(prev)))
        for i, cur in enumerate(ordered):
            start = cur - dt.timedelta(days=WINDOW_DAYS - 1)
            n = sum(1 for d in ordered[: i + 1] if d >= start)
            if n > rules.max_contacts_per_30_days:
                found.append(Violation(debtor, cur, "max_contacts_per_30_days", str(n)))
    return found
