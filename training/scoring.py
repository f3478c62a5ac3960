"""Scoring a simulated run: each policy's net value and the rest (:func:`outcome`), one
policy against another debtor by debtor (:func:`paired_margin`), and the share of the
oracle's gain a policy captured (:func:`captured_share`)."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from paycadence.config import CONTACT_CHANNELS, Policy
from paycadence.data import Tables, settlements
from paycadence.guard import audit_actions

logger = logging.getLogger(__name__)

#: Invoices due at least this many days before the end are scored, so that their fate is
#: mostly known by then (docs/policy.md measures what still arrives later: under 1% of their
#: money when a policy duns, about 5% under no dunning).
SCORED_BEFORE_END = 90


@dataclass(frozen=True)
class Outcome:
    """What one policy achieved on the company (currency in the invoices' currency)."""

    policy: str
    net_value: float
    collected: float
    contact_costs: float
    collection_fees: float
    mean_days_late: float
    unpaid_90d: float
    contacts_per_invoice: float
    handovers: int
    violations: int
    invoices_scored: int
    reminders_per_invoice: float = 0.0
    mean_days_late_paid: float = 0.0
    #: net value per debtor (``debtor_id``, ``net_value``; every debtor of the company, 0 when
    #: it had nothing): its sum is ``net_value``
    per_debtor: pl.DataFrame | None = field(default=None, repr=False, compare=False)


def scored_invoices(tables: Tables, *, end: dt.date, scored_from: dt.date | None = None
                    ) -> pl.DataFrame:
    """The invoices :func:`outcome` scores: due at least :data:`SCORED_BEFORE_END` days before
    ``end`` and, with ``scored_from``, still open on its morning (not settled by the payments
    dated before it) or issued from it on."""
    due = tables.invoices.filter(
        pl.col("due_date") <= end - dt.timedelta(days=SCORED_BEFORE_END))
    if scored_from is None:
        return due
    earlier = tables.payments.filter(pl.col("paid_on") < scored_from)
    settled = settlements(due.lazy(), earlier.lazy()).filter(
        pl.col("settled_on").is_not_null()).select("invoice_id").collect()
    return due.join(settled, on="invoice_id", how="anti")


def outcome(name: str, tables: Tables, policy: Policy, *, start: dt.date, end: dt.date,
            scored_from: dt.date | None = None) -> Outcome:
    """Score one simulated run.

    ``start`` and ``end`` are the first and last simulated days (the same for every policy).
    Without ``scored_from`` the whole run counts: every payment, action and invoice. With it
    (the backtest's switch day) only the future counts, as a user starting a policy that day
    would see it: the invoices of :func:`scored_invoices` (open that morning or issued later,
    and due at least 90 days before the end, so that each one's fate is mostly known), their
    payments and actions dated on or after ``scored_from``, money discounted to it. Invoices
    due later are run (the policies act on them) but not scored; the past, shared by every
    run, counts for nothing. What is still open at the end counts as what it brought in.

    ``net_value``: payments discounted to ``scored_from`` (else ``start``) at
    ``annual_cost_of_capital``, minus the cost of every action and the agency's fee on what
    it recovered. A contact is counted as CONTRACT.md §2 counts it: the action rows of one
    debtor on one day on one channel are one email, call or letter (and cost once); each
    hand-over of an invoice costs once. ``contacts_per_invoice``: those contacts per invoice
    counted (issued, or scored with ``scored_from``); ``reminders_per_invoice``: the contact
    rows (one per invoice named) per invoice. ``mean_days_late``: over the scored invoices,
    settlement − due (0 when early; an invoice still open counts until the end);
    ``mean_days_late_paid``: the same over those of them that were settled. ``unpaid_90d``:
    the open amount of the scored invoices 90 days after their due date. ``violations``: the
    guard's audit of the whole action log (the past's included). ``per_debtor``: the same net
    value debtor by debtor, for :func:`paired_margin`.
    """
    rate = policy.annual_cost_of_capital
    origin = scored_from or start
    scored = scored_invoices(tables, end=end, scored_from=scored_from)
    counted = tables.invoices if scored_from is None else scored
    owner = counted.select("invoice_id", "debtor_id")
    pay = tables.payments.filter(pl.col("paid_on") >= origin).join(owner, on="invoice_id")
    pay = pay.with_columns(
        value=pl.col("amount") * ((pl.col("paid_on") - origin).dt.total_days()
                                  .cast(pl.Float64) * (-rate / 365)).exp())
    collected = float(pay["amount"].sum() or 0.0)
    every_act = tables.actions.join(owner, on="invoice_id")
    acts = every_act.filter(pl.col("sent_on") >= origin)
    costs_of = {a: policy.costs.of(a) for a in (*CONTACT_CHANNELS, "collection")}
    contacts = acts.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).select(
        "debtor_id", "sent_on", "channel").unique()
    handovers = acts.filter(pl.col("channel") == "collection")
    spent = pl.concat([contacts.select("debtor_id", "channel"),
                       handovers.select("debtor_id", "channel")]).with_columns(
        cost=pl.col("channel").replace_strict(costs_of, return_dtype=pl.Float64))
    handed = handovers["invoice_id"].unique()
    handed_any = every_act.filter(pl.col("channel") == "collection")  # the past's too
    recovered = pay.join(handed_any.select("invoice_id", "sent_on"), on="invoice_id").filter(
        pl.col("paid_on") >= pl.col("sent_on")).with_columns(
        fee=pl.col("amount") * policy.collection_fee_rate)
    per_debtor = tables.debtors.select("debtor_id").unique().join(
        pay.group_by("debtor_id").agg(pl.col("value").sum()), on="debtor_id", how="left").join(
        spent.group_by("debtor_id").agg(pl.col("cost").sum()), on="debtor_id", how="left").join(
        recovered.group_by("debtor_id").agg(pl.col("fee").sum()), on="debtor_id", how="left"
    ).fill_null(0.0).select(
        "debtor_id", net_value=pl.col("value") - pl.col("cost") - pl.col("fee")
    ).sort("debtor_id")
    discounted = float(pay["value"].sum() or 0.0)
    costs = float(spent["cost"].sum() or 0.0)
    fees = float(recovered["fee"].sum() or 0.0)
    settled = settlements(tables.invoices.lazy(), tables.payments.lazy()).collect()
    scored = scored.join(settled, on="invoice_id", how="left")
    days_late = (pl.coalesce("settled_on", pl.lit(end)) - pl.col("due_date")).dt.total_days() \
        .clip(lower_bound=0)
    late = scored.select(days_late.mean()).item()
    late_paid = scored.filter(pl.col("settled_on").is_not_null()).select(days_late.mean()).item()
    cut = tables.payments.join(scored.select("invoice_id", "due_date"), on="invoice_id").filter(
        pl.col("paid_on") <= pl.col("due_date") + pl.duration(days=90)).group_by(
        "invoice_id").agg(pl.col("amount").sum().alias("by90"))
    unpaid = scored.join(cut, on="invoice_id", how="left").select(
        (pl.col("amount") - pl.col("by90").fill_null(0.0)).clip(lower_bound=0).sum()).item()
    reminders = acts.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).height
    broken = audit_actions(tables.actions.to_dicts(), tables.invoices.to_dicts(),
                           tables.disputes.to_dicts(), tables.debtors.to_dicts(), policy)
    n_inv = max(counted.height, 1)
    return Outcome(name, discounted - costs - fees, collected, costs, fees,
                   float(late or 0.0), float(unpaid or 0.0), contacts.height / n_inv,
                   int(handed.len()), len(broken), scored.height, reminders / n_inv,
                   float(late_paid or 0.0), per_debtor)


@dataclass(frozen=True)
class Margin:
    """How much more one policy earned than another on the same company, debtor by debtor
    (common random numbers make the difference paired), with a bootstrap interval."""

    difference: float  # net value of ``a`` − net value of ``b`` (currency)
    relative: float  # difference / |net value of b|
    low: float  # 95% bootstrap interval of ``relative`` over debtors
    high: float
    debtors_better: int  # debtors for whom ``a`` earned more than ``b``
    debtors_worse: int


def paired_margin(a: Outcome, b: Outcome, *, seed: int = 0, resamples: int = 2000) -> Margin:
    """``a``'s net value against ``b``'s, with a 95% interval from resampling debtors (with
    replacement, the same debtors for both): how sure the margin is, not only how big. Both
    outcomes must be of the same company (:func:`outcome`'s ``per_debtor``)."""
    joined = a.per_debtor.join(b.per_debtor, on="debtor_id", how="full", coalesce=True,
                               suffix="_b").fill_null(0.0)
    diff = (joined["net_value"] - joined["net_value_b"]).to_numpy()
    base = abs(b.net_value) or 1.0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diff), size=(resamples, len(diff)))
    totals = diff[draws].sum(axis=1) / base
    low, high = np.percentile(totals, [2.5, 97.5])
    return Margin(float(diff.sum()), float(diff.sum() / base), float(low), float(high),
                  int((diff > 1e-9).sum()), int((diff < -1e-9).sum()))


@dataclass(frozen=True)
class Captured:
    """Share of the oracle's gain over the fixed schedule that the learnt policy captured,
    ``(learnt − fixed) / (oracle − fixed)`` (sums over debtors), with a paired 95% bootstrap
    interval over debtors; NaN everywhere when the oracle gains nothing over fixed."""

    value: float
    low: float
    high: float
    oracle_gain: float  # oracle − fixed, net value (currency)
    learnt_gain: float  # learnt − fixed

    @property
    def defined(self) -> bool:
        return self.oracle_gain > 0


def captured_share(learnt: Outcome, fixed: Outcome, oracle: Outcome, *, seed: int = 0,
                   resamples: int = 2000) -> Captured:
    """How much of what the oracle earns over the fixed schedule the learnt policy earns.

    The three outcomes are of the same company (common random numbers), so the ratio is
    resampled debtor by debtor: each resample draws the debtors with replacement and takes
    the ratio of the sums. A resample where the oracle gains nothing has an infinite ratio
    (signed by the learnt policy's gain), so a denominator that is not clearly positive shows
    as an unbounded interval rather than a falsely narrow one.
    """
    frames = [o.per_debtor.rename({"net_value": o.policy}) for o in (learnt, fixed, oracle)]
    joined = frames[0].join(frames[1], on="debtor_id", how="full", coalesce=True).join(
        frames[2], on="debtor_id", how="full", coalesce=True).fill_null(0.0)
    base = joined[fixed.policy].to_numpy()
    num = joined[learnt.policy].to_numpy() - base
    den = joined[oracle.policy].to_numpy() - base
    if den.sum() <= 0:
        return Captured(math.nan, math.nan, math.nan, float(den.sum()), float(num.sum()))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(den), size=(resamples, len(den)))
    tops, bottoms = num[draws].sum(axis=1), den[draws].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(bottoms > 0, tops / np.where(bottoms > 0, bottoms, 1.0),
                          np.copysign(np.inf, tops))
    low, high = np.percentile(ratios, [2.5, 97.5], method="inverted_cdf")  # keeps ±inf
    return Captured(float(num.sum() / den.sum()), float(low), float(high), float(den.sum()),
                    float(num.sum()))


