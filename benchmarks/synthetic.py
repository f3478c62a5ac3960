"""A fast, vectorised generator of large receivables histories for speed and memory benchmarks.

Not the simulator (``paycadence simulate`` models behaviour day by day and is far too slow for
ten million invoices): this draws invoices, payments, reminders and disputes with numpy so that
the feature code meets realistic table shapes and sizes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from paycadence.data import Tables

START = dt.date(2024, 1, 1)


def generate(n_invoices: int, n_debtors: int, *, days: int = 730, seed: int = 0) -> Tables:
    """``n_invoices`` invoices of ``n_debtors`` debtors over ``days`` days, with payments
    (10% never paid, 15% in two parts), dunning actions on the schedule, and 1% disputes."""
    rng = np.random.default_rng(seed)
    debtor = rng.integers(0, n_debtors, n_invoices)
    issue = rng.integers(0, days, n_invoices)
    term = rng.choice(np.array([14, 30, 30, 60]), n_invoices)
    due = issue + term
    amount = np.round(rng.lognormal(4.5, 1.0, n_invoices), 2) + 1.0
    lateness = rng.normal(0, 1, n_debtors)  # a debtor's habit
    delay = np.round(rng.gamma(2.0, 6.0, n_invoices) * np.exp(lateness[debtor]) - 8).astype(int)
    paid = rng.random(n_invoices) > 0.10
    settle = due + delay
    inv_ids = np.char.add("I", np.arange(n_invoices).astype(str))
    deb_ids = np.char.add("D", np.arange(n_debtors).astype(str))
    day0 = np.datetime64(START)
    invoices = pl.DataFrame({
        "invoice_id": inv_ids, "debtor_id": deb_ids[debtor],
        "issue_date": day0 + issue.astype("timedelta64[D]"),
        "due_date": day0 + due.astype("timedelta64[D]"), "amount": amount,
        "currency": np.full(n_invoices, "EUR"),
    }).with_columns(pl.col("issue_date", "due_date").cast(pl.Date))
    settle = np.maximum(settle, issue)
    two = paid & (rng.random(n_invoices) < 0.15)
    first_part = np.round(amount * 0.5, 2)
    pay_idx = np.concatenate([np.flatnonzero(paid & ~two), np.flatnonzero(two),
                              np.flatnonzero(two)])
    pay_day = np.concatenate([settle[paid & ~two], settle[two] - 10, settle[two]])
    pay_amt = np.concatenate([amount[paid & ~two], first_part[two],
                              np.round(amount[two] - first_part[two], 2)])
    keep = pay_day < days
    payments = pl.DataFrame({
        "invoice_id": inv_ids[pay_idx[keep]],
        "paid_on": day0 + np.maximum(pay_day[keep], issue[pay_idx[keep]]).astype(
            "timedelta64[D]"),
        "amount": pay_amt[keep],
    }).with_columns(pl.col("paid_on").cast(pl.Date))
    acts_idx, acts_day, acts_ch = [], [], []
    end = np.where(paid, settle, days)
    for offset, channel in ((2, "email"), (18, "email"), (34, "letter"), (50, "collection")):
        hit = (due + offset < end) & (due + offset < days)
        acts_idx.append(np.flatnonzero(hit))
        acts_day.append(due[hit] + offset)
        acts_ch.append(np.full(hit.sum(), channel))
    a_idx = np.concatenate(acts_idx)
    actions = pl.DataFrame({
        "invoice_id": inv_ids[a_idx],
        "sent_on": day0 + np.concatenate(acts_day).astype("timedelta64[D]"),
        "channel": np.concatenate(acts_ch),
    }).with_columns(pl.col("sent_on").cast(pl.Date))
    d_idx = np.flatnonzero(rng.random(n_invoices) < 0.01)
    opened = due[d_idx] - 3
    disputes = pl.DataFrame({
        "invoice_id": inv_ids[d_idx],
        "opened_on": day0 + opened.astype("timedelta64[D]"),
        "resolved_on": day0 + (opened + 30).astype("timedelta64[D]"),
    }).with_columns(pl.col("opened_on", "resolved_on").cast(pl.Date))
    debtors = pl.DataFrame({
        "debtor_id": deb_ids,
        "segment": np.where(rng.random(n_debtors) < 0.4, "b2b", "b2c"),
        "country": rng.choice(np.array(["NL", "DE", "BE", "FR", "GB"]), n_debtors),
    })
    return Tables.from_frames(debtors=debtors, invoices=invoices, payments=payments,
                              actions=actions, disputes=disputes)
