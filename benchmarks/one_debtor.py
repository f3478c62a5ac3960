"""Time of ``POST /recommend`` work for ONE debtor with N open invoices (issue 19, item 11).

Builds a stateless request of one debtor with N open invoices (each a history invoice too, with
a few reminders), parses it as the API does (the per-debtor cap of 10,000 lifted through the
validation context, to measure above it), and times ``Engine.recommend`` in-process with the
rule-based fallback (the per-debtor policy work is the same with models). ``--profile`` prints
the top functions by cumulative time.

    .venv/bin/python benchmarks/one_debtor.py --invoices 1000 10000 40000
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import time

AS_OF = dt.date(2026, 11, 22)


def body(n: int) -> dict:
    invoices, actions = [], []
    for i in range(n):
        issue = AS_OF - dt.timedelta(days=30 + i % 200)
        due = issue + dt.timedelta(days=30)
        invoices.append({"invoice_id": f"X-{i}", "issue_date": issue.isoformat(),
                         "due_date": due.isoformat(), "amount": 100.0 + i % 50,
                         "amount_paid": 0})
        if i % 3 == 0 and (AS_OF - due).days > 60:
            actions.append({"invoice_id": f"X-{i}", "channel": "email", "step": 1,
                            "sent_on": (AS_OF - dt.timedelta(days=40)).isoformat()})
    history = {"invoices": [{k: v for k, v in r.items() if k != "amount_paid"}
                            for r in invoices], "actions": actions}
    return {"as_of": AS_OF.isoformat(),
            "debtors": [{"debtor_id": "BIG", "open_invoices": invoices, "history": history}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[1000, 10000, 40000])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from paycadence.config import load_policy
    from paycadence.serving.engine import Engine
    from paycadence.serving.schemas import RecommendRequest

    engine = Engine(policy=load_policy(None))
    for n in args.invoices:
        request = RecommendRequest.model_validate(body(n), context={"max_open_invoices": None})
        start = time.perf_counter()
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
        recs = engine.recommend(request.as_of, request.debtors)
        seconds = time.perf_counter() - start
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        print(f"{n:>6} open invoices: {seconds:6.2f} s  action {recs[0]['action']} "
              f"on {len(recs[0]['invoice_ids'])} invoices", flush=True)


if __name__ == "__main__":
    main()
