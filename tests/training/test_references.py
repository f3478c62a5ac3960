"""The simple references every evaluation scores the models against."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from paycadence.data.tables import Tables
from paycadence.training.references import (
    STRENGTH,
    BookPrior,
    best,
    book_prior,
    days_reference,
    late_references,
)

DAY = dt.date(2024, 1, 1)


def _book(days_late_by_debtor: dict[str, list[int]]) -> Tables:
    """Each debtor's invoices, 30 days apart, each paid its given days after its due date."""
    invoices, payments = [], []
    for debtor, lates in days_late_by_debtor.items():
        for k, late in enumerate(lates):
            issued = DAY + dt.timedelta(days=30 * k)
            due = issued + dt.timedelta(days=14)
            invoice = f"{debtor}-{k}"
            invoices.append({"invoice_id": invoice, "debtor_id": debtor, "issue_date": issued,
                             "due_date": due, "amount": 100.0, "currency": "EUR"})
            payments.append({"invoice_id": invoice, "amount": 100.0,
                             "paid_on": due + dt.timedelta(days=late)})
    return Tables.from_frames(invoices=pl.DataFrame(invoices), payments=pl.DataFrame(payments))


END = DAY + dt.timedelta(days=400)


def test_debtors_who_differ_get_weak_priors_and_alike_ones_strong_ones():
    """Method of moments: the spread of the debtors beyond chance sets each prior."""
    apart = book_prior(_book({"A": [9] * 8, "B": [-5] * 8, "C": [9] * 8, "D": [-5] * 8}), END)
    assert apart.rate == pytest.approx(0.5) and apart.strength == STRENGTH[0]
    assert apart.median_days == pytest.approx(2.0) and apart.days_strength == STRENGTH[0]
    alike = book_prior(_book({d: [9, -5] * 4 for d in "ABCD"}), END)
    assert alike.rate == pytest.approx(0.5) and alike.strength == STRENGTH[1]
    assert alike.days_strength == STRENGTH[1]
    assert alike.settled == 32


def test_only_the_past_sets_the_prior():
    book = _book({"A": [-5, -5, 9, 9], "B": [-5, -5, 9, 9]})
    assert book_prior(book, DAY + dt.timedelta(days=60)).rate == 0.0  # two settled, on time
    assert book_prior(book, DAY - dt.timedelta(days=1)) == BookPrior()  # nothing yet


def _rows(**cols) -> pl.DataFrame:
    return pl.DataFrame(cols)


def test_few_invoices_lean_on_the_book_and_many_on_the_debtor():
    prior = BookPrior(rate=0.2, strength=4.0)
    rows = _rows(n_settled=[0.0, 1.0, 40.0], share_late=[None, 1.0, 1.0],
                 late_ewm=[None, 1.0, 1.0], days_past_due=[-10.0, -10.0, -10.0])
    refs = late_references(rows, prior)
    assert refs["shrunk"][0] == pytest.approx(0.2)  # a new debtor: the book's rate
    assert refs["shrunk"][1] == pytest.approx((1 + 0.8) / 5)
    assert refs["shrunk"][2] == pytest.approx((40 + 0.8) / 44)
    assert refs["laplace"][0] == pytest.approx(0.5)  # the fallback knows no book
    assert refs["laplace"][1] == pytest.approx(2 / 3)
    assert 0.2 < refs["recent"][1] < refs["recent"][2] < 1.0


def test_the_recent_reference_follows_a_change_the_long_run_share_hides():
    """Ten invoices on time, then three late: the recency-weighted share says more than 3/13."""
    prior = BookPrior(rate=0.3, strength=2.0)
    q = 0.5 ** (1 / 5)
    ewm = sum(q ** k for k in range(3)) / sum(q ** k for k in range(13))
    rows = _rows(n_settled=[13.0], share_late=[3 / 13], late_ewm=[ewm], days_past_due=[-3.0])
    refs = late_references(rows, prior)
    assert refs["recent"][0] > refs["shrunk"][0] + 0.05


def test_an_invoice_past_due_is_late_by_definition():
    rows = _rows(n_settled=[5.0], share_late=[0.0], late_ewm=[0.0], days_past_due=[1.0])
    for name, p in late_references(rows, BookPrior(rate=0.1, strength=3.0)).items():
        assert p[0] == 1.0, name


def test_days_late_shrink_toward_the_book_and_never_before_today():
    prior = BookPrior(median_days=10.0, days_strength=2.0)
    rows = _rows(n_settled=[0.0, 2.0, 2.0], median_days_late=[None, 0.0, 0.0],
                 days_past_due=[-5.0, -5.0, 30.0])
    got = days_reference(rows, prior)
    assert got.tolist() == pytest.approx([10.0, 5.0, 30.0])


def test_the_best_reference_ignores_what_could_not_be_scored():
    assert best({"a": 0.7, "b": float("nan"), "c": 0.8}) == ("c", 0.8)
    assert best({"a": 0.2, "b": 0.1}, higher=False) == ("b", 0.1)
    name, value = best({"a": float("nan")})
    assert name == "" and np.isnan(value)
