"""The five contract tables (CONTRACT.md §1) as typed polars frames, and the point-in-time rule.

:class:`Tables` is what every later stage reads. :func:`known_as_of` is the one helper that says
what is known on the morning of a date; :func:`settlements` says when each invoice was settled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from pathlib import Path

import polars as pl

TABLE_NAMES = ("debtors", "invoices", "payments", "actions", "disputes")

#: Contract columns of every table with their polars types (extra columns are kept as read).
COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "debtors": {
        "debtor_id": pl.String(),
        "country": pl.String(),
        "segment": pl.String(),
        "created_on": pl.Date(),
        "opted_out": pl.String(),
    },
    "invoices": {
        "invoice_id": pl.String(),
        "debtor_id": pl.String(),
        "issue_date": pl.Date(),
        "due_date": pl.Date(),
        "amount": pl.Float64(),
        "currency": pl.String(),
    },
    "payments": {
        "invoice_id": pl.String(),
        "paid_on": pl.Date(),
        "amount": pl.Float64(),
        # optional (CONTRACT.md §5): the payment's own key; two identical payments on one day
        # with two ids are two payments
        "payment_id": pl.String(),
    },
    "actions": {
        "invoice_id": pl.String(),
        "sent_on": pl.Date(),
        "channel": pl.String(),
        "step": pl.Int64(),
        "propensity": pl.Float64(),
    },
    "disputes": {
        "invoice_id": pl.String(),
        "opened_on": pl.Date(),
        "resolved_on": pl.Date(),
    },
}

#: Columns a table must have; the others may be absent and are then filled with nulls.
REQUIRED: dict[str, tuple[str, ...]] = {
    "debtors": ("debtor_id",),
    "invoices": ("invoice_id", "debtor_id", "issue_date", "due_date", "amount"),
    "payments": ("invoice_id", "paid_on", "amount"),
    "actions": ("invoice_id", "sent_on", "channel"),
    "disputes": ("invoice_id", "opened_on"),
}

#: The date column each table is dated by, and whether rows of the decision day are known then.
DATED_BY = {
    "invoices": ("issue_date", True),
    "disputes": ("opened_on", True),
    "payments": ("paid_on", False),
    "actions": ("sent_on", False),
}

SETTLE_TOLERANCE = 0.01


def conform(name: str, frame):
    """Give ``frame`` (eager or lazy) every contract column of table ``name`` with its type,
    extras kept after."""
    schema = COLUMNS[name]
    have = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in have]
    frame = frame.with_columns(missing) if missing else frame
    casts = [pl.col(c).cast(t) for c, t in schema.items() if c in have and have[c] != t]
    frame = frame.with_columns(casts) if casts else frame
    extras = [c for c in have if c not in schema]
    return frame.select([*schema, *extras])


def empty(name: str) -> pl.DataFrame:
    """An empty frame with the contract columns of table ``name``."""
    return pl.DataFrame(schema=COLUMNS[name])


@dataclass(frozen=True)
class Tables:
    """The five validated tables of one company (or of one request's debtors)."""

    debtors: pl.DataFrame
    invoices: pl.DataFrame
    payments: pl.DataFrame
    actions: pl.DataFrame
    disputes: pl.DataFrame

    @classmethod
    def from_frames(cls, **frames: pl.DataFrame | None) -> Tables:
        """Build from any subset of frames; absent ones are empty, all are conformed."""
        unknown = set(frames) - set(TABLE_NAMES)
        if unknown:
            raise TypeError(f"unknown table(s): {sorted(unknown)}")
        return cls(**{
            n: conform(n, frames[n]) if frames.get(n) is not None else empty(n)
            for n in TABLE_NAMES
        })

    def items(self) -> list[tuple[str, pl.DataFrame]]:
        """``(name, frame)`` pairs in contract order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def concat(self, other: Tables) -> Tables:
        """Rows of both, ``other``'s extra columns dropped where this one lacks them."""
        out = {}
        for name, frame in self.items():
            cols = list(COLUMNS[name])
            out[name] = pl.concat([frame.select(cols), getattr(other, name).select(cols)])
        return Tables(**out)

    def for_debtors(self, debtor_ids: list[str] | pl.Series) -> Tables:
        """Only the rows about ``debtor_ids`` (their invoices and everything about those)."""
        ids = pl.Series(list(debtor_ids), dtype=pl.String)
        invoices = self.invoices.filter(pl.col("debtor_id").is_in(ids.implode()))
        inv_ids = invoices["invoice_id"].implode()
        return Tables(
            debtors=self.debtors.filter(pl.col("debtor_id").is_in(ids.implode())),
            invoices=invoices,
            payments=self.payments.filter(pl.col("invoice_id").is_in(inv_ids)),
            actions=self.actions.filter(pl.col("invoice_id").is_in(inv_ids)),
            disputes=self.disputes.filter(pl.col("invoice_id").is_in(inv_ids)),
        )

    @property
    def last_date(self) -> dt.date | None:
        """The latest date any row carries (issue, payment, action or dispute)."""
        candidates = [
            self.invoices["issue_date"].max(),
            self.payments["paid_on"].max(),
            self.actions["sent_on"].max(),
            self.disputes["opened_on"].max(),
        ]
        dates = [d for d in candidates if d is not None]
        return max(dates) if dates else None


def known_as_of(
    events: pl.LazyFrame | pl.DataFrame, as_of: dt.date | pl.Expr, *, table: str
):
    """Rows of ``table`` known on the morning of ``as_of`` (CONTRACT.md §1).

    Invoices and disputes dated on or before ``as_of`` are known; payments and actions only
    when dated before it. Dispute resolutions dated after ``as_of`` are blanked. ``as_of`` is
    a date, or an expression (e.g. ``pl.col("as_of")``) when each row carries its own
    decision day, as in the many-date feature engine.
    """
    on, same_day = DATED_BY[table]
    col = pl.col(on)
    known = events.filter(col <= as_of if same_day else col < as_of)
    if table == "disputes":
        known = known.with_columns(
            pl.when(pl.col("resolved_on") <= as_of)
            .then(pl.col("resolved_on"))
            .alias("resolved_on")
        )
    return known


def settlements(invoices: pl.LazyFrame, payments: pl.LazyFrame) -> pl.LazyFrame:
    """Each invoice's ``settled_on``: the first date its payments sum to its amount (± 0.01).

    Invoices that the given payments do not settle get a null ``settled_on``. Also gives
    ``amount_paid`` (their sum), ``n_payments`` and ``last_paid``. Pass payments already cut
    with :func:`known_as_of` to get settlement as known on a date. Most invoices are paid on
    one day, so the running sum is only computed for those paid on several days.
    """
    per = payments.group_by("invoice_id").agg(
        amount_paid=pl.col("amount").sum(),
        n_payments=pl.len(),
        first_paid=pl.col("paid_on").min(),
        last_paid=pl.col("paid_on").max(),
    )
    base = invoices.select("invoice_id", "amount").join(per, on="invoice_id", how="left")
    enough = pl.col("amount_paid") >= pl.col("amount") - SETTLE_TOLERANCE
    spread = base.filter(enough & (pl.col("first_paid") != pl.col("last_paid")))
    running = (
        payments.join(spread.select("invoice_id", "amount"), on="invoice_id", how="semi")
        .group_by("invoice_id", "paid_on")
        .agg(pl.col("amount").sum().alias("paid"))
        .sort("invoice_id", "paid_on")
        .with_columns(pl.col("paid").cum_sum().over("invoice_id").alias("cum_paid"))
        .join(spread.select("invoice_id", "amount"), on="invoice_id", how="inner")
        .filter(pl.col("cum_paid") >= pl.col("amount") - SETTLE_TOLERANCE)
        .group_by("invoice_id")
        .agg(pl.col("paid_on").min().alias("spread_settled_on"))
    )
    return (
        base.join(running, on="invoice_id", how="left")
        .with_columns(
            settled_on=pl.when(enough & (pl.col("first_paid") == pl.col("last_paid")))
            .then(pl.col("first_paid"))
            .otherwise(pl.col("spread_settled_on")),
            amount_paid=pl.col("amount_paid").fill_null(0.0),
            n_payments=pl.col("n_payments").fill_null(0).cast(pl.Int64),
        )
        .select("invoice_id", "settled_on", "amount_paid", "n_payments", "last_paid")
    )


def read_clean(directory: str | Path) -> Tables:
    """Read tables written by :func:`write_tables` (Parquet, else CSV); absent tables are empty.

    This trusts the files: raw exports go through :func:`paycadence.data.ingest` instead.
    """
    directory = Path(directory)
    frames = {}
    for name in TABLE_NAMES:
        parquet, csv = directory / f"{name}.parquet", directory / f"{name}.csv"
        if parquet.exists():
            frames[name] = pl.read_parquet(parquet)
        elif csv.exists():
            frames[name] = pl.read_csv(csv, schema_overrides=COLUMNS[name], try_parse_dates=False)
    return Tables.from_frames(**frames)


def write_tables(tables: Tables, directory: str | Path, *, fmt: str = "parquet") -> list[Path]:
    """Write every table as ``NAME.parquet`` or ``NAME.csv``; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in tables.items():
        path = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        elif fmt == "csv":
            frame.write_csv(path, date_format="%Y-%m-%d")
        else:
            raise ValueError(f"unknown format {fmt!r}; use parquet or csv")
        paths.append(path)
    return paths
