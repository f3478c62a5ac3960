"""Security of the HTTP service: bind addresses, the bearer token, logs without secrets, CORS.

The bind-address rule and the token are checked on the real ``paycadence serve`` command;
the finer points (every route, the order of checks, log contents, CORS) on the app in-process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from paycadence.config import Settings
from paycadence.errors import ConfigError
from paycadence.serving.app import create_app
from paycadence.serving.deps import require_token
from paycadence.serving.logs import JsonFormatter

with warnings.catch_warnings():  # starlette suggests httpx2; the httpx it wraps works
    warnings.simplefilter("ignore")

PAYCADENCE = str(Path(sys.executable).parent / "paycadence")
TOKEN = "tok-3f9a1c77e2b54d0f8a6e"
MARKER = "MARKER-7d1e0b9c"
INVOICE = {"invoice_id": "X-1", "issue_date": "2025-11-01", "due_date": "2025-12-01",
           "amount": 100.0}


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYCADENCE_")}
    return env | extra


def _free_port(family=socket.AF_INET, host="127.0.0.1") -> int:
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout=60)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --- the bind-address rule, on the real command -------------------------------------------


@pytest.mark.parametrize(
    ("host", "token"),
    [("0.0.0.0", None), ("::", None), ("192.0.2.10", None), ("2001:db8::1", None),
     ("example.com", None), ("[::1]", None), ("", None), ("0.0.0.0", ""), ("::", "   ")],
    ids=["any-ipv4", "any-ipv6", "ipv4", "ipv6", "name", "bracketed", "empty-host",
         "empty-token", "blank-token"],
)
def test_serve_refuses_a_non_loopback_address_without_a_token(host, token, tmp_path):
    env = _env() if token is None else _env(PAYCADENCE_API_TOKEN=token)
    r = subprocess.run([PAYCADENCE, "serve", "--host", host, "--port", "0"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "PAYCADENCE_API_TOKEN" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_serve_on_any_address_with_a_token_guards_all_but_health(run_serve, server_env, tmp_path):
    """Bound to 0.0.0.0 with a token: /health is open, the rest needs the bearer token, and
    neither the token nor a body reaches the server's log."""
    port = _free_port()
    env = server_env | {"PAYCADENCE_API_TOKEN": TOKEN,
                        "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    url, log = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    proc = run_serve(["--host", "0.0.0.0", "--port", str(port)], env, log, url)
    try:
        body = {"as_of": "2026-01-15", "debtors": [{"debtor_id": MARKER,
                                                    "open_invoices": [INVOICE]}]}
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
            assert httpx.get(f"{url}{path}", headers=good).status_code == 200, path
        assert httpx.post(f"{url}/recommend", json=body).status_code == 401
        r = httpx.post(f"{url}/recommend", json=body,
                       headers={"Authorization": f"Bearer {TOKEN}x"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(f"{url}/recommend", json=body, headers=good, timeout=60)
        assert r.status_code == 200, r.text
        assert httpx.post(f"{url}/feedback", json={}, headers=good).status_code == 200
    finally:
        code = _stop(proc)
    assert code == 0
    text = log.read_text()
    assert "/recommend" in text, "the requests were logged"
    assert TOKEN not in text and MARKER not in text


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serve_on_ipv6_loopback_needs_no_token(run_serve, server_env, tmp_path):
    port = _free_port(socket.AF_INET6, "::1")
    env = server_env | {"PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    url = f"http://[::1]:{port}"
    proc = run_serve(["--host", "::1", "--port", str(port)], env, tmp_path / "server.log", url)
    try:
        r = httpx.post(f"{url}/recommend", json={"as_of": "2026-01-15", "debtors": [
            {"debtor_id": "D-1", "open_invoices": [INVOICE]}]}, timeout=60)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/metrics").status_code == 200
    finally:
        code = _stop(proc)
    assert code == 0


# --- the app in-process --------------------------------------------------------------------


def _all_routes(router):
    """Every route, also inside included routers (FastAPI keeps those as one entry each)."""
    for route in router.routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _all_routes(included)
        else:
            yield route


def _routes(app) -> list[tuple[str, str]]:
    return sorted((route.path, method) for route in _all_routes(app)
                  for method in (getattr(route, "methods", None) or ()) if method != "HEAD")


def test_every_endpoint_but_health_needs_the_token(make_client):
    client = make_client(api_token=TOKEN)
    routes = _routes(client.app)
    paths = {p for p, _ in routes}
    assert {"/recommend", "/feedback", "/metrics", "/openapi.json", "/docs", "/redoc",
            "/health"} <= paths
    for path, method in routes:
        expected = 200 if path == "/health" else 401
        for headers in ({}, {"Authorization": f"Bearer {TOKEN[:-1]}"},
                        {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == expected, (method, path, headers, r.text)
        r = client.request(method, path, headers={"Authorization": f"bearer {TOKEN}"})
        assert r.status_code != 401, (method, path)
    assert client.get("/no-such-path").status_code == 401, "unknown paths reveal nothing"


def test_every_route_but_health_depends_on_require_token():
    """The routers guard themselves too, should the middleware ever be removed."""
    app = create_app(Settings(api_token=TOKEN))

    def calls(dependant):
        yield dependant.call
        for dep in dependant.dependencies:
            yield from calls(dep)

    routes = [r for r in _all_routes(app) if isinstance(r, APIRoute)]
    assert len(routes) >= 6
    for route in routes:
        guarded = require_token in set(calls(route.dependant))
        assert guarded == (route.path != "/health"), route.path


@pytest.mark.parametrize(
    ("content", "headers"),
    [(b'{"as_of": ', {"content-type": "application/json"}),
     (b"{}", {"content-type": "application/json", "content-length": "999999999999"})],
    ids=["malformed-json", "huge-length"],
)
def test_the_token_is_checked_before_the_body(make_client, content, headers):
    client = make_client(api_token=TOKEN)
    r = client.post("/recommend", content=content, headers=headers)
    assert r.status_code == 401, r.text


def test_without_a_token_every_endpoint_is_open(make_client):
    client = make_client()
    for path in ("/health", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    r = client.post("/recommend", json={"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "D-1", "open_invoices": [INVOICE]}]})
    assert r.status_code == 200, r.text


def test_no_body_and_no_token_in_the_logs(make_client, caplog):
    """Every record of every logger, at DEBUG, formatted as the server formats it."""
    client = make_client(api_token=TOKEN)
    good = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "trace-1"}
    bad = {"Authorization": f"Bearer {MARKER}-wrong"}
    recommend = {"as_of": "2026-01-15", "debtors": [{"debtor_id": MARKER,
                                                     "open_invoices": [INVOICE]}]}
    feedback = {"invoices": [{"invoice_id": MARKER, "debtor_id": MARKER,
                              "issue_date": "2026-01-01", "due_date": "2026-01-31",
                              "amount": 12.5}]}
    invalid = {"as_of": "2026-01-15", "debtors": [{"debtor_id": MARKER, "open_invoices": [
        INVOICE | {"amount": f"{MARKER}-not-a-number"}]}]}
    with caplog.at_level(logging.DEBUG):
        assert client.post("/recommend", json=recommend, headers=good).status_code == 200
        assert client.post("/feedback", json=feedback, headers=good).status_code == 200
        assert client.post("/recommend", json=invalid, headers=good).status_code == 422
        assert client.post("/recommend", json=recommend, headers=bad).status_code == 401
        assert client.post("/recommend?token=" + MARKER, json=recommend,
                           headers=good).status_code == 200
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    formatter = JsonFormatter()  # (the test's client logs its own URLs: not the server's)
    text = "\n".join([formatter.format(r) for r in server] + [repr(vars(r)) for r in server])
    lines = [r for r in caplog.records if r.name == "paycadence.serving.requests"]
    assert len(lines) == 5, "one line per request"
    assert "feedback stored" in text, "the routes' own records were captured"
    assert MARKER not in text and TOKEN not in text


def test_cors_is_off_by_default(make_client):
    client = make_client()
    origin = {"Origin": "https://ar.example.com"}
    r = client.get("/health", headers=origin)
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = client.options("/recommend", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_cors_origins_allow_those_origins_only(make_client):
    client = make_client(api_token=TOKEN,
                         cors_origins="https://ar.example.com, http://localhost:3000/")
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    for origin in ("https://ar.example.com", "http://localhost:3000"):
        r = client.options("/recommend", headers={"Origin": origin} | preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        r = client.get("/metrics", headers={"Origin": origin,
                                            "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
    r = client.options("/recommend", headers={"Origin": "https://evil.example.com"} | preflight)
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    r = client.get("/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("value", ["*", "ar.example.com", "https://ar.example.com/path",
                                   "ftp://ar.example.com"],
                         ids=["wildcard", "no-scheme", "path", "scheme"])
def test_a_bad_cors_origin_is_a_one_line_error(value, tmp_path):
    with pytest.raises(ConfigError, match="PAYCADENCE_CORS_ORIGINS"):
        create_app(Settings(cors_origins=value))
    r = subprocess.run([PAYCADENCE, "serve", "--port", "0"], cwd=tmp_path, timeout=120,
                       env=_env(PAYCADENCE_CORS_ORIGINS=value), capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: PAYCADENCE_CORS_ORIGINS"), r.stderr
    assert "Traceback" not in r.stderr


def test_a_streamed_body_over_the_limit_is_a_413(make_client):
    """Without Content-Length (chunked), the limit still holds while the body is read."""
    client = make_client(api_token=TOKEN, max_body_bytes=10_000)
    chunk = json.dumps({"as_of": "2026-01-15", "debtors": []}).encode()

    def chunks():
        yield b'{"pad": "'
        for _ in range(100):
            yield b"x" * 500
        yield b'", ' + chunk[1:]

    r = client.post("/recommend", content=chunks(), headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 413, r.text


def test_a_body_declared_over_the_limit_is_a_413_before_it_is_read(make_client):
    client = make_client(max_body_bytes=10_000)
    body = json.dumps({"as_of": "2026-01-15", "debtors": [
        {"debtor_id": f"D-{k}", "open_invoices": [INVOICE]} for k in range(100)]}).encode()
    assert len(body) > 10_000
    r = client.post("/recommend", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "body: over 10000 bytes (PAYCADENCE_MAX_BODY_BYTES)"
    assert r.json()["errors"][0]["loc"] == ["body"]
    # under the limit, the same route answers
    small = json.dumps({"as_of": "2026-01-15", "debtors": [
        {"debtor_id": "D-1", "open_invoices": [INVOICE]}]}).encode()
    r = client.post("/recommend", content=small, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
