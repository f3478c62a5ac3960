"""Every serve process picks up the feedback rows the others stored: the store hands out rows
by transaction number (``seq``), a database of the previous schema is upgraded in place, and two
apps on one database (as two workers or two instances would be) see each other's rows in their
stored-debtor answers without a restart. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import warnings

import polars as pl
import pytest
import sqlalchemy as sa

from paycadence.config import Settings
from paycadence.data import COLUMNS, TABLE_NAMES
from paycadence.serving.app import create_app
from paycadence.serving.store import KEYS, FeedbackStore

with warnings.catch_warnings():  # starlette 1.x suggests httpx2 for its test client
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DAY = dt.date(2031, 3, 1)


def _invoice(invoice_id: str, debtor_id: str = "F-1", day: dt.date = DAY) -> dict:
    return {"invoice_id": invoice_id, "debtor_id": debtor_id, "issue_date": day,
            "due_date": day + dt.timedelta(days=30), "amount": 120.0, "currency": "EUR"}


def _ids(tables, name: str) -> set[tuple]:
    return {tuple(r[k] for k in KEYS[name]) for r in getattr(tables, name).to_dicts()}


def test_changes_are_the_rows_stored_after_a_transaction(database_url):
    store = FeedbackStore(database_url)
    try:
        assert store.changes(None)[1] == 0
        store.add({"invoices": [_invoice("F-I1"), _invoice("F-I2")],
                   "disputes": [{"invoice_id": "F-I1", "opened_on": DAY}]})
        everything, first = store.changes(None)
        assert _ids(everything, "invoices") == {("F-I1",), ("F-I2",)}
        assert store.changes(first) is None  # nothing new: one query, no rows read
        store.add({"invoices": [_invoice("F-I2"), _invoice("F-I3")],  # F-I2: a duplicate
                   "payments": [{"invoice_id": "F-I3", "paid_on": DAY, "amount": 5.0}]})
        store.add({})  # an empty body takes no number
        new, second = store.changes(first)
        assert second == first + 1
        assert _ids(new, "invoices") == {("F-I3",)} and new.payments.height == 1
        assert new.disputes.height == 0
        # a dispute resolved later comes back with its resolution
        store.add({"disputes": [{"invoice_id": "F-I1", "opened_on": DAY,
                                 "resolved_on": DAY + dt.timedelta(days=2)}]})
        resolved, third = store.changes(second)
        assert third == second + 1
        assert resolved.disputes["resolved_on"].to_list() == [DAY + dt.timedelta(days=2)]
        assert sum(f.height for _, f in resolved.items()) == 1
    finally:
        store.close()


def _old_schema(url: str) -> None:
    """The feedback tables as the previous version created them (no ``seq``, no counter),
    with one invoice in them."""
    meta = sa.MetaData()
    types = {pl.String: sa.String, pl.Date: sa.Date, pl.Float64: sa.Float, pl.Int64: sa.Integer}
    tables = {}
    for name in TABLE_NAMES:
        cols = [sa.Column(c, types[type(t)](), nullable=c not in KEYS[name])
                for c, t in COLUMNS[name].items()]
        tables[name] = sa.Table(f"feedback_{name}", meta, *cols,
                                sa.Column("received_at", sa.DateTime(), nullable=False),
                                sa.PrimaryKeyConstraint(*KEYS[name]))
    engine = sa.create_engine(url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(tables["invoices"].insert().values(
                **_invoice("OLD-1"), received_at=dt.datetime(2031, 1, 1)))
    finally:
        engine.dispose()


def test_a_database_of_the_previous_schema_is_upgraded(database_url):
    _old_schema(database_url)
    store = FeedbackStore(database_url)
    try:
        everything, seq = store.changes(None)
        assert seq == 0 and _ids(everything, "invoices") == {("OLD-1",)}
        store.add({"invoices": [_invoice("NEW-1")]})
        new, _ = store.changes(seq)
        assert _ids(new, "invoices") == {("NEW-1",)}
    finally:
        store.close()
    again = FeedbackStore(database_url)  # a second start finds it upgraded already
    try:
        assert _ids(again.load(), "invoices") == {("OLD-1",), ("NEW-1",)}
    finally:
        again.close()


@pytest.fixture
def two_apps(database_url, fallback_env, clean_dir):
    """Two apps on one feedback database and the same stored tables, as two workers (or two
    instances) of the service are."""
    settings = Settings(database_url=database_url, model_refresh_seconds=0)
    clients = [TestClient(create_app(settings, data_dir=clean_dir),
                          raise_server_exceptions=False) for _ in range(2)]
    for c in clients:
        c.__enter__()
    yield clients
    for c in clients:
        c.__exit__(None, None, None)


def _open(client, debtor_id: str, as_of: dt.date) -> list[str]:
    r = client.post("/recommend", json={"as_of": as_of.isoformat(),
                                        "debtors": [{"debtor_id": debtor_id}]})
    assert r.status_code == 200, r.text
    return sorted(i["invoice_id"] for i in r.json()["recommendations"][0]["invoices"])


def _post(client, body: dict) -> dict:
    r = client.post("/feedback", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_rows_posted_to_one_process_are_in_the_others_answers(two_apps, tables):
    a, b = two_apps
    as_of, debtor_id = tables.last_date, tables.debtors["debtor_id"][0]
    before = _open(b, debtor_id, as_of)  # B has the day of its stored book computed now
    assert _open(a, debtor_id, as_of) == before
    new = {"invoice_id": "FOLLOW-1", "debtor_id": debtor_id,
           "issue_date": (as_of - dt.timedelta(days=40)).isoformat(),
           "due_date": (as_of - dt.timedelta(days=10)).isoformat(), "amount": 750.0}
    assert _post(a, {"invoices": [new]})["stored"] == {"invoices": 1}
    assert _open(b, debtor_id, as_of) == sorted([*before, "FOLLOW-1"])
    # and back: B settles it, A's next answer no longer lists it
    _post(b, {"payments": [{"invoice_id": "FOLLOW-1",
                            "paid_on": (as_of - dt.timedelta(days=1)).isoformat(),
                            "amount": 750.0}]})
    assert _open(a, debtor_id, as_of) == before
    assert _open(b, debtor_id, as_of) == before
    # a dispute opened through A and resolved through B: A holds the resolution
    dispute = {"invoice_id": "FOLLOW-1", "opened_on": (as_of - dt.timedelta(days=5)).isoformat()}
    _post(a, {"disputes": [dispute]})
    _post(b, {"disputes": [dispute | {"resolved_on": (as_of - dt.timedelta(days=2)).isoformat()}]})
    _open(a, debtor_id, as_of)
    held = a.app.state.engine.stored.disputes.filter(pl.col("invoice_id") == "FOLLOW-1")
    assert held["resolved_on"].to_list() == [as_of - dt.timedelta(days=2)]
    # each process holds each row once, whoever stored it
    for client in (a, b):
        invoices = client.app.state.engine.stored.invoices
        assert invoices.filter(pl.col("invoice_id") == "FOLLOW-1").height == 1


def test_a_store_that_cannot_be_read_leaves_the_answers_as_they_were(tables, tmp_path,
                                                                    monkeypatch, caplog):
    from paycadence.config import load_policy
    from paycadence.serving.engine import Engine
    from paycadence.serving.schemas import DebtorIn
    from paycadence.serving.store import StoreUnavailableError

    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    engine = Engine(policy=load_policy(), stored=tables)
    engine.follow(store)
    as_of, debtor = tables.last_date, [DebtorIn(debtor_id=tables.debtors["debtor_id"][0])]
    answer = engine.recommend(as_of, debtor)

    def down(after):
        raise StoreUnavailableError("feedback store fb.db: database is locked")

    monkeypatch.setattr(store, "changes", down)
    with caplog.at_level("WARNING", logger="paycadence.serving.engine"):
        assert engine.recommend(as_of, debtor) == engine.recommend(as_of, debtor) == answer
    warned = [r for r in caplog.records if "not read" in r.getMessage()]
    assert len(warned) == 1  # once until the store can be read again
    monkeypatch.undo()
    store.add({"invoices": [_invoice("BACK-1", debtor[0].debtor_id, as_of)]})
    assert "BACK-1" in [i["invoice_id"] for i in engine.recommend(as_of, debtor)[0]["invoices"]]
    store.close()
