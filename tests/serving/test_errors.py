"""The API says no: unknown keys are refused naming them, and every error has one shape
(serving/problems.py, docs/api.md "Errors")."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from paycadence.serving.problems import field_of

OPEN = {"invoice_id": "X-1", "issue_date": "2025-11-01", "due_date": "2025-12-01",
        "amount": 100.0}


def _body(**debtor) -> dict:
    return {"as_of": "2026-01-15", "debtors": [{"debtor_id": "D-x", "open_invoices": [
        dict(OPEN)]} | debtor]}


def _shape(answer: httpx.Response, openapi: dict) -> list[dict]:
    """The answer's errors, checked against the documented ``Problem`` and the rules of the
    shape: at least one error, ``field`` is ``loc`` written one way, ``problem`` is ``msg``."""
    body = answer.json()
    jsonschema.validate(body, {"$ref": "#/components/schemas/Problem",
                               "components": openapi["components"]})
    assert body["errors"], body
    for error in body["errors"]:
        assert error["field"] == field_of(error["loc"]) and error["problem"] == error["msg"]
        assert "." not in error["field"] or not any(
            part.isdigit() for part in error["field"].split(".")), error  # never debtors.0.x
    return body["errors"]


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def openapi(client) -> dict:
    return client.get("/openapi.json").json()


@pytest.mark.parametrize(("path", "body", "loc"), [
    ("/recommend", _body() | {"debtor": []}, ["body", "debtor"]),
    ("/recommend", {"as_of": "2026-01-15", "debtors": [{"debtor_id": "D-x", "open_invoice": [
        OPEN]}]}, ["body", "debtors", 0, "open_invoice"]),
    ("/recommend", _body(history={"paymnts": []}), ["body", "debtors", 0, "history", "paymnts"]),
    ("/recommend", {"as_of": "2026-01-15", "debtors": [{"debtor_id": "D-x", "open_invoices": [
        OPEN | {"amount_payed": 20}]}]}, ["body", "debtors", 0, "open_invoices", 0,
                                          "amount_payed"]),
    ("/feedback", {"paymnts": [{"invoice_id": "X-1", "paid_on": "2026-01-02", "amount": 4}]},
     ["body", "paymnts"]),
], ids=["request", "debtor", "history", "open-invoice", "feedback"])
def test_an_unknown_key_is_a_422_naming_it(client, openapi, path, body, loc):
    """Before, ``/feedback {"paymnts": [...]}`` answered 200 ``{"stored": {}}`` (the payments
    lost) and ``"open_invoice"`` answered "wait, nothing open"."""
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    (error,) = _shape(answer, openapi)
    assert error["loc"] == loc and f"unknown key '{loc[-1]}'" in error["msg"], error


def test_every_unknown_key_is_listed_and_nothing_is_stored(client, openapi):
    body = {"paymnts": [], "actons": [], "invoices": []}
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 422
    assert [e["loc"] for e in _shape(answer, openapi)] == [["body", "paymnts"],
                                                          ["body", "actons"]]


def test_table_rows_keep_ignoring_extra_columns(client):
    """A table's extra columns are kept and ignored (CONTRACT.md §1): rows of ``history`` and
    ``/feedback`` may carry an ERP's own columns, and an open invoice may name its own debtor."""
    history = {"invoices": [OPEN | {"debtor_id": "D-x", "erp_ref": "A/7"}],
               "actions": [{"invoice_id": "X-1", "sent_on": "2025-12-05", "channel": "email",
                            "template": "friendly-1"}]}
    answer = client.post("/recommend", json=_body(history=history))
    assert answer.status_code == 200, answer.text
    answer = client.post("/recommend", json={"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "D-x", "open_invoices": [OPEN | {"debtor_id": "D-x"}]}]})
    assert answer.status_code == 200, answer.text
    answer = client.post("/recommend", json={"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "D-x", "open_invoices": [OPEN | {"debtor_id": "D-y"}]}]})
    assert answer.status_code == 422 and "not this debtor's 'D-x'" in answer.text
    answer = client.post("/feedback", json={"debtors": [{"debtor_id": "F-1", "crm": "x"}],
                                            "invoices": [OPEN | {"debtor_id": "F-1",
                                                                 "erp_ref": "A/7"}]})
    assert answer.status_code == 200 and answer.json()["stored"] == {"debtors": 1,
                                                                     "invoices": 1}


def test_the_ignore_setting_keeps_lenient_clients_working(make_client):
    client = make_client(unknown_keys="ignore")
    answer = client.post("/recommend", json=_body(note="from our dunning engine"))
    assert answer.status_code == 200, answer.text
    answer = client.post("/feedback", json={"debtors": [{"debtor_id": "F-2"}], "batch": 7})
    assert answer.status_code == 200 and answer.json()["stored"] == {"debtors": 1}


@pytest.mark.parametrize(("call", "status", "loc"), [
    (lambda c: c.post("/recommend", content=b'{"as_of": ',
                      headers={"Content-Type": "application/json"}), 400, ["body"]),
    (lambda c: c.post("/recommend", content=b"as_of=2026-01-15",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}), 415,
     ["body"]),
    (lambda c: c.post("/recommend", content=b"{}", headers={
        "Content-Type": "application/json", "Content-Length": str(10**12)}), 413, ["body"]),
    (lambda c: c.post("/recommend", json=_body(opted_out=["pigeon"])), 422,
     ["body", "debtors", 0, "opted_out", 0]),
    (lambda c: c.post("/recommend", json={"debtors": []}), 422, ["body", "as_of"]),
    (lambda c: c.post("/feedback", json={"payments": [{"invoice_id": "NOPE",
                                                       "paid_on": "2026-01-02", "amount": 4}]}),
     422, ["body", "payments", 0, "invoice_id"]),
    (lambda c: c.post("/feedback", json={"invoices": [OPEN]}), 422,
     ["body", "invoices", 0, "debtor_id"]),
    (lambda c: c.get("/no-such-path"), 404, ["path"]),
    (lambda c: c.get("/recommend"), 405, ["path"]),
], ids=["not-json", "form-encoded", "too-large", "field", "missing", "unknown-invoice",
        "route-check", "not-found", "wrong-method"])
def test_every_error_has_one_shape(client, openapi, call, status, loc):
    answer = call(client)
    assert answer.status_code == status, answer.text
    errors = _shape(answer, openapi)
    assert errors[0]["loc"] == loc, errors


def test_a_wrong_token_has_the_shape_too(make_client):
    client = make_client(api_token="s3cret-token")
    answer = client.post("/recommend", json=_body())
    assert answer.status_code == 401
    (error,) = answer.json()["errors"]
    assert error["loc"] == ["header", "authorization"] and "s3cret" not in answer.text


def test_over_real_http_a_typo_is_refused(server):
    """The same through the running service (``paycadence serve``)."""
    answer = httpx.post(f"{server.url}/feedback", json={"paymnts": []})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "paymnts"]
    answer = httpx.post(f"{server.url}/recommend", json={
        "as_of": "2026-01-15", "debtors": [{"debtor_id": "D-x", "open_invoice": [OPEN]}]})
    assert answer.status_code == 422, answer.text
    assert "unknown key 'open_invoice'" in answer.json()["detail"]


def test_a_currency_must_be_iso_4217(client):
    answer = client.post("/recommend", json={"as_of": "2026-01-15", "debtors": [{
        "debtor_id": "D-x", "open_invoices": [OPEN | {"currency": "EURO"}]}]})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "debtors", 0, "open_invoices", 0,
                                                 "currency"]
    assert "'EURO' is not an ISO 4217 currency code" in answer.json()["detail"]
    answer = client.post("/recommend", json={"as_of": "2026-01-15", "debtors": [{
        "debtor_id": "D-x", "open_invoices": [OPEN | {"currency": "gbp"}]}]})
    assert answer.status_code == 200, answer.text
    answer = client.post("/feedback", json={"invoices": [OPEN | {"debtor_id": "F-9",
                                                                 "currency": "XYZ"}]})
    assert answer.status_code == 422 and "XYZ" in answer.json()["detail"]

