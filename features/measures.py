"""Receivables measures a credit manager reads: DSO, countback DSO, best possible DSO, ADD, CEI,
ageing and payment discipline (docs/report.md defines each exactly, after DOMAIN.md).

Everything is computed from the validated tables as known on the morning of a date ``as_of``
(CONTRACT.md §1, through :func:`paycadence.data.known_as_of`): invoices issued on or before
``as_of`` and payments dated before it. *The book* on ``as_of`` is the invoices open then, each
with its open amount (amount − payments before ``as_of``). A period of ``days`` days ending on
``as_of`` holds the invoices issued in ``(as_of − days, as_of]``; its *credit sales* are their
amounts. Days are calendar days; amounts are in the invoice currency (the tables are assumed to
be in one currency, as the report sums them). A measure whose denominator is zero is None.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from paycadence.data import Tables, known_as_of, settlements

#: Days of the period DSO, best possible DSO, ADD and CEI are computed over.
PERIOD_DAYS = 90
#: Ageing buckets by days past due on ``as_of``: (name, lowest, highest), both inclusive.
AGE_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("current", None, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
)
#: Days after the due date an amount still open counts as "unpaid after 90 days".
UNPAID_DAYS = 90
#: Months a countback walks back at most before giving up (the balance is never covered).
COUNTBACK_MONTHS = 36
UNKNOWN = "unknown"


def book(tables: Tables, *, as_of: dt.date) -> pl.DataFrame:
    """The open invoices on the morning of ``as_of``.

    Returns
    -------
    polars.DataFrame
        ``invoice_id``, ``debtor_id``, ``issue_date``, ``due_date``, ``amount``,
        ``open_amount`` (currency: amount − payments dated before ``as_of``) and
        ``days_past_due`` (``as_of`` − due date, days; ≤ 0 is current), one row per invoice
        whose payments before ``as_of`` do not settle it (CONTRACT.md §1).
    """
    inv = known_as_of(tables.invoices.lazy(), as_of, table="invoices").select(
        "invoice_id", "debtor_id", "issue_date", "due_date", "amount")
    pay = known_as_of(tables.payments.lazy(), as_of, table="payments")
    paid = settlements(inv, pay).select("invoice_id", "settled_on", "amount_paid")
    return (
        inv.join(paid, on="invoice_id", how="left")
        .filter(pl.col("settled_on").is_null())
        .with_columns(
            open_amount=(pl.col("amount") - pl.col("amount_paid").fill_null(0.0))
            .clip(lower_bound=0.0),
            days_past_due=(pl.lit(as_of) - pl.col("due_date")).dt.total_days(),
        )
        .drop("settled_on", "amount_paid")
        .sort("due_date", "invoice_id")
        .collect()
    )


def receivables(tables: Tables, *, as_of: dt.date) -> tuple[float, float]:
    """``(total, current)``: the open amount on ``as_of`` and its part not yet due
    (due on or after ``as_of``), in currency."""
    open_ = book(tables, as_of=as_of)
    total = float(open_["open_amount"].sum())
    current = float(open_.filter(pl.col("days_past_due") <= 0)["open_amount"].sum())
    return total, current


def credit_sales(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS) -> float:
    """Amounts invoiced in the ``days`` days ending on ``as_of`` (issued in
    ``(as_of − days, as_of]``), in currency."""
    start = as_of - dt.timedelta(days=days)
    issued = pl.col("issue_date")
    return float(tables.invoices.filter((issued > start) & (issued <= as_of))["amount"].sum())


def _ratio(num: float, den: float, days: int) -> float | None:
    return num / den * days if den > 0 else None


def dso(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS) -> float | None:
    """Days sales outstanding: receivables on ``as_of`` ÷ credit sales of the ``days`` days
    ending on it × ``days`` (days)."""
    total, _ = receivables(tables, as_of=as_of)
    return _ratio(total, credit_sales(tables, as_of=as_of, days=days), days)


def best_possible_dso(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS
                      ) -> float | None:
    """Current (not yet due) receivables on ``as_of`` ÷ credit sales of the period × ``days``."""
    _, current = receivables(tables, as_of=as_of)
    return _ratio(current, credit_sales(tables, as_of=as_of, days=days), days)


def average_days_delinquent(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS
                            ) -> float | None:
    """ADD = DSO − best possible DSO = overdue receivables ÷ credit sales × ``days`` (days)."""
    total, current = receivables(tables, as_of=as_of)
    return _ratio(total - current, credit_sales(tables, as_of=as_of, days=days), days)


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def countback_dso(tables: Tables, *, as_of: dt.date,
                  max_months: int = COUNTBACK_MONTHS) -> float | None:
    """Countback DSO on ``as_of`` (days).

    The receivables on ``as_of`` are matched against credit sales month by month, walking
    back: first the current calendar month up to ``as_of`` (its days: ``as_of``'s day of the
    month), then each whole month before it. A month whose sales are below what is left of
    the balance adds all its days and its sales are taken off the balance; the month that
    covers the rest adds ``rest ÷ its sales × its days``. None when ``max_months`` months do
    not cover the balance; 0 when nothing is open.
    """
    balance, _ = receivables(tables, as_of=as_of)
    return _countback(tables, as_of, balance, max_months)


def _countback(tables: Tables, as_of: dt.date, balance: float, max_months: int
               ) -> float | None:
    if balance <= 0:
        return 0.0
    issued = tables.invoices.filter(pl.col("issue_date") <= as_of).with_columns(
        month=pl.col("issue_date").dt.truncate("1mo"))
    by_month = dict(issued.group_by("month").agg(pl.col("amount").sum()).iter_rows())
    days_total = 0.0
    end = as_of
    for _ in range(max_months):
        start = _month_start(end)
        length = (end - start).days + 1
        sales = float(by_month.get(start, 0.0))
        if sales >= balance:
            return days_total + balance / sales * length
        balance -= sales
        days_total += length
        end = start - dt.timedelta(days=1)
    return None


def collection_effectiveness(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS
                             ) -> float | None:
    """CEI over the ``days`` days ending on ``as_of`` (percent).

    (opening receivables + credit sales − closing total receivables) ÷ (opening receivables +
    credit sales − closing current receivables) × 100, where the opening receivables are the
    book on ``as_of − days`` and the closing ones the book on ``as_of``.
    """
    opening, _ = receivables(tables, as_of=as_of - dt.timedelta(days=days))
    sales = credit_sales(tables, as_of=as_of, days=days)
    closing, current = receivables(tables, as_of=as_of)
    den = opening + sales - current
    return (opening + sales - closing) / den * 100 if den > 0 else None


def ageing(tables: Tables, *, as_of: dt.date) -> pl.DataFrame:
    """Open amounts on ``as_of`` by days past due: one row per bucket of :data:`AGE_BUCKETS`
    (all five, empty ones with zeros): ``bucket``, ``open_amount`` (currency), ``invoices``,
    ``share`` (of the open total; 0 when nothing is open), and the open amount split by what a
    collector can do about it: ``with_agency`` (handed over: a ``collection`` action before
    ``as_of``), ``disputed`` (an open dispute on ``as_of``, not handed over) and
    ``actionable`` (the rest); the three add up to ``open_amount``."""
    open_ = book(tables, as_of=as_of)
    handed = known_as_of(tables.actions.lazy(), as_of, table="actions").filter(
        pl.col("channel") == "collection").select("invoice_id").unique().collect()
    disputes = known_as_of(tables.disputes.lazy(), as_of, table="disputes").filter(
        pl.col("resolved_on").is_null()).select("invoice_id").unique().collect()
    open_ = open_.with_columns(
        agency=pl.col("invoice_id").is_in(handed["invoice_id"].implode()),
        disputed=pl.col("invoice_id").is_in(disputes["invoice_id"].implode()))
    total = float(open_["open_amount"].sum())
    rows = []
    for name, low, high in AGE_BUCKETS:
        keep = pl.lit(True)
        if low is not None:
            keep &= pl.col("days_past_due") >= low
        if high is not None:
            keep &= pl.col("days_past_due") <= high
        part = open_.filter(keep)
        amount = float(part["open_amount"].sum())
        agency = float(part.filter(pl.col("agency"))["open_amount"].sum())
        disputed = float(part.filter(~pl.col("agency") & pl.col("disputed"))["open_amount"].sum())
        rows.append({"bucket": name, "open_amount": amount, "invoices": part.height,
                     "share": amount / total if total > 0 else 0.0,
                     "actionable": amount - agency - disputed, "disputed": disputed,
                     "with_agency": agency})
    return pl.DataFrame(rows, schema={"bucket": pl.String, "open_amount": pl.Float64,
                                      "invoices": pl.Int64, "share": pl.Float64,
                                      "actionable": pl.Float64, "disputed": pl.Float64,
                                      "with_agency": pl.Float64})


def kpis(tables: Tables, *, as_of: dt.date, days: int = PERIOD_DAYS) -> dict[str, float | None]:
    """The headline measures on ``as_of`` in one pass over the book: ``receivables``,
    ``current``, ``overdue`` and ``credit_sales`` (currency), ``dso``, ``countback_dso``,
    ``best_possible_dso``, ``add`` (days) and ``cei`` (percent), each as its own function
    defines it."""
    total, current = receivables(tables, as_of=as_of)
    sales = credit_sales(tables, as_of=as_of, days=days)
    opening, _ = receivables(tables, as_of=as_of - dt.timedelta(days=days))
    den = opening + sales - current
    return {"receivables": total, "current": current, "overdue": total - current,
            "credit_sales": sales, "dso": _ratio(total, sales, days),
            "countback_dso": _countback(tables, as_of, total, COUNTBACK_MONTHS),
            "best_possible_dso": _ratio(current, sales, days),
            "add": _ratio(total - current, sales, days),
            "cei": (opening + sales - total) / den * 100 if den > 0 else None}


def trend(tables: Tables, *, as_of: dt.date, months: int = 12, days: int = PERIOD_DAYS
          ) -> pl.DataFrame:
    """:func:`kpis` at the last day of each of the ``months`` months before ``as_of``'s
    month, and on ``as_of`` itself (the last row), each as if on the morning of its ``date``.
    Month ends before the first invoice are left out."""
    first = tables.invoices["issue_date"].min()
    dates, end = [], _month_start(as_of) - dt.timedelta(days=1)
    for _ in range(months):
        dates.append(end)
        end = _month_start(end) - dt.timedelta(days=1)
    dates = [d for d in reversed(dates) if first is not None and d >= first] + [as_of]
    rows = [{"date": d, **kpis(tables, as_of=d, days=days)} for d in dates]
    return pl.DataFrame(rows, schema={"date": pl.Date, **{k: pl.Float64 for k in (
        "receivables", "current", "overdue", "credit_sales", "dso", "countback_dso",
        "best_possible_dso", "add", "cei")}})


def paid_invoices(tables: Tables, *, as_of: dt.date, days: int = 365) -> pl.DataFrame:
    """Invoices settled in the ``days`` days before ``as_of`` (settled on ``as_of − days`` …
    ``as_of − 1``, by payments known on ``as_of``), with ``settled_on``, ``days_late``
    (settled − due, days; negative: early), ``late`` (days_late > 0), and the debtor's
    ``segment`` and ``country`` (``unknown`` when missing)."""
    inv = known_as_of(tables.invoices.lazy(), as_of, table="invoices")
    pay = known_as_of(tables.payments.lazy(), as_of, table="payments")
    settled = settlements(inv, pay).select("invoice_id", "settled_on")
    debtors = tables.debtors.lazy().select("debtor_id", "segment", "country")
    return (
        inv.select("invoice_id", "debtor_id", "due_date", "amount")
        .join(settled, on="invoice_id", how="inner")
        .filter(pl.col("settled_on") >= as_of - dt.timedelta(days=days))
        .join(debtors, on="debtor_id", how="left")
        .with_columns(
            days_late=(pl.col("settled_on") - pl.col("due_date")).dt.total_days(),
            segment=_label("segment"), country=_label("country"),
        )
        .with_columns(late=pl.col("days_late") > 0)
        .collect()
    )


def _label(col: str) -> pl.Expr:
    text = pl.col(col).cast(pl.String).str.strip_chars()
    return pl.when(text.is_null() | (text == "")).then(pl.lit(UNKNOWN)).otherwise(text)


def _discipline_aggs() -> list[pl.Expr]:
    amount = pl.col("amount")
    return [
        pl.len().alias("paid"),
        pl.col("late").mean().alias("share_late"),
        (amount.filter(pl.col("late")).sum() / amount.sum()).alias("share_value_late"),
        ((amount * pl.col("days_late").clip(lower_bound=0)).sum() / amount.sum())
        .alias("mean_days_late"),
    ]


def discipline(tables: Tables, *, as_of: dt.date, by: str, days: int = 365,
               period_days: int = PERIOD_DAYS) -> pl.DataFrame:
    """Payment discipline per debtor ``segment`` or ``country`` (``by``).

    Over the invoices settled in the ``days`` days before ``as_of``: ``paid`` (count),
    ``share_late`` (share of them paid after the due date), ``share_value_late`` (the same,
    by amount) and ``mean_days_late`` (amount-weighted mean of days late, an early payment
    counting 0). On the book of ``as_of``: ``open_amount``, ``overdue_amount`` and ``add``
    (the group's overdue receivables ÷ its credit sales of the ``period_days`` days ending on
    ``as_of`` × ``period_days``; None without sales). Sorted by open amount, largest first.
    """
    if by not in ("segment", "country"):
        raise ValueError(f"discipline by {by!r}: use 'segment' or 'country'")
    paid = paid_invoices(tables, as_of=as_of, days=days).group_by(by).agg(_discipline_aggs())
    groups = tables.debtors.select("debtor_id", _label(by).alias(by))
    open_ = book(tables, as_of=as_of).join(groups, on="debtor_id", how="left").with_columns(
        pl.col(by).fill_null(UNKNOWN)).group_by(by).agg(
        open_amount=pl.col("open_amount").sum(),
        overdue_amount=pl.col("open_amount").filter(pl.col("days_past_due") > 0).sum())
    start = as_of - dt.timedelta(days=period_days)
    sales = tables.invoices.filter(
        (pl.col("issue_date") > start) & (pl.col("issue_date") <= as_of)
    ).join(groups, on="debtor_id", how="left").with_columns(
        pl.col(by).fill_null(UNKNOWN)).group_by(by).agg(sales=pl.col("amount").sum())
    keys = pl.concat([paid.select(by), open_.select(by), sales.select(by)]).unique()
    out = (keys.join(paid, on=by, how="left").join(open_, on=by, how="left")
           .join(sales, on=by, how="left")
           .with_columns(pl.col("paid").fill_null(0), pl.col("open_amount").fill_null(0.0),
                         pl.col("overdue_amount").fill_null(0.0))
           .with_columns(add=pl.when(pl.col("sales") > 0).then(
               pl.col("overdue_amount") / pl.col("sales") * period_days))
           .drop("sales"))
    return out.sort(["open_amount", by], descending=[True, False])


def monthly_discipline(tables: Tables, *, as_of: dt.date, months: int = 12) -> pl.DataFrame:
    """Payment discipline by month of settlement over the ``months`` calendar months up to
    ``as_of`` (the current one partial): ``month`` (its first day) and the columns of
    :func:`discipline`'s paid side."""
    start = _month_start(as_of)
    for _ in range(months - 1):
        start = _month_start(start - dt.timedelta(days=1))
    paid = paid_invoices(tables, as_of=as_of, days=(as_of - start).days)
    return paid.with_columns(month=pl.col("settled_on").dt.truncate("1mo")).group_by(
        "month").agg(_discipline_aggs()).sort("month")


def unpaid_after_90_days(tables: Tables, *, as_of: dt.date, days: int = 365) -> float | None:
    """At-risk rate: of the value billed on invoices due in the ``days`` days up to
    ``as_of − 91`` (so that 90 days after due have passed), the share still unpaid 90 days
    after the due date (the unpaid part of each, by payments on or before due + 90)."""
    last_due = as_of - dt.timedelta(days=UNPAID_DAYS + 1)
    inv = known_as_of(tables.invoices.lazy(), as_of, table="invoices").filter(
        (pl.col("due_date") <= last_due)
        & (pl.col("due_date") > last_due - dt.timedelta(days=days)))
    pay = known_as_of(tables.payments.lazy(), as_of, table="payments").join(
        inv.select("invoice_id", "due_date"), on="invoice_id", how="inner").filter(
        pl.col("paid_on") <= pl.col("due_date") + pl.duration(days=UNPAID_DAYS)).group_by(
        "invoice_id").agg(paid=pl.col("amount").sum())
    rows = inv.join(pay, on="invoice_id", how="left").select(
        "amount", unpaid=(pl.col("amount") - pl.col("paid").fill_null(0.0)).clip(0.0)).collect()
    billed = float(rows["amount"].sum())
    return float(rows["unpaid"].sum()) / billed if billed > 0 else None
