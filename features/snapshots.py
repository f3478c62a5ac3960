"""Training snapshots: features as of many dates, with labels read only from what came after.

Labels (docs/models.md defines them):

- ``y_late``: the invoice settles after its *threshold*: the due date when the snapshot is on or
  before it, otherwise ``as_of`` + :data:`STILL_LATE_DAYS` (an overdue invoice "stays late").
- ``y_days_late``: settlement day − due day, capped at ``horizon_days`` (an invoice never
  settled within the horizon counts as the cap).
- ``y_unpaid_90d``: still open 90 days after the due date.

A snapshot whose label is not yet known at the end of the data is censored: it gets a null
label and is left out of that target's training rows, never guessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

from paycadence.data import Tables, settlements
from paycadence.features.pit import invoice_features

STILL_LATE_DAYS = 7
UNPAID_DAYS = 90


def snapshot_dates(tables: Tables, *, every_days: int, min_history_days: int) -> list[dt.date]:
    """Decision days every ``every_days`` from the first invoice + warm-up to the last date."""
    first = tables.invoices["issue_date"].min()
    last = tables.last_date
    if first is None or last is None:
        return []
    start = first + dt.timedelta(days=min_history_days)
    out, day = [], start
    while day <= last:
        out.append(day)
        day += dt.timedelta(days=every_days)
    return out


def label(frame: pl.DataFrame, tables: Tables, *, data_end: dt.date, horizon_days: int):
    """Add the three labels to a frame of (invoice_id, as_of, due_date) rows.

    ``data_end`` is the last day whose payments are known; everything after is unknown.
    """
    final = settlements(tables.invoices.lazy(), tables.payments.lazy()).select(
        "invoice_id", "settled_on"
    ).collect()
    end = pl.lit(data_end, dtype=pl.Date)
    settled = pl.col("settled_on")
    threshold = (
        pl.when(pl.col("as_of") <= pl.col("due_date"))
        .then(pl.col("due_date"))
        .otherwise(pl.col("as_of") + pl.duration(days=STILL_LATE_DAYS))
    )
    unpaid_by = pl.col("due_date") + pl.duration(days=UNPAID_DAYS)
    cap_day = pl.col("due_date") + pl.duration(days=horizon_days)
    known = settled.is_not_null() & (settled <= end)

    def binary(cut: pl.Expr) -> pl.Expr:
        return (
            pl.when(known).then((settled > cut).cast(pl.Float64))
            .when(end > cut).then(pl.lit(1.0))
            .otherwise(None)
        )

    days_late = (settled - pl.col("due_date")).dt.total_days().cast(pl.Float64)
    return frame.join(final, on="invoice_id", how="left").with_columns(
        y_late=binary(threshold),
        y_unpaid_90d=binary(unpaid_by),
        y_days_late=pl.when(known).then(days_late.clip(upper_bound=horizon_days))
        .when(end >= cap_day).then(pl.lit(float(horizon_days)))
        .otherwise(None),
    ).drop("settled_on")


def build_snapshots(
    tables: Tables, dates: Iterable[dt.date], *, horizon_days: int, data_end: dt.date | None = None
) -> pl.DataFrame:
    """Features of every invoice open on each date, labelled from what happened afterwards.

    Invoices more than ``horizon_days`` past due are left out: their outcome is all but
    settled (still open) and would only flatter the metrics.
    """
    data_end = data_end or tables.last_date
    parts = [invoice_features(tables, as_of=d).filter(pl.col("days_past_due") <= horizon_days)
             for d in dates]
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame()
    frame = pl.concat(parts)
    return label(frame, tables, data_end=data_end, horizon_days=horizon_days)
