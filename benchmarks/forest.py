"""Blocked forests against LightGBM's own ``Booster.predict``, in one process.

Simulates a company, trains the champion's models with the project's params, and times the
two reads the service makes in blocks: the payment models on every open invoice's next 60
days for every action (:func:`paycadence.models.policy.value.rolled_rows`, blocks of 60) and
the settlement hazard on each invoice's 18 bins (:func:`paycadence.models.hazard.every_bin`).
Each is read both ways on the same rows, on one thread and on all of them: LightGBM's
``predict`` (the baseline) and :class:`paycadence.models.forest.Forest`. Prints milliseconds
(median of ``--repeats``), the ratio, and whether the numbers are equal bit for bit.

    .venv/bin/python benchmarks/forest.py --debtors 600 --invoices 700
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=600)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--invoices", type=int, default=700,
                        help="open invoices read (a stateless call of 200 debtors: ~700)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import numpy as np

    from paycadence.config import load_params
    from paycadence.data.simulate import simulate
    from paycadence.features import invoice_features
    from paycadence.models.forest import THREADS, Forest
    from paycadence.models.hazard import N_BINS, every_bin
    from paycadence.models.policy.value import GRID, VALUED, rolled_rows
    from paycadence.training.fitting import fit_models

    tables = simulate(args.debtors, days=args.days, seed=7).tables
    models = fit_models(tables, load_params())
    feats = invoice_features(tables, as_of=tables.last_date - dt.timedelta(days=1))
    M = models.matrix(feats)
    Xv = np.column_stack([M, feats["last_channel"].to_numpy()])
    picked = np.resize(np.arange(M.shape[0]), args.invoices)  # repeat when the book has fewer
    # one action per invoice, as a call values about one (invoice, action) per open invoice
    rolled = np.vstack([rolled_rows(Xv[picked[k::len(VALUED)]], a, cap=models.value_model.cap)
                        for k, a in enumerate(VALUED)])
    bins = every_bin(M[picked], feats["days_past_due"].to_numpy()[picked])
    reads = [(f"payment model, {args.invoices} invoices × {len(GRID)} days",
              models.boosters["rate"], rolled, len(GRID)),
             (f"settlement hazard, {args.invoices} invoices × {N_BINS} bins",
              models.boosters["hazard"], bins, N_BINS)]

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    print(f"company: {args.debtors} debtors; {THREADS} threads")
    print(f"{'read':<42} {'threads':>7} {'LightGBM ms':>12} {'forest ms':>10} {'ratio':>6}  equal")
    for name, booster, rows, block in reads:
        forest = Forest.of(booster)
        if forest is None:
            raise SystemExit(f"{name}: this booster has no forest")
        equal = np.array_equal(forest.predict(rows, block), booster.predict(rows))
        for threads in sorted({1, THREADS}):
            theirs = median_ms(lambda b=booster, r=rows, t=threads: b.predict(r, num_threads=t))
            ours = median_ms(lambda f=forest, r=rows, b=block, t=threads: f.predict(r, b, t))
            print(f"{name:<42} {threads:>7} {theirs:>12.1f} {ours:>10.1f} "
                  f"{theirs / ours:>5.2f}×  {equal}")


if __name__ == "__main__":
    main()
