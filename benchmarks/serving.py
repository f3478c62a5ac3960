"""Serving speed: /recommend latencies and throughput against ``mlflow models serve``.

Simulates a company, trains a champion into a temporary MLflow store, then starts, on loopback,
a real ``paycadence serve`` (stored history = the company) and ``mlflow models serve`` on the
same registered model, and measures in the same run:

1. one stored debtor per call: p50 / p99 (target p99 ≤ 20 ms), and the first call of a day
   (which computes that day's features of every stored debtor);
2. a stateless call of 200 debtors, each with a year of history: p50 / p95 (target ≤ 250 ms);
3. 1,000 stored debtors in one call, with their top-3 reasons: p50 (target ≤ 1 s);
4. throughput under load (``--clients`` concurrent clients for ``--seconds``): invoices scored
   per second by ``/recommend`` (features, forecasts, policy, SHAP reasons) against rows
   scored per second by MLflow's ``/invocations`` for the very same invoices (their feature
   rows, computed beforehand), the same number of debtors per request (target ratio ≥ 3);
   then ``/recommend`` once a day: every debtor asked once per ``as_of``, the days in order,
   as a dunning engine calls it (nothing of a day asked twice, so nothing the service keeps
   per day is reused by a repeated request): each day's pass inside the measured time (every
   day cold; or started during the day before), and each day made beforehand, outside the
   measured time, as ``serve`` makes today's at midnight.

    .venv/bin/python benchmarks/serving.py --debtors 1500 --seconds 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(round(q * (len(values) - 1))), len(values) - 1)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url}{path} did not come up in {timeout:.0f} s")


def day_ready(client: httpx.Client, url: str, day: dt.date, timeout: float = 300) -> None:
    """Wait until ``/health`` lists ``day`` among the stored book's ready days (a server
    without that field makes the day in the call itself: nothing to wait for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = client.get(f"{url}/health").json().get("stored_days_ready")
        if ready is None or day.isoformat() in ready:
            return
        time.sleep(0.01)
    raise SystemExit(f"the day {day} of the stored book was not ready in {timeout:.0f} s")


def load_days(url: str, days: list, clients: int, prepare) -> float:
    """Rows per second of ``clients`` threads sending each day's requests once (``days``: per
    day, a list of (JSON body, rows it scores)), day after day; before each day ``prepare(n)``
    runs while the clients wait, outside the measured time. The clients keep their
    connections from day to day; a day's time runs from its first request to its last
    answer."""
    gate = threading.Barrier(clients + 1)
    today: list = []
    turn = [itertools.count()]
    done = [0] * clients
    failed: list[str] = []

    def worker(k: int) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in days:
                gate.wait()  # the day is ready: go
                while not failed:
                    i = next(turn[0])
                    if i >= len(today):
                        break
                    body, rows = today[i]
                    r = client.post(url, content=body, headers=JSON)
                    if r.status_code != 200:
                        failed.append(f"{url}: {r.status_code} {r.text[:300]}")
                        break
                    done[k] += rows
                gate.wait()  # the day is done

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    seconds = 0.0
    for n, bodies in enumerate(days):
        prepare(n)
        today[:] = bodies
        turn[0] = itertools.count()
        gate.wait()
        t = time.perf_counter()
        gate.wait()
        seconds += time.perf_counter() - t
    for th in threads:
        th.join()
    if failed:
        raise SystemExit(failed[0])
    return sum(done) / seconds


def made_ahead(url: str, day: dt.date, debtor_id: str, workers: int,
               timeout: float = 300) -> None:
    """Have every worker make ``day`` of the stored book, as ``serve`` makes today's at
    midnight, and wait until they all list it ready: one-debtor calls about it and ``/health``
    on new connections (a new connection may reach any worker), until it has been ready in
    ``5 × workers`` answers running."""
    body = {"as_of": day.isoformat(), "debtors": [{"debtor_id": debtor_id}]}
    for _ in range(2 * workers):
        httpx.post(f"{url}/recommend", json=body, timeout=120).raise_for_status()
    deadline, running = time.monotonic() + timeout, 0
    while running < 5 * workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"the day {day} of the stored book was not ready in {timeout} s")
        ready = httpx.get(f"{url}/health", timeout=30).json().get("stored_days_ready") or []
        if day.isoformat() in ready:
            running += 1
        else:
            running = 0
            httpx.post(f"{url}/recommend", json=body, timeout=120).raise_for_status()
            time.sleep(0.01)


def timed(client: httpx.Client, url: str, body: dict, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        r = client.post(url, json=body)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")
    return out


JSON = {"content-type": "application/json"}


def load(url: str, bodies, clients: int, seconds: float) -> float:
    """Rows per second over ``seconds`` with ``clients`` threads taking requests in turn:
    ``bodies`` is a list of (request body, rows it scores), cycled, or a function of the
    request's number giving one; a body is a dict, or JSON already encoded (bytes), so that
    the load generator spends its CPU on sending, not on encoding the same bodies again."""
    take = bodies if callable(bodies) else (lambda i: bodies[i % len(bodies)])
    turn = itertools.count()  # shared by the threads: each request number is taken once
    done = [0] * clients
    failed: list[str] = []
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < stop and not failed:
                try:
                    body, rows = take(next(turn))
                except Exception as exc:  # noqa: BLE001 - reported by the main thread
                    failed.append(str(exc))
                    return
                r = client.post(url, content=body, headers=JSON) if isinstance(body, bytes) \
                    else client.post(url, json=body)
                if r.status_code != 200:
                    failed.append(f"{url}: {r.status_code} {r.text[:300]}")
                    return
                done[k] += rows

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failed:
        raise SystemExit(failed[0])
    return sum(done) / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=1500)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--clients", type=int, default=None,
                        help="concurrent clients in the throughput tests (default: 4 per "
                             "worker; fewer leave a worker of either server idle)")
    parser.add_argument("--per-request", type=int, default=10,
                        help="debtors per request in the throughput test")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="workers of both servers")
    parser.add_argument("--days-back", type=int, default=120,
                        help="days available to the once-a-day throughput tests")
    parser.add_argument("--ready-days", type=int, default=10,
                        help="days of the once-a-day test with each day made beforehand")
    args = parser.parse_args()
    args.clients = args.clients or 4 * args.workers

    from company import company

    from paycadence.features import invoice_features

    made = company(args.debtors, args.days, prefix="pc-serving-")
    tmp, tables, trained, as_of, request_for = (made.tmp, made.tables, made.trained,
                                                made.as_of, made.request_for)
    feats = invoice_features(tables, as_of=as_of)
    ids = feats["debtor_id"].unique(maintain_order=True).to_list()
    print(f"company: {args.debtors} debtors, {tables.invoices.height} invoices, "
          f"{len(ids)} debtors with an open invoice on {as_of}; model version {trained.version}")

    # a year of history per stateless debtor
    year = tables.for_debtors(ids)
    from paycadence.data import Tables

    cut = as_of - dt.timedelta(days=365)
    import polars as pl

    recent = year.invoices.filter(pl.col("issue_date") >= cut)
    year = Tables(year.debtors, recent, year.payments.filter(pl.col("invoice_id").is_in(
        recent["invoice_id"].implode())), year.actions.filter(pl.col("invoice_id").is_in(
            recent["invoice_id"].implode())), year.disputes.filter(pl.col("invoice_id").is_in(
                recent["invoice_id"].implode())))
    stateless = request_for(year, as_of, stateless=True, limit=200)

    exe = str(Path(sys.executable).parent)
    env = {**os.environ, "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp / 'fb.db'}",
           "PATH": f"{exe}:{os.environ.get('PATH', '')}"}  # mlflow runs `uvicorn` from PATH
    ours_port, theirs_port = free_port(), free_port()
    ours = subprocess.Popen(
        [f"{exe}/paycadence", "serve", "--port", str(ours_port), "--data", str(tmp / "clean"),
         *(["--workers", str(args.workers)] if args.workers > 1 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "ours.log", "w"))
    theirs = subprocess.Popen(
        [f"{exe}/mlflow", "models", "serve", "-m", f"models:/paycadence-risk/{trained.version}",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(theirs_port),
         "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "mlflow.log", "w"))
    ours_url, theirs_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
    try:
        wait_up(ours_url, "/health", ours)
        wait_up(theirs_url, "/ping", theirs)
        with httpx.Client(timeout=120) as client:
            one = [{"as_of": as_of.isoformat(), "debtors": [{"debtor_id": d}]} for d in ids]
            for body in one[:5]:  # the first starts the day's pass
                client.post(f"{ours_url}/recommend", json=body)
            day_ready(client, ours_url, as_of)
            single = []
            for k in range(args.calls * 5):
                single += timed(client, f"{ours_url}/recommend", one[k % len(one)], 1)
            # the first call of a day computes its own debtor and starts that day's pass (the
            # features and forecasts of every stored debtor) in the background
            first, passes = [], []
            for k in range(1, 6):
                day = as_of - dt.timedelta(days=k)
                t = time.perf_counter()
                first += timed(client, f"{ours_url}/recommend", {
                    "as_of": day.isoformat(), "debtors": [{"debtor_id": ids[k]}]}, 1)
                day_ready(client, ours_url, day)
                passes.append(time.perf_counter() - t)
            client.post(f"{ours_url}/recommend", json=one[0])
            day_ready(client, ours_url, as_of)
            timed(client, f"{ours_url}/recommend", stateless, 2)
            batch = timed(client, f"{ours_url}/recommend", stateless, args.calls)
            thousand = {"as_of": as_of.isoformat(),
                        "debtors": [{"debtor_id": d} for d in ids[:1000]]}
            timed(client, f"{ours_url}/recommend", thousand, 1)
            big = timed(client, f"{ours_url}/recommend", thousand, max(5, args.calls // 3))

        # the throughput test: the same debtors, k per request, on both servers
        k = args.per_request
        groups = [ids[i:i + k] for i in range(0, len(ids) - k + 1, k)]
        by_debtor = feats.partition_by("debtor_id", as_dict=True)
        features = trained.models.features

        def mlflow_body(rows: pl.DataFrame) -> tuple[bytes, int]:
            """MLflow's request for the feature rows ``rows`` (NaN sent as null)."""
            frame = rows.select(features).fill_null(float("nan")).to_pandas()
            return json.dumps({"dataframe_split": {
                "columns": list(features),
                "data": [[None if v != v else v for v in r] for r in frame.to_numpy().tolist()]}}
            ).encode(), rows.height

        ours_bodies, theirs_bodies = [], []
        for group in groups:
            rows = pl.concat([by_debtor[(d,)] for d in group])
            ours_bodies.append((json.dumps({"as_of": as_of.isoformat(), "debtors": [
                {"debtor_id": d} for d in group]}).encode(), rows.height))
            theirs_bodies.append(mlflow_body(rows))
        load(f"{theirs_url}/invocations", theirs_bodies[:5], 1, 2)  # warm-up
        theirs_rate = load(f"{theirs_url}/invocations", theirs_bodies, args.clients,
                           args.seconds)
        load(f"{ours_url}/recommend", ours_bodies[:5], 1, 2)
        ours_rate = load(f"{ours_url}/recommend", ours_bodies, args.clients, args.seconds)

        # once a day: every debtor asked once per day, the days in order (as a dunning engine
        # calls), so nothing of a day is asked twice and each day's first call computes that
        # day of the stored book (its features and forecasts) inside the measured time
        start = as_of - dt.timedelta(days=args.days_back)
        days = [start + dt.timedelta(days=n) for n in range(args.days_back)]
        open_on = {day: dict(invoice_features(tables, as_of=day).group_by("debtor_id").len()
                             .iter_rows()) for day in days}

        last = [0]

        def daily(ahead: bool):
            """Request number i of the once-a-day run: each day's groups in turn; ``ahead``:
            each day begins with a one-debtor call about the next day, which starts that day's
            pass while this day's calls go on (what the service does itself at midnight for
            today); it scores no rows of the day."""
            per = len(groups) + ahead

            def take(i: int) -> tuple[dict, int]:
                n, j = divmod(i, per)
                if n + 1 >= len(days):
                    raise ValueError(f"--days-back {args.days_back} ran out: raise it")
                last[0] = max(last[0], n)
                day = days[n]
                if ahead and j == 0:
                    return ({"as_of": days[n + 1].isoformat(),
                             "debtors": [{"debtor_id": groups[0][0]}]}, 0)
                group = groups[j - ahead]
                return ({"as_of": day.isoformat(), "debtors": [{"debtor_id": d} for d in group]},
                        sum(open_on[day].get(d, 0) for d in group))
            return take

        cold_rate = load(f"{ours_url}/recommend", daily(False), args.clients, args.seconds)
        cold_days = last[0] + 1
        days = days[cold_days + 1:]  # days no call has named yet
        last[0] = 0
        ahead_rate = load(f"{ours_url}/recommend", daily(True), args.clients, args.seconds)
        ahead_days = last[0] + 1
        # once a day with each day made beforehand, outside the measured time, as `serve`
        # makes today's at midnight: what a dunning engine's calls during the day meet
        ready = days[ahead_days + 1:ahead_days + 1 + args.ready_days]
        if len(ready) < args.ready_days:
            raise SystemExit(f"--days-back {args.days_back} ran out: raise it")
        # each day's debtors with an open invoice that day, k per request, on both servers
        # (the same rows: mlflow is sent their feature rows of that day)
        ours_days, theirs_days = [], []
        for day in ready:
            on_day = invoice_features(tables, as_of=day)
            debtors = sorted(open_on[day])
            day_groups = [debtors[i:i + k] for i in range(0, len(debtors), k)]
            ours_days.append([(json.dumps({"as_of": day.isoformat(), "debtors": [
                {"debtor_id": d} for d in group]}).encode(),
                sum(open_on[day][d] for d in group)) for group in day_groups])
            theirs_days.append([mlflow_body(on_day.filter(pl.col("debtor_id").is_in(group)))
                                for group in day_groups])
        ready_rate = load_days(f"{ours_url}/recommend", ours_days, args.clients,
                               lambda n: made_ahead(ours_url, ready[n], ids[0], args.workers))
        theirs_ready = load_days(f"{theirs_url}/invocations", theirs_days, args.clients,
                                 lambda n: None)
    finally:
        for proc in (ours, theirs):
            proc.terminate()
        for proc in (ours, theirs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def ms(x: float) -> str:
        return f"{1000 * x:8.1f} ms"

    print(f"1. one stored debtor ({len(single)} calls): p50 {ms(statistics.median(single))}   "
          f"p99 {ms(percentile(single, 0.99))}   (target p99 ≤ 20 ms)")
    print(f"   the first call of a day ({len(first)} days): p50 {ms(statistics.median(first))}   "
          f"max {ms(max(first))}; the day ready for every stored debtor after p50 "
          f"{ms(statistics.median(passes))}")
    rows = sum(len(v) for d in stateless["debtors"] for v in d["history"].values())
    print(f"2. stateless, {len(stateless['debtors'])} debtors with a year of history "
          f"({rows} history rows, {len(batch)} calls): p50 {ms(statistics.median(batch))}   "
          f"p95 {ms(percentile(batch, 0.95))}   (target p95 ≤ 250 ms)")
    print(f"3. {len(thousand['debtors'])} stored debtors with top-3 reasons ({len(big)} calls): "
          f"p50 {ms(statistics.median(big))}   max {ms(max(big))}   (target ≤ 1 s)")
    print(f"4. throughput, {args.clients} clients, {k} debtors per request, {args.seconds:.0f} s "
          f"each, {args.workers} worker(s) each: /recommend {ours_rate:,.0f} invoices/s "
          f"(with policy and reasons) vs mlflow models serve {theirs_rate:,.0f} rows/s "
          f"(forecasts only): ratio {ours_rate / theirs_rate:.2f} (target ≥ 3)")
    print(f"   once a day (each debtor once per day, the days in order, nothing of a day asked "
          f"twice), each day's pass inside the measured time:\n"
          f"     every day cold ({cold_days} days): /recommend {cold_rate:,.0f} invoices/s, "
          f"ratio {cold_rate / theirs_rate:.2f}\n"
          f"     each day's pass started during the day before ({ahead_days} days): "
          f"/recommend {ahead_rate:,.0f} invoices/s, ratio {ahead_rate / theirs_rate:.2f}\n"
          f"   once a day, each day made beforehand as `serve` makes today's at midnight "
          f"(only the calls measured, {len(ready)} days): /recommend {ready_rate:,.0f} "
          f"invoices/s vs mlflow models serve {theirs_ready:,.0f} rows/s on those days' rows, "
          f"sent the same way: ratio {ready_rate / theirs_ready:.2f}")

if __name__ == "__main__":
    main()
