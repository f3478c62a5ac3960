"""The family of worlds' spread: what the fixed schedule and no dunning earn in each world.

Each named world (and, with ``--world-seeds``, drawn ones) is simulated per company seed
twice with common random numbers: under the fixed schedule without exploration and under no
dunning, scored by ``paycadence.training.backtest.outcome`` (net value, mean days late over
invoices due at least 90 days before the end, contacts per invoice). Prints a Markdown table
(one row per world and seed, then the world's mean) for docs/simulator.md.

    .venv/bin/python benchmarks/worlds.py --debtors 200 --days 540 --seeds 1 2 3 \
        --world-seeds 1 2 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

START = dt.date(2024, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=200)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=None, help="Named worlds (default all).")
    parser.add_argument("--world-seeds", type=int, nargs="*", default=[],
                        help="Also drawn worlds (world_from_seed).")
    args = parser.parse_args()

    from paycadence.config import Policy
    from paycadence.data.sim_policy import ScheduleLoggingPolicy
    from paycadence.data.sim_world import WORLDS, resolve_world
    from paycadence.data.simulate import simulate
    from paycadence.training.backtest import NoDunning, outcome

    policy = Policy()
    end = START + dt.timedelta(days=args.days - 1)
    worlds = [resolve_world(n) for n in (args.worlds or WORLDS)]
    worlds += [resolve_world(None, s) for s in args.world_seeds]
    t0 = time.perf_counter()
    print(f"{args.debtors} debtors × {args.days} days per company; net value in thousands "
          "(discounted payments − contact costs − agency fees)\n")
    print("| world | seed | net value: fixed | net value: none | none vs fixed | days late: "
          "fixed | days late: none | contacts / invoice: fixed |")
    print("|---|---|---|---|---|---|---|---|")
    for world in worlds:
        rows = []
        for seed in args.seeds:
            got = {}
            for name, decider in (("fixed", ScheduleLoggingPolicy(policy, 0.0, seed)),
                                  ("none", NoDunning())):
                r = simulate(args.debtors, days=args.days, seed=seed, start=START,
                             policy=policy, logging_policy=decider, world=world)
                got[name] = outcome(name, r.tables, policy, start=START, end=end)
            f, n = got["fixed"], got["none"]
            rows.append((f.net_value, n.net_value, f.mean_days_late, n.mean_days_late,
                         f.contacts_per_invoice))
            print(_row(world.name, str(seed), rows[-1]))
        mean = tuple(sum(col) / len(col) for col in zip(*rows, strict=True))
        print(_row(f"**{world.name}**", "mean", mean))
    print(f"\n{time.perf_counter() - t0:.0f} s")


def _row(name: str, seed: str, r: tuple) -> str:
    fixed, none, late_f, late_n, contacts = r
    return (f"| {name} | {seed} | {fixed / 1000:,.0f} | {none / 1000:,.0f} | "
            f"{(none - fixed) / abs(fixed):+.1%} | {late_f:.1f} | {late_n:.1f} | "
            f"{contacts:.2f} |")


if __name__ == "__main__":
    main()
