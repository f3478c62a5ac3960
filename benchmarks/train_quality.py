"""What training on a sample of snapshots costs in model quality.

Simulates a company (``paycadence simulate``'s model of debtors, two years by default), builds
every training snapshot (no sampling), splits them by time as ``paycadence train`` does (the
latest quarter of days held out after a 30-day embargo) and fits the forecasts
(:func:`paycadence.training.fitting.fit`, the repository's params.yaml) on:

- ``full``: every training snapshot;
- ``uniform``: a sample of (debtor, day) pairs keeping ``--share`` of the rows, one share for
  all (``features.overdue_oversampling`` 1), for each of ``--seeds`` sampling seeds;
- ``stratified xK``: the same number of rows, pairs with an overdue invoice kept K times as
  often as the others and every fit weighted by 1 / share (``overdue_oversampling`` K).

Each model is scored on the **whole** holdout of the full table (the same rows for all), with
the metrics ``train`` logs (:func:`paycadence.training.evaluation.evaluate`); for the samples also
on their own (sampled, weighted) holdout, which is what a run on sampled snapshots logs.

    .venv/bin/python benchmarks/train_quality.py --debtors 500 --share 0.25 --seeds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("late_auc", "late_log_loss", "late_brier", "late_ece", "late_auc_after_due",
           "late_auc_before_due", "unpaid_auc", "days_mae", "cash_wape")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=500)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--share", type=float, default=0.25, help="rows kept by the samples")
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds per variant")
    parser.add_argument("--oversampling", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--json", type=Path, help="also write every score here")
    args = parser.parse_args()

    import polars as pl

    from paycadence.config import FeatureParams, load_params
    from paycadence.data.simulate import simulate
    from paycadence.training.train import evaluate, fit, snapshots, time_split, treated_rows

    base = load_params(ROOT / "params.yaml")
    t = time.perf_counter()
    tables = simulate(args.debtors, days=args.days, seed=args.seed).tables
    print(f"simulated {args.debtors} debtors over {args.days} days (seed {args.seed}): "
          f"{tables.invoices.height:,} invoices in {time.perf_counter() - t:.0f} s", flush=True)

    def params(**changes):
        return base.model_copy(update={"features": FeatureParams(
            **(base.features.model_dump() | changes))})

    p = base.train
    full_params = params(max_snapshot_rows=10**9)
    plan: dict = {}
    full, last = snapshots(tables, full_params, plan)
    train_full, hold, split = time_split(full, holdout_share=p.holdout_share,
                                         embargo_days=p.embargo_days)
    before = split - dt.timedelta(days=p.embargo_days)
    treated = treated_rows(tables, before=before, horizon_days=p.horizon_days, data_end=last)
    print(f"{full.height:,} snapshot rows ({json.dumps(plan)}); {train_full.height:,} train "
          f"before {before}, {hold.height:,} holdout from {split}", flush=True)
    max_rows = max(1000, round(args.share * full.height))

    def score(name: str, snaps: pl.DataFrame, sampled: bool, fit_params) -> dict:
        t = time.perf_counter()
        rows = snaps.filter(pl.col("as_of") < before)
        models = fit(rows, fit_params, treated)
        out = {"variant": name, "train_rows": rows.height,
               "whole": evaluate(models, hold, horizon_days=p.horizon_days)}
        if sampled:
            own = snaps.filter(pl.col("as_of") >= split)
            out["own"] = evaluate(models, own, horizon_days=p.horizon_days)
            out["own_rows"] = own.height
        out["seconds"] = time.perf_counter() - t
        print(f"  {name}: {rows.height:,} train rows, late_auc {out['whole']['late_auc']:.4f},"
              f" log-loss {out['whole']['late_log_loss']:.4f} ({out['seconds']:.0f} s)",
              flush=True)
        return out

    results = [score("full", full, False, full_params)]
    for k in (1.0, *args.oversampling):
        name = "uniform" if k == 1.0 else f"stratified x{k:g}"
        for seed in range(args.seeds):
            fp = params(max_snapshot_rows=max_rows, overdue_oversampling=k, snapshot_seed=seed)
            sample_plan: dict = {}
            snaps, _ = snapshots(tables, fp, sample_plan)
            r = score(f"{name} seed {seed}", snaps, True, fp)
            r["group"], r["plan"] = name, sample_plan
            results.append(r)

    print(f"\nscored on the whole holdout ({hold.height:,} rows from {split}); samples keep "
          f"{args.share:.0%} of {full.height:,} rows (max_snapshot_rows {max_rows:,}): mean "
          f"± sd over {args.seeds} sampling seeds")
    groups = ["full", "uniform", *(f"stratified x{k:g}" for k in args.oversampling)]
    print("| variant | train rows | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 2) + "|")
    for g in groups:
        rs = [r for r in results if r.get("group", "full") == g]
        cells = []
        for m in METRICS:
            v = np.array([r["whole"][m] for r in rs])
            cells.append(f"{v.mean():.4f}" if len(v) == 1 else
                         f"{v.mean():.4f} ± {v.std(ddof=1):.4f}")
        rows = np.mean([r["train_rows"] for r in rs])
        print(f"| {g} | {rows:,.0f} | " + " | ".join(cells) + " |")
    print("\nas logged by a run on the sample (its own sampled holdout, weighted):")
    for g in groups[1:]:
        rs = [r for r in results if r.get("group") == g]
        cells = [f"{m} {np.mean([r['own'][m] for r in rs]):.4f}" for m in METRICS[:4]]
        print(f"  {g}: {np.mean([r['own_rows'] for r in rs]):,.0f} holdout rows; "
              + ", ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
