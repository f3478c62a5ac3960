"""The engine's day of stored features: the same answers as computing each call alone, and
``/feedback`` rows make their debtors' answers follow them."""

from __future__ import annotations

import datetime as dt

import polars as pl

from paycadence.config import load_policy
from paycadence.data import Tables
from paycadence.models import recommend
from paycadence.serving.engine import Engine, request_tables
from paycadence.serving.schemas import DebtorIn


def per_call(engine: Engine, as_of: dt.date, debtor_ids: list[str]) -> list[dict]:
    """The answers without the day's book: each call reads its debtors' rows alone."""
    group = [DebtorIn(debtor_id=d) for d in debtor_ids]
    tables, open_ids, opted = request_tables(group, engine.stored)
    return recommend(tables, as_of=as_of, policy=engine.policy, models=None,
                     model_version=engine.version, debtor_ids=debtor_ids, opted_out=opted,
                     open_invoice_ids=open_ids)


def test_answers_from_the_day_equal_answers_computed_alone(tables):
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    ids = tables.debtors["debtor_id"].to_list()[:12] + ["NOT-STORED"]
    one_by_one = [engine.recommend(as_of, [DebtorIn(debtor_id=d)])[0] for d in ids]
    together = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    assert one_by_one == together == per_call(engine, as_of, ids)


def test_feedback_rows_change_their_debtors_answers(tables):
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    open_rows = engine.recommend(as_of, [DebtorIn(debtor_id=d)
                                         for d in tables.debtors["debtor_id"].to_list()[:30]])
    debtor = next(r for r in open_rows if r["invoices"])
    invoice = debtor["invoices"][0]
    day = as_of - dt.timedelta(days=1)
    engine.add_feedback(Tables.from_frames(
        payments=pl.DataFrame({"invoice_id": [invoice["invoice_id"]], "paid_on": [day],
                               "amount": [invoice["open_amount"] + 1.0]}),
        actions=pl.DataFrame({"invoice_id": [invoice["invoice_id"]], "sent_on": [day],
                              "channel": ["sms"]})))
    after = engine.recommend(as_of, [DebtorIn(debtor_id=debtor["debtor_id"])])
    assert after == per_call(engine, as_of, [debtor["debtor_id"]])
    assert invoice["invoice_id"] not in [i["invoice_id"] for i in after[0]["invoices"]]


def test_stored_tables_replaced_outright_are_read_again(tables):
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    ids = tables.debtors["debtor_id"].to_list()[:30]
    first = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    debtor = next(r["debtor_id"] for r in first if r["invoices"])
    engine.stored = tables.for_debtors([d for d in tables.debtors["debtor_id"] if d != debtor])
    again = engine.recommend(as_of, [DebtorIn(debtor_id=debtor)])
    assert again == per_call(engine, as_of, [debtor])
    assert again[0]["invoices"] == []
