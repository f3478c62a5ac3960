"""The rule guard's view of each debtor on a decision day, built from the same point-in-time data.

:func:`debtor_states` turns the feature frame of :func:`invoice_features` plus the debtors'
contact days into :class:`paycadence.guard.DebtorState` objects, so the guard and the model
read the very same history.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from paycadence.config import CONTACT_CHANNELS
from paycadence.data import Tables, known_as_of
from paycadence.guard import DebtorState, InvoiceState, parse_opted_out


def contact_days(tables: Tables, *, as_of: dt.date, debtor_ids=None) -> dict[str, tuple]:
    """Distinct days before ``as_of`` with a contact, per debtor (CONTRACT.md §2)."""
    actions = known_as_of(tables.actions.lazy(), as_of, table="actions").filter(
        pl.col("channel").is_in(list(CONTACT_CHANNELS))
    )
    owners = tables.invoices.lazy().select("invoice_id", "debtor_id")
    if debtor_ids is not None:
        owners = owners.filter(pl.col("debtor_id").is_in(pl.Series(list(debtor_ids),
                                                                   dtype=pl.String).implode()))
    days = (
        actions.join(owners, on="invoice_id", how="inner")
        .group_by("debtor_id")
        .agg(pl.col("sent_on").unique().sort())
        .collect()
    )
    return {r["debtor_id"]: tuple(r["sent_on"]) for r in days.iter_rows(named=True)}


def debtor_states(
    tables: Tables,
    features: pl.DataFrame,
    *,
    as_of: dt.date,
    opted_out: dict[str, frozenset] | None = None,
    contact: dict[str, tuple] | None = None,
) -> dict[str, DebtorState]:
    """One :class:`DebtorState` per debtor in ``features`` (the output of invoice_features).

    Parameters
    ----------
    opted_out
        Channels per debtor that override ``debtors.opted_out`` (e.g. from an API request).
    contact
        :func:`contact_days` of ``tables`` on ``as_of`` (for these debtors or more), when the
        caller has them already.
    """
    ids = features["debtor_id"].unique().to_list()
    days = contact if contact is not None else contact_days(tables, as_of=as_of, debtor_ids=ids)
    return states_of(features.select(STATE_COLUMNS).iter_rows(named=True), ids, days,
                     opted_out or {}, stored_opted_out(tables, ids))


#: The feature columns a :class:`DebtorState` is made of.
STATE_COLUMNS = ("debtor_id", "invoice_id", "due_date", "open_amount", "reminders_invoice",
                 "disputed_open", "in_collection")


def stored_opted_out(tables: Tables, ids=None) -> dict[str, frozenset]:
    """``debtors.opted_out`` parsed, per debtor (of ``ids``, or all)."""
    debtors = tables.debtors
    if ids is not None:
        debtors = debtors.filter(pl.col("debtor_id").is_in(pl.Series(list(ids), dtype=pl.String)
                                                           .implode()))
    return {r["debtor_id"]: parse_opted_out(r["opted_out"])
            for r in debtors.select("debtor_id", "opted_out").iter_rows(named=True)}


def states_of(rows, ids, days: dict[str, tuple], opted_out: dict[str, frozenset],
              stored: dict[str, frozenset]) -> dict[str, DebtorState]:
    """One :class:`DebtorState` per debtor of ``ids`` from its feature rows (dicts with at
    least :data:`STATE_COLUMNS`), contact days and opted-out channels (``opted_out``
    overriding ``stored``)."""
    invoices: dict[str, list[InvoiceState]] = {d: [] for d in ids}
    for r in rows:
        invoices[r["debtor_id"]].append(InvoiceState(
            invoice_id=r["invoice_id"],
            due_date=r["due_date"],
            open_amount=float(r["open_amount"]),
            contacts=int(r["reminders_invoice"]),
            disputed=bool(r["disputed_open"]),
            in_collection=bool(r["in_collection"]),
        ))
    return {
        d: DebtorState(
            debtor_id=d,
            invoices=tuple(invoices[d]),
            contact_days=days.get(d, ()),
            opted_out=opted_out.get(d, stored.get(d, frozenset())),
        )
        for d in ids
    }
