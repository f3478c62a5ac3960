"""The forecast check of the backtest: p_late beside the strongest simple references."""

from __future__ import annotations

import datetime as dt

import pytest

from paycadence.data.tables import Tables
from paycadence.training.forecastcheck import prior

DAY = dt.date(2024, 1, 1)


def _book(late_by_debtor: dict[str, list[bool]]) -> Tables:
    """Each debtor's invoices, 30 days apart, paid 5 days late or 5 days early."""
    invoices, payments = [], []
    for debtor, lates in late_by_debtor.items():
        for k, late in enumerate(lates):
            issued = DAY + dt.timedelta(days=30 * k)
            due = issued + dt.timedelta(days=14)
            invoice = f"{debtor}-{k}"
            invoices.append({"invoice_id": invoice, "debtor_id": debtor, "issue_date": issued,
                             "due_date": due, "amount": 100.0, "currency": "EUR"})
            payments.append({"invoice_id": invoice, "amount": 100.0,
                             "paid_on": due + dt.timedelta(days=5 if late else -5)})
    return Tables.from_frames(invoices=_frame(invoices), payments=_frame(payments))


def _frame(rows):
    import polars as pl

    return pl.DataFrame(rows)


def test_debtors_who_differ_get_a_weak_prior_and_alike_ones_a_strong_one():
    """Method of moments: the spread of the debtors' shares beyond chance sets the prior."""
    apart = _book({"A": [True] * 8, "B": [False] * 8, "C": [True] * 8, "D": [False] * 8})
    r, m = prior(apart, DAY + dt.timedelta(days=400))
    assert r == pytest.approx(0.5) and m == pytest.approx(1.0)  # all signal: the floor
    alike = _book({d: [True, False] * 4 for d in "ABCD"})
    r, m = prior(alike, DAY + dt.timedelta(days=400))
    assert r == pytest.approx(0.5) and m == 100.0  # no spread beyond chance: the ceiling


def test_only_the_past_sets_the_prior():
    book = _book({"A": [False, False, True, True], "B": [False, False, True, True]})
    r, _ = prior(book, DAY + dt.timedelta(days=60))  # the first two invoices settled
    assert r == 0.0
