"""Operability of the HTTP service: metrics, request ids, JSON logs, graceful shutdown, workers.

Metrics, request ids and log lines are checked on the app in-process (the rule-based fallback
serves: no training needed); SIGTERM and ``--workers`` on the real ``paycadence serve``.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from paycadence.serving.logs import JsonFormatter

with warnings.catch_warnings():  # starlette suggests httpx2; the httpx it wraps works
    warnings.simplefilter("ignore")

PAYCADENCE = str(Path(sys.executable).parent / "paycadence")
INVOICE = {"invoice_id": "X-1", "issue_date": "2025-11-01", "due_date": "2025-12-01",
           "amount": 100.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def _json_lines(text: str) -> list[dict]:
    """Every non-empty line as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- in-process ----------------------------------------------------------------------------


def test_metrics_count_requests_latency_actions_fallbacks_and_feedback(make_client):
    client = make_client()
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/no-such-path").status_code == 404
    body = {"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "D-1", "open_invoices": [INVOICE]},
        {"debtor_id": "D-2", "open_invoices": [INVOICE | {"invoice_id": "X-2",
                                                          "due_date": "2026-01-10"}]},
        {"debtor_id": "D-3"}]}
    r = client.post("/recommend", json=body)
    assert r.status_code == 200, r.text
    recs = r.json()["recommendations"]
    assert all(rec["model_version"] == "fallback" for rec in recs)
    assert client.post("/recommend", json={"as_of": "2026-01-15"}).status_code == 422
    feedback = {"invoices": [{"invoice_id": "FB-1", "debtor_id": "D-1",
                              "issue_date": "2026-01-01", "due_date": "2026-01-31",
                              "amount": 50.0}],
                "payments": [{"invoice_id": "FB-1", "paid_on": "2026-01-20", "amount": 20.0}]}
    stored = client.post("/feedback", json=feedback).json()["stored"]
    assert client.post("/feedback", json=feedback).status_code == 200  # duplicates: no rows

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    requests = "paycadence_http_requests_total"
    assert value(found, requests, route="/health", method="GET", status="200") == 3
    assert value(found, requests, route="unmatched", method="GET", status="404") == 1
    assert value(found, requests, route="/recommend", method="POST", status="200") == 1
    assert value(found, requests, route="/recommend", method="POST", status="422") == 1
    assert value(found, requests, route="/feedback", method="POST", status="200") == 2
    latency = "paycadence_http_request_duration_seconds"
    assert value(found, f"{latency}_count", route="/health") == 3
    assert value(found, f"{latency}_count", route="/recommend") == 2
    assert value(found, f"{latency}_bucket", route="/recommend", le="+Inf") == 2
    assert value(found, f"{latency}_sum", route="/recommend") > 0
    by_action = collections.Counter(rec["action"] for rec in recs)
    for action, n in by_action.items():
        assert value(found, "paycadence_recommendations_total", action=action) == n
    assert sum(v for (name, _), v in found.items()
               if name == "paycadence_recommendations_total") == len(recs) == 3
    assert value(found, "paycadence_fallback_recommendations_total") == 3
    assert stored == {"invoices": 1, "payments": 1}
    for table, n in stored.items():
        assert value(found, "paycadence_feedback_rows_stored_total", table=table) == n
    assert value(found, "paycadence_http_requests_in_progress", method="GET") == 1  # this one
    assert value(found, "paycadence_http_requests_in_progress", method="POST") == 0


def test_each_app_has_its_own_metrics(make_client):
    first, second = make_client(), make_client()
    for _ in range(4):
        first.get("/health")
    second.get("/health")
    count = "paycadence_http_requests_total"
    labels = {"route": "/health", "method": "GET", "status": "200"}
    assert value(samples(first.get("/metrics").text), count, **labels) == 4
    assert value(samples(second.get("/metrics").text), count, **labels) == 1


@pytest.mark.parametrize(
    ("given", "kept"),
    [("req-42", True), ("0f9c2e7a-1b3d-4c5e-8f00-123456789abc", True), ("a:b.c_d-e", True),
     ("x" * 64, True), ("x" * 65, False), ("two words", False), ("<script>", False),
     ("a;b", False), ("", False), (None, False)],
    ids=["simple", "uuid", "punctuation", "64-chars", "65-chars", "space", "markup",
         "semicolon", "empty", "absent"],
)
def test_request_id_round_trips_when_safe_or_is_generated(make_client, given, kept):
    client = make_client(api_token="tok")
    headers = {} if given is None else {"X-Request-ID": given}
    for path in ("/health", "/recommend", "/no-such-path"):  # 200, 401, 401
        r = client.get(path, headers=headers)
        got = r.headers["x-request-id"]
        if kept:
            assert got == given
        else:
            assert len(got) == 32 and all(c in "0123456789abcdef" for c in got)
    if not kept:
        assert client.get("/health", headers=headers).headers["x-request-id"] != got


@pytest.fixture
def json_log():
    """Records of every logger, formatted by the server's JSON formatter as they are emitted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_one_json_log_line_per_request_with_its_fields(make_client, json_log):
    client = make_client()
    feedback = {"invoices": [{"invoice_id": "FB-9", "debtor_id": "D-9",
                              "issue_date": "2026-01-01", "due_date": "2026-01-31",
                              "amount": 50.0}]}
    r = client.post("/feedback?x=1", json=feedback, headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
    r = client.get("/health")
    generated = r.headers["x-request-id"]
    lines = _json_lines(json_log.getvalue())
    requests = [x for x in lines if x["logger"] == "paycadence.serving.requests"]
    assert len(requests) == 2
    post, get = requests
    assert {k: post[k] for k in ("method", "path", "route", "status", "request_id", "client")} \
        == {"method": "POST", "path": "/feedback", "route": "/feedback", "status": 200,
            "request_id": "req-42", "client": "testclient"}
    assert isinstance(post["duration_ms"], float) and post["duration_ms"] >= 0
    assert post["level"] == "INFO" and post["time"].endswith("+00:00")
    assert get["request_id"] == generated and get["status"] == 200
    # a route's own record, logged in the worker thread, carries the request id too
    stored = [x for x in lines if x["message"].startswith("feedback stored")]
    assert stored and stored[0]["request_id"] == "req-42"
    server = [x for x in lines if not x["logger"].startswith("httpx")]  # not the test client
    assert "x=1" not in json.dumps(server), "no query string"


def test_the_formatter_keeps_extras_and_exceptions_as_json():
    logger = logging.getLogger("paycadence.tests.formatter")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("failed %s", "here", exc_info=True,
                         extra={"day": dt.date(2026, 1, 2), "ids": {"a"}})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(JsonFormatter().format(records[0]))
    assert entry["message"] == "failed here" and entry["level"] == "ERROR"
    assert entry["day"] == "2026-01-02" and entry["ids"] == "{'a'}"
    assert "ValueError: boom" in entry["exception"]


# --- the real command ----------------------------------------------------------------------


def test_sigterm_lets_the_request_in_flight_finish(until, run_serve, server_env, clean_dir, tables,
                                                   build_request, tmp_path):
    """SIGTERM while a large /recommend is being received: the server stops accepting
    connections, answers that request 200 in full, and exits 0; its log is JSON lines."""
    port, log = _free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    env = server_env | {"PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    proc = run_serve(["--port", str(port), "--data", str(clean_dir)], env, log, url)
    try:
        request = build_request(tables, tables.last_date - dt.timedelta(days=30),
                                stateless=True)
        payload = json.dumps(request).encode()
        gate, answer = threading.Event(), {}

        def body():  # the body's second half waits until SIGTERM was sent
            yield payload[:1000]
            gate.wait(timeout=300)
            yield payload[1000:]

        def call():
            try:
                answer["response"] = httpx.post(f"{url}/recommend", content=body(), timeout=300,
                                                headers={"Content-Type": "application/json",
                                                         "X-Request-ID": "in-flight"})
            except httpx.HTTPError as exc:
                answer["error"] = exc

        client = threading.Thread(target=call)
        client.start()

        def in_flight() -> bool:
            found = samples(httpx.get(f"{url}/metrics", timeout=10).text)
            return value(found, "paycadence_http_requests_in_progress", method="POST") == 1

        until(in_flight, "the request to reach the app")
        proc.send_signal(signal.SIGTERM)

        def refusing() -> bool:
            try:
                httpx.get(f"{url}/health", timeout=2)
            except httpx.ConnectError:
                return True
            except httpx.HTTPError:
                return False
            return False

        until(refusing, "the server to stop accepting connections")
        assert proc.poll() is None, "still running while a request is in flight"
        gate.set()
        client.join(timeout=300)
        assert "error" not in answer, answer.get("error")
        r = answer["response"]
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "in-flight"
        assert len(r.json()["recommendations"]) == len(request["debtors"]) > 50
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    lines = _json_lines(log.read_text())
    done = [x for x in lines if x.get("request_id") == "in-flight"
            and x["logger"] == "paycadence.serving.requests"]
    assert done and done[0]["status"] == 200
    assert any("Shutting down" in x["message"] for x in lines)


def test_workers_serve_and_add_up_their_metrics(until, run_serve, server_env, clean_dir, tmp_path):
    port, log = _free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    env = server_env | {"PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    proc = run_serve(["--port", str(port), "--data", str(clean_dir), "--workers", "2"], env, log,
                     url, timeout=240)
    try:
        def both_started() -> bool:
            lines = _json_lines(log.read_text())
            return sum(x["message"] == "Application startup complete." for x in lines) == 2

        until(both_started, "both workers to start", timeout=240, log=log)
        labels = {"route": "/health", "method": "GET", "status": "200"}
        name = "paycadence_http_requests_total"
        before = value(samples(httpx.get(f"{url}/metrics").text), name, **labels)
        for _ in range(12):
            with httpx.Client() as fresh:  # a new connection each: either worker may answer
                assert fresh.get(f"{url}/health").status_code == 200
        after = value(samples(httpx.get(f"{url}/metrics").text), name, **labels)
        assert after - before == 12, "every worker's requests are counted, whoever answers"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    lines = _json_lines(log.read_text())
    pids = {x["message"] for x in lines if x["message"].startswith("Started server process")}
    assert len(pids) == 2


@pytest.mark.parametrize("workers", ["0", "many"], ids=["zero", "not-a-number"])
def test_bad_workers_is_a_usage_error(workers, tmp_path):
    r = subprocess.run([PAYCADENCE, "serve", "--workers", workers], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--workers" in r.stderr and "Traceback" not in r.stderr


def test_connections_have_nagle_off_even_on_a_socket_bound_like_uvicorn_workers_bind_it():
    """uvicorn's workers accept on a socket bound with protocol number 0, on which asyncio
    leaves Nagle's algorithm on (every small answer then waited ~40 ms for a delayed ACK); the
    service's protocol turns it off on each connection it is given."""
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    from paycadence.serving.protocol import NoDelayH11Protocol

    async def app(scope, receive, send):  # a minimal ASGI app for the protocol to serve
        return None

    async def run() -> tuple[int, int]:
        config = uvicorn.Config(app=app, lifespan="off", log_config=None)
        config.load()
        made: list = []

        def factory():
            proto = NoDelayH11Protocol(config=config, server_state=ServerState(), app_state={})
            made.append(proto)
            return proto

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as uvicorn
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(100):
            if made and made[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        accepted = made[0].transport.get_extra_info("socket")
        result = (accepted.proto, accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        server.close()
        await server.wait_closed()
        return result

    proto, nodelay = asyncio.run(run())
    assert proto == 0, "the accepted socket does not read as TCP: asyncio would skip it"
    assert nodelay != 0
