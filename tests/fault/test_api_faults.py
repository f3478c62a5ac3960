"""Faults of the HTTP API (issue 19, items 6-9, 11, 12): each test reproduces the fault on a
real server process, a real PostgreSQL server or real sockets where the fault is theirs, and
checks what the service now does instead."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import polars as pl
import pytest

from paycadence.bounds import MAX_AMOUNT, MAX_DAY, MIN_DAY
from paycadence.config import Policy
from paycadence.guard import DebtorState, InvoiceState
from paycadence.models.policy import BookValues, decide
from paycadence.models.policy.value import BANDS, VALUED
from paycadence.serving.schemas import MAX_OPEN_INVOICES
from paycadence.serving.snapshot import BookDays

from .conftest import ON_POSTGRES

DAY = dt.date(2026, 9, 1)
AS_OF = dt.date(2026, 11, 22)
HUGE = math.nextafter(MAX_AMOUNT, 0)  # the largest amount the bounds allow


def _finite(value, where: str = "$") -> list[str]:
    """Paths of the non-finite numbers in a decoded JSON value."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _finite(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _finite(v, f"{where}[{i}]")]
    return []


def _strict_json(text: str):
    """``json.loads`` that refuses ``Infinity``, ``-Infinity`` and ``NaN`` (not JSON)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


# --- item 7: every store error is a 503 with Retry-After --------------------------------------

@ON_POSTGRES
def test_feedback_answers_503_never_500_while_postgres_is_down(postgres, postgres_url,
                                                               server_env, clean_dir,
                                                               start_server, tmp_path):
    env = {**server_env, "PAYCADENCE_DATABASE_URL": postgres_url}
    log = tmp_path / "server.log"
    server = start_server(env, clean_dir, log)
    invoice = {"invoice_id": "PG-1", "debtor_id": "PG-D", "issue_date": DAY.isoformat(),
               "due_date": (DAY + dt.timedelta(days=30)).isoformat(), "amount": 100.0}
    # a payment of an invoice neither posted with it nor known: the store is asked about it
    payments_only = {"payments": [{"invoice_id": "PG-9", "paid_on": DAY.isoformat(),
                                   "amount": 10.0}]}
    try:
        assert httpx.post(f"{server.url}/feedback", json={"invoices": [invoice]},
                          timeout=30).status_code == 200
        postgres.crash()
        try:
            for body in (payments_only, {"invoices": [dict(invoice, invoice_id="PG-2")]},
                         {"payments": [{"invoice_id": "PG-1", "paid_on": DAY.isoformat(),
                                        "amount": 10.0}]}):
                answer = httpx.post(f"{server.url}/feedback", json=body, timeout=60)
                assert answer.status_code == 503, (body, answer.text)
                assert int(answer.headers["retry-after"]) > 0
                assert answer.json()["detail"].startswith("feedback not stored, try again")
                # the database's own words (host, port, user, driver text) stay in the log
                assert "127.0.0.1" not in answer.text and "postgres" not in answer.text
            assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        finally:
            postgres.restart()
        # the same bodies once the database is back: stored, or refused for what they are
        answer = httpx.post(f"{server.url}/feedback", json=payments_only, timeout=60)
        assert answer.status_code == 422 and "unknown invoice 'PG-9'" in answer.text
        answer = httpx.post(f"{server.url}/feedback", json={"payments": [
            {"invoice_id": "PG-1", "paid_on": DAY.isoformat(), "amount": 10.0}]}, timeout=60)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    assert "Traceback" not in log.read_text()


# --- item 8: one invoice id under two debtors of one call -------------------------------------

def _open(invoice_id: str, paid: float = 0.0) -> dict:
    return {"invoice_id": invoice_id, "issue_date": DAY.isoformat(),
            "due_date": (DAY + dt.timedelta(days=14)).isoformat(), "amount": 500.0,
            "amount_paid": paid}


@pytest.mark.parametrize("where", ["open_invoices", "history", "open-and-history"])
def test_an_invoice_under_two_debtors_is_refused_naming_both(make_client, where):
    client = make_client()
    a = {"debtor_id": "a", "open_invoices": [_open("X-1")]}
    b = {"debtor_id": "b", "open_invoices": [_open("X-1", paid=400.0)]}
    if where != "open_invoices":
        row = {k: v for k, v in _open("X-1").items() if k != "amount_paid"}
        b = {"debtor_id": "b", "open_invoices": [_open("X-2")],
             "history": {"invoices": [row, {**row, "invoice_id": "X-2"}]}}
        if where == "history":
            a = {"debtor_id": "a", "history": {"invoices": [row]}}
    alone = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [a]})
    assert alone.status_code == 200
    answer = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [a, b]})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "'X-1'" in detail and "'a'" in detail and "'b'" in detail, detail
    # the same invoice in one debtor's open_invoices and history is that debtor's own
    row = {k: v for k, v in _open("X-1").items() if k != "amount_paid"}
    own = {"debtor_id": "a", "open_invoices": [_open("X-1")], "history": {"invoices": [row]}}
    assert client.post("/recommend", json={"as_of": AS_OF.isoformat(),
                                           "debtors": [own]}).status_code == 200


# --- item 9: two identical same-day partial payments are two payments --------------------------

def _paid_in_two_halves(payment_ids=(None, None)) -> dict:
    payments = []
    for pid in payment_ids:
        row = {"invoice_id": "H-1", "paid_on": (DAY + dt.timedelta(days=20)).isoformat(),
               "amount": 250.0}
        payments.append(row if pid is None else {**row, "payment_id": pid})
    return {
        "debtors": [{"debtor_id": "HALVES"}],
        "invoices": [{"invoice_id": "H-1", "debtor_id": "HALVES", "issue_date": DAY.isoformat(),
                      "due_date": (DAY + dt.timedelta(days=14)).isoformat(), "amount": 500.0}],
        "payments": payments,
    }


@pytest.mark.parametrize("payment_ids", [(None, None), ("P-1", "P-2")],
                         ids=["occurrences", "payment-ids"])
def test_two_identical_partial_payments_settle_the_invoice(make_client, payment_ids):
    client = make_client()
    body = _paid_in_two_halves(payment_ids)
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"]["payments"] == 2
    stored = client.post("/recommend", json={"as_of": AS_OF.isoformat(),
                                             "debtors": [{"debtor_id": "HALVES"}]}).json()
    # the same rows as a stateless history: the invoice is paid, nothing is open
    history = {"invoices": [{k: v for k, v in r.items() if k != "debtor_id"}
                            for r in body["invoices"]], "payments": body["payments"]}
    stateless = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [
        {"debtor_id": "HALVES", "history": history}]}).json()
    for rec in (stored["recommendations"][0], stateless["recommendations"][0]):
        assert (rec["action"], rec["invoice_ids"], rec["reason"]) == ("wait", [],
                                                                      "nothing open"), rec
    # a true re-post stores nothing
    again = client.post("/feedback", json=body).json()
    assert again["stored"]["payments"] == 0 and again["duplicates"]["payments"] == 2
    one_more = client.post("/recommend", json={"as_of": AS_OF.isoformat(),
                                               "debtors": [{"debtor_id": "HALVES"}]}).json()
    assert one_more["recommendations"][0]["reason"] == "nothing open"


def test_the_same_payment_id_twice_is_one_payment(make_client):
    client = make_client()
    answer = client.post("/feedback", json=_paid_in_two_halves(("P-1", "P-1")))
    assert answer.status_code == 200
    assert (answer.json()["stored"]["payments"], answer.json()["duplicates"]["payments"]) == (1, 1)
    rec = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [
        {"debtor_id": "HALVES"}]}).json()["recommendations"][0]
    assert rec["invoice_ids"] == ["H-1"] and rec["invoices"][0]["open_amount"] == 250.0


# --- item 11: per-debtor work is linear; capped; the day passes' queue is bounded -------------

class _CountingId(str):
    """An invoice id that counts the equality tests made on it (a tuple's ``in`` makes one per
    element, a set's ``in`` none but a hash match)."""

    calls = 0

    def __eq__(self, other):
        _CountingId.calls += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _comparisons(n: int) -> int:
    """Equality tests one decision about a debtor with ``n`` overdue open invoices makes."""
    invoices = tuple(InvoiceState(_CountingId(f"Q-{i}"), AS_OF - dt.timedelta(days=40 + i % 30),
                                  100.0 + i, contacts=1) for i in range(n))
    state = DebtorState("BIG", invoices, contact_days=(AS_OF - dt.timedelta(days=20),))
    worth = {a: 0.5 + 0.01 * k for k, a in enumerate((*VALUED, "collection"))}
    values = BookValues({i.invoice_id: worth for i in invoices},
                        {a: [1e6] * len(BANDS) for a in (*VALUED[1:], "collection")})
    _CountingId.calls = 0
    choice = decide(state, AS_OF, Policy(), values)
    assert choice.action != "wait" and len(choice.invoice_ids) > n // 2
    return _CountingId.calls


def test_one_debtors_decision_is_linear_in_its_open_invoices():
    small, large = _comparisons(250), _comparisons(2000)
    # quadratic (tuple membership per invoice): ~64 times more for 8 times the invoices
    assert large <= 8 * max(small, 1) + 8 * 2000, (small, large)


def test_open_invoices_over_the_cap_are_refused_naming_the_debtor(make_client):
    client = make_client()
    many = [_open(f"C-{i}") for i in range(MAX_OPEN_INVOICES + 1)]
    answer = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [
        {"debtor_id": "SMALL", "open_invoices": many[:3]},
        {"debtor_id": "HUGE-BOOK", "open_invoices": many}]})
    assert answer.status_code == 422, answer.text[:300]
    detail = answer.json()["detail"]
    assert detail.startswith("debtors[1]") and f"limit of {MAX_OPEN_INVOICES}" in detail, detail
    ok = client.post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [
        {"debtor_id": "HUGE-BOOK", "open_invoices": many[:MAX_OPEN_INVOICES]}]})
    assert ok.status_code == 200


def test_new_days_start_a_bounded_number_of_passes(tables):
    book = BookDays(days=2)
    try:
        first = dt.date(2025, 1, 1)
        for k in range(40):  # forty stored-debtor calls, each about another day
            book.ready(tables, first + dt.timedelta(days=k), None, lambda: tables)
            assert len(book.pending()) <= book.max_pending
        # one pending pass per day: asking again for a pending day starts nothing
        pending = book.pending()
        for day in pending:
            book.ready(tables, day, None, lambda: tables)
        assert book.pending() <= pending
    finally:
        book.close(wait=True)


# --- item 12: bodies that trickle in, malformed JSON, the token rule in the app ---------------

@pytest.mark.parametrize(("content", "headers", "status", "says"), [
    (b'{"as_of": "2026-11-22", "debtors": []}', {"Content-Type": "text/plain"}, 415,
     "got 'text/plain'"),
    (b'{"as_of": "2026-11-22", "debtors": []}', {}, 415, "no Content-Type given"),
    (b'{"as_of": "2026-11-22", "debtors": []}',
     {"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type: application/json"),
    (b'{"invoices": [{"invoice_id": "M\xfcller"}]}', {"Content-Type": "application/json"}, 400,
     "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, 400,
     "nested too deeply"),
], ids=["text-plain", "no-content-type", "form-encoded", "latin-1-bytes", "deep-nesting"])
def test_a_body_not_sent_as_json_says_so(make_client, content, headers, status, says):
    """Before: 422 'body: Input should be a valid dictionary' (no Content-Type, curl -d's
    form encoding) and FastAPI's bare 'There was an error parsing the body'."""
    client = make_client()
    for path in ("/recommend", "/feedback"):
        answer = client.post(path, content=content, headers=headers)
        assert answer.status_code == status, answer.text
        assert says in answer.json()["detail"], answer.text


def test_malformed_json_is_400_naming_the_line_and_column(make_client):
    client = make_client()
    for path in ("/recommend", "/feedback"):
        answer = client.post(path, content=b'{"as_of": "2026-11-22", "debtors": [}',
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("body: not valid JSON at line 1, column 37 (character 36)"), \
            detail
        # a body over several lines (as a client pretty-prints it): the line, and the column
        # within it, of the first fault, also as numbers
        answer = client.post(path, content=b'{\n  "as_of": "2026-11-22",\n  "debtors": [\n'
                                           b'    {"debtor_id": "a",}\n  ]\n}',
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        (error,) = answer.json()["errors"]
        assert (error["loc"], error["line"], error["column"]) == (["body"], 4, 23), error
        assert "line 4, column 23" in error["msg"], error


def _trickle(port: int, n: int, *, headers_done: bool, seconds: float) -> list[bytes | None]:
    """Open ``n`` loopback connections that send a request a byte at a time (headers complete
    and a body trickling, or headers trickling) for at most ``seconds``; return what each
    received before the server closed it (None when it was still open at the end)."""
    head = (b"POST /feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        if headers_done:
            s.sendall(head + b"{")
        else:
            s.sendall(head[:10])
        socks.append(s)
    got = {id(s): b"" for s in socks}
    closed: set[int] = set()
    deadline = time.monotonic() + seconds
    sent = 10
    while time.monotonic() < deadline and len(closed) < n:
        for s in socks:
            if id(s) in closed:
                continue
            try:
                s.send(b" " if headers_done else head[sent:sent + 1])
            except OSError:
                pass
            try:
                chunk = s.recv(65536)
                if chunk == b"":
                    closed.add(id(s))
                got[id(s)] += chunk
            except BlockingIOError:
                pass
            except OSError:
                closed.add(id(s))
        sent = min(sent + 1, len(head) - 3)
        time.sleep(0.25)
    for s in socks:
        s.close()
    return [got[id(s)] if id(s) in closed else None for s in socks]


def test_trickled_bodies_and_headers_are_cut_off(server_env, clean_dir, start_server, tmp_path):
    env = {**server_env, "PAYCADENCE_BODY_TIMEOUT_SECONDS": "2",
           "PAYCADENCE_HEADER_TIMEOUT_SECONDS": "2",
           "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    log = tmp_path / "server.log"
    server = start_server(env, None, log)
    try:
        bodies = _trickle(server.port, 40, headers_done=True, seconds=20)
        assert all(b is not None and b.startswith(b"HTTP/1.1 408 ") for b in bodies), \
            bodies[:3]
        assert all(b"not received within 2 s" in b for b in bodies)
        heads = _trickle(server.port, 40, headers_done=False, seconds=20)
        # closed by the server, with no answer (no request was ever complete)
        assert all(b is not None and b"HTTP/1.1" not in b for b in heads), heads[:3]
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    finally:
        server.stop()
    text = log.read_text()
    assert "not received within 2 s: 408" in text and "no complete request headers" in text


def _non_loopback_address() -> str | None:
    """An address of this host that is not loopback (found without sending anything)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: connect() on UDP sends no packet
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.parametrize("token", [None, "s3cret-token"])
def test_the_app_under_plain_uvicorn_keeps_the_token_rule(server_env, tmp_path, token):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to reach the app on")
    from tests.conftest import free_port

    port = free_port()
    env = {**server_env, "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    env.pop("PAYCADENCE_API_TOKEN", None)
    if token:
        env["PAYCADENCE_API_TOKEN"] = token
    log = tmp_path / "uvicorn.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"),
                             "paycadence.serving.app:app_from_env", "--factory",
                             "--host", "0.0.0.0", "--port", str(port)],
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        outside, inside = f"http://{address}:{port}", f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{inside}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"{outside}/health", timeout=10).status_code == 200
        body = {"as_of": AS_OF.isoformat(), "debtors": [{"debtor_id": "T-1"}]}
        far = httpx.post(f"{outside}/recommend", json=body, timeout=30)
        near = httpx.post(f"{inside}/recommend", json=body, timeout=30)
        if token is None:
            assert far.status_code == 403 and "PAYCADENCE_API_TOKEN" in far.json()["detail"]
            assert httpx.get(f"{outside}/openapi.json", timeout=10).status_code == 403
            assert near.status_code == 200  # loopback needs no credentials
        else:
            assert far.status_code == 401 and near.status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.post(f"{outside}/recommend", json=body, headers=auth,
                              timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- item 6: the largest values the bounds allow give finite, schema-valid outputs ------------

def _huge_request() -> dict:
    """Debtors at the bounds: amounts just under MAX_AMOUNT, due dates on MAX_DAY and MIN_DAY,
    as_of far from every date."""
    debtors = []
    for k, (issue, due) in enumerate([(MIN_DAY, MAX_DAY), (MIN_DAY, MIN_DAY),
                                      (MAX_DAY, MAX_DAY)]):
        paid = {"invoice_id": f"B{k}-P", "issue_date": MIN_DAY.isoformat(),
                "due_date": MIN_DAY.isoformat(), "amount": HUGE}
        debtors.append({
            "debtor_id": f"BOUND-{k}",
            "open_invoices": [{"invoice_id": f"B{k}-{j}", "issue_date": issue.isoformat(),
                               "due_date": due.isoformat(), "amount": HUGE,
                               "amount_paid": 0} for j in range(3)],
            "history": {"invoices": [paid], "payments": [
                {"invoice_id": f"B{k}-P", "paid_on": MAX_DAY.isoformat(), "amount": HUGE}]},
        })
    return debtors


@pytest.mark.parametrize("as_of", [MAX_DAY, MIN_DAY + dt.timedelta(days=1)],
                         ids=["as-of-last-day", "as-of-first-days"])
def test_the_largest_values_give_finite_schema_valid_answers(server, response_schema, as_of):
    debtors = [d for d in _huge_request()
               if min(i["issue_date"] for i in d["open_invoices"]) <= as_of.isoformat()]
    answer = httpx.post(f"{server.url}/recommend", json={"as_of": as_of.isoformat(),
                                                          "debtors": debtors}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    decoded = _strict_json(answer.text)
    assert _finite(decoded) == []
    jsonschema.validate(decoded, response_schema)


def test_the_batch_outputs_are_finite_at_the_bounds(trained, tmp_path):
    from paycadence.config import load_policy
    from paycadence.serving.batch import recommend_batch

    data = tmp_path / "data"
    data.mkdir()
    rows = _huge_request()
    pl.DataFrame([{"debtor_id": d["debtor_id"]} for d in rows]).write_csv(data / "debtors.csv")
    pl.DataFrame([{**{k: v for k, v in i.items() if k != "amount_paid"},
                   "debtor_id": d["debtor_id"]} for d in rows for i in
                  [*d["open_invoices"], *d["history"]["invoices"]]]).write_csv(
        data / "invoices.csv")
    pl.DataFrame([p for d in rows for p in d["history"]["payments"]]).write_csv(
        data / "payments.csv")
    for suffix in (".jsonl", ".csv"):
        out = tmp_path / f"recs{suffix}"
        result = recommend_batch(data, as_of=MAX_DAY, out=out, policy=load_policy(None),
                                 model_name=os.environ.get("PAYCADENCE_MODEL_NAME",
                                                           "paycadence-risk"))
        assert result.recommendations, "the bound debtors have open invoices"
        if suffix == ".jsonl":
            for line in out.read_text().splitlines():
                assert _finite(_strict_json(line)) == []
        else:
            frame = pl.read_csv(out)
            for col, dtype in frame.schema.items():
                if dtype.is_float():
                    assert frame[col].is_finite().all(), col
            for text in frame["invoices"].to_list() + frame["cash_forecast"].to_list():
                assert _finite(_strict_json(text)) == []
        cash = pl.read_csv(result.cash_path)
        assert cash["expected"].is_finite().all()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_non_finite_forecast_is_refused_not_written(make_client, tmp_path, suffix, caplog):
    from paycadence.models.recommend import NonFiniteOutputError
    from paycadence.serving.batch import write_recommendations

    # a real recommendation (fallback forecasts) whose days late a model made infinite, as
    # models did for values beyond the bounds before ingest enforced them
    rec = make_client().post("/recommend", json={"as_of": AS_OF.isoformat(), "debtors": [
        {"debtor_id": "INF", "open_invoices": [_open("I-1")]}]}).json()["recommendations"][0]
    rec["risk"]["expected_days_late"] = math.inf
    rec["invoices"][0]["expected_cash_by_week"][3] = math.nan
    out = tmp_path / f"recs{suffix}"
    with pytest.raises(NonFiniteOutputError, match="debtor 'INF' invoices"):
        write_recommendations([rec], out)
    assert not out.exists()
    assert "not written, a forecast is not a finite number" in caplog.text


def test_serve_caps_the_connections_it_holds(server_env, start_server, tmp_path):
    env = {**server_env, "PAYCADENCE_BODY_TIMEOUT_SECONDS": "3",
           "PAYCADENCE_LIMIT_CONCURRENCY": "10",
           "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    server = start_server(env, None, tmp_path / "server.log")
    try:
        answers = _trickle(server.port, 25, headers_done=True, seconds=20)
        assert all(a is not None for a in answers), "every connection was closed"
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503 ")]
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408 ")]
        # those over the cap are refused at once; the others held only until their deadline
        assert len(refused) >= 15 and len(refused) + len(timed_out) == 25, answers
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    finally:
        server.stop()
