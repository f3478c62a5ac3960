"""What the service keeps about its stored debtors between calls: every stored debtor's features
and forecasts of a decision day (:class:`BookDays`), so that a call about a few of them reads
their rows instead of computing them."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from paycadence.data import Tables
from paycadence.features import contact_days, invoice_features
from paycadence.models import RiskModels
from paycadence.models.recommend import ScoredBook, score_book

logger = logging.getLogger(__name__)


class BookDays:
    """The stored debtors' features, contact days and forecasts on recent decision days.

    A debtor's features, forecasts and uplifts depend on its own rows only, so one pass over
    the whole stored book gives every debtor's rows exactly as a call about that debtor alone
    would (tests check it), and costs per invoice what those calls cost. The pass runs in a
    background thread, started by the first call of a day (or :meth:`prepare`): calls made
    before it is ready compute their own debtors' rows, calls after only look theirs up, so
    no call waits for the pass, however large the book. Rows posted to ``/feedback`` make
    their debtors stale (:meth:`touch`), during the pass too: those are computed per call
    again until the next day's pass. New models score the day again (in the background too).

    Parameters
    ----------
    days
        How many decision days are kept (the one made longest ago is dropped first, so that
        calls about past days, e.g. a replay, keep theirs too).
    max_pending
        How many passes may wait or run at once (one per day and models): calls about yet
        another day then compute their own debtors and start nothing, so that calls naming
        ever new ``as_of`` values cannot queue pass after pass of the whole book.
    """

    def __init__(self, days: int = 2, max_pending: int = 3):
        self.days, self.max_pending = days, max_pending
        self._book: dict[dt.date, _Day] = {}
        self._pending: dict[tuple, _Day] = {}  # passes under way, by (day, models)
        # passes that raised: (models, snapshot), not tried again on that snapshot (the models
        # held so that their id stays theirs)
        self._failed: dict[tuple, tuple[RiskModels | None, Tables]] = {}
        self._lock = threading.Lock()
        self._passes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paycadence-day")

    def ready(self, stored: Tables, as_of: dt.date, models: RiskModels | None,
              current) -> _Day | None:
        """The day ``as_of`` of the snapshot ``stored`` scored by ``models`` when it is ready;
        otherwise None, and its pass is started in the background (unless under way).
        ``current()`` returns the engine's snapshot when the pass ends: a pass made on a
        snapshot replaced otherwise than through :meth:`touch` is not kept."""
        key = (as_of, id(models))
        with self._lock:
            day = self._book.get(as_of)
            if day is not None and day.serves(stored, models):
                return day
            if key in self._pending or self._failed.get(key, (None, None))[1] is stored:
                return None
            if len(self._pending) >= self.max_pending:
                logger.info("the day %s of the stored book is not started: %d passes are "
                            "under way or waiting already (calls compute their own debtors)",
                            as_of, len(self._pending))
                return None
            self._pending[key] = day = _Day(as_of, models, stored)
        self._passes.submit(self._make, day, current, key)
        return None

    def pending(self) -> set[dt.date]:
        """The days whose pass is under way or waiting."""
        with self._lock:
            return {day for day, _ in self._pending}

    def has(self, stored: Tables, as_of: dt.date, models: RiskModels | None) -> bool:
        """Whether :meth:`ready` would give the day now (nothing is started)."""
        with self._lock:
            day = self._book.get(as_of)
            return day is not None and day.serves(stored, models)

    def days_ready(self, stored: Tables, models: RiskModels | None) -> list[dt.date]:
        """The days :meth:`has` gives, oldest first."""
        with self._lock:
            return sorted(d for d, day in self._book.items() if day.serves(stored, models))

    def prepare(self, stored: Tables, as_of: dt.date, models: RiskModels | None,
                current) -> _Day | None:
        """Make the day now, in the calling thread (what the background pass does), and keep
        it; None when the stored keys are not unique or the pass raised."""
        key = (as_of, id(models))
        with self._lock:
            self._pending[key] = day = _Day(as_of, models, stored)
        return self._make(day, current, key)

    def _make(self, day: _Day, current, key) -> _Day | None:
        try:
            with self._lock:
                held = self._book.get(day.as_of)
                if held is not None and held.snapshot is day.snapshot:  # new models only
                    day.features, day.contact, day.made_from = \
                        held.features, held.contact, held.made_from
                    day.stale |= held.stale
            stored = day.made_from
            if day.features is None:
                if not (_unique(stored.invoices, "invoice_id")
                        and _unique(stored.debtors, "debtor_id")):
                    raise _NotUnique  # each call computes its own debtors, as before ingest
                day.features = invoice_features(stored, as_of=day.as_of)
                day.contact = contact_days(stored, as_of=day.as_of)
            day.scored = score_book(stored, day.features, day.contact, day.models)
        except Exception as exc:  # noqa: BLE001 - the calls compute per call and fall back
            if not isinstance(exc, _NotUnique):
                logger.warning("the day %s of the stored book was not made (%s): calls "
                               "compute their own debtors", day.as_of, type(exc).__name__)
            with self._lock:
                self._failed[key] = (day.models, day.snapshot)
                self._pending.pop(key, None)
            return None
        with self._lock:
            self._pending.pop(key, None)
            if current() is day.snapshot:  # feedback meanwhile went through touch()
                self._book.pop(day.as_of, None)
                self._book[day.as_of] = day  # dicts keep insertion order: last made is last
                for old in list(self._book)[:-self.days]:
                    del self._book[old]
        return day

    def touch(self, debtor_ids, stored: Tables) -> None:
        """Rows about ``debtor_ids`` changed, giving the snapshot ``stored``: those debtors
        are computed per call from now on, the others' rows stay valid."""
        with self._lock:
            for day in [*self._book.values(), *self._pending.values()]:
                day.stale.update(debtor_ids)
                day.snapshot = stored

    def close(self, wait: bool = False) -> None:
        """Stop taking passes (one under way finishes; ``wait``: until it has)."""
        self._passes.shutdown(wait=wait, cancel_futures=True)


class _NotUnique(Exception):
    """The stored keys are not unique: no day is made."""


@dataclass
class _Day:
    as_of: dt.date
    models: RiskModels | None  # the models the pass scores with
    snapshot: Tables  # the stored tables the day is valid for (moved on by touch())
    made_from: Tables | None = None  # the stored tables the pass reads
    stale: set[str] = field(default_factory=set)  # debtors whose rows changed since
    features: pl.DataFrame | None = None
    contact: dict[str, tuple] | None = None
    scored: ScoredBook | None = None  # the rows scored, once the pass is done

    def __post_init__(self):
        if self.made_from is None:
            self.made_from = self.snapshot

    def serves(self, stored: Tables, models: RiskModels | None) -> bool:
        """Whether calls on the snapshot ``stored`` with ``models`` read this day's rows."""
        return self.snapshot is stored and self.scored.models is models


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
