"""The feedback store, on SQLite and on a real PostgreSQL server: what is stored reads back
equal, nothing is stored twice (even by two processes at once), and a body with a bad row is
refused whole with a 4xx that names the row and field."""

from __future__ import annotations

import datetime as dt
import threading
import warnings

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paycadence.config import Settings
from paycadence.data import COLUMNS, Tables
from paycadence.serving.app import create_app
from paycadence.serving.store import KEYS, FeedbackStore

with warnings.catch_warnings():  # starlette 1.x suggests httpx2 for its test client
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DAY = dt.date(2031, 3, 1)


def _rows() -> dict[str, list[dict]]:
    """One or more rows of every table, with optional columns both given and absent."""
    return {
        "debtors": [
            {"debtor_id": "S-1", "country": "DE", "segment": "b2b",
             "created_on": dt.date(2020, 5, 17), "opted_out": "sms;phone"},
            {"debtor_id": "S-2 – Müller & Söhne", "country": None, "segment": None,
             "created_on": None, "opted_out": None},
        ],
        "invoices": [
            {"invoice_id": "SI-1", "debtor_id": "S-1", "issue_date": DAY,
             "due_date": DAY + dt.timedelta(days=30), "amount": 1250.0, "currency": "EUR"},
            {"invoice_id": "SI-2", "debtor_id": "S-2 – Müller & Söhne", "issue_date": DAY,
             "due_date": DAY, "amount": 0.1 + 0.2, "currency": None},
        ],
        "payments": [
            {"invoice_id": "SI-1", "paid_on": DAY + dt.timedelta(days=40), "amount": 600.25},
            {"invoice_id": "SI-1", "paid_on": DAY + dt.timedelta(days=41), "amount": 649.75},
            # same day and amount as another payment, other invoice: a different key
            {"invoice_id": "SI-2", "paid_on": DAY + dt.timedelta(days=40), "amount": 600.25},
        ],
        "actions": [
            {"invoice_id": "SI-1", "sent_on": DAY + dt.timedelta(days=32), "channel": "email",
             "step": 1, "propensity": 0.95},
            {"invoice_id": "SI-1", "sent_on": DAY + dt.timedelta(days=32), "channel": "sms",
             "step": None, "propensity": None},
        ],
        "disputes": [
            {"invoice_id": "SI-2", "opened_on": DAY + dt.timedelta(days=3), "resolved_on": None},
        ],
    }


def _frame(name: str, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=COLUMNS[name], orient="row").sort(list(KEYS[name]))


def _read_back(url: str) -> Tables:
    """What a new process opening the same database sees."""
    store = FeedbackStore(url)
    try:
        return store.load()
    finally:
        store.close()


def _count(url: str) -> dict[str, int]:
    store = FeedbackStore(url)
    try:
        return store.count()
    finally:
        store.close()


@pytest.fixture
def store(database_url):
    s = FeedbackStore(database_url)
    yield s
    s.close()


def test_rows_read_back_equal(store, database_url):
    rows = _rows()
    stored, dupes, new = store.add(rows)
    assert stored == {name: len(r) for name, r in rows.items()}
    assert not any(dupes.values())
    back = _read_back(database_url)
    for name, expected in rows.items():
        assert_frame_equal(getattr(back, name).sort(list(KEYS[name])), _frame(name, expected))
        assert_frame_equal(_frame(name, [{c: r[c] for c in COLUMNS[name]} for r in new[name]]),
                           _frame(name, expected))


def test_reposting_stores_nothing_twice(store, database_url):
    rows = _rows()
    store.add(rows)
    before = store.count()
    stored, dupes, new = store.add(rows)
    assert not any(stored.values()) and not any(new.values())
    assert dupes == {name: len(r) for name, r in rows.items()}
    # an action repeated inside one call is stored once and counted as a duplicate; two
    # identical payments of one call are two payments (CONTRACT.md §5), stored once however
    # often the call is posted again
    twice = {"actions": [{"invoice_id": "SI-9", "sent_on": DAY, "channel": "email"}] * 2,
             "payments": [{"invoice_id": "SI-9", "paid_on": DAY, "amount": 5.0}] * 2}
    assert store.add(twice)[:2] == ({"actions": 1, "payments": 2},
                                    {"actions": 1, "payments": 0})
    assert store.add(twice)[:2] == ({"actions": 0, "payments": 0},
                                    {"actions": 2, "payments": 2})
    assert store.count() == before | {"actions": before["actions"] + 1,
                                      "payments": before["payments"] + 2}
    assert _count(database_url) == store.count()


def test_a_dispute_posted_again_with_its_resolution_is_updated(store, database_url):
    opened = {"invoice_id": "SI-1", "opened_on": DAY, "resolved_on": None}
    store.add({"disputes": [opened]})
    stored, dupes, _ = store.add({"disputes": [opened | {"resolved_on": DAY}]})
    assert stored == {"disputes": 0} and dupes == {"disputes": 1}
    store.add({"disputes": [opened]})  # a late re-post of the open dispute reopens nothing
    disputes = _read_back(database_url).disputes
    assert disputes.height == 1 and disputes["resolved_on"].to_list() == [DAY]


def test_two_writers_at_once_store_each_row_once(database_url):
    """Two stores on one database (as two server processes would be: separate connection
    pools, separate locks) post overlapping batches at the same time, in opposite orders."""
    batches = [
        {"invoices": [{"invoice_id": f"C-{i}", "debtor_id": "S-1", "issue_date": DAY,
                       "due_date": DAY, "amount": 10.0 + i} for i in range(k, k + 40)],
         "payments": [{"invoice_id": f"C-{i}", "paid_on": DAY, "amount": 1.0}
                      for i in range(k, k + 40)]}
        for k in range(0, 200, 20)
    ]
    stores = [FeedbackStore(database_url), FeedbackStore(database_url)]
    stored = {"invoices": 0, "payments": 0}
    failures: list[BaseException] = []
    gate = threading.Barrier(4)

    def post(store: FeedbackStore, order: list[dict]) -> None:
        try:
            gate.wait()
            for batch in order:
                got = store.add(batch)[0]
                with lock:
                    for name, n in got.items():
                        stored[name] += n
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            failures.append(exc)

    lock = threading.Lock()
    threads = [threading.Thread(target=post, args=(s, order)) for s in stores
               for order in (batches, batches[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert failures == []
    distinct = 200 + 20  # C-0 … C-219
    assert stored == {"invoices": distinct, "payments": distinct}
    assert {k: v for k, v in _count(database_url).items()
            if v} == {"invoices": distinct, "payments": distinct}


# --- over HTTP: the service on each database --------------------------------------------------


@pytest.fixture
def client(database_url, mlflow_uri, clean_dir):
    """The app on ``database_url`` (the rule-based fallback is enough for feedback)."""
    with TestClient(create_app(Settings(database_url=database_url), data_dir=clean_dir),
                    raise_server_exceptions=False) as c:
        yield c


def _iso(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {name: [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
                   for r in rs] for name, rs in rows.items()}


def test_feedback_is_normalised_like_ingest_and_stored_once(client, database_url):
    body = {
        "debtors": [{"debtor_id": " N-1 ", "country": "de", "segment": "B2B",
                     "opted_out": "SMS; Phone"}],
        "invoices": [{"invoice_id": "N-I1", "debtor_id": "N-1", "issue_date": "2031-01-02",
                      "due_date": "2031-02-01", "amount": 80, "currency": "usd"},
                     {"invoice_id": "N-I2", "debtor_id": "N-1", "issue_date": "2031-01-02",
                      "due_date": "2031-02-01", "amount": 20}],
        "actions": [{"invoice_id": "N-I1", "sent_on": "2031-02-03", "channel": "EMAIL"}],
    }
    first = client.post("/feedback", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == {"debtors": 1, "invoices": 2, "actions": 1}
    again = client.post("/feedback", json=body | {"invoices": body["invoices"] * 2})
    assert again.status_code == 200, again.text
    assert again.json()["stored"] == {"debtors": 0, "invoices": 0, "actions": 0}
    assert again.json()["duplicates"] == {"debtors": 1, "invoices": 4, "actions": 1}
    back = _read_back(database_url)
    assert back.debtors.to_dicts() == [{"debtor_id": "N-1", "country": "DE", "segment": "b2b",
                                        "created_on": None, "opted_out": "sms;phone"}]
    assert sorted(back.invoices["currency"].to_list()) == ["EUR", "USD"]
    assert back.actions["channel"].to_list() == ["email"]


GOOD = _iso({
    "invoices": [{"invoice_id": "B-1", "debtor_id": "B", "issue_date": DAY, "due_date": DAY,
                  "amount": 10.0}],
    "payments": [{"invoice_id": "B-1", "paid_on": DAY, "amount": 4.0}],
    "actions": [{"invoice_id": "B-1", "sent_on": DAY, "channel": "email"}],
    "disputes": [{"invoice_id": "B-1", "opened_on": DAY}],
    "debtors": [{"debtor_id": "B"}],
})


def _with(table: str, **row):
    """GOOD plus one more row in ``table``: the bad row comes after good ones."""
    return lambda: GOOD | {table: [*GOOD[table], row]}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_with("payments", invoice_id="B-1", paid_on="2031-03-02", amount=-4),
         "payments[1].amount"),
        (_with("payments", invoice_id="B-1", paid_on="2031-02-30", amount=4),
         "payments[1].paid_on"),
        (_with("payments", invoice_id="B-1", amount=4), "payments[1].paid_on"),
        (_with("payments", invoice_id="NOPE", paid_on="2031-03-02", amount=4),
         "payments[1].invoice_id: unknown invoice 'NOPE'"),
        (_with("actions", invoice_id="B-1", sent_on="2031-03-02", channel="fax"),
         "actions[1].channel"),
        (_with("actions", invoice_id="B-1", sent_on="2031-03-02", channel="sms", propensity=0),
         "actions[1].propensity"),
        (_with("invoices", invoice_id="B-2", debtor_id="B", issue_date="2031-03-02",
               due_date="2031-03-01", amount=3), "due_date is before issue_date"),
        (_with("invoices", invoice_id="B-2", issue_date="2031-03-02", due_date="2031-03-03",
               amount=3), "invoices[1].debtor_id: required in feedback"),
        (_with("invoices", invoice_id="B-2", debtor_id="B", issue_date="2031-03-02",
               due_date="2031-03-03", amount="1e999"), "invoices[1].amount"),
        (_with("disputes", invoice_id="B-1", opened_on="2031-03-05", resolved_on="2031-03-04"),
         "resolved_on is before opened_on"),
        (_with("debtors", debtor_id="B2", opted_out="email;pigeon"),
         "debtors[1].opted_out: unknown channel in opted_out"),
        (_with("debtors", debtor_id="B2\x00"), "debtors[1].debtor_id: contains a NUL character"),
        (_with("debtors", debtor_id=" "), "debtors[1].debtor_id"),
    ],
    ids=["negative-amount", "impossible-date", "missing-paid_on", "unknown-invoice",
         "unknown-channel", "propensity-0", "due-before-issue", "invoice-without-debtor",
         "infinite-amount", "resolved-before-opened", "unknown-opt-out", "nul-character",
         "blank-key"],
)
def test_a_bad_row_refuses_the_whole_body(client, database_url, body, named):
    r = client.post("/feedback", json=body())
    assert r.status_code == 422, r.text
    assert named in r.json()["detail"], r.json()
    assert not any(_count(database_url).values()), "nothing of the body stored"
    # the same body without the bad row is taken
    assert client.post("/feedback", json=GOOD).status_code == 200
