"""Point-in-time features of open invoices and their debtors, as known on the morning of a date.

This is the only place features are computed: training snapshots, batch recommendations and
the stateless ``/recommend`` all call :func:`invoice_features`. Every input row passes through
:func:`paycadence.data.known_as_of` first, so nothing dated after ``as_of`` can leak in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from paycadence.config import CONTACT_CHANNELS
from paycadence.data import Tables, known_as_of, settlements
from paycadence.features.behaviour import (
    channel_response,
    contact_record,
    country_code,
    payment_habits,
)

#: The model's inputs, in order. docs/features.md defines each; features/texts.py words them.
FEATURES: tuple[str, ...] = (
    "amount",
    "term_days",
    "days_past_due",
    "age_days",
    "share_paid",
    "reminders_invoice",
    "days_since_contact_invoice",
    "disputed_open",
    "in_collection",
    "plan_offered",
    "n_settled",
    "share_late",
    "mean_days_late",
    "n_late_last_5",
    "share_late_last_5",
    "mean_days_late_last_5",
    "late_trend",
    "days_late_trend",
    "n_open",
    "debtor_open_amount",
    "overdue_amount",
    "n_open_overdue",
    "max_days_past_due",
    "contacts_30d",
    "days_since_contact",
    "n_disputes",
    "tenure_days",
    "is_b2c",
    "late_last_5_due",
    "behaviour_change",
    "resp_email",
    "resp_sms",
    "resp_letter",
    "resp_phone",
    "n_partial",
    "n_broken_plans",
    "amount_vs_usual",
    "reminders_debtor",
    "n_disputes_open",
    "country_code",
    "due_weekday",
    "due_month_end",
    "as_of_weekday",
)

#: Recent lateness this far above the debtor's own long-run rate (or days late this much above
#: its usual) flags a sudden change of payment behaviour, once it has this many paid invoices.
CHANGE_SHARE = 0.4
CHANGE_DAYS = 10.0
CHANGE_MIN_SETTLED = 6

RECENT = 5


def _days(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_days().cast(pl.Float64)


def invoice_features(
    tables: Tables, *, as_of: dt.date, invoice_ids: Sequence[str] | None = None
) -> pl.DataFrame:
    """Features of the invoices open on the morning of ``as_of`` (see :func:`feature_plan`)."""
    return feature_plan(tables, as_of=as_of, invoice_ids=invoice_ids).collect()


def feature_plan(
    tables: Tables, *, as_of: dt.date, invoice_ids: Sequence[str] | None = None
) -> pl.LazyFrame:
    """The query behind :func:`invoice_features` (its shared parts already computed).

    Parameters
    ----------
    tables
        The company's tables; rows dated after ``as_of`` may be present and are ignored.
    as_of
        The decision day. Invoices and disputes dated on or before it are known; payments
        and actions only when dated before it (CONTRACT.md §1).
    invoice_ids
        Restrict the answer to these invoices (those among them that are open).

    Returns
    -------
    polars.LazyFrame
        One row per open invoice: ``invoice_id``, ``debtor_id``, ``as_of``, ``due_date``,
        ``open_amount`` (currency) and every column of :data:`FEATURES` (days, currency,
        shares in [0, 1]; null where the history says nothing, e.g. no settled invoice yet).
    """
    day = pl.lit(as_of, dtype=pl.Date)
    invoices = known_as_of(tables.invoices.lazy(), as_of, table="invoices")
    payments = known_as_of(tables.payments.lazy(), as_of, table="payments")
    actions = known_as_of(tables.actions.lazy(), as_of, table="actions")
    disputes = known_as_of(tables.disputes.lazy(), as_of, table="disputes")

    # computed once and shared by every part below (the engine would otherwise redo it)
    inv = invoices.select("invoice_id", "debtor_id", "issue_date", "due_date", "amount").join(
        settlements(invoices, payments), on="invoice_id", how="left"
    ).collect().lazy()
    open_inv = inv.filter(pl.col("settled_on").is_null())
    if invoice_ids is not None:
        open_inv = open_inv.filter(pl.col("invoice_id").is_in(pl.Series(list(invoice_ids),
                                                                        dtype=pl.String)
                                                              .implode()))
    open_inv = open_inv.with_columns(
        open_amount=(pl.col("amount") - pl.col("amount_paid")).clip(lower_bound=0.0),
        days_past_due=_days(day - pl.col("due_date")),
    )

    history = _debtor_history(inv).join(_recent_due(inv, day), on="debtor_id", how="full",
                                        coalesce=True)
    exposure = _debtor_exposure(inv.filter(pl.col("settled_on").is_null()), day)
    # every action once with its debtor and its invoice's settlement, shared by all below
    acts = actions.select("invoice_id", "sent_on", "channel").join(
        inv.select("invoice_id", "debtor_id", "settled_on"), on="invoice_id", how="inner"
    ).collect().lazy()
    contacts = _contacts(acts, open_inv.select("invoice_id"), day)
    disputes_open = disputes.filter(pl.col("resolved_on").is_null()).select(
        "invoice_id", disputed_open=pl.lit(1.0)
    ).unique("invoice_id")
    owners = invoices.select("invoice_id", "debtor_id")
    dispute_counts = disputes.join(owners, on="invoice_id", how="inner").group_by(
        "debtor_id").agg(n_disputes=pl.len().cast(pl.Float64),
                         n_disputes_open=pl.col("resolved_on").is_null().sum().cast(pl.Float64))
    debtors = tables.debtors.lazy().select("debtor_id", "segment", "created_on", "country")
    first_issue = invoices.group_by("debtor_id").agg(first_issue=pl.col("issue_date").min())

    frame = (
        open_inv.join(contacts["invoice"], on="invoice_id", how="left")
        .join(disputes_open, on="invoice_id", how="left")
        .join(history, on="debtor_id", how="left")
        .join(exposure, on="debtor_id", how="left")
        .join(contacts["debtor"], on="debtor_id", how="left")
        .join(dispute_counts, on="debtor_id", how="left")
        .join(debtors, on="debtor_id", how="left")
        .join(first_issue, on="debtor_id", how="left")
        .join(channel_response(acts, day), on="debtor_id", how="left")
        .join(payment_habits(inv, acts, day), on="debtor_id", how="left")
        .join(contact_record(acts), on="debtor_id", how="left")
        .with_columns(
            as_of=day,
            amount=pl.col("amount"),
            term_days=_days(pl.col("due_date") - pl.col("issue_date")),
            age_days=_days(day - pl.col("issue_date")),
            share_paid=(pl.col("amount_paid") / pl.col("amount")).clip(0.0, 1.0),
            reminders_invoice=pl.col("reminders_invoice").fill_null(0.0),
            days_since_contact_invoice=_days(day - pl.col("last_contact_invoice")),
            disputed_open=pl.col("disputed_open").fill_null(0.0),
            in_collection=pl.col("in_collection").fill_null(0.0),
            plan_offered=pl.col("plan_offered").fill_null(0.0),
            n_settled=pl.col("n_settled").fill_null(0.0),
            contacts_30d=pl.col("contacts_30d").fill_null(0.0),
            days_since_contact=_days(day - pl.col("last_contact")),
            n_disputes=pl.col("n_disputes").fill_null(0.0),
            tenure_days=_days(day - pl.coalesce("created_on", "first_issue")),
            is_b2c=(pl.col("segment").str.to_lowercase() == "b2c").cast(pl.Float64).fill_null(0.0),
            n_partial=pl.col("n_partial").fill_null(0.0),
            n_broken_plans=pl.col("n_broken_plans").fill_null(0.0),
            amount_vs_usual=pl.col("amount") / pl.col("usual_amount"),
            reminders_debtor=pl.col("reminders_debtor").fill_null(0.0),
            n_disputes_open=pl.col("n_disputes_open").fill_null(0.0),
            country_code=country_code(pl.col("country")),
            due_weekday=pl.col("due_date").dt.weekday().cast(pl.Float64),
            due_month_end=(pl.col("due_date").dt.day() >= 25).cast(pl.Float64),
            as_of_weekday=day.dt.weekday().cast(pl.Float64),
        )
        .with_columns(
            late_trend=pl.col("share_late_last_5") - pl.col("share_late"),
            days_late_trend=pl.col("mean_days_late_last_5") - pl.col("mean_days_late"),
        )
        .with_columns(
            behaviour_change=(
                (pl.col("n_settled") >= CHANGE_MIN_SETTLED)
                & ((pl.col("late_last_5_due") - pl.col("share_late") >= CHANGE_SHARE)
                   | (pl.col("days_late_trend") >= CHANGE_DAYS))
            ).fill_null(False).cast(pl.Float64),
        )
        .select(
            "invoice_id", "debtor_id", "as_of", "due_date", "open_amount",
            *[pl.col(f).cast(pl.Float64) for f in FEATURES],
        )
        .sort("debtor_id", "due_date", "invoice_id")
    )
    return frame


def _debtor_history(inv: pl.LazyFrame) -> pl.LazyFrame:
    """Past lateness of each debtor over the invoices settled before the decision day."""
    settled = inv.filter(pl.col("settled_on").is_not_null()).with_columns(
        days_late=_days(pl.col("settled_on") - pl.col("due_date")),
    ).with_columns(late=(pl.col("days_late") > 0).cast(pl.Float64))
    return (
        settled.sort("settled_on", "invoice_id")
        .group_by("debtor_id")
        .agg(
            n_settled=pl.len().cast(pl.Float64),
            share_late=pl.col("late").mean(),
            mean_days_late=pl.col("days_late").mean(),
            n_late_last_5=pl.col("late").tail(RECENT).sum(),
            share_late_last_5=pl.col("late").tail(RECENT).mean(),
            mean_days_late_last_5=pl.col("days_late").tail(RECENT).mean(),
        )
    )


def _recent_due(inv: pl.LazyFrame, day: pl.Expr) -> pl.LazyFrame:
    """Share late among the debtor's last invoices *due* before the decision day, counting
    those still unpaid as late: a debtor who stops paying shows it here before it settles."""
    return (
        inv.filter(pl.col("due_date") < day)
        .with_columns(late=(pl.col("settled_on").is_null()
                            | (pl.col("settled_on") > pl.col("due_date"))).cast(pl.Float64))
        .sort("due_date", "invoice_id")
        .group_by("debtor_id")
        .agg(late_last_5_due=pl.col("late").tail(RECENT).mean())
    )


def _debtor_exposure(open_inv: pl.LazyFrame, day: pl.Expr) -> pl.LazyFrame:
    """What each debtor owes on the decision day, and how much of it is overdue."""
    rest = (pl.col("amount") - pl.col("amount_paid")).clip(lower_bound=0.0)
    overdue = pl.col("due_date") < day
    return open_inv.group_by("debtor_id").agg(
        n_open=pl.len().cast(pl.Float64),
        debtor_open_amount=rest.sum(),
        overdue_amount=rest.filter(overdue).sum(),
        n_open_overdue=overdue.sum().cast(pl.Float64),
        max_days_past_due=_days(day - pl.col("due_date")).max(),
    )


def _contacts(acts: pl.LazyFrame, open_ids: pl.LazyFrame, day: pl.Expr) -> dict:
    """Contact history per open invoice and per debtor (contacts are distinct days).

    ``acts`` are the known actions with their ``debtor_id``.
    """
    is_contact = pl.col("channel").is_in(list(CONTACT_CHANNELS))
    per_invoice = (
        acts.join(open_ids, on="invoice_id", how="semi").group_by("invoice_id").agg(
            reminders_invoice=pl.col("sent_on").filter(is_contact).n_unique().cast(pl.Float64),
            last_contact_invoice=pl.col("sent_on").filter(is_contact).max(),
            in_collection=(pl.col("channel") == "collection").any().cast(pl.Float64),
            plan_offered=(pl.col("channel") == "payment_plan").any().cast(pl.Float64),
        )
    )
    per_debtor = acts.filter(is_contact).group_by("debtor_id").agg(
        contacts_30d=pl.col("sent_on")
        .filter(pl.col("sent_on") >= day - pl.duration(days=30))
        .n_unique()
        .cast(pl.Float64),
        last_contact=pl.col("sent_on").max(),
    )
    return {"invoice": per_invoice, "debtor": per_debtor}
