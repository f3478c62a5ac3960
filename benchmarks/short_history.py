"""What a short history should be trained with: snapshot warm-up and cadence, model size.

For each seed a company is simulated (``paycadence simulate``'s model of debtors) over the
longest span asked plus 150 days; for each span ``S`` (days) its first ``S`` days are the
history (:func:`paycadence.training.snapshots.cut_tables`). Each variant builds that history's
snapshots (a warm-up of ``W`` days after the first invoice, then a snapshot day every ``E``
days), splits them as ``paycadence train`` does (the latest ``train.holdout_share`` of days held
out, the embargo of :func:`paycadence.training.snapshots.embargo_of` before them) and fits the
forecasts (:func:`paycadence.training.fitting.fit`, params.yaml with the variant's model
settings) on the training days. Each model is scored, with the metrics ``train`` logs
(:func:`paycadence.training.evaluation.evaluate`), on

- **next 4 weeks**: the snapshots of every day of the 28 days after the history, labelled
  from the 150 days after it: the same rows for every variant of a span and seed, and what a
  new book's model is for;
- **holdout**: its own holdout, what ``train`` logs and its gate compares.

The simple naive reference is scored on the next 4 weeks beside them. Warm-ups: ``60`` (the
usual), ``S-20`` and ``S-30`` (cut to leave 20 or 30 days of snapshots, at most 60:
``features.short_snapshot_days``) and ``S/4``; cadences 1, 3 and 7 days; models ``default``
(params.yaml's ``train``) and ``small`` (``train.short_model``), or any
``leaves:min_child:trees`` given. A variant whose warm-up and cadence equal an earlier one's
for a span is not fit again.

    .venv/bin/python benchmarks/short_history.py --spans 60 90 180 --seeds 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("late_auc", "late_brier", "days_mae")
WARMUPS = {"60": lambda s: 60, "S-20": lambda s: min(60, s - 20),
           "S-30": lambda s: min(60, s - 30), "S/4": lambda s: s // 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=300)
    parser.add_argument("--spans", type=int, nargs="+", default=[60, 90, 180])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--warmups", nargs="+", default=["60", "S-20", "S-30", "S/4"],
                        choices=sorted(WARMUPS))
    parser.add_argument("--every", type=int, nargs="+", default=[1, 3, 7])
    parser.add_argument("--models", nargs="+", default=["default", "small"],
                        help="default, small, or leaves:min_child:trees")
    parser.add_argument("--json", type=Path, help="also write every score here")
    args = parser.parse_args()

    import polars as pl

    from paycadence.config import TrainParams, load_params
    from paycadence.data.simulate import simulate
    from paycadence.features.snapshots import build_snapshots, dates_between
    from paycadence.training.evaluation import evaluate
    from paycadence.training.fitting import fit
    from paycadence.training.snapshots import cut_tables, embargo_of, split_day

    base = load_params(ROOT / "params.yaml")
    p = base.train

    def model_params(name: str):
        if name == "default":
            return base
        if name == "small":
            change = p.short_model.model_dump()
        else:
            leaves, child, trees = (int(x) for x in name.split(":"))
            change = {"num_leaves": leaves, "min_child_samples": child, "n_estimators": trees}
        return base.model_copy(update={"train": TrainParams(**(p.model_dump() | change))})

    results = []
    for seed in args.seeds:
        t = time.perf_counter()
        full = simulate(args.debtors, days=max(args.spans) + 150, seed=seed).tables
        start = full.invoices["issue_date"].min()
        print(f"seed {seed}: {args.debtors} debtors over {max(args.spans) + 150} days "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        for span in args.spans:
            end = start + dt.timedelta(days=span)  # the history: days start .. end - 1
            tables = cut_tables(full, end - dt.timedelta(days=1))
            nxt = build_snapshots(full, [end + dt.timedelta(days=k) for k in range(28)],
                                  horizon_days=p.horizon_days, data_end=full.last_date)
            naive = evaluate(None, nxt, horizon_days=p.horizon_days)
            done: dict[tuple, dict] = {}
            for warm, every, model in itertools.product(args.warmups, args.every,
                                                        args.models):
                row = {"seed": seed, "span": span, "warmup": warm, "every": every,
                       "model": model, "naive": naive}
                key = (WARMUPS[warm](span), every, model)
                if key in done:
                    results.append(row | {k: v for k, v in done[key].items() if k not in row})
                    continue
                dates = dates_between(start, tables.last_date, every_days=every,
                                      min_history_days=WARMUPS[warm](span))
                if len(dates) < 4:
                    results.append(row | {"skipped": f"{len(dates)} snapshot days"})
                    continue
                snaps = build_snapshots(tables, dates, horizon_days=p.horizon_days,
                                        data_end=tables.last_date)
                split = split_day(dates, holdout_share=p.holdout_share)
                before = split - dt.timedelta(days=embargo_of(dates, split, p.embargo_days))
                train = snaps.filter(pl.col("as_of") < before)
                hold = snaps.filter(pl.col("as_of") >= split)
                t = time.perf_counter()
                models = fit(train, model_params(model))
                row |= {"train_rows": train.height, "seconds": time.perf_counter() - t,
                        "next": evaluate(models, nxt, horizon_days=p.horizon_days),
                        "holdout": evaluate(models, hold, horizon_days=p.horizon_days)}
                results.append(row)
                done[key] = row
                print(f"  {span} days, warm-up {warm}, every {every}, {model}: "
                      f"{train.height:,} rows, next 4 weeks AUC "
                      f"{row['next'].get('late_auc', np.nan):.3f} Brier "
                      f"{row['next'].get('late_brier', np.nan):.4f}", flush=True)

    def mean(rows, part, key):
        return np.nanmean([r[part].get(key, np.nan) for r in rows])

    print(f"\nmean over seeds {args.seeds} ({args.debtors} debtors); next 4 weeks "
          "(naive reference in brackets), then the variant's own holdout")
    print("| days | warm-up | every | model | train rows | AUC | Brier | days late MAE "
          "| holdout AUC | holdout Brier |")
    print("|---" * 10 + "|")
    for span, warm, every, model in itertools.product(args.spans, args.warmups, args.every,
                                                      args.models):
        rows = [r for r in results if (r["span"], r["warmup"], r["every"], r["model"])
                == (span, warm, every, model) and "next" in r]
        if not rows:
            continue
        print(f"| {span} | {warm} | {every} | {model} | "
              f"{np.mean([r['train_rows'] for r in rows]):,.0f} | "
              f"{mean(rows, 'next', 'late_auc'):.3f} ({mean(rows, 'naive', 'late_auc'):.3f}) | "
              f"{mean(rows, 'next', 'late_brier'):.4f} "
              f"({mean(rows, 'naive', 'late_brier'):.4f}) | "
              f"{mean(rows, 'next', 'days_mae'):.1f} ({mean(rows, 'naive', 'days_mae'):.1f}) | "
              f"{mean(rows, 'holdout', 'late_auc'):.3f} | "
              f"{mean(rows, 'holdout', 'late_brier'):.4f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
