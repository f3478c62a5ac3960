"""Input that cannot silently mislead: what every command checks of the book it was given.

Ingest keeps every good row and quarantines the others (docs/ingest.md). That is not enough
for a command that decides or learns from the result: an export missing its payments reads as
a book where nobody ever paid (``recommend`` then hands half the debtors to the agency), a wrong
date format quarantines most invoices and keeps the rest with day and month swapped, a decision
day years after the export decides on a stale book. :class:`InputGuard` says so, the same way
in every command (docs/ingest.md, "What every command checks"):

- **absent tables** are named, with what follows from it; no payment at all beside invoices
  (no file, or no row kept) is an error for a command that decides or learns
  (``--no-payments-ok`` accepts it);
- **a quarantined share** of a table above ``ingest.max_quarantine_share`` (params, 5%) is an
  error with the counts and the main reasons (``--accept-quarantine`` goes on with the rest);
- **the decision day**: more than ``ingest.stale_after_days`` (7) after the data's last day is
  a warning, before its first day an error;
- ``--strict`` makes every warning an error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from paycadence.errors import InputError

logger = logging.getLogger(__name__)

#: What follows from each optional table being absent or empty.
WITHOUT = {
    "payments": "no invoice can look paid: every invoice reads as unpaid and overdue ones as "
                "never paid",
    "actions": "no reminder was ever sent: every overdue invoice starts the schedule at its "
               "first step, and nothing can be learnt from the book's own log",
    "disputes": "no invoice is treated as disputed",
}


@dataclass(frozen=True)
class Span:
    """The days a book's rows cover: its first invoice's issue day, and the latest day any
    row carries (issue, payment, action or dispute)."""

    first: dt.date | None
    last: dt.date | None


@dataclass
class InputGuard:
    """What a command accepts of its input, and where its warnings go.

    Parameters
    ----------
    max_quarantine_share, stale_after_days
        ``params.yaml``'s ``ingest`` section.
    strict
        ``--strict``: every warning is an error.
    accept_quarantine
        ``--accept-quarantine``: a large quarantined share is a warning.
    no_payments_ok
        ``--no-payments-ok``: invoices without a single payment are a warning.
    warn
        Where a warning goes (the CLI prints it on stderr).
    """

    max_quarantine_share: float = 0.05
    stale_after_days: int = 7
    strict: bool = False
    accept_quarantine: bool = False
    no_payments_ok: bool = False
    warn: Callable[[str], None] = field(default=logger.warning)

    def check_tables(self, counts: dict[str, dict], *, decides: bool = True) -> None:
        """The tables' counts as ingest gave them (``IngestResult.counts``).

        ``decides``: the command decides or learns from them (not ``ingest``, which only
        validates: absent payments are then a warning whatever the flags).

        Raises
        ------
        InputError
            Every problem in one line, each with the flag that would accept it.
        """
        errors: list[str] = []
        warnings: list[str] = []
        invoices = counts.get("invoices", {}).get("kept", 0)
        for name, why in WITHOUT.items():
            c = counts.get(name, {})
            if c.get("kept", 0) > 0 or not invoices:
                continue
            if name == "payments":  # absent or empty: a book where nobody ever paid
                state = "absent (no file)" if c.get("absent") else "no row kept"
                text = f"{name}: {state} beside {invoices:,} invoices: {why}"
                if decides and not self.no_payments_ok:
                    errors.append(text + " (pass --no-payments-ok if the book truly has none)")
                else:
                    warnings.append(text)
            elif c.get("absent"):  # an empty file says "none"; no file may be an export's miss
                warnings.append(f"{name}: absent (no file): {why}")
        for name, c in counts.items():
            read, bad = c.get("kept", 0) + c.get("quarantined", 0), c.get("quarantined", 0)
            if not read or bad / read <= self.max_quarantine_share:
                continue
            reasons = "; ".join(f"{r} {n:,}" for r, n in list(c.get("by_reason", {}).items())[:3])
            text = (f"{name}: {bad:,} of {read:,} rows quarantined ({bad / read:.0%}, over "
                    f"ingest.max_quarantine_share {self.max_quarantine_share:.0%}; {reasons}; "
                    "every row and reason in quarantine.csv)")
            if self.accept_quarantine:
                warnings.append(text)
            else:
                errors.append(text + ": fix the export or its mapping, or pass "
                              "--accept-quarantine to go on with the rows kept")
        self._settle(errors, warnings)

    def check_ingested(self, result, as_of: dt.date | None) -> None:
        """:meth:`check_tables` on an ``IngestResult``'s counts, then :meth:`check_day` on
        its span: what a command checks right after ingest."""
        self.check_tables(result.counts)
        self.check_day(as_of, result.span)

    def check_day(self, as_of: dt.date | None, span: Span, *, option: str = "--as-of") -> None:
        """The decision day against the data's span.

        Raises
        ------
        InputError
            ``as_of`` before the data's first day (nothing was known yet), or, with
            ``strict``, more than ``stale_after_days`` after its last day.
        """
        if as_of is None or span.first is None or span.last is None:
            return
        if as_of < span.first:
            raise InputError(f"{option} {as_of}: before the data's first day ({span.first}): "
                             "nothing of this book was known yet")
        late = (as_of - span.last).days
        if late > self.stale_after_days:
            self._settle([], [f"{option} {as_of}: {late:,} days after the data's last day "
                              f"({span.last}), over ingest.stale_after_days "
                              f"{self.stale_after_days}: the book is read as it was then, "
                              "with no payment, reminder or invoice since; export fresher "
                              "data"])

    def _settle(self, errors: list[str], warnings: list[str]) -> None:
        if self.strict:
            errors = errors + [w + " (an error with --strict)" for w in warnings]
            warnings = []
        for text in warnings:
            self.warn(text)
        if errors:
            raise InputError(" | ".join(errors))
