"""The HTTP API, called over real HTTP on a real server process."""

from __future__ import annotations

import copy
import datetime as dt
import json

import httpx
import jsonschema
import polars as pl
import pytest


def test_health_says_models_are_loaded(server, trained, sim_dir):
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["models_loaded"] is True
    assert body["model_version"] == f"risk:{trained.version}"
    assert body["book"] == sim_dir.name  # trained on that folder: its derived book


def test_health_lists_the_days_the_stored_book_is_ready_for(server, tables, until):
    """Today's day is made when the service starts; a call about another day starts that
    day's pass, and /health lists the day once every stored debtor's rows are made."""
    def ready() -> list[str]:
        return httpx.get(f"{server.url}/health").json()["stored_days_ready"]

    until(lambda: dt.date.today().isoformat() in ready(), "today's day made at start")
    day = tables.last_date - dt.timedelta(days=3)
    debtor = tables.debtors["debtor_id"][0]
    first = httpx.post(f"{server.url}/recommend", timeout=60, json={
        "as_of": day.isoformat(), "debtors": [{"debtor_id": debtor}]})
    assert first.status_code == 200, first.text
    until(lambda: day.isoformat() in ready(), "the day of a call made in the background")
    again = httpx.post(f"{server.url}/recommend", timeout=60, json={
        "as_of": day.isoformat(), "debtors": [{"debtor_id": debtor}]})
    assert again.json() == first.json()


def test_stateless_and_stored_answers_agree(server, tables, response_schema, build_request):
    """The same debtor, by history or by id, gets the same recommendation."""
    as_of = tables.last_date + dt.timedelta(days=1)
    stateless = httpx.post(f"{server.url}/recommend",
                           json=build_request(tables, as_of, stateless=True), timeout=60)
    stored = httpx.post(f"{server.url}/recommend",
                        json=build_request(tables, as_of, stateless=False), timeout=60)
    assert stateless.status_code == 200, stateless.text
    assert stored.status_code == 200, stored.text
    jsonschema.validate(stateless.json(), response_schema)
    jsonschema.validate(stored.json(), response_schema)
    a, b = stateless.json()["recommendations"], stored.json()["recommendations"]
    assert [r["debtor_id"] for r in a] == [r["debtor_id"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x["action"] == y["action"], (x, y)
        assert x["invoice_ids"] == y["invoice_ids"]
        assert x["risk"]["p_late"] == pytest.approx(y["risk"]["p_late"], abs=1e-6)


def test_history_rows_as_clients_write_them_get_the_answer_of_clean_rows(server, tables,
                                                                         build_request):
    """History rows are validated as typed dicts (serving/schemas.py): padded strings are
    trimmed, channels lower-cased, unknown keys ignored, and an optional key left out reads
    as null, exactly as the models they replaced did."""
    as_of = tables.last_date - dt.timedelta(days=20)
    clean = build_request(tables, as_of, stateless=True, limit=15)
    messy = copy.deepcopy(clean)
    left_out = 0
    for debtor in messy["debtors"]:
        history = debtor["history"]
        for row in (r for rows in history.values() for r in rows):
            row["note"] = "from the ERP"
            for key in [k for k, v in row.items() if v is None]:
                del row[key]
                left_out += 1
        for row in history["actions"]:
            row["channel"] = f" {row['channel'].upper()} "
        for row in history["invoices"]:
            row["invoice_id"] = f"  {row['invoice_id']}"
    assert left_out > 0 and any(d["history"]["actions"] for d in messy["debtors"])
    a = httpx.post(f"{server.url}/recommend", json=clean, timeout=60)
    b = httpx.post(f"{server.url}/recommend", json=messy, timeout=60)
    assert a.status_code == 200 and b.status_code == 200, b.text
    assert a.json() == b.json()


def test_two_hundred_debtors_with_history_in_one_call(server, tables, response_schema,
                                                     build_request):
    as_of = tables.last_date - dt.timedelta(days=30)
    body = build_request(tables, as_of, stateless=True, limit=200)
    r = httpx.post(f"{server.url}/recommend", json=body, timeout=60)
    assert r.status_code == 200
    recs = r.json()["recommendations"]
    assert len(recs) == len(body["debtors"])
    jsonschema.validate(r.json(), response_schema)
    # the cash forecast: per invoice, per debtor (their sum) and for the request's book
    book = r.json()["cash_forecast"]
    assert [w["week"] for w in book] == list(range(1, 14))
    assert book[0]["start"] == as_of.isoformat()
    for rec in recs:
        debtor = [w["expected"] for w in rec["cash_forecast"]]
        by_invoice = [sum(i["expected_cash_by_week"][w] for i in rec["invoices"])
                      for w in range(13)]
        assert debtor == pytest.approx(by_invoice, abs=0.02 * max(len(rec["invoices"]), 1))
        assert sum(debtor) <= sum(i["open_amount"] for i in rec["invoices"]) + 0.5
        for reason in rec["explanation"]:
            assert reason.get("effect") in (None, "raises", "lowers")
    for w in range(13):
        assert book[w]["expected"] == pytest.approx(
            sum(rec["cash_forecast"][w]["expected"] for rec in recs), abs=0.01 * len(recs))


def test_unknown_debtor_gets_a_cold_start_recommendation(server, response_schema):
    body = {"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "NEW-1", "open_invoices": [
            {"invoice_id": "N-1", "issue_date": "2025-11-01", "due_date": "2025-12-01",
             "amount": 420.0}]},
        {"debtor_id": "NEW-2"},
    ]}
    r = httpx.post(f"{server.url}/recommend", json=body)
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), response_schema)
    first, second = r.json()["recommendations"]
    assert first["invoices"][0]["invoice_id"] == "N-1"
    # 45 days overdue, never reminded: the schedule's first reminder, unless the book's own log
    # says (in both halves of its debtors, with support) that waiting brings in more
    assert first["action"] in ("email", "sms", "letter") or (
        first["action"] == "wait"
        and first["reason"].startswith("learnt from this book's log: waiting is worth")
        and "for the schedule's email" in first["reason"]), first["reason"]
    assert second["action"] == "wait" and second["invoice_ids"] == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("as_of"), "as_of"),
        (lambda b: b["debtors"][0]["open_invoices"][0].update(amount=-5), "amount"),
        (lambda b: b["debtors"][0]["open_invoices"][0].update(due_date="2025-13-01"),
         "due_date"),
        (lambda b: b["debtors"][0]["open_invoices"][0].update(due_date="2020-01-01"),
         "due_date is before issue_date"),
        (lambda b: b["debtors"].append(dict(b["debtors"][0])), "debtor_id twice"),
        (lambda b: b["debtors"][0]["open_invoices"].append(
            dict(b["debtors"][0]["open_invoices"][0])), "invoice_id twice"),
        (lambda b: b["debtors"][0].update(history={"actions": [
            {"invoice_id": "X-1", "sent_on": "2025-11-02", "channel": "fax"}]}), "channel"),
        (lambda b: b["debtors"][0].update(history={"payments": [
            {"invoice_id": "ZZZ", "paid_on": "2025-11-02", "amount": 3}]}), "ZZZ"),
        (lambda b: b["debtors"][0].update(opted_out=["pigeon"]), "opted_out"),
        (lambda b: b.update(as_of="9999-01-01"), "as_of"),
    ],
    ids=["missing-as_of", "negative-amount", "bad-date", "due-before-issue", "duplicate-debtor",
         "duplicate-invoice", "unknown-channel", "history-unknown-invoice", "unknown-opt-out",
         "date-out-of-range"],
)
def test_bad_requests_get_a_4xx_naming_the_problem(server, mutate, field):
    body = {"as_of": "2026-01-15", "debtors": [{"debtor_id": "D-x", "open_invoices": [
        {"invoice_id": "X-1", "issue_date": "2025-11-01", "due_date": "2025-12-01",
         "amount": 100.0}]}]}
    mutate(body)
    r = httpx.post(f"{server.url}/recommend", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"] or field in json.dumps(r.json()["errors"])


def test_malformed_json_is_a_4xx(server):
    r = httpx.post(f"{server.url}/recommend", content=b'{"as_of": ', headers={
        "content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_feedback_is_stored_idempotently_and_used(server, tables):
    debtor = tables.debtors["debtor_id"][0]
    body = {
        "invoices": [{"invoice_id": "FB-1", "debtor_id": debtor, "issue_date": "2030-01-01",
                      "due_date": "2030-01-31", "amount": 99.5}],
        "payments": [{"invoice_id": "FB-1", "paid_on": "2030-02-03", "amount": 40}],
        "actions": [{"invoice_id": "FB-1", "sent_on": "2030-02-02", "channel": "email",
                     "step": 1, "propensity": 0.95}],
    }
    first = httpx.post(f"{server.url}/feedback", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == {"invoices": 1, "payments": 1, "actions": 1}
    again = httpx.post(f"{server.url}/feedback", json=body)
    assert again.json()["stored"] == {"invoices": 0, "payments": 0, "actions": 0}
    assert again.json()["duplicates"] == {"invoices": 1, "payments": 1, "actions": 1}
    rec = httpx.post(f"{server.url}/recommend", json={"as_of": "2030-02-20", "debtors": [
        {"debtor_id": debtor}]}).json()["recommendations"][0]
    fb = [i for i in rec["invoices"] if i["invoice_id"] == "FB-1"]
    assert fb and fb[0]["open_amount"] == pytest.approx(59.5)


def test_feedback_for_an_unknown_invoice_is_refused_whole(server):
    body = {"payments": [{"invoice_id": "NOPE", "paid_on": "2030-02-03", "amount": 4}]}
    r = httpx.post(f"{server.url}/feedback", json=body)
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]


def test_day_after_day_on_unseen_history(server, response_schema, build_request):
    """Another company the service never saw, morning after morning, statelessly: every answer
    is contract-valid and breaks no rule given the history."""
    from paycadence.data import simulate
    from paycadence.guard import audit_actions

    tables = simulate(60, days=300, seed=99).tables
    last = tables.last_date
    start = last - dt.timedelta(days=10)
    for k in range(5):
        day = start + dt.timedelta(days=k)
        body = build_request(tables, day, stateless=True, limit=80)
        r = httpx.post(f"{server.url}/recommend", json=body, timeout=60)
        assert r.status_code == 200
        jsonschema.validate(r.json(), response_schema)
        recs = r.json()["recommendations"]
        history = tables.actions.filter(pl.col("sent_on") < day).to_dicts()
        new = [{"invoice_id": i, "sent_on": day, "channel": x["action"]}
               for x in recs if x["action"] != "wait" for i in x["invoice_ids"]]
        found = audit_actions(history + new, tables.invoices.to_dicts(),
                              tables.disputes.to_dicts(), tables.debtors.to_dicts())
        assert [v for v in found if v.on == day] == []


def test_without_data_the_service_knows_the_training_data(server_env, tables, build_request,
                                                          tmp_path, start_server):
    """``paycadence serve`` alone reads the champion's training data for stored debtors."""
    env = {**server_env, "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    srv = start_server(env, None, tmp_path / "server.log")
    try:
        as_of = tables.last_date
        body = build_request(tables, as_of, stateless=False, limit=30)
        stored = [{"debtor_id": d["debtor_id"]} for d in body["debtors"]]
        r = httpx.post(f"{srv.url}/recommend", json={"as_of": body["as_of"], "debtors": stored})
        assert r.status_code == 200
        recs = r.json()["recommendations"]
        assert all(rec["invoices"] for rec in recs), "every debtor's open invoices are known"
    finally:
        srv.stop()


def test_closed_loop_by_debtor_id_through_feedback(server, response_schema):
    """A dunning engine on a company the service never saw: it posts the history through
    /feedback, then every morning asks by debtor_id, carries out the actions and reports them
    with the day's payments. Our own actions, judged with the history, break no rule."""
    from paycadence.data import known_as_of, simulate
    from paycadence.features import invoice_features
    from paycadence.guard import audit_actions

    sim = simulate(50, days=260, seed=123).tables
    renamed = {}
    for name, frame in sim.items():
        cols = [c for c in ("debtor_id", "invoice_id") if c in frame.columns]
        renamed[name] = frame.with_columns(
            pl.concat_str(pl.lit("L-"), pl.col(c)).alias(c) for c in cols)
    from paycadence.data import Tables

    company = Tables(**renamed)
    start = company.last_date - dt.timedelta(days=12)

    def rows(frame):
        return [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
                for r in frame.to_dicts()]

    first = {"debtors": rows(company.debtors)}
    for name in ("invoices", "payments", "actions", "disputes"):
        first[name] = rows(known_as_of(getattr(company, name), start, table=name))
    r = httpx.post(f"{server.url}/feedback", json=first, timeout=60)
    assert r.status_code == 200, r.text
    ours = []
    for k in range(6):
        day = start + dt.timedelta(days=k)
        mine = company.concat(Tables.from_frames(actions=pl.DataFrame(
            ours, schema={"invoice_id": pl.String, "sent_on": pl.Date, "channel": pl.String})))
        debtors = invoice_features(mine, as_of=day)["debtor_id"].unique().sort().to_list()
        r = httpx.post(f"{server.url}/recommend", json={
            "as_of": day.isoformat(), "debtors": [{"debtor_id": d} for d in debtors]}, timeout=60)
        assert r.status_code == 200, r.text
        jsonschema.validate(r.json(), response_schema)
        done = [{"invoice_id": i, "sent_on": day, "channel": x["action"]}
                for x in r.json()["recommendations"] if x["action"] != "wait"
                for i in x["invoice_ids"]]
        ours += done
        nxt = day + dt.timedelta(days=1)
        report = {
            "actions": rows(pl.DataFrame(done, schema={"invoice_id": pl.String,
                                                       "sent_on": pl.Date,
                                                       "channel": pl.String})),
            "payments": rows(company.payments.filter(pl.col("paid_on") == day)),
            "invoices": rows(company.invoices.filter(pl.col("issue_date") == nxt)),
            "disputes": rows(company.disputes.filter(pl.col("opened_on") == nxt)),
        }
        r = httpx.post(f"{server.url}/feedback", json=report, timeout=60)
        assert r.status_code == 200, r.text
    assert ours, "a company with overdue invoices gets reminders within a week"
    history = company.actions.filter(pl.col("sent_on") < start).to_dicts()
    found = audit_actions(history + ours, company.invoices.to_dicts(),
                          company.disputes.to_dicts(), company.debtors.to_dicts())
    assert [v for v in found if v.on >= start] == []
