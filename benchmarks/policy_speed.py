"""What the learnt decision costs per ``recommend`` call, against the schedule's decision on the
same models in the same process.

Simulates a company, fits its models (forecasts and the value model), then times
``paycadence.models.recommend`` for one debtor at a time and for the whole book, twice over the
same calls: with the value model (every allowed action valued: the roll-forward of the payment
model and the continuation) and with the same bundle stripped of it (the schedule decides).
Prints p50/p95 per call and the ratio.

    .venv/bin/python benchmarks/policy_speed.py --debtors 300 --days 540 --calls 100
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=300)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()

    from paycadence.config import Params, Policy
    from paycadence.data.simulate import simulate
    from paycadence.models import recommend
    from paycadence.models.risk import VALUE_KEYS
    from paycadence.training.fitting import fit_models

    book = simulate(args.debtors, days=args.days, seed=11).tables
    policy = Policy()
    learnt = fit_models(book, Params(), policy)
    schedule = copy.copy(learnt)
    schedule.boosters = {k: v for k, v in learnt.boosters.items() if k not in VALUE_KEYS}
    schedule._derived = {}
    assert learnt.value_model is not None and schedule.value_model is None
    as_of = book.last_date
    debtors = book.invoices["debtor_id"].unique(maintain_order=True).to_list()[:args.calls]

    def timed(models, ids) -> float:
        start = time.perf_counter()
        recommend(book, as_of=as_of, policy=policy, models=models, debtor_ids=ids)
        return time.perf_counter() - start

    print(f"$ .venv/bin/python benchmarks/policy_speed.py --debtors {args.debtors} "
          f"--days {args.days} --calls {args.calls}")
    for what, calls in (("one debtor per call", [[d] for d in debtors]),
                        (f"{len(debtors)} debtors in one call", [debtors] * 5)):
        runs = {"schedule": [], "learnt": []}
        for ids in calls:  # alternating, so that the machine's load falls on both alike
            runs["schedule"].append(timed(schedule, ids))
            runs["learnt"].append(timed(learnt, ids))
        p = {k: (statistics.median(v), sorted(v)[int(0.95 * (len(v) - 1))])
             for k, v in runs.items()}
        print(f"{what}: schedule p50 {1e3 * p['schedule'][0]:.1f} ms p95 "
              f"{1e3 * p['schedule'][1]:.1f} ms; learnt p50 {1e3 * p['learnt'][0]:.1f} ms p95 "
              f"{1e3 * p['learnt'][1]:.1f} ms; ratio p50 {p['learnt'][0] / p['schedule'][0]:.2f}")


if __name__ == "__main__":
    main()
