"""Receivables measures on a hand-built book whose every figure was worked out by hand.

The book on the morning of D = 2025-04-01 (the 90-day period: invoices issued 2025-01-02 …
2025-04-01):

| invoice | debtor | issued | due | amount | payments | on D |
|---|---|---|---|---|---|---|
| A | d1 | 2024-12-01 | 2024-12-31 | 1000 | 400 on 01-10, 600 on 02-15 | settled, 46 days late |
| B | d1 | 2025-01-15 | 2025-02-14 | 2000 | 2000 on 02-10 | settled, 4 days early |
| C | d1 | 2025-02-20 | 2025-03-22 | 3000 | 3000 on 04-01 (D: not known) | open 3000, 10 days |
| E | d2 | 2025-03-15 | 2025-04-14 | 1500 | 500 on 03-31 | open 1000, current |
| F | d2 | 2024-10-01 | 2024-10-31 | 800 | none | open 800, 152 days |
| G | d2 | 2025-04-01 | 2025-05-01 | 600 | none | open 600, current |
| J | d3 | 2025-01-20 | 2025-02-19 | 700 | none | open 700, 41 days |
| K | d3 | 2024-12-20 | 2025-01-19 | 900 | none | open 900, 72 days |
| L | d3 | 2025-04-05 | 2025-05-05 | 5000 | none | issued after D: unknown |

Receivables 7000, of which current 1600 (E, G) and overdue 5400; credit sales of the period
B + J + C + E + G = 7800; opening receivables (the book on 2025-01-01) A + F + K = 2700.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from paycadence.data import Tables
from paycadence.features import measures as K

D = dt.date(2025, 4, 1)


def _d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.fixture(scope="module")
def book() -> Tables:
    invoices = [
        ("A", "d1", "2024-12-01", "2024-12-31", 1000.0),
        ("B", "d1", "2025-01-15", "2025-02-14", 2000.0),
        ("C", "d1", "2025-02-20", "2025-03-22", 3000.0),
        ("E", "d2", "2025-03-15", "2025-04-14", 1500.0),
        ("F", "d2", "2024-10-01", "2024-10-31", 800.0),
        ("G", "d2", "2025-04-01", "2025-05-01", 600.0),
        ("J", "d3", "2025-01-20", "2025-02-19", 700.0),
        ("K", "d3", "2024-12-20", "2025-01-19", 900.0),
        ("L", "d3", "2025-04-05", "2025-05-05", 5000.0),
    ]
    payments = [("A", "2025-01-10", 400.0), ("A", "2025-02-15", 600.0),
                ("B", "2025-02-10", 2000.0), ("C", "2025-04-01", 3000.0),
                ("E", "2025-03-31", 500.0)]
    return Tables.from_frames(
        debtors=pl.DataFrame({"debtor_id": ["d1", "d2", "d3"], "segment": ["b2b", "b2c", None],
                              "country": ["NL", "DE", ""]}),
        invoices=pl.DataFrame(
            [{"invoice_id": i, "debtor_id": d, "issue_date": _d(a), "due_date": _d(b),
              "amount": m} for i, d, a, b, m in invoices]),
        payments=pl.DataFrame([{"invoice_id": i, "paid_on": _d(p), "amount": m}
                               for i, p, m in payments]),
    )


def test_the_book_follows_the_point_in_time_rule(book):
    open_ = K.book(book, as_of=D)
    assert dict(zip(open_["invoice_id"], open_["open_amount"], strict=True)) == {
        "F": 800.0, "K": 900.0, "J": 700.0, "C": 3000.0, "E": 1000.0, "G": 600.0}
    assert dict(zip(open_["invoice_id"], open_["days_past_due"], strict=True))["F"] == 152
    # the payment of D is known the day after: C is settled then
    assert "C" not in K.book(book, as_of=D + dt.timedelta(days=1))["invoice_id"].to_list()
    assert K.receivables(book, as_of=D) == (7000.0, 1600.0)
    assert K.credit_sales(book, as_of=D) == 7800.0


def test_dso_best_possible_and_add(book):
    assert K.dso(book, as_of=D) == pytest.approx(7000 / 7800 * 90)  # 80.77 days
    assert K.best_possible_dso(book, as_of=D) == pytest.approx(1600 / 7800 * 90)  # 18.46
    assert K.average_days_delinquent(book, as_of=D) == pytest.approx(5400 / 7800 * 90)  # 62.31
    # a 30-day period: sales E + G = 2100
    assert K.dso(book, as_of=D, days=30) == pytest.approx(7000 / 2100 * 30)


def test_countback_dso_walks_back_month_by_month(book):
    # 7000 open: April so far (1 day, 600), March (31 days, 1500), February (28 days, 3000)
    # are used up (1900 left); January's 2700 covers 1900/2700 of its 31 days
    assert K.countback_dso(book, as_of=D) == pytest.approx(1 + 31 + 28 + 1900 / 2700 * 31)
    assert K.countback_dso(book, as_of=D, max_months=3) is None  # never covered


def test_collection_effectiveness_index(book):
    # (2700 + 7800 − 7000) / (2700 + 7800 − 1600) × 100: 3500 collected of 8900 collectable
    assert K.collection_effectiveness(book, as_of=D) == pytest.approx(3500 / 8900 * 100)


def test_kpis_agree_with_each_measure(book):
    k = K.kpis(book, as_of=D)
    assert k["receivables"] == 7000.0 and k["current"] == 1600.0 and k["overdue"] == 5400.0
    assert k["dso"] == pytest.approx(K.dso(book, as_of=D))
    assert k["countback_dso"] == pytest.approx(K.countback_dso(book, as_of=D))
    assert k["cei"] == pytest.approx(3500 / 8900 * 100)
    assert k["add"] == pytest.approx(k["dso"] - k["best_possible_dso"])


def test_ageing_buckets_by_value(book):
    frame = K.ageing(book, as_of=D)
    assert frame["bucket"].to_list() == ["current", "1-30", "31-60", "61-90", "90+"]
    assert frame["open_amount"].to_list() == [1600.0, 3000.0, 700.0, 900.0, 800.0]
    assert frame["invoices"].to_list() == [2, 1, 1, 1, 1]
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame["share"][0] == pytest.approx(1600 / 7000)


def test_ageing_splits_what_a_collector_can_act_on(book):
    """Issue 21: the ageing split into actionable / disputed / with the agency. F (800, 90+)
    went to the agency; K (900, 61-90) is disputed, and a dispute resolved before D or opened
    after it does not count; a hand-over after D does not either."""
    actions = pl.DataFrame([
        {"invoice_id": "F", "sent_on": D - dt.timedelta(days=20), "channel": "collection"},
        {"invoice_id": "J", "sent_on": D + dt.timedelta(days=2), "channel": "collection"},
        {"invoice_id": "J", "sent_on": D - dt.timedelta(days=5), "channel": "letter"}])
    disputes = pl.DataFrame([
        {"invoice_id": "K", "opened_on": D - dt.timedelta(days=3), "resolved_on": None},
        {"invoice_id": "J", "opened_on": D - dt.timedelta(days=30),
         "resolved_on": D - dt.timedelta(days=1)},
        {"invoice_id": "L", "opened_on": D + dt.timedelta(days=1), "resolved_on": None}])
    both = Tables.from_frames(debtors=book.debtors, invoices=book.invoices,
                              payments=book.payments, actions=actions, disputes=disputes)
    frame = K.ageing(both, as_of=D)
    assert frame["with_agency"].to_list() == [0.0, 0.0, 0.0, 0.0, 800.0]
    assert frame["disputed"].to_list() == [0.0, 0.0, 0.0, 900.0, 0.0]
    for row in frame.iter_rows(named=True):
        assert row["actionable"] + row["disputed"] + row["with_agency"] == pytest.approx(
            row["open_amount"])


def test_discipline_by_segment(book):
    frame = K.discipline(book, as_of=D, by="segment")
    rows = {r["segment"]: r for r in frame.iter_rows(named=True)}
    assert frame["segment"].to_list() == ["b2b", "b2c", "unknown"]  # most open first
    b2b = rows["b2b"]  # A (1000, 46 days late) and B (2000, early) paid in the last year
    assert b2b["paid"] == 2 and b2b["share_late"] == pytest.approx(0.5)
    assert b2b["share_value_late"] == pytest.approx(1000 / 3000)
    assert b2b["mean_days_late"] == pytest.approx(1000 * 46 / 3000)
    assert b2b["open_amount"] == 3000.0 and b2b["add"] == pytest.approx(3000 / 5000 * 90)
    assert rows["b2c"]["paid"] == 0 and rows["b2c"]["share_late"] is None
    assert rows["b2c"]["add"] == pytest.approx(800 / 2100 * 90)
    assert rows["unknown"]["add"] == pytest.approx(1600 / 700 * 90)


def test_discipline_by_country_and_month(book):
    countries = K.discipline(book, as_of=D, by="country")
    assert set(countries["country"]) == {"NL", "DE", "unknown"}
    months = K.monthly_discipline(book, as_of=D)
    assert months.rows() == [(dt.date(2025, 2, 1), 2, 0.5, 1000 / 3000, 1000 * 46 / 3000)]
    with pytest.raises(ValueError, match="segment"):
        K.discipline(book, as_of=D, by="debtor_id")


def test_unpaid_after_90_days(book):
    # due by D − 91 = 2024-12-31: A (paid within 90 days of due) and F (800 never paid)
    assert K.unpaid_after_90_days(book, as_of=D) == pytest.approx(800 / 1800)


def test_trend_is_kpis_at_month_ends_then_today(book):
    frame = K.trend(book, as_of=D)
    assert frame["date"].to_list() == [dt.date(2024, 10, 31), dt.date(2024, 11, 30),
                                       dt.date(2024, 12, 31), dt.date(2025, 1, 31),
                                       dt.date(2025, 2, 28), dt.date(2025, 3, 31), D]
    last = frame.row(-1, named=True)
    assert last["dso"] == pytest.approx(7000 / 7800 * 90)
    # 31 March: G not issued, E's payment of that day not known: 6900 open; sales 7200
    march = frame.row(-2, named=True)
    assert march["receivables"] == 6900.0 and march["dso"] == pytest.approx(6900 / 7200 * 90)


def test_an_empty_period_gives_none_not_an_error(book):
    early = dt.date(2024, 9, 1)  # before the first invoice
    assert K.dso(book, as_of=early) is None
    assert K.collection_effectiveness(book, as_of=early) is None
    assert K.countback_dso(book, as_of=early) == 0.0  # nothing open
    assert K.ageing(book, as_of=early)["share"].to_list() == [0.0] * 5
