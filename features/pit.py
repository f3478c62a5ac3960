"""Point-in-time features of open invoices and their debtors, as known on the morning of a date.

This is the only place features are computed: training snapshots (many days at once), batch
recommendations and the stateless ``/recommend`` (one day) all go through :func:`features_at`.
Every history row is paired with its debtor's decision days and passes through
:func:`paycadence.data.known_as_of` for each, so nothing dated after a day can leak into it.
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
    "median_days_late",
)

#: Recent lateness this far above the debtor's own long-run rate (or days late this much above
#: its usual) flags a sudden change of payment behaviour, once it has this many paid invoices.
CHANGE_SHARE = 0.4
CHANGE_DAYS = 10.0
CHANGE_MIN_SETTLED = 6

RECENT = 5
#: The recency-weighted share late weighs each settled invoice by one half every
#: ``LATE_HALF_LIFE`` invoices settled after it (:func:`_debtor_history`'s ``late_ewm``).
LATE_HALF_LIFE = 5.0

CENT_DIGITS = 6

#: Group keys: a debtor on a decision day, an invoice on a decision day.
KEYS = ("debtor_id", "as_of")
IK = ("invoice_id", "as_of")


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
    """The features of one decision day: :func:`features_at` for every debtor.

    Parameters
    ----------
    tables
        The company's tables; rows dated after ``as_of`` may be present and are ignored.
    as_of
        The decision day. Invoices and disputes dated on or before it are known; payments
        and actions only when dated before it (CONTRACT.md §1).
    invoice_ids
        Restrict the answer to these invoices (those among them that are open).
    """
    return features_at(tables, as_of=as_of, invoice_ids=invoice_ids)


def features_at(
    tables: Tables,
    points: pl.DataFrame | None = None,
    *,
    as_of: dt.date | None = None,
    invoice_ids: Sequence[str] | None = None,
    max_days_past_due: int | None = None,
) -> pl.LazyFrame:
    """Features of the open invoices of many debtors, each on its own decision days.

    Every (debtor, day) pair is answered as if it were the only one: each history row is
    paired with the days of its debtor and kept only where :func:`known_as_of` says it was
    known on that day, so a training table of many days and a single day's batch run the
    very same aggregations (for a single day the pairing is a filter on that date, and a
    test checks that many days at once equal each day alone).

    Parameters
    ----------
    tables
        The company's tables, whole; rows dated after a pair's day are ignored for that pair.
    points
        ``debtor_id`` and ``as_of`` (date) columns: the pairs to answer (duplicates ignored).
    as_of
        Instead of ``points``: every debtor on this one day.
    invoice_ids
        Restrict the answer to these invoices (those among them that are open).
    max_days_past_due
        Leave out invoices more than this many days past due on the day (their history still
        counts in the debtor's features).

    Returns
    -------
    polars.LazyFrame
        One row per invoice open on the morning of a pair's day: ``invoice_id``,
        ``debtor_id``, ``as_of``, ``due_date``, ``open_amount`` (currency),
        ``days_since_payment`` (days since the debtor's last payment on any invoice; null
        when none: not a model input), ``last_channel`` (the invoice's latest contact's
        channel as a code, :data:`paycadence.models.policy.value.CHANNEL_CODE`; null when
        never contacted: an input of the value model only), ``late_ewm`` (the debtor's share
        of late invoices, each settled invoice weighted by ½ per :data:`LATE_HALF_LIFE`
        invoices settled after it; null before the first: a simple reference's input,
        :mod:`paycadence.training.references`) and every column
        of :data:`FEATURES` (days, currency, shares in [0, 1]; null where the history says
        nothing, e.g. no settled invoice yet), sorted by day, debtor, due date and invoice.
    """
    if (points is None) == (as_of is None):
        raise ValueError("give either points or as_of")
    if as_of is None and points["as_of"].n_unique() == 1:
        as_of = points["as_of"][0]
    else:
        points = None if as_of is not None else points
    invoices = tables.invoices.lazy().select(
        "invoice_id", "debtor_id", "issue_date", "due_date", "amount")
    if as_of is not None:
        # one day (batch, API): the day is a constant, rows are grouped by debtor or invoice
        # alone, and each child row reaches its debtor through its (known) invoice
        day, keys, ik = pl.lit(as_of, dtype=pl.Date), ("debtor_id",), ("invoice_id",)
        invoices = known_as_of(invoices, as_of, table="invoices")
        if points is not None:
            invoices = invoices.join(points.lazy().select(pl.col("debtor_id").cast(pl.String)),
                                     on="debtor_id", how="semi")
        payments = known_as_of(tables.payments.lazy(), as_of, table="payments")
        inv = invoices.join(settlements(invoices, payments), on="invoice_id", how="left")
        inv = inv.with_columns(pl.col("amount_paid").round(CENT_DIGITS)).collect().lazy()
        acts = known_as_of(tables.actions.lazy(), as_of, table="actions").join(
            inv.select("invoice_id", "debtor_id", "settled_on"), on="invoice_id", how="inner")
        disputes = known_as_of(tables.disputes.lazy(), as_of, table="disputes").join(
            inv.select("invoice_id", "debtor_id"), on="invoice_id", how="inner")
    else:
        # many days: each history row is paired with every day of its debtor, and kept where
        # known on that day; rows are grouped by (debtor or invoice, day)
        day, keys, ik = pl.col("as_of"), KEYS, IK
        pts = points.lazy().select(pl.col("debtor_id").cast(pl.String),
                                   pl.col("as_of").cast(pl.Date)).unique()
        owners = invoices.select("invoice_id", "debtor_id", "issue_date")

        def paired(rows: pl.LazyFrame, table: str) -> pl.LazyFrame:
            if table != "invoices":
                rows = rows.join(owners, on="invoice_id", how="inner")
            return known_as_of(pts.join(rows, on="debtor_id", how="inner"), day, table=table
                               ).filter(pl.col("issue_date") <= day)

        # settled as known on a day = the final settlement day is before it (settlement is
        # the first day the running sum of payments reaches the amount, so cutting payments
        # at a day settles exactly the invoices whose final settlement lies before it)
        final = settlements(tables.invoices.lazy(), tables.payments.lazy()).select(
            "invoice_id", final_settled_on="settled_on")
        paid = paired(tables.payments.lazy().select("invoice_id", "paid_on", "amount"),
                      "payments").group_by(ik).agg(
            amount_paid=pl.col("amount").sum().round(CENT_DIGITS),
            n_payments=pl.len().cast(pl.Int64), last_paid=pl.col("paid_on").max())
        inv = (
            paired(invoices, "invoices").join(paid, on=ik, how="left")
            .join(final, on="invoice_id", how="left")
            .with_columns(_settled_then(day), amount_paid=pl.col("amount_paid").fill_null(0.0),
                          n_payments=pl.col("n_payments").fill_null(0))
            .drop("final_settled_on").collect().lazy()
        )
        acts = paired(tables.actions.lazy().select("invoice_id", "sent_on", "channel"),
                      "actions").join(final, on="invoice_id", how="left").with_columns(
            _settled_then(day))
        disputes = paired(tables.disputes.lazy().select("invoice_id", "opened_on",
                                                        "resolved_on"), "disputes")
    # amounts paid are rounded far below a cent, so that the order of addition (one day or
    # many, one thread or two) never shows in a feature; inv and acts are computed once and
    # shared by every part below
    acts = acts.select(*keys, "invoice_id", "sent_on", "channel", "settled_on").collect().lazy()

    open_inv = inv.filter(pl.col("settled_on").is_null())
    if invoice_ids is not None:
        open_inv = open_inv.filter(pl.col("invoice_id").is_in(_ids(invoice_ids)))
    if max_days_past_due is not None:
        open_inv = open_inv.filter(day - pl.col("due_date")
                                   <= pl.duration(days=max_days_past_due))
    open_inv = open_inv.with_columns(
        open_amount=(pl.col("amount") - pl.col("amount_paid")).clip(lower_bound=0.0),
        days_past_due=_days(day - pl.col("due_date")),
    )

    history = _debtor_history(inv, keys).join(_recent_due(inv, keys, day), on=keys, how="full",
                                              coalesce=True)
    exposure = _debtor_exposure(inv.filter(pl.col("settled_on").is_null()), keys, day)
    contacts = _contacts(acts, open_inv.select(ik), keys, ik, day)
    disputes_open = disputes.filter(pl.col("resolved_on").is_null()).select(
        *ik, disputed_open=pl.lit(1.0)).unique(ik)
    dispute_counts = disputes.group_by(keys).agg(
        n_disputes=pl.len().cast(pl.Float64),
        n_disputes_open=pl.col("resolved_on").is_null().sum().cast(pl.Float64))
    debtors = tables.debtors.lazy().select("debtor_id", "segment", "created_on", "country")
    first_issue = inv.group_by(keys).agg(first_issue=pl.col("issue_date").min(),
                                         last_payment=pl.col("last_paid").max())

    frame = (
        open_inv.join(contacts["invoice"], on=ik, how="left")
        .join(disputes_open, on=ik, how="left")
        .join(history, on=keys, how="left")
        .join(exposure, on=keys, how="left")
        .join(contacts["debtor"], on=keys, how="left")
        .join(dispute_counts, on=keys, how="left")
        .join(debtors, on="debtor_id", how="left")
        .join(first_issue, on=keys, how="left")
        .join(channel_response(acts, keys=keys, day=day), on=keys, how="left")
        .join(payment_habits(inv, acts, keys=keys, day=day), on=keys, how="left")
        .join(contact_record(acts, keys=keys), on=keys, how="left")
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
            days_since_payment=_days(day - pl.col("last_payment")),
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
            pl.col("days_since_payment").cast(pl.Float64),
            pl.col("last_channel").cast(pl.Float64),
            pl.col("late_ewm").cast(pl.Float64),
            *[pl.col(f).cast(pl.Float64) for f in FEATURES],
        )
        .sort("as_of", "debtor_id", "due_date", "invoice_id")
    )
    return frame


def _settled_then(day: pl.Expr) -> pl.Expr:
    final = pl.col("final_settled_on")
    return pl.when(final < day).then(final).alias("settled_on")


def _ids(ids: Sequence[str]) -> pl.Expr:
    return pl.Series(list(ids), dtype=pl.String).implode()


def _debtor_history(inv: pl.LazyFrame, keys: tuple[str, ...]) -> pl.LazyFrame:
    """Past lateness of each debtor over the invoices settled before the decision day."""
    settled = inv.filter(pl.col("settled_on").is_not_null()).with_columns(
        days_late=_days(pl.col("settled_on") - pl.col("due_date")),
    ).with_columns(late=(pl.col("days_late") > 0).cast(pl.Float64))

    def last(col: str) -> pl.Expr:
        return pl.col(col).sort_by("settled_on", "invoice_id").tail(RECENT)

    # the newest settled invoice weighs 1, the one before it q, then q², … (q = ½^(1/half-life))
    age = (pl.len() - 1 - pl.int_range(pl.len())).cast(pl.Float64)
    weight = pl.lit(0.5 ** (1.0 / LATE_HALF_LIFE)).pow(age)

    return settled.group_by(keys).agg(
        n_settled=pl.len().cast(pl.Float64),
        share_late=pl.col("late").mean(),
        mean_days_late=pl.col("days_late").mean(),
        median_days_late=pl.col("days_late").median(),
        n_late_last_5=last("late").sum(),
        share_late_last_5=last("late").mean(),
        mean_days_late_last_5=last("days_late").mean(),
        late_ewm=(pl.col("late").sort_by("settled_on", "invoice_id") * weight).sum()
        / weight.sum(),
    )


def _recent_due(inv: pl.LazyFrame, keys: tuple[str, ...], day: pl.Expr) -> pl.LazyFrame:
    """Share late among the debtor's last invoices *due* before the decision day, counting
    those still unpaid as late: a debtor who stops paying shows it here before it settles."""
    return (
        inv.filter(pl.col("due_date") < day)
        .with_columns(late=(pl.col("settled_on").is_null()
                            | (pl.col("settled_on") > pl.col("due_date"))).cast(pl.Float64))
        .group_by(keys)
        .agg(late_last_5_due=pl.col("late").sort_by("due_date", "invoice_id").tail(RECENT)
             .mean())
    )


def _debtor_exposure(open_inv: pl.LazyFrame, keys: tuple[str, ...], day: pl.Expr
                     ) -> pl.LazyFrame:
    """What each debtor owes on the decision day, and how much of it is overdue."""
    rest = (pl.col("amount") - pl.col("amount_paid")).clip(lower_bound=0.0)
    overdue = pl.col("due_date") < day
    return open_inv.group_by(keys).agg(
        n_open=pl.len().cast(pl.Float64),
        debtor_open_amount=rest.sum().round(CENT_DIGITS),
        overdue_amount=rest.filter(overdue).sum().round(CENT_DIGITS),
        n_open_overdue=overdue.sum().cast(pl.Float64),
        max_days_past_due=_days(day - pl.col("due_date")).max(),
    )


def _contacts(acts: pl.LazyFrame, open_ids: pl.LazyFrame, keys: tuple[str, ...],
              ik: tuple[str, ...], day: pl.Expr) -> dict:
    """Contact history per open invoice and per debtor (contacts are distinct days).

    ``acts`` are the actions known on the decision day, with their ``debtor_id``.
    """
    is_contact = pl.col("channel").is_in(list(CONTACT_CHANNELS))
    per_invoice = (
        acts.join(open_ids, on=ik, how="semi").group_by(ik).agg(
            reminders_invoice=pl.col("sent_on").filter(is_contact).n_unique().cast(pl.Float64),
            last_contact_invoice=pl.col("sent_on").filter(is_contact).max(),
            in_collection=(pl.col("channel") == "collection").any().cast(pl.Float64),
            plan_offered=(pl.col("channel") == "payment_plan").any().cast(pl.Float64),
            # the latest contact's channel (the strongest of a day), as the value model reads
            last_channel=pl.col("channel").sort_by(
                pl.when(is_contact).then(
                    pl.col("sent_on").cast(pl.Int64) * 10 + pl.col("channel").replace_strict(
                        {c: k for k, c in enumerate(CONTACT_CHANNELS)}, default=0,
                        return_dtype=pl.Int64)).otherwise(-1)).last()
            .replace_strict({c: float(k) for k, c in enumerate(CONTACT_CHANNELS)},
                            default=None, return_dtype=pl.Float64),
        )
    )
    per_debtor = acts.filter(is_contact).group_by(keys).agg(
        contacts_30d=pl.col("sent_on")
        .filter(pl.col("sent_on") >= day - pl.duration(days=30))
        .n_unique()
        .cast(pl.Float64),
        last_contact=pl.col("sent_on").max(),
    )
    return {"invoice": per_invoice, "debtor": per_debtor}
