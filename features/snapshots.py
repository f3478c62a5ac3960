"""Training snapshots: features as of many dates, with labels read only from what came after.

Labels (docs/models.md defines them):

- ``y_late``: the invoice settles after its *threshold*: the due date when the snapshot is on or
  before it, otherwise ``as_of`` + :data:`STILL_LATE_DAYS` (an overdue invoice "stays late").
- ``y_days_late``: settlement day − due day, capped at ``horizon_days`` (an invoice never
  settled within the horizon counts as the cap).
- ``y_unpaid_90d``: still open 90 days after the due date.
- ``t_settle``: days from the snapshot day to settlement, and ``t_observed``: days of data after
  it (data end − day + 1), for the settlement-hazard model (a null ``t_settle`` is censored at
  ``t_observed``).

A snapshot whose label is not yet known at the end of the data is censored: it gets a null
label and is left out of that target's training rows, never guessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import polars as pl

from paycadence.data import Tables, settlements
from paycadence.features.pit import features_at

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
    """Add the labels to a frame of (invoice_id, as_of, due_date) rows.

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
        t_settle=pl.when(known).then((settled - pl.col("as_of")).dt.total_days()
                                     .cast(pl.Float64)),
        t_observed=((end - pl.col("as_of")).dt.total_days() + 1).cast(pl.Float64),
    ).drop("settled_on")


def build_snapshots(
    tables: Tables,
    dates: Iterable[dt.date],
    *,
    horizon_days: int,
    data_end: dt.date | None = None,
    max_rows: int | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """Features of every invoice open on each date, labelled from what happened afterwards.

    Invoices more than ``horizon_days`` past due are left out: their outcome is all but
    settled (still open) and would only flatter the metrics. When the table would exceed
    ``max_rows``, a fixed random share of (debtor, date) pairs is kept, each with all its
    open invoices (see :func:`snapshot_points`); the share is in ``frame["sampled_share"]``.
    """
    data_end = data_end or tables.last_date
    points, share = snapshot_points(tables, dates, horizon_days=horizon_days,
                                    max_rows=max_rows, seed=seed)
    if points.height == 0:
        return pl.DataFrame()
    frame = features_at(tables, points, max_days_past_due=horizon_days).collect()
    if frame.height == 0:
        return pl.DataFrame()
    return label(frame, tables, data_end=data_end, horizon_days=horizon_days).with_columns(
        sampled_share=pl.lit(share))


def snapshot_points(
    tables: Tables,
    dates: Iterable[dt.date],
    *,
    horizon_days: int,
    max_rows: int | None = None,
    seed: int = 0,
) -> tuple[pl.DataFrame, float]:
    """The (debtor, date) pairs of the snapshot table and the share of them kept.

    A pair exists where the debtor has an invoice open on the date and at most
    ``horizon_days`` past due. The rows this gives are counted from each invoice's open
    interval without building them; above ``max_rows`` a pair is kept when a hash of its
    debtor id and date falls below ``max_rows / rows``, so the choice is fixed by the seed,
    the same for a debtor whatever else is in the data, and keeps whole debtors' days (their
    exposure features stay consistent).
    """
    days = np.unique(np.array(sorted(set(dates)), dtype="datetime64[D]"))
    empty = pl.DataFrame(schema={"debtor_id": pl.String, "as_of": pl.Date})
    if days.size == 0 or tables.invoices.height == 0:
        return empty, 1.0
    final = settlements(tables.invoices.lazy(), tables.payments.lazy()).select(
        "invoice_id", "settled_on")
    inv = tables.invoices.lazy().select("invoice_id", "debtor_id", "issue_date", "due_date").join(
        final, on="invoice_id", how="left").with_columns(
        # open on the morning of d: issued by d, not settled before d, within the horizon
        last=pl.min_horizontal(
            pl.col("settled_on").fill_null(dt.date(9999, 12, 31)),
            pl.col("due_date") + pl.duration(days=horizon_days)),
    ).collect()
    names = inv["debtor_id"].unique().sort()
    inv = inv.join(pl.DataFrame({"debtor_id": names}).with_row_index("code"), on="debtor_id",
                   how="left", maintain_order="left")
    lo = np.searchsorted(days, inv["issue_date"].to_numpy().astype("datetime64[D]"), "left")
    hi = np.searchsorted(days, inv["last"].to_numpy().astype("datetime64[D]"), "right")
    n = np.maximum(hi - lo, 0)
    rows = int(n.sum())
    if rows == 0:
        return empty, 1.0
    share = 1.0 if max_rows is None or rows <= max_rows else max_rows / rows
    code = inv["code"].to_numpy().astype(np.int64)
    which = np.repeat(code, n)
    day_ix = np.arange(rows, dtype=np.int64) - np.repeat(np.cumsum(n) - n - lo, n)
    if share < 1.0:
        ordinal = days.astype(np.int64).astype(np.uint64)
        key = names.hash(seed=seed).to_numpy()[which] ^ (ordinal[day_ix] * np.uint64(GOLDEN))
        keep = _mix(key) < np.uint64(share * 2.0**64)
        which, day_ix = which[keep], day_ix[keep]
    pair = np.unique(which * days.size + day_ix)
    debtor_code, day_ix = np.divmod(pair, days.size)
    points = pl.DataFrame({"debtor_id": names.gather(debtor_code),
                           "as_of": days[day_ix]}).with_columns(pl.col("as_of").cast(pl.Date))
    return points, share


GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a uint64 array to well-spread uint64 values."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
