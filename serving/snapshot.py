"""What the service keeps about its stored debtors between calls: every stored debtor's features
of a decision day (:class:`BookDays`), so that a call about a few of them reads their rows
instead of computing them with a dozen small queries."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import polars as pl

from paycadence.data import Tables
from paycadence.features import contact_days, invoice_features


class BookDays:
    """The stored debtors' features and contact days on recent decision days.

    A debtor's features depend on its own rows only, so one pass over the whole stored book
    gives every debtor's rows exactly as a call about that debtor alone would (a test checks
    it): for a book of 1,500 debtors that pass costs what five single-debtor calls cost, and
    later calls on the same day only look their debtors up. Rows posted to ``/feedback``
    make their debtors stale (:meth:`touch`): those are computed per call again until the
    next day's pass.

    Parameters
    ----------
    days
        How many decision days are kept (the oldest is dropped first).
    """

    def __init__(self, days: int = 2):
        self.days = days
        self._book: dict[dt.date, _Day] = {}
        self._lock = threading.Lock()

    def get(self, stored: Tables, as_of: dt.date, current) -> tuple | None:
        """``(features, contact_days, stale)`` on ``as_of`` for the snapshot ``stored``
        (computed now when missing, or when the snapshot was replaced otherwise than through
        :meth:`touch`), or None when the stored keys are not unique. ``current()`` returns the
        engine's snapshot: a pass made on an older one is used once but not kept."""
        with self._lock:
            day = self._book.get(as_of)
            if day is not None and day.snapshot is stored:
                return day.features, day.contact, day.stale
        if not (_unique(stored.invoices, "invoice_id") and _unique(stored.debtors, "debtor_id")):
            return None
        day = _Day(invoice_features(stored, as_of=as_of), contact_days(stored, as_of=as_of),
                   set(), stored)
        with self._lock:
            if current() is stored:  # no feedback arrived meanwhile
                self._book[as_of] = day
                for old in sorted(self._book)[:-self.days]:
                    del self._book[old]
        return day.features, day.contact, day.stale

    def touch(self, debtor_ids, stored: Tables) -> None:
        """Rows about ``debtor_ids`` changed, giving the snapshot ``stored``: those debtors
        are computed per call from now on, the others' rows stay valid."""
        with self._lock:
            for day in self._book.values():
                day.stale.update(debtor_ids)
                day.snapshot = stored


@dataclass
class _Day:
    features: pl.DataFrame
    contact: dict[str, tuple]
    stale: set[str]  # debtors whose rows changed since the pass
    snapshot: Tables  # the stored tables the day is valid for


def _unique(frame: pl.DataFrame, key: str) -> bool:
    return frame[key].n_unique() == frame.height


def touched_debtors(fresh: Tables, stored: Tables) -> set[str]:
    """Debtors that rows of ``fresh`` are about (a payment, action or dispute through its
    invoice in ``stored``)."""
    ids = set(fresh.debtors["debtor_id"].to_list()) | set(fresh.invoices["debtor_id"].to_list())
    invoice_ids = pl.concat([fresh.payments["invoice_id"], fresh.actions["invoice_id"],
                             fresh.disputes["invoice_id"]])
    if invoice_ids.len():
        ids |= set(stored.invoices.filter(pl.col("invoice_id").is_in(invoice_ids.implode()))
                   ["debtor_id"].to_list())
    return ids
