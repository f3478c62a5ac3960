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
label and is left out of that target's training rows, never guessed. ``y_late`` and
``y_unpaid_90d`` are known only once the data reaches their threshold, whether or not the
invoice was paid before it: keeping the invoices already paid early while leaving out those
still open would bias the latest rows (the calibration days, the holdout) toward "on time".
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
    return dates_between(tables.invoices["issue_date"].min(), tables.last_date,
                         every_days=every_days, min_history_days=min_history_days)


def dates_between(first: dt.date | None, last: dt.date | None, *, every_days: int,
                  min_history_days: int) -> list[dt.date]:
    """:func:`snapshot_dates` of a book whose first invoice was issued on ``first`` and whose
    last row is dated ``last``."""
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
        # known only once the data reaches the threshold: an invoice whose threshold lies
        # beyond the data's end is censored even when it was already paid, or the invoices
        # paid early would be kept and the late ones left out (a bias toward "on time")
        paid_by_cut = known & (settled <= cut)
        return pl.when(end >= cut).then((~paid_by_cut).cast(pl.Float64)).otherwise(None)

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


#: Strata of (debtor, date) pairs for sampling: ``overdue`` when one of the debtor's open
#: invoices is past due on the date (the situations dunning acts on), else ``current``.
STRATA = ("current", "overdue")


def build_snapshots(
    tables: Tables,
    dates: Iterable[dt.date],
    *,
    horizon_days: int,
    data_end: dt.date | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    overdue_oversampling: float = 1.0,
    shares: dict[str, float] | None = None,
) -> pl.DataFrame:
    """Features of every invoice open on each date, labelled from what happened afterwards.

    Invoices more than ``horizon_days`` past due are left out: their outcome is all but
    settled (still open) and would only flatter the metrics. When the table would exceed
    ``max_rows``, a fixed random share of (debtor, date) pairs is kept, each with all its
    open invoices, overdue pairs ``overdue_oversampling`` times as often as current ones (see
    :func:`snapshot_points`); each row's share is in ``frame["sampled_share"]`` (its inverse
    is the row's weight). ``shares`` (by stratum, see :func:`sampling_shares`) replaces the
    shares computed from ``max_rows``: a part of a book is then sampled as the whole is.
    """
    data_end = data_end or tables.last_date
    points, share = snapshot_points(tables, dates, horizon_days=horizon_days,
                                    max_rows=max_rows, seed=seed,
                                    overdue_oversampling=overdue_oversampling, shares=shares)
    if points.height == 0:
        return pl.DataFrame()
    frame = features_at(tables, points.select("debtor_id", "as_of"),
                        max_days_past_due=horizon_days).collect()
    if frame.height == 0:
        return pl.DataFrame()
    frame = label(frame, tables, data_end=data_end, horizon_days=horizon_days)
    if points["sampled_share"].n_unique() == 1:
        return frame.with_columns(sampled_share=pl.lit(points["sampled_share"][0]))
    return frame.join(points, on=["debtor_id", "as_of"], how="left", maintain_order="left")


def sampling_shares(rows: dict[str, int], *, max_rows: int | None,
                    overdue_oversampling: float = 1.0) -> dict[str, float]:
    """The share of (debtor, date) pairs kept in each stratum of :data:`STRATA`.

    ``rows`` are the snapshot rows (open invoices) of each stratum. Everything is kept when
    they add up to at most ``max_rows``; otherwise the shares give ``max_rows`` rows in
    expectation, the overdue share ``overdue_oversampling`` times the current one (capped at
    1, the current share then taking what is left). With ``overdue_oversampling`` 1 both are
    ``max_rows / rows``: a uniform sample.
    """
    current, overdue = rows.get("current", 0), rows.get("overdue", 0)
    total = current + overdue
    if max_rows is None or total <= max_rows:
        return {"current": 1.0, "overdue": 1.0}
    k = overdue_oversampling
    low = max_rows / (current + k * overdue) if k != 1.0 else max_rows / total
    if k * low > 1.0:
        return {"current": (max_rows - overdue) / current, "overdue": 1.0}
    return {"current": low, "overdue": k * low}


def stratum_rows(tables: Tables, dates: Iterable[dt.date], *, horizon_days: int
                 ) -> dict[str, int]:
    """Snapshot rows (open invoices on a date) in each stratum of :data:`STRATA`, counted
    without building them; summed over parts of a book they give the whole book's."""
    pairs = _open_pairs(tables, dates, horizon_days=horizon_days)
    if pairs is None:
        return dict.fromkeys(STRATA, 0)
    _, _, overdue, rows = pairs
    return {"current": int(rows[~overdue].sum()), "overdue": int(rows[overdue].sum())}


def snapshot_points(
    tables: Tables,
    dates: Iterable[dt.date],
    *,
    horizon_days: int,
    max_rows: int | None = None,
    seed: int = 0,
    overdue_oversampling: float = 1.0,
    shares: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, float]:
    """The (debtor, date) pairs of the snapshot table, each with the share of its stratum
    kept (``sampled_share``), and the share of all rows kept in expectation.

    A pair exists where the debtor has an invoice open on the date and at most
    ``horizon_days`` past due; it is ``overdue`` when one of them is past due, else
    ``current``. The rows this gives are counted from each invoice's open interval without
    building them; above ``max_rows`` (or with ``shares`` given) a pair is kept when a hash
    of its debtor id and date falls below its stratum's share (:func:`sampling_shares`), so
    the choice is fixed by the seed, the same for a debtor whatever else is in the data, and
    keeps whole debtors' days (their exposure features stay consistent).
    """
    empty = pl.DataFrame(schema={"debtor_id": pl.String, "as_of": pl.Date,
                                 "sampled_share": pl.Float64})
    pairs = _open_pairs(tables, dates, horizon_days=horizon_days)
    if pairs is None:
        return empty, 1.0
    names, pair, overdue, rows = pairs
    days = _days(dates)
    total = int(rows.sum())
    if shares is None:
        shares = sampling_shares(
            {"current": int(rows[~overdue].sum()), "overdue": int(rows[overdue].sum())},
            max_rows=max_rows, overdue_oversampling=overdue_oversampling)
    share_of = np.where(overdue, shares["overdue"], shares["current"])
    kept_rows = float((rows * share_of).sum())
    share = shares["current"] if shares["current"] == shares["overdue"] else kept_rows / total
    debtor_code, day_ix = np.divmod(pair, days.size)
    if (share_of < 1.0).any():
        ordinal = days.astype(np.int64).astype(np.uint64)
        key = names.hash(seed=seed).to_numpy()[debtor_code] ^ (ordinal[day_ix] * np.uint64(GOLDEN))
        below = (np.where(share_of < 1.0, share_of, 0.0) * 2.0**64).astype(np.uint64)
        keep = (share_of >= 1.0) | (mix64(key) < below)
        debtor_code, day_ix, share_of = debtor_code[keep], day_ix[keep], share_of[keep]
    points = pl.DataFrame({"debtor_id": names.gather(debtor_code), "as_of": days[day_ix],
                           "sampled_share": share_of}).with_columns(pl.col("as_of").cast(pl.Date))
    return points, share


def _days(dates: Iterable[dt.date]) -> np.ndarray:
    return np.unique(np.array(sorted(set(dates)), dtype="datetime64[D]"))


def _open_pairs(tables: Tables, dates: Iterable[dt.date], *, horizon_days: int):
    """``(names, pair, overdue, rows)``: the debtor ids (sorted), and for every (debtor, date)
    pair with an open invoice its code (debtor code × dates + date index, ascending), whether
    one of its invoices is past due and how many are open; None when there is none."""
    days = _days(dates)
    if days.size == 0 or tables.invoices.height == 0:
        return None
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
    # past due from the first date after the due date on
    late = np.searchsorted(days, inv["due_date"].to_numpy().astype("datetime64[D]"), "right")
    n = np.maximum(hi - lo, 0)
    total = int(n.sum())
    if total == 0:
        return None
    code = inv["code"].to_numpy().astype(np.int64)
    which = np.repeat(code, n)
    day_ix = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n - lo, n)
    pair, index = np.unique(which * days.size + day_ix, return_inverse=True)
    rows = np.bincount(index, minlength=pair.size)
    overdue = np.bincount(index, weights=day_ix >= np.repeat(late, n), minlength=pair.size) > 0
    return names, pair, overdue, rows


GOLDEN = 0x9E3779B97F4A7C15


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a uint64 array to well-spread uint64 values."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
