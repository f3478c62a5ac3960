"""What the depth of the explained model costs in ``/recommend``: CPU per call, A/B in one process.

Simulates a company, trains the models twice on the same snapshots — the ``p_late`` classifier
with unlimited depth (the baseline) and with ``train.late_max_depth`` = each ``--depths`` value —
and, for each, runs the engine behind ``/recommend`` in-process on the same requests: 10 stored
debtors, 200 stateless debtors with a year of history, 1,000 stored debtors (every answer with
its top-3 SHAP reasons). Prints CPU milliseconds per call (this process, all threads), the
ratio to the baseline, and the holdout AUC / Brier of each ``p_late``. CPU time, not wall
time, so a busy machine shifts both sides alike.

    .venv/bin/python benchmarks/explain_depth.py --debtors 1500 --depths 4 6
"""

from __future__ import annotations

import argparse
import datetime as dt
import time


def cpu_ms(fn, calls: int) -> float:
    fn()  # warm-up (and the day's book of stored debtors)
    t = time.process_time()
    for _ in range(calls):
        fn()
    return 1000 * (time.process_time() - t) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=1500)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--depths", type=int, nargs="+", default=[4])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "serving"))
    import polars as pl
    from conftest import request_for  # the request builder the tests use

    from paycadence.config import Params, TrainParams, load_policy
    from paycadence.data import Tables
    from paycadence.data.simulate import simulate
    from paycadence.features import invoice_features
    from paycadence.serving.engine import Engine
    from paycadence.serving.schemas import RecommendRequest
    from paycadence.training.train import evaluate, fit, snapshots, time_split, treated_rows

    tables = simulate(args.debtors, days=args.days, seed=args.seed).tables
    as_of = tables.last_date - dt.timedelta(days=1)
    base = Params()
    snaps, last = snapshots(tables, base)
    train_rows, holdout, split = time_split(snaps, holdout_share=base.train.holdout_share,
                                            embargo_days=base.train.embargo_days)
    treated = treated_rows(tables, before=split - dt.timedelta(days=base.train.embargo_days),
                           horizon_days=base.train.horizon_days, data_end=last)

    ids = invoice_features(tables, as_of=as_of)["debtor_id"].unique(
        maintain_order=True).to_list()
    cut = as_of - dt.timedelta(days=365)
    year = tables.for_debtors(ids[:200])
    recent = year.invoices.filter(pl.col("issue_date") >= cut)
    keep = recent["invoice_id"].implode()
    year = Tables(year.debtors, recent, *(t.filter(pl.col("invoice_id").is_in(keep))
                                           for t in (year.payments, year.actions, year.disputes)))
    bodies = {
        "10 stored": [{"as_of": as_of.isoformat(), "debtors": [{"debtor_id": d}
                                                              for d in ids[i:i + 10]]}
                      for i in range(0, 200, 10)],
        "200 stateless": [request_for(year, as_of, stateless=True, limit=200)],
        "1000 stored": [{"as_of": as_of.isoformat(),
                         "debtors": [{"debtor_id": d} for d in ids[:1000]]}],
    }
    requests = {k: [RecommendRequest.model_validate(b) for b in v] for k, v in bodies.items()}
    print(f"company: {args.debtors} debtors, {tables.invoices.height} invoices, "
          f"{len(ids)} debtors with an open invoice on {as_of}")

    results = {}
    for depth in (-1, *args.depths):
        params = base.model_copy(update={"train": TrainParams(
            **(base.train.model_dump() | {"late_max_depth": depth}))})
        models = fit(train_rows, params, treated, None)
        scores = evaluate(models, holdout, horizon_days=params.train.horizon_days)
        engine = Engine(policy=load_policy(), models=models, version=f"depth{depth}",
                        stored=tables)
        row = {"trees": models.boosters["late"].num_trees(), "auc": scores["late_auc"],
               "brier": scores["late_brier"]}
        for name, reqs in requests.items():
            k = iter(range(10**9))

            def call(reqs=reqs, k=k, engine=engine):
                req = reqs[next(k) % len(reqs)]
                return engine.recommend(req.as_of, req.debtors)

            row[name] = cpu_ms(call, args.calls if name != "10 stored" else 10 * args.calls)
        results[depth] = row

    first = results[-1]
    for depth, row in results.items():
        label = "unlimited" if depth == -1 else f"depth {depth}"
        calls = "   ".join(f"{name} {row[name]:7.1f} ms ({row[name] / first[name]:.2f}x)"
                           for name in requests)
        print(f"{label:10s} {row['trees']:3d} trees, AUC {row['auc']:.4f}, Brier "
              f"{row['brier']:.4f}:   {calls}")


if __name__ == "__main__":
    main()
