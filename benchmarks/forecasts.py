"""The forecasts on the world family: ``p_late`` at first sight against the strongest simple
references and, with ``--truth-replays``, the true probability (the ceiling).

For each world × seed: the company's past (``--history-days``) logged by the schedule exploring
``--history-exploration`` of its decisions, then its future (``--days``) under the fixed
schedule — the backtest's company (training/backtest.py) without its policy runs. The
forecasts are fitted on the past as known on the switch day (no response or value model: this
measures the forecasts alone) and scored on the future's invoices, each on the first morning
that sees it (training/forecastcheck.py). Prints one Markdown row per world and seed:
``p_late`` AUC of the model, the best reference (which one) and the truth, the model's gain
over the reference, the share of the reference-to-truth gap it closes, the ECE, and the days-late
MAE of the model against the shrunk median; then the targets of issue 22 met or not.

    .venv/bin/python benchmarks/forecasts.py --debtors 300 --history-days 365 --days 180 \\
        --seeds 1 2 3 --worlds all --truth-replays 100 --jobs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor

START = dt.date(2024, 1, 1)
#: Issue 22's targets: AUC gain over the best reference, share of the gap to the truth, ECE.
AUC_GAIN, GAP_SHARE, MAX_ECE = 0.03, 2 / 3, 0.02


def one(world_name: str, seed: int, args: argparse.Namespace) -> dict:
    """Simulate, fit and score one company; the figures of its row."""
    from paycadence.config import Params, Policy
    from paycadence.data.sim_policy import ScheduleLoggingPolicy
    from paycadence.data.sim_world import resolve_world
    from paycadence.data.simulate import simulate
    from paycadence.training.backtest import Switch
    from paycadence.training.fitting import fit
    from paycadence.training.forecastcheck import forecast_check
    from paycadence.training.scoring import SCORED_BEFORE_END
    from paycadence.training.snapshots import cut_tables, snapshots

    t0 = time.perf_counter()
    policy, params = Policy(), Params()
    world = resolve_world(world_name)
    switch = START + dt.timedelta(days=args.history_days)
    end = START + dt.timedelta(days=args.history_days + args.days - 1)
    logger = Switch(ScheduleLoggingPolicy(policy, args.history_exploration, seed),
                    ScheduleLoggingPolicy(policy, 0.0, seed), on=switch)
    sim = simulate(args.debtors, days=args.history_days + args.days, seed=seed, start=START,
                   policy=policy, logging_policy=logger, world=world)
    known = cut_tables(sim.tables, switch)
    snaps, _ = snapshots(known, params)
    models = fit(snaps, params)
    due_by = end - dt.timedelta(days=SCORED_BEFORE_END)
    truth = None
    if args.truth_replays:
        from paycadence.training.ceiling import first_seen, true_outcomes

        truth = true_outcomes(args.debtors, args.days, seed, start=START,
                              scored=first_seen(sim.tables, switch=switch, due_by=due_by),
                              history_days=args.history_days, policy=policy, world=world,
                              exploration_share=args.history_exploration,
                              replays=args.truth_replays)
    check = forecast_check(sim.tables, models, switch=switch, due_by=due_by,
                           horizon_days=params.train.horizon_days, truth=truth)
    return {"world": world_name, "seed": seed, "check": check,
            "seconds": time.perf_counter() - t0}


def row(got: dict) -> str:
    from paycadence.training.references import LATE_REFERENCES

    c = got["check"]
    if c is None:
        return f"| {got['world']} | {got['seed']} | no scored invoice |"
    ref, auc_ref = c.best_reference
    truth = c.auc.get("truth", math.nan)
    gap = c.gap_closed
    truth_ece = "" if math.isnan(truth) else f" / truth {c.ece['truth']:.3f}"
    return (f"| {got['world']} | {got['seed']} | {c.invoices:,} | {c.late_share:.1%} | "
            f"{c.auc['model']:.3f} | {auc_ref:.3f} ({ref}) | "
            f"{'—' if math.isnan(truth) else f'{truth:.3f}'} | "
            f"{c.auc['model'] - auc_ref:+.3f} | {'—' if math.isnan(gap) else f'{gap:.0%}'} | "
            f"{c.brier['model']:.4f} / {min(c.brier[k] for k in LATE_REFERENCES):.4f} | "
            f"{c.ece['model']:.3f} ({c.mean['model'] - c.late_share:+.3f})"
            f"{truth_ece} | "
            f"{c.days_mae['model']:.1f} / {c.days_mae['median']:.1f} | "
            f"{got['seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=300)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--days", type=int, default=180,
                        help="future days; invoices due in all but its last 90 are scored")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=["all"])
    parser.add_argument("--history-exploration", type=float, default=0.3)
    parser.add_argument("--truth-replays", type=int, default=0,
                        help="replays of each scored invoice's future for the true "
                             "probability (0: no ceiling)")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    from paycadence.data.sim_world import WORLDS
    from paycadence.quiet import quiet_libraries

    quiet_libraries()
    worlds = list(WORLDS) if args.worlds == ["all"] else args.worlds
    print("    " + shlex.join([".venv/bin/python", "benchmarks/forecasts.py", *sys.argv[1:]]))
    print("\n| world | seed | invoices | late | p_late AUC model | best reference | truth | "
          "gain | gap closed | Brier model / best ref | ECE (bias) | days MAE model / median "
          "| s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    jobs = [(w, s) for w in worlds for s in args.seeds]
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for got in pool.map(one, *zip(*jobs, strict=True), [args] * len(jobs)):
            print(row(got), flush=True)
            results.append(got)
    checks = [r["check"] for r in results if r["check"] is not None]
    gain = sum(c.auc["model"] - c.best_reference[1] >= AUC_GAIN for c in checks)
    gaps = [c.gap_closed for c in checks if not math.isnan(c.gap_closed)]
    print(f"\ntargets: AUC ≥ best reference + {AUC_GAIN} on {gain} of {len(checks)}; "
          f"≥ {GAP_SHARE:.0%} of the way to the truth on "
          f"{sum(g >= GAP_SHARE for g in gaps)} of {len(gaps)}; ECE ≤ {MAX_ECE} on "
          f"{sum(c.ece['model'] <= MAX_ECE for c in checks)} of {len(checks)}; days MAE below "
          f"the shrunk median on "
          f"{sum(c.days_mae['model'] < c.days_mae['median'] for c in checks)} of {len(checks)}")


if __name__ == "__main__":
    main()
