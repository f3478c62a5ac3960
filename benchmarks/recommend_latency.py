"""Latency of ``POST /recommend`` for one call of N debtors with full history.

Simulates a company, trains a champion into a temporary MLflow store, starts a real
``paycadence serve`` on loopback, then times R calls of N stateless debtors (each with its whole
history) and, as the baseline in the same run, the same work in-process without HTTP
(``Engine.recommend`` on the parsed request). Prints p50/p95 and their ratio.

    .venv/bin/python benchmarks/recommend_latency.py --debtors 300 --calls 20 --batch 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(round(q * (len(values) - 1))), len(values) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    from company import company

    from paycadence.config import Settings, load_policy
    from paycadence.serving.engine import Engine
    from paycadence.serving.schemas import RecommendRequest

    made = company(args.debtors, args.days, prefix="pc-bench-")
    tmp, tables, as_of, request_for = made.tmp, made.tables, made.as_of, made.request_for
    body = request_for(tables, as_of, stateless=True, limit=args.batch)
    n = len(body["debtors"])
    history_rows = sum(len(v) for d in body["debtors"] for v in d["history"].values())

    engine = Engine.load(load_policy(), model_name=Settings().model_name, alias="champion")
    base = []
    for _ in range(args.calls):
        t = time.perf_counter()
        req = RecommendRequest.model_validate(body)
        engine.recommend(req.as_of, req.debtors)
        base.append(time.perf_counter() - t)

    port = 8765
    env = {**os.environ, "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp / 'fb.db'}"}
    exe = str(Path(sys.executable).parent / "paycadence")
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--data", str(tmp / "clean")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(timeout=120) as client:
            client.post(f"{url}/recommend", json=body)  # warm-up
            http = []
            for _ in range(args.calls):
                t = time.perf_counter()
                r = client.post(f"{url}/recommend", json=body)
                http.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"one call = {n} debtors, {history_rows} history rows "
          f"({args.days} days of history), {args.calls} calls")
    for name, xs in (("HTTP /recommend", http), ("in-process baseline", base)):
        print(f"{name:22s} p50 {1000 * statistics.median(xs):7.1f} ms   "
              f"p95 {1000 * percentile(xs, 0.95):7.1f} ms")
    ratio = statistics.median(http) / statistics.median(base)
    print(f"ratio HTTP / in-process (p50): {ratio:.2f}")


if __name__ == "__main__":
    main()
