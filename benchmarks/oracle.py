"""How much of the oracle's gain over the fixed schedule the learnt policy captures.

Runs :func:`paycadence.training.backtest.run_backtest` (the fixed schedule, no dunning, the
learnt policy trained on another company of the same world, and the oracle — the simulator's
true model used greedily, training/oracle.py — all on common random numbers) on each world ×
seed, and prints a markdown table: the four net values and ``captured = (learnt − fixed) /
(oracle − fixed)`` with its paired 95% bootstrap interval over debtors. MLflow writes go to a
throwaway store.

    .venv/bin/python benchmarks/oracle.py --debtors 150 --days 400 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=150)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=["project", "other"],
                        help="named worlds (data/sim_world.py WORLDS)")
    args = parser.parse_args()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"

    from paycadence.config import load_params
    from paycadence.data.sim_world import resolve_world
    from paycadence.training.backtest import run_backtest

    params = load_params(ROOT / "params.yaml")
    print(f"{args.debtors} debtors × {args.days} days; net value in currency, discounted to "
          "the first day\n")
    print("| world | seed | fixed | none | learnt | oracle | captured (95% interval) | "
          "learnt vs fixed (95% interval) | contacts/invoice fixed → learnt | violations "
          "learnt / oracle | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for world in args.worlds:
        for seed in args.seeds:
            t = time.perf_counter()
            r = run_backtest(args.debtors, args.days, seed, params=params,
                             world=resolve_world(world))
            fixed, none, learnt = (o.net_value for o in r.outcomes)
            m = r.margin
            vs = f"{m.relative:+.2%} ({m.low:+.2%} to {m.high:+.2%})"
            contacts = (f"{r.outcomes[0].contacts_per_invoice:.2f} → "
                        f"{r.outcomes[2].contacts_per_invoice:.2f}")
            broken = f"{r.outcomes[2].violations} / {r.oracle.violations}"
            k = r.captured
            share = (f"{k.value:.0%} ({_pct(k.low)} to {_pct(k.high)})" if k.defined
                     else "undefined")
            print(f"| {world} | {seed} | {fixed:,.0f} | {none:,.0f} | {learnt:,.0f} | "
                  f"{r.oracle.net_value:,.0f} | {share} | {vs} | {contacts} | {broken} | "
                  f"{time.perf_counter() - t:.0f} |",
                  flush=True)


def _pct(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else ("−∞" if x < 0 else "+∞")


if __name__ == "__main__":
    main()
