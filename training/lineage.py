"""What a model version records of the data it learnt from: its book, a sample of the book's
debtors (paycadence.books), the data's fingerprint, first and last day and rows per table.
``paycadence models`` shows it; the commands that decide check the book against it."""

from __future__ import annotations

import json

import polars as pl

from paycadence.books import BOOK_TAG, SIGNATURE_TAG, signature
from paycadence.data import TABLE_NAMES, Tables
from paycadence.training.bounded import ScannedTables
from paycadence.training.snapshots import fingerprint


def debtor_ids_of(tables: Tables | ScannedTables) -> list[str]:
    """The book's debtor ids (of tables in memory or scanned)."""
    debtors = tables.debtors
    if isinstance(debtors, pl.LazyFrame):
        debtors = debtors.select("debtor_id").collect()
    return debtors["debtor_id"].to_list()


def book_tags(tables: Tables | ScannedTables, book: str | None,
               debtor_ids: list[str]) -> dict[str, str]:
    """What a version records of the data it learnt from (``paycadence models`` shows it)."""
    def count(name: str) -> int:
        frame = getattr(tables, name)
        return frame.select(pl.len()).collect().item() if isinstance(frame, pl.LazyFrame) \
            else frame.height

    def bound(name: str, col: str, how: str):
        frame = getattr(tables, name)
        expr = getattr(pl.col(col), how)()
        value = frame.select(expr).collect().item() if isinstance(frame, pl.LazyFrame) \
            else frame.select(expr).item()
        return value

    last = [bound(n, c, "max") for n, c in (("invoices", "issue_date"), ("payments", "paid_on"),
                                            ("actions", "sent_on"), ("disputes", "opened_on"))]
    last = [d for d in last if d is not None]
    first = bound("invoices", "issue_date", "min")
    tags = {"data_fingerprint": fingerprint(tables),
            "data_first_day": first.isoformat() if first else "",
            "data_last_day": max(last).isoformat() if last else "",
            "data_rows": json.dumps({n: count(n) for n in TABLE_NAMES}),
            SIGNATURE_TAG: signature(debtor_ids)}
    if book:
        tags[BOOK_TAG] = book
    return tags
