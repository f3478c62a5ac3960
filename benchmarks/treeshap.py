"""SHAP reasons from tables against LightGBM's own ``pred_contrib``, in one process.

Simulates a company, trains the champion's models with the project's params, and times the
``p_late`` booster's exact SHAP values both ways on the same feature rows: LightGBM's
``predict(pred_contrib=True)`` on one thread (the baseline, as a call of a few rows ran it)
and :func:`paycadence.models.treeshap.contributions` — for 1, 10 (a 10-debtor call's focus
rows), 200 and 1,000 rows, each call alone ("hot") and after 32 MB of other memory was
touched ("cold", as in a service whose call did other work since). Prints microseconds per
row, the ratio, and the largest difference between the two.

    .venv/bin/python benchmarks/treeshap.py --debtors 600
"""

from __future__ import annotations

import argparse
import datetime as dt
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=600)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()

    import numpy as np

    from paycadence.config import load_params
    from paycadence.data.simulate import simulate
    from paycadence.features import invoice_features
    from paycadence.models import treeshap
    from paycadence.training.fitting import fit_models

    tables = simulate(args.debtors, days=args.days, seed=7).tables
    models = fit_models(tables, load_params())
    booster = models.boosters["late"]
    # the open invoices of a few days: rows as the service explains them
    X = np.vstack([models.matrix(invoice_features(tables, as_of=tables.last_date - dt.timedelta(
        days=k))) for k in (1, 30, 60, 90)])
    tables_ = treeshap.tables(booster)
    if tables_ is None:
        raise SystemExit("this booster has no tables (categorical splits or too deep)")
    print(f"p_late booster: {booster.num_trees()} trees, {tables_.feature.size} nodes, "
          f"{tables_.amounts.size:,} table values; {X.shape[0]:,} rows available")

    ours = treeshap.contributions(tables_, X)
    theirs = booster.predict(X, pred_contrib=True, num_threads=1)
    print(f"largest |difference| over all rows: {np.abs(ours - theirs).max():.2e}")

    junk = np.ones(4_000_000)

    def per_row(fn, n: int, cold: bool) -> float:
        rows = X[:n]
        spent, calls, until = 0.0, 0, time.perf_counter() + args.seconds
        while time.perf_counter() < until:
            if cold:
                junk.__iadd__(1.0)
            t = time.perf_counter()
            fn(rows)
            spent += time.perf_counter() - t
            calls += 1
        return 1e6 * spent / calls / n

    lightgbm = lambda rows: booster.predict(rows, pred_contrib=True, num_threads=1)  # noqa: E731
    tabled = lambda rows: treeshap.contributions(tables_, rows)  # noqa: E731
    for n in (1, 10, 200, 1000):
        for cold in (False, True):
            base, new = per_row(lightgbm, n, cold), per_row(tabled, n, cold)
            print(f"{n:5d} rows, {'cold' if cold else 'hot '}: pred_contrib {base:7.1f} µs/row"
                  f"   tables {new:6.1f} µs/row   {base / new:5.1f}× faster")


if __name__ == "__main__":
    main()
