"""Debtor behaviour the domain knows to matter: reactions to reminders per channel, partial
payments, broken payment plans, usual invoice size, and its reminder and dispute record.

Each function takes frames already cut by :func:`paycadence.data.known_as_of` and returns one
row per debtor (or invoice); :func:`paycadence.features.invoice_features` joins them in.
"""

from __future__ import annotations

import polars as pl

from paycadence.config import CONTACT_CHANNELS

#: A reminder "worked" when its invoice was settled within this many days after it.
RESPONSE_DAYS = 7
#: A payment plan is broken when no payment came for this many days and the invoice is open.
PLAN_SILENCE_DAYS = 35
RESPONSE_CHANNELS = ("email", "sms", "letter", "phone")


def channel_response(acts: pl.LazyFrame, *, keys: tuple[str, ...], day: pl.Expr
                     ) -> pl.LazyFrame:
    """Per debtor and channel, the share of its reminders followed by payment within a week.

    Only reminders sent at least ``RESPONSE_DAYS`` + 1 days before the decision day count, so
    that their outcome window is closed and known. ``resp_<channel>`` is null when there is
    no such reminder. ``acts`` are the actions known on the decision ``day`` (a date or the
    ``as_of`` column), with ``debtor_id`` and ``settled_on`` as known then; ``keys`` group
    them (the debtor, or the debtor and its day).
    """
    rows = acts.filter(
        pl.col("channel").is_in(list(RESPONSE_CHANNELS))
        & (pl.col("sent_on") <= day - pl.duration(days=RESPONSE_DAYS + 1))
    ).with_columns(
        worked=(pl.col("settled_on").is_not_null()
                & (pl.col("settled_on") >= pl.col("sent_on"))
                & (pl.col("settled_on") <= pl.col("sent_on") + pl.duration(days=RESPONSE_DAYS))
                ).cast(pl.Float64))
    return rows.group_by(keys).agg(
        pl.col("worked").filter(pl.col("channel") == c).mean().alias(f"resp_{c}")
        for c in RESPONSE_CHANNELS
    )


def payment_habits(
    inv: pl.LazyFrame, acts: pl.LazyFrame, *, keys: tuple[str, ...], day: pl.Expr
) -> pl.LazyFrame:
    """Per debtor: invoices paid in parts, broken payment plans, its usual invoice amount.

    ``inv`` carries the settlement columns of :func:`paycadence.data.settlements` as known on
    the decision ``day``.
    """
    per_invoice = ["invoice_id", *(k for k in keys if k != "debtor_id")]
    plans = acts.filter(pl.col("channel") == "payment_plan").group_by(per_invoice).agg(
        plan_on=pl.col("sent_on").min())
    silence = day - pl.duration(days=PLAN_SILENCE_DAYS)
    rows = inv.join(plans, on=per_invoice, how="left").with_columns(
        partial=((pl.col("n_payments") >= 2)
                 | (pl.col("settled_on").is_null() & (pl.col("amount_paid") > 0))),
        broken=(pl.col("plan_on").is_not_null() & (pl.col("plan_on") <= silence)
                & pl.col("settled_on").is_null()
                & (pl.col("last_paid").is_null() | (pl.col("last_paid") < silence))),
    )
    return rows.group_by(keys).agg(
        n_partial=pl.col("partial").sum().cast(pl.Float64),
        n_broken_plans=pl.col("broken").sum().cast(pl.Float64),
        usual_amount=pl.col("amount").median(),
    )


def contact_record(acts: pl.LazyFrame, *, keys: tuple[str, ...]) -> pl.LazyFrame:
    """Per debtor: distinct days it was contacted (all time, before the decision day)."""
    return acts.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).group_by(
        keys).agg(reminders_debtor=pl.col("sent_on").n_unique().cast(pl.Float64))


def country_code(country: pl.Expr) -> pl.Expr:
    """A stable number for an ISO 3166 alpha-2 code (its two ASCII bytes, e.g. NL = 0x4E4C);
    null for a missing or malformed code."""
    c = country.str.strip_chars().str.to_uppercase()
    code = c.str.encode("hex").str.to_integer(base=16, strict=False)
    return pl.when(c.str.contains(r"^[A-Z]{2}$")).then(code.cast(pl.Float64))
