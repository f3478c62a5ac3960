"""Two ``paycadence serve`` instances on one PostgreSQL database, as behind a load balancer
(docs/scaling.md, "Several serve instances on one PostgreSQL"): feedback posted to both at
once, overlapping, is stored exactly once; both are healthy and give the same answer to the
same stateless request. A row posted to one instance is in the other's stored-debtor answers
at its next call, without a restart; so is a row posted to one worker of an instance in its other
worker's answers.

Real processes on a real PostgreSQL server (scripts/postgres.sh), no mocks.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from paycadence.serving.store import KEYS, FeedbackStore

pytestmark = [pytest.mark.xdist_group("postgres"), pytest.mark.slow]

DAY = dt.date(2033, 1, 3)
#: Batches per client thread; batch k holds invoices k*STEP … k*STEP+WIDTH-1, so neighbours
#: overlap; every client thread posts every batch (two threads per instance, in opposite
#: orders).
BATCHES, STEP, WIDTH = 12, 10, 25
TABLES = ("debtors", "invoices", "payments", "actions", "disputes")


def _batch(k: int) -> dict[str, list[dict]]:
    """Rows of every table; keys shared with the neighbouring batches."""
    ids = range(k * STEP, k * STEP + WIDTH)
    day = DAY.isoformat()
    return {
        "debtors": [{"debtor_id": f"TWO-{i % 4}", "segment": "b2b", "country": "NL"}
                    for i in ids if i % 7 == 0],
        "invoices": [{"invoice_id": f"TWO-I{i}", "debtor_id": f"TWO-{i % 4}",
                      "issue_date": day, "due_date": (DAY + dt.timedelta(days=30)).isoformat(),
                      "amount": 100.0 + i} for i in ids],
        "payments": [{"invoice_id": f"TWO-I{i}", "paid_on": day, "amount": 20.0}
                     for i in ids if i % 2 == 0],
        "actions": [{"invoice_id": f"TWO-I{i}", "sent_on": day, "channel": "email",
                     "step": 1, "propensity": 0.9} for i in ids if i % 3 == 0],
        "disputes": [{"invoice_id": f"TWO-I{i}", "opened_on": day} for i in ids if i % 5 == 0],
    }


def _key(name: str, row: dict) -> tuple:
    return tuple(str(row[k]) for k in KEYS[name])


def _start_both(start_server, env, clean_dir, tmp_path):
    """Start both instances at the same time (each creates the tables if missing)."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_server, env, clean_dir, tmp_path / f"{name}.log")
                   for name in ("a", "b")]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for server in started:
            server.stop()
        raise failed[0]
    return started


@pytest.fixture
def two(postgres_url, server_env, clean_dir, start_server, tmp_path):
    """Two ``paycadence serve`` processes, different ports, one PostgreSQL database."""
    env = {**server_env, "PAYCADENCE_DATABASE_URL": postgres_url}
    a, b = _start_both(start_server, env, clean_dir, tmp_path)
    yield a, b, env
    a.stop()
    b.stop()


def test_two_instances_share_one_feedback_store(two, postgres_url, tables, build_request):
    a, b, _ = two
    batches = [_batch(k) for k in range(BATCHES)]
    answers: list[tuple[dict, dict]] = []  # (body, answer) of every 200
    refused: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(4)

    def post(url: str, order: list[dict]) -> None:
        with httpx.Client(timeout=60) as client:
            gate.wait()
            for body in order:
                r = client.post(f"{url}/feedback", json=body)
                with lock:
                    if r.status_code == 200:
                        answers.append((body, r.json()))
                    else:
                        refused.append(f"{url}: {r.status_code} {r.text}")

    threads = [threading.Thread(target=post, args=(server.url, order))
               for server in (a, b) for order in (batches, batches[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == []
    assert len(answers) == 4 * BATCHES

    acked = {name: {_key(name, r) for body, _ in answers for r in body[name]}
             for name in TABLES}
    posted = {name: sum(len(body[name]) for body, _ in answers) for name in TABLES}
    stored = {name: sum(ans["stored"].get(name, 0) for _, ans in answers) for name in TABLES}
    dupes = {name: sum(ans["duplicates"].get(name, 0) for _, ans in answers) for name in TABLES}
    # each distinct row was stored by exactly one of the 48 calls, on one of the two instances;
    # every other time it was posted it was counted as a duplicate
    assert stored == {name: len(keys) for name, keys in acked.items()}
    assert {name: stored[name] + dupes[name] for name in TABLES} == posted

    # the database, read as a new process: every acknowledged row, each once, nothing else
    store = FeedbackStore(postgres_url)
    try:
        back, counts = store.load(), store.count()
    finally:
        store.close()
    for name in TABLES:
        rows = getattr(back, name).to_dicts()
        assert counts[name] == len(rows) == len(acked[name]), name
        assert {_key(name, r) for r in rows} == acked[name], name

    # both healthy, on the same model
    health = [httpx.get(f"{s.url}/health", timeout=30) for s in (a, b)]
    assert [h.status_code for h in health] == [200, 200]
    assert [h.json()["status"] for h in health] == ["ok", "ok"]
    assert health[0].json()["model_version"] == health[1].json()["model_version"]

    # the same stateless request gets the same answer from either instance
    body = build_request(tables, tables.last_date, stateless=True, limit=25)
    got = [httpx.post(f"{s.url}/recommend", json=body, timeout=120) for s in (a, b)]
    assert [r.status_code for r in got] == [200, 200], [r.text[:500] for r in got]
    assert len(got[0].json()["recommendations"]) == len(body["debtors"])
    assert got[0].json() == got[1].json()


def _recommend(url: str, debtor_id: str, as_of: dt.date) -> dict:
    """The recommendation for a stored debtor named by id only, as ``url`` sees it."""
    r = httpx.post(f"{url}/recommend", json={"as_of": as_of.isoformat(),
                                              "debtors": [{"debtor_id": debtor_id}]},
                   timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _open_invoice_ids(url: str, debtor_id: str, as_of: dt.date) -> list[str]:
    """The open invoices of a stored debtor named by id only, as ``url`` sees them."""
    rec = _recommend(url, debtor_id, as_of)["recommendations"][0]
    return sorted(i["invoice_id"] for i in rec["invoices"])


def _post_new_invoice(url: str, debtor_id: str, as_of: dt.date,
                      invoice_id: str = "TWO-NEW-1") -> str:
    body = {"invoices": [{"invoice_id": invoice_id, "debtor_id": debtor_id,
                          "issue_date": (as_of - dt.timedelta(days=40)).isoformat(),
                          "due_date": (as_of - dt.timedelta(days=10)).isoformat(),
                          "amount": 750.0}]}
    r = httpx.post(f"{url}/feedback", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["stored"] == {"invoices": 1}, r.text
    return invoice_id


def test_the_other_instance_sees_feedback_without_a_restart(two, tables):
    """Before each call about stored debtors, an instance reads the rows the other instances
    stored since its last look (docs/scaling.md): no restart, no waiting."""
    a, b, _ = two
    as_of, debtor_id = tables.last_date, tables.debtors["debtor_id"][0]
    before = _open_invoice_ids(b.url, debtor_id, as_of)  # B has computed its book's day
    invoice_id = _post_new_invoice(a.url, debtor_id, as_of)
    assert invoice_id not in before
    assert _open_invoice_ids(a.url, debtor_id, as_of) == sorted([*before, invoice_id])
    # B's very next call, answered 200 after A's: the same answer as A's, whole
    assert _recommend(b.url, debtor_id, as_of) == _recommend(a.url, debtor_id, as_of)
    # and the other way round
    other = _post_new_invoice(b.url, debtor_id, as_of, "TWO-NEW-2")
    assert _open_invoice_ids(a.url, debtor_id, as_of) == sorted([*before, invoice_id, other])


def test_every_worker_of_an_instance_sees_feedback_posted_to_another(
        server_env, clean_dir, run_serve, tables, tmp_path, until):
    """``serve --workers 2`` on a SQLite feedback file: rows posted to one worker are in the
    answers of both, whichever answers (each request line logs its worker's ``pid``)."""
    env = {**server_env, "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    port, log = _free_port(), tmp_path / "workers.log"
    url = f"http://127.0.0.1:{port}"
    proc = run_serve(["--port", str(port), "--data", str(clean_dir), "--workers", "2"],
                     env, log, url)
    try:
        as_of, debtor_id = tables.last_date, tables.debtors["debtor_id"][1]
        seen: list[list[str]] = []

        def both_workers_answered(since: int) -> bool:
            # new connections, two at a time: each worker gets some of them
            with ThreadPoolExecutor(2) as pool:
                seen.extend(pool.map(lambda _: _open_invoice_ids(url, debtor_id, as_of),
                                     range(4)))
            return len(_recommend_pids(log, since)) >= 2

        # both workers up and answering (the second may start after /health answers), each
        # with the day of its stored book computed
        until(lambda: both_workers_answered(0), "both workers answered /recommend",
              timeout=120, every=0, log=log)
        before = seen[-1]
        assert all(ids == before for ids in seen), seen
        lines = len(log.read_text().splitlines())
        invoice_id = _post_new_invoice(url, debtor_id, as_of, "TWO-W-1")
        seen.clear()
        until(lambda: both_workers_answered(lines), "both workers answered after the post",
              timeout=120, every=0, log=log)
        assert all(ids == sorted([*before, invoice_id]) for ids in seen), seen
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recommend_pids(log, since: int) -> set[int]:
    """The worker processes whose request lines in ``log``, from line ``since`` on, are
    POST /recommend."""
    pids = set()
    for line in log.read_text().splitlines()[since:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("route") == "/recommend" and entry.get("status") == 200:
            pids.add(entry["pid"])
    return pids
