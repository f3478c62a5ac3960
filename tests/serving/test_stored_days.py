"""The engine's day of stored features: the same answers as computing each call alone, and
``/feedback`` rows make their debtors' answers follow them."""

from __future__ import annotations

import datetime as dt
import threading

import polars as pl

from paycadence.config import load_policy
from paycadence.data import Tables
from paycadence.models import recommend
from paycadence.serving.engine import Engine, request_tables
from paycadence.serving.schemas import DebtorIn


def per_call(engine: Engine, as_of: dt.date, debtor_ids: list[str],
             opted_out: dict[str, list[str]] | None = None) -> list[dict]:
    """The answers without the day's book: each call reads its debtors' rows alone and
    computes their forecasts, uplifts and reasons."""
    group = [DebtorIn(debtor_id=d, opted_out=(opted_out or {}).get(d)) for d in debtor_ids]
    tables, open_ids, opted = request_tables(group, engine.stored)
    return recommend(tables, as_of=as_of, policy=engine.policy, models=engine.models,
                     model_version=engine.version, debtor_ids=debtor_ids, opted_out=opted,
                     open_invoice_ids=open_ids)


def test_answers_from_the_day_equal_answers_computed_alone(tables):
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    ids = tables.debtors["debtor_id"].to_list()[:12] + ["NOT-STORED"]
    assert engine.prepare(as_of)
    one_by_one = [engine.recommend(as_of, [DebtorIn(debtor_id=d)])[0] for d in ids]
    together = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    assert one_by_one == together == per_call(engine, as_of, ids)


def test_feedback_rows_change_their_debtors_answers(tables):
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    assert engine.prepare(as_of)
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
    assert engine.prepare(as_of)
    first = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    debtor = next(r["debtor_id"] for r in first if r["invoices"])
    engine.stored = tables.for_debtors([d for d in tables.debtors["debtor_id"] if d != debtor])
    again = engine.recommend(as_of, [DebtorIn(debtor_id=debtor)])
    assert again == per_call(engine, as_of, [debtor])
    assert again[0]["invoices"] == []


def test_scored_day_gives_the_answers_computed_alone(tables, trained):
    """With the champion: forecasts, uplifts, policy and SHAP reasons read from the day's
    scored book are those of each call computing its own debtors (opted-out overrides too)."""
    engine = Engine(policy=load_policy(), models=trained.models, version="risk:test",
                    stored=tables)
    as_of = tables.last_date - dt.timedelta(days=9)
    ids = tables.debtors["debtor_id"].to_list()[:40] + ["NOT-STORED"]
    opted = {ids[1]: ["email", "sms"], ids[2]: []}
    group = [DebtorIn(debtor_id=d, opted_out=opted.get(d)) for d in ids]
    assert engine.prepare(as_of) and engine.day_ready(as_of)
    together = engine.recommend(as_of, group)
    assert any(r["invoices"] for r in together)
    assert all(r["explanation"] for r in together if r["invoices"])
    assert together == per_call(engine, as_of, ids, opted)
    one_by_one = [engine.recommend(as_of, [g])[0] for g in group]
    assert one_by_one == together


def test_a_call_values_only_what_its_decisions_read(tables, trained, monkeypatch):
    """A call rolls the value model forward only for the invoices and actions its debtors'
    decisions read (:func:`~paycadence.models.policy.valued_ids`), not every near invoice for
    every action as the day's book does, and gives the same answers."""
    from paycadence.features import invoice_features
    from paycadence.models.policy.value import VALUED, ValueModel

    seen = []
    rolled = ValueModel.per_unit_gaps

    def counted(self, X, annual_rate, only=None):
        seen.append(X.shape[0] * len(VALUED) if only is None else
                    sum(len(v) for v in only.values()))
        return rolled(self, X, annual_rate, only)

    monkeypatch.setattr(ValueModel, "per_unit_gaps", counted)
    policy = load_policy()
    engine = Engine(policy=policy, models=trained.models, version="risk:test", stored=tables)
    assert engine.models.value_model is not None
    as_of = tables.last_date - dt.timedelta(days=9)
    ids = tables.debtors["debtor_id"].to_list()[:80]
    assert engine.prepare(as_of) and engine.day_ready(as_of)
    seen.clear()
    alone = per_call(engine, as_of, ids)
    near = invoice_features(tables.for_debtors(ids), as_of=as_of).filter(
        pl.col("days_past_due") >= -policy.learning.before_due_days).height
    assert 0 < sum(seen) < near * len(VALUED)
    assert alone == engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    # the decisions did read values: some answers name the learnt ones
    assert any("learnt" in r["reason"] for r in alone)


def test_the_first_call_of_a_day_starts_the_pass_and_answers_alone(tables, trained, until):
    """No call waits for the day: the first computes its own debtors and starts the pass in
    the background; once the pass is done, calls read it, with the same answers."""
    engine = Engine(policy=load_policy(), models=trained.models, version="risk:test",
                    stored=tables)
    as_of = tables.last_date - dt.timedelta(days=5)
    ids = tables.debtors["debtor_id"].to_list()[:15]
    assert not engine.day_ready(as_of)
    first = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    until(lambda: engine.day_ready(as_of), "the day's pass ended in the background")
    assert engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids]) == first \
        == per_call(engine, as_of, ids)
    engine.close(wait=True)


def test_the_day_is_scored_again_by_new_models(tables, trained, until):
    engine = Engine(policy=load_policy(), models=trained.models, version="risk:test",
                    stored=tables)
    as_of = tables.last_date - dt.timedelta(days=9)
    ids = tables.debtors["debtor_id"].to_list()[:20]
    assert engine.prepare(as_of)
    with_model = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    engine.models, engine.version = None, "fallback"  # what a failed reload leaves
    assert not engine.day_ready(as_of)  # the day's forecasts were the old models'
    without = engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids])
    until(lambda: engine.day_ready(as_of), "the day scored again by the new models")
    assert without == engine.recommend(as_of, [DebtorIn(debtor_id=d) for d in ids]) \
        == per_call(engine, as_of, ids)
    assert without != with_model
    assert {r["model_version"] for r in without} == {"fallback"}
    engine.close(wait=True)


def test_feedback_during_the_pass_makes_its_debtors_stale(tables):
    """Rows stored while the day's pass runs are not lost to it: their debtors are computed
    per call once the day is ready."""
    engine = Engine(policy=load_policy(), stored=tables)
    as_of = tables.last_date - dt.timedelta(days=20)
    ids = tables.debtors["debtor_id"].to_list()[:30]
    debtor = next(r for r in per_call(engine, as_of, ids) if r["invoices"])
    invoice = debtor["invoices"][0]
    gate, entered = threading.Event(), threading.Event()
    real = engine._days._make

    def slow_make(*args):  # the pass holds on until the feedback is in
        entered.set()
        gate.wait(60)
        return real(*args)

    engine._days._make = slow_make  # the pass of the first call below
    assert engine.day_ready(as_of) is False
    engine.recommend(as_of, [DebtorIn(debtor_id=ids[0])])  # starts the pass
    entered.wait(60)
    day = as_of - dt.timedelta(days=1)
    engine.add_feedback(Tables.from_frames(
        payments=pl.DataFrame({"invoice_id": [invoice["invoice_id"]], "paid_on": [day],
                               "amount": [invoice["open_amount"] + 1.0]})))
    gate.set()
    engine.close(wait=True)
    assert engine.day_ready(as_of)
    after = engine.recommend(as_of, [DebtorIn(debtor_id=debtor["debtor_id"])])
    assert after == per_call(engine, as_of, [debtor["debtor_id"]])
    assert invoice["invoice_id"] not in [i["invoice_id"] for i in after[0]["invoices"]]


def test_days_asked_in_any_order_are_kept(tables, monkeypatch):
    """A replay of past days, newest first, still reads each day from its one pass."""
    import paycadence.serving.snapshot as snapshot

    passes = []
    real = snapshot.invoice_features
    monkeypatch.setattr(snapshot, "invoice_features",
                        lambda stored, as_of: passes.append(as_of) or real(stored, as_of=as_of))
    engine = Engine(policy=load_policy(), stored=tables)
    ids = tables.debtors["debtor_id"].to_list()
    days = [tables.last_date - dt.timedelta(days=b) for b in (1, 2, 3)]
    for day in days:
        assert engine.prepare(day)
        for k in range(3):
            engine.recommend(day, [DebtorIn(debtor_id=ids[k])])
    engine.close(wait=True)
    assert passes == days
    assert engine.day_ready(days[1]) and engine.day_ready(days[2])
