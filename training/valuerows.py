"""The value model's training rows: one row per open invoice and day of the logged history.

Each snapshot row (:func:`paycadence.training.snapshots.snapshots`) stands for its invoice on
the snapshot day and the days after it up to the next snapshot day (:func:`span_days`: the six
after it of weekly snapshots, none of daily ones). On each of those days ``d`` the row gets
the invoice's contact history *up to and including* ``d`` (the action of the day is the
treatment whose effect the row measures; see :mod:`paycadence.models.policy.value`), its days
past due and weekday on ``d``, and the label: the share of what was still open on the morning
of ``d`` that was paid on ``d``. Days on which the invoice was disputed, already handed to
collection or past its settlement are left out. The hand-over days themselves are the rows of
the recovery model: what the agency brought in, discounted, per unit handed over.

How often each action was logged *with a propensity* (by an exploring policy) in each band of
days past due is counted here too: the support the decision asks for before it departs from
the schedule (:mod:`paycadence.models.policy.decision`).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl

from paycadence.config import CONTACT_CHANNELS
from paycadence.data import Tables, settlements
from paycadence.features import FEATURES
from paycadence.models.policy.value import (
    BANDS,
    CHANNEL_CODE,
    EXPLORED,
    REMINDER_BUCKETS,
    VALUE_COLUMNS,
    band_of,
    explored_slot,
)

#: Days a snapshot row stands for when there is a single snapshot day (else :func:`span_days`).
SPAN_DAYS = 7
#: Days after a contact (or around the due date) kept whole; further days are thinned.
NEAR_DAYS = 21
#: Thinned days are kept with this chance and weigh its inverse.
THIN_SHARE = 0.25
#: A hand-over is used by the recovery model once this many days after it are known.
RECOVERY_SEEN_DAYS = 120


def contact_log(tables: Tables) -> pl.DataFrame:
    """Contacts per invoice and day (the strongest channel when several named it that day),
    with the debtor: ``invoice_id, debtor_id, sent_on, channel``."""
    acts = tables.actions.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS)))
    rank = pl.col("channel").replace_strict(
        {c: k for k, c in enumerate(CONTACT_CHANNELS)}, return_dtype=pl.Int64)
    return (acts.with_columns(_rank=rank).sort("invoice_id", "sent_on", "_rank")
            .group_by("invoice_id", "sent_on", maintain_order=True).agg(pl.col("channel").last())
            .join(tables.invoices.select("invoice_id", "debtor_id"), on="invoice_id")
            .sort("invoice_id", "sent_on"))


def span_days(days: pl.Series) -> int:
    """Days each snapshot row stands for: the least gap between the snapshot days (7 of
    weekly snapshots, 1 of daily ones; :data:`SPAN_DAYS` with a single day)."""
    gaps = days.unique().sort().diff().drop_nulls().dt.total_days()
    return int(gaps.min()) if gaps.len() else SPAN_DAYS


def day_rows(tables: Tables, snaps: pl.DataFrame, *, before: dt.date, seed: int = 0
             ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(hazard rows, hand-over rows) of the history known before ``before``.

    Parameters
    ----------
    tables
        The book's history (rows dated on or after ``before`` are not used).
    snaps
        Its snapshot rows with :data:`~paycadence.features.FEATURES`, ``invoice_id``,
        ``debtor_id``, ``as_of`` and ``due_date`` (``sampled_share`` when a sample).

    Returns
    -------
    rows
        ``invoice_id``, ``debtor_id``, ``day``,
        :data:`~paycadence.models.policy.value.VALUE_COLUMNS`, ``y`` (share paid on the day)
        and ``weight``.
    handovers
        Same columns for the day of each hand-over, ``y`` = the recovered share, discounted
        per day at the daily rate the caller applies later (``days_after`` and ``paid``
        lists), ``seen`` = days known after it.
    """
    share = pl.col("sampled_share") if "sampled_share" in snaps.columns else pl.lit(1.0)
    base = snaps.filter(pl.col("as_of") < before).select(
        "invoice_id", "debtor_id", "due_date", pl.col("as_of").alias("snap"),
        (1.0 / share).alias("weight"), *FEATURES)
    span = span_days(snaps["as_of"])
    days = base.join(pl.DataFrame({"k": list(range(span))}), how="cross").with_columns(
        day=pl.col("snap") + pl.duration(days=pl.col("k"))).filter(pl.col("day") < before)
    inv = tables.invoices.select("invoice_id", "issue_date", pl.col("amount").alias("billed"))
    pays = tables.payments.filter(pl.col("paid_on") < before)
    settled = settlements(tables.invoices.lazy(), pays.lazy()).select(
        "invoice_id", "settled_on").collect()
    acts = tables.actions.filter(pl.col("sent_on") < before)
    handed = acts.filter(pl.col("channel") == "collection").group_by("invoice_id").agg(
        handed_on=pl.col("sent_on").min())
    days = (days.join(inv, on="invoice_id").join(settled, on="invoice_id", how="left")
            .join(handed, on="invoice_id", how="left")
            .filter(pl.col("settled_on").is_null() | (pl.col("day") <= pl.col("settled_on")))
            .filter(pl.col("handed_on").is_null() | (pl.col("day") <= pl.col("handed_on"))))
    days = _without_disputed(days, tables.disputes)
    days = _with_payments(days, pays)
    days = _with_contacts(days, contact_log(Tables(**{**dict(tables.items()), "actions": acts})))
    days = days.with_columns(
        days_past_due=(pl.col("day") - pl.col("due_date")).dt.total_days().cast(pl.Float64),
        age_days=(pl.col("day") - pl.col("issue_date")).dt.total_days().cast(pl.Float64),
        as_of_weekday=pl.col("day").dt.weekday().cast(pl.Float64),
    ).with_columns(max_days_past_due=pl.max_horizontal(
        pl.col("max_days_past_due") + pl.col("k"), pl.col("days_past_due")))
    is_hand = pl.col("handed_on").is_not_null() & (pl.col("day") == pl.col("handed_on"))
    hand = days.filter(is_hand)
    rows = _thinned(days.filter(~is_hand), seed)
    return rows.select("invoice_id", "debtor_id", "day", *VALUE_COLUMNS, "y", "weight"), \
        _recovered(hand, pays, before)


def _without_disputed(days: pl.DataFrame, disputes: pl.DataFrame) -> pl.DataFrame:
    """Days on which no dispute of the invoice was open (opened on or before, not resolved
    before the day)."""
    if disputes.height == 0:
        return days
    hit = days.select("invoice_id", "day").unique().join(
        disputes.select("invoice_id", "opened_on", "resolved_on"), on="invoice_id").filter(
        (pl.col("opened_on") <= pl.col("day"))
        & (pl.col("resolved_on").is_null() | (pl.col("resolved_on") > pl.col("day"))))
    return days.join(hit.select("invoice_id", "day").unique(), on=["invoice_id", "day"],
                     how="anti")


def _with_payments(days: pl.DataFrame, pays: pl.DataFrame) -> pl.DataFrame:
    """``y``: paid on the day / open on its morning (clipped to [0, 1])."""
    per_day = pays.group_by("invoice_id", "paid_on").agg(paid=pl.col("amount").sum()).sort(
        "invoice_id", "paid_on").with_columns(cum=pl.col("paid").cum_sum().over("invoice_id"))
    out = days.sort("day").join_asof(
        per_day.select("invoice_id", pl.col("paid_on").alias("upto"), "cum").sort("upto"),
        left_on="day", right_on="upto", by="invoice_id", strategy="backward",
        allow_exact_matches=False, check_sortedness=False)
    out = out.join(per_day.select("invoice_id", pl.col("paid_on").alias("day"), "paid"),
                   on=["invoice_id", "day"], how="left")
    open_ = pl.col("billed") - pl.col("cum").fill_null(0.0)
    return out.with_columns(
        y=pl.when(open_ > 0.005).then((pl.col("paid").fill_null(0.0) / open_).clip(0.0, 1.0))
        .otherwise(None)).filter(pl.col("y").is_not_null()).drop("upto", "cum", "paid")


def _with_contacts(days: pl.DataFrame, log: pl.DataFrame) -> pl.DataFrame:
    """The contact features as of the end of each day (its own contact included)."""
    code = pl.col("channel").replace_strict(CHANNEL_CODE, return_dtype=pl.Float64)
    per_inv = log.with_columns(n_inv=pl.int_range(1, pl.len() + 1).over("invoice_id")
                               .cast(pl.Float64), plan=(pl.col("channel") == "payment_plan")
                               .cast(pl.Float64).cum_max().over("invoice_id"),
                               last_channel=code)
    per_debtor = log.select("debtor_id", "sent_on").unique().sort("debtor_id", "sent_on") \
        .with_columns(n_deb=pl.int_range(1, pl.len() + 1).over("debtor_id").cast(pl.Float64))
    out = days.sort("day").join_asof(
        per_inv.select("invoice_id", pl.col("sent_on").alias("inv_last"), "n_inv", "plan",
                       "last_channel").sort("inv_last"),
        left_on="day", right_on="inv_last", by="invoice_id", strategy="backward",
        check_sortedness=False)
    out = out.sort("day").join_asof(
        per_debtor.select("debtor_id", pl.col("sent_on").alias("deb_last"), "n_deb")
        .sort("deb_last"), left_on="day", right_on="deb_last", by="debtor_id",
        strategy="backward", check_sortedness=False)
    month = per_debtor.select("debtor_id", pl.col("sent_on").alias("old"),
                              pl.col("n_deb").alias("n_old")).sort("old")
    out = out.with_columns(month_ago=pl.col("day") - pl.duration(days=31)).sort("month_ago") \
        .join_asof(month, left_on="month_ago", right_on="old", by="debtor_id",
                   strategy="backward", check_sortedness=False)
    def since(c: str) -> pl.Expr:
        return (pl.col("day") - pl.col(c)).dt.total_days().cast(pl.Float64)

    return out.with_columns(
        reminders_invoice=pl.col("n_inv").fill_null(0.0),
        days_since_contact_invoice=since("inv_last"),
        plan_offered=pl.col("plan").fill_null(0.0),
        reminders_debtor=pl.col("n_deb").fill_null(0.0),
        days_since_contact=since("deb_last"),
        contacts_30d=pl.col("n_deb").fill_null(0.0) - pl.col("n_old").fill_null(0.0),
    ).drop("inv_last", "n_inv", "plan", "deb_last", "n_deb", "month_ago", "old", "n_old")


def _thinned(rows: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Days near a contact or the due date kept whole, the others kept with chance
    :data:`THIN_SHARE` (weight ÷ that): the quiet days say little that the kept ones do not."""
    near = (pl.col("days_since_contact_invoice").fill_null(1e9) <= NEAR_DAYS) | \
        (pl.col("days_past_due").abs() <= NEAR_DAYS) | (pl.col("y") > 0)
    draw = pl.struct("invoice_id", "day").hash(seed) % 1_000_000 / 1_000_000
    keep = near | (draw < THIN_SHARE)
    return rows.filter(keep).with_columns(
        weight=pl.when(near).then(pl.col("weight")).otherwise(pl.col("weight") / THIN_SHARE))


def _recovered(hand: pl.DataFrame, pays: pl.DataFrame, before: dt.date) -> pl.DataFrame:
    """Each hand-over row with what was paid after it (``days_after``, ``paid`` lists), the
    amount open when it was handed over (``open_then``) and ``seen`` (days known after it)."""
    if hand.height == 0:
        return hand.select(*VALUE_COLUMNS).with_columns(
            open_then=pl.lit(None, pl.Float64), days_after=pl.lit(None, pl.List(pl.Int64)),
            paid=pl.lit(None, pl.List(pl.Float64)), seen=pl.lit(None, pl.Int64))
    after = hand.select("invoice_id", "day").join(pays, on="invoice_id").filter(
        pl.col("paid_on") >= pl.col("day")).group_by("invoice_id").agg(
        days_after=(pl.col("paid_on") - pl.col("day")).dt.total_days(), paid=pl.col("amount"))
    before_hand = hand.select("invoice_id", "day").join(pays, on="invoice_id").filter(
        pl.col("paid_on") < pl.col("day")).group_by("invoice_id").agg(
        paid_before=pl.col("amount").sum())
    return (hand.join(after, on="invoice_id", how="left")
            .join(before_hand, on="invoice_id", how="left")
            .with_columns(open_then=pl.col("billed") - pl.col("paid_before").fill_null(0.0),
                          seen=(pl.lit(before) - pl.col("day")).dt.total_days())
            .select(*VALUE_COLUMNS, "open_then", "days_after", "paid", "seen"))


def recovery_targets(hand: pl.DataFrame, annual_rate: float) -> tuple[pl.DataFrame, np.ndarray]:
    """The hand-overs seen for :data:`RECOVERY_SEEN_DAYS` days or more, and each one's
    recovered share: paid after it, discounted to its day at ``annual_rate``, ÷ open then."""
    seen = hand.filter((pl.col("seen") >= RECOVERY_SEEN_DAYS) & (pl.col("open_then") > 0))
    daily = math.exp(-annual_rate / 365)
    y = np.array([
        sum(p * daily ** d for d, p in zip(days or [], paid or [], strict=True)) / open_
        for days, paid, open_ in zip(seen["days_after"].to_list(), seen["paid"].to_list(),
                                     seen["open_then"].to_list(), strict=True)])
    return seen, np.clip(y, 0.0, 1.0)


#: An action logged with a propensity below this was drawn against the logging policy's own
#: preference (an exploring draw: its preferred action has at least one half).
EXPLORING_BELOW = 0.5


def support(tables: Tables, *, before: dt.date) -> dict[str, list[float]]:
    """How many logged *exploring* decisions of each action fall in each band of days past due
    (:data:`~paycadence.models.policy.value.BANDS`), and under
    :data:`~paycadence.models.policy.value.EXPLORED` of any action, per band and number of
    earlier contacts about the invoice (:func:`~paycadence.models.policy.value.explored_slot`):
    actions the logging policy drew with a propensity below :data:`EXPLORING_BELOW`, against
    its own preference. Those are the
    decisions that show the same kind of invoice on the same kind of day with and without the
    action; the logging policy's own choices (drawn with a propensity of one half or more) do
    not, and a log without propensities (a policy that did not randomise) gives no support.

    Each decision — a (debtor, day, action) — counts once: the importance-weighted effective
    sample size (Σw)²/Σw² with w = 1/propensity would let the rarest draws swamp the others,
    while the value model learns from each of them once.
    """
    acts = tables.actions.filter((pl.col("sent_on") < before)
                                 & (pl.col("propensity") < EXPLORING_BELOW))
    out = {a: [0.0] * len(BANDS) for a in (*CONTACT_CHANNELS, "collection")}
    out[EXPLORED] = [0.0] * (len(BANDS) * REMINDER_BUCKETS)
    if acts.height == 0:
        return out
    # contacts about each invoice before each action (the day's own not counted)
    earlier = (tables.actions.filter((pl.col("sent_on") < before)
                                     & (pl.col("channel") != "collection"))
               .group_by("invoice_id", "sent_on").agg(n=pl.len()).sort("invoice_id", "sent_on")
               .with_columns(before_n=pl.col("n").cum_sum().over("invoice_id") - pl.col("n"))
               .select("invoice_id", "sent_on", "before_n"))
    dec = (acts.join(tables.invoices.select("invoice_id", "debtor_id", "due_date"),
                     on="invoice_id")
           .join(earlier, on=["invoice_id", "sent_on"], how="left")
           .with_columns(dpd=(pl.col("sent_on") - pl.col("due_date")).dt.total_days())
           .sort("dpd", descending=True)
           .group_by("debtor_id", "sent_on", "channel")
           .agg(pl.col("dpd").first(), pl.col("before_n").first().fill_null(0)))
    dec = dec.with_columns(band=pl.col("dpd").map_elements(band_of, return_dtype=pl.Int64))
    counts = dec.group_by("channel", "band").agg(n=pl.len().cast(pl.Float64))
    for channel, band, value in counts.iter_rows():
        if channel in out:
            out[channel][band] = float(value)
    # a debtor-day counts once whatever it explored (one decision, whatever it named), by the
    # band and earlier contacts of its latest invoice
    for band, n_before, value in dec.sort("dpd", descending=True).unique(
            ["debtor_id", "sent_on"], keep="first").group_by("band", "before_n").agg(
            n=pl.len().cast(pl.Float64)).iter_rows():
        out[EXPLORED][explored_slot(band, n_before)] += float(value)
    return out


#: A snapshot values the continuation once this many days after it are known.
CONTINUATION_SEEN_DAYS = 120


def continuation_rows(tables: Tables, snaps: pl.DataFrame, *, before: dt.date,
                      fee_rate: float, annual_rate: float) -> pl.DataFrame:
    """The continuation model's rows: snapshots seen :data:`CONTINUATION_SEEN_DAYS` days or
    more before ``before``, with :data:`~paycadence.models.policy.value.VALUE_COLUMNS` (the
    last contact's channel as known that morning), ``weight`` and ``y``: the payments from
    the snapshot day on (known before ``before``; those after a hand-over net of the agency's
    ``fee_rate``), discounted at ``annual_rate``, ÷ what was open on the snapshot day."""
    share = pl.col("sampled_share") if "sampled_share" in snaps.columns else pl.lit(1.0)
    last_seen = before - dt.timedelta(days=CONTINUATION_SEEN_DAYS)
    base = snaps.filter((pl.col("as_of") <= last_seen) & (pl.col("open_amount") > 0)).select(
        "invoice_id", "as_of", "open_amount", (1.0 / share).alias("weight"), *FEATURES)
    pays = tables.payments.filter(pl.col("paid_on") < before)
    handed = tables.actions.filter((pl.col("channel") == "collection")
                                   & (pl.col("sent_on") < before)).group_by("invoice_id").agg(
        handed_on=pl.col("sent_on").min())
    daily = math.log(math.exp(-annual_rate / 365))
    got = (base.select("invoice_id", "as_of").join(pays, on="invoice_id")
           .filter(pl.col("paid_on") >= pl.col("as_of"))
           .join(handed, on="invoice_id", how="left")
           .with_columns(net=pl.col("amount") * (daily * (pl.col("paid_on") - pl.col("as_of"))
                                                 .dt.total_days()).exp()
                         * pl.when(pl.col("handed_on") <= pl.col("paid_on"))
                         .then(1.0 - fee_rate).otherwise(1.0))
           .group_by("invoice_id", "as_of").agg(got=pl.col("net").sum()))
    acts = contact_log(tables).filter(pl.col("sent_on") < before).select(
        "invoice_id", pl.col("sent_on").alias("last_on"),
        last_channel=pl.col("channel").replace_strict(CHANNEL_CODE, return_dtype=pl.Float64))
    out = base.join(got, on=["invoice_id", "as_of"], how="left").sort("as_of").join_asof(
        acts.sort("last_on"), left_on="as_of", right_on="last_on", by="invoice_id",
        strategy="backward", allow_exact_matches=False, check_sortedness=False)
    return out.with_columns(
        y=(pl.col("got").fill_null(0.0) / pl.col("open_amount")).clip(0.0, 1.0)
    ).select(*VALUE_COLUMNS, "y", "weight")


def halves(debtor_ids: pl.Series, seed: int = 0) -> pl.Series:
    """True for the rows of one half of the debtors, drawn at random (``seed``) among the
    distinct ones; the payment model is learnt once from each half
    (:class:`~paycadence.models.policy.value.ValueModel`). Every row of a debtor falls in the
    same half: its days are not independent of one another."""
    ids = np.sort(debtor_ids.unique().to_numpy())
    rng = np.random.default_rng(seed)
    first = ids[rng.permutation(len(ids))[: (len(ids) + 1) // 2]]
    return debtor_ids.is_in(pl.Series(first, dtype=debtor_ids.dtype))


def fit_value(tables: Tables, snaps: pl.DataFrame, *, before: dt.date, fee_rate: float,
              annual_rate: float, seed: int = 0, n_estimators: int | None = None):
    """The book's :class:`~paycadence.models.policy.value.ValueModel`, learnt from its history
    before ``before`` (None when the history has no day to learn from: no snapshot, or no
    continuation seen long enough). ``n_estimators``: boosting rounds of each of its three
    boosters (None: the estimators' default, 150). Returns ``(model or None, card)``."""
    from paycadence.models.policy.value import (
        Continuation,
        PaymentRate,
        Recovery,
        ValueModel,
    )

    rows, hand = day_rows(tables, snaps, before=before, seed=seed)
    after = continuation_rows(tables, snaps, before=before, fee_rate=fee_rate,
                              annual_rate=annual_rate)
    if rows.height == 0 or after.height == 0 or rows["y"].sum() <= 0:
        return None, {"value_model": "none: too short a history"}
    rounds = {} if n_estimators is None else {"n_estimators": n_estimators}
    first = halves(rows["debtor_id"], seed)
    parts = [rows.filter(first), rows.filter(~first)]
    if min(p.height for p in parts) == 0:  # a single debtor: one model, nothing to compare
        parts = [rows]
    rate, *rest = (PaymentRate(seed=seed, **rounds).fit(
        p.select(VALUE_COLUMNS).to_numpy().astype(np.float64), p["y"].to_numpy(),
        p["weight"].to_numpy()) for p in parts)
    cont = Continuation(seed=seed, **rounds).fit(after.select(VALUE_COLUMNS).to_numpy().astype(
        np.float64), after["y"].to_numpy(), after["weight"].to_numpy())
    seen, y = recovery_targets(hand, annual_rate)
    recovery = Recovery(seed=seed, **rounds).fit(seen.select(VALUE_COLUMNS).to_numpy().astype(
        np.float64), y)
    dpd = rows["days_past_due"].to_numpy()
    cap = float(np.quantile(dpd, 0.99))  # where the log still has days to learn from
    model = ValueModel(rate, cont, recovery, cap, support(tables, before=before),
                       rest[0] if rest else None)
    return model, {"value_rows": rows.height, "continuation_rows": after.height,
                   "recovery_rows": int(len(y)), "value_cap_days_past_due": cap}
