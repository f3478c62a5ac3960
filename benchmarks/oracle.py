"""How much of the oracle's gain over the fixed schedule the learnt policy captures.

Runs :func:`paycadence.training.backtest.run_backtest` on each world × seed: the company's past
(``--history-days``) logged under the schedule exploring ``--history-exploration`` of its
decisions, the models trained on it, then its future (``--days``) under the fixed schedule, no
dunning, the learnt policy and the oracle — the simulator's true model used greedily,
training/oracle.py — all on common random numbers. Prints the command line, then a markdown
table per world and seed: the four net values of the future (discounted to the switch day),
``captured = (learnt − fixed) / (oracle − fixed)`` and the learnt policy's margin over fixed,
each with its paired 95% bootstrap interval over debtors, contacts per invoice (fixed →
learnt), invoices handed to collection (fixed / learnt / oracle), how many of the learnt
policy's decisions departed from the schedule by the learnt values, agreed with it, kept it for
want of support in the log, or kept it because the two halves' payment models disagreed, the
three most frequent departures (the schedule's action → the one chosen), rule violations
(learnt / oracle), and the doubly robust off-policy estimate's relative error against the
simulated truth on the decisions logged in the past (``|DR − truth| / |truth|``, then both per
decision, whether the truth is inside DR's 95% bootstrap interval over debtors, DR's effective
sample size (Σw)² / Σw² and how many decisions and debtors were checked: an error inside the
interval is DR's variance on the sample, not its bias; then the gain over the logging policy,
true and estimated (DR − the logged mean, with its paired interval); ``--ope-debtors N`` checks
a hash sample of N debtors' decisions, ``--no-ope`` skips it). Below the table, per row: what
the learnt policy did besides waiting, by how it decided (departed, agreed, thin log, unsure,
explored, held back). And ``p_late``'s AUC on the future's new invoices, each forecast on its
issue day, against the best of the simple references (training/forecastcheck.py: the debtor's
share late smoothed, shrunk toward the book's rate by empirical Bayes, or its recent share
shrunk); the ceiling from the world's latent state is not computed. With ``--regret``,
per row: where the learnt policy leaves value to the oracle, by the debtor's true kind
(training/regret.py).

    .venv/bin/python benchmarks/oracle.py --debtors 150 --history-days 365 --days 365 \
        --seeds 1 2 3 --worlds project other --jobs 2
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=150)
    parser.add_argument("--days", type=int, default=365, help="future run and scored, days")
    parser.add_argument("--history-days", type=int, default=365,
                        help="logged past the models learn from, days")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=["all"],
                        help="named worlds (data/sim_world.py WORLDS); all: every one")
    parser.add_argument("--history-exploration", type=float, default=0.10,
                        help="share of the logged past's schedule decisions that explored")
    parser.add_argument("--ope", action=argparse.BooleanOptionalAction, default=True,
                        help="the off-policy check (DR against the simulated truth)")
    parser.add_argument("--ope-debtors", type=int, default=None,
                        help="check on the logged decisions of at most this many debtors (a "
                             "hash sample; default every one: slow on a large book)")
    parser.add_argument("--jobs", type=int, default=1, help="rows run side by side")
    parser.add_argument("--regret", action="store_true",
                        help="also value every learnt decision with the simulator's true model "
                             "and print where it leaves value to the oracle, by true kind "
                             "(training/regret.py)")
    args = parser.parse_args()
    if args.worlds == ["all"]:
        from paycadence.data.sim_world import WORLDS

        args.worlds = list(WORLDS)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"

    print("$ " + shlex.join([".venv/bin/python", "benchmarks/oracle.py", *sys.argv[1:]]))
    print(f"\n{args.debtors} debtors: {args.history_days} days logged (the schedule exploring "
          f"{args.history_exploration:.0%} of its decisions), then {args.days} days scored; net "
          f"value in currency, discounted to the switch day; {args.jobs} job(s)\n")
    print("| world | seed | fixed | none | learnt | oracle | captured (95% interval) | "
          "learnt vs fixed (95% interval) | contacts/invoice fixed → learnt (oracle) | hand-overs "
          "fixed / "
          "learnt / oracle | learnt decisions departed / agreed / thin log / unsure | most "
          "frequent departures | violations learnt / oracle | DR error | p_late AUC model / "
          "best reference | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    cells = [(world, seed, args) for world in args.worlds for seed in args.seeds]
    acts, regrets = [], []
    if args.jobs <= 1:
        for cell in cells:
            row, acted, regret = _row(cell)
            print(row, flush=True)
            acts.append(acted)
            regrets.append(regret)
    else:
        # spawned, not forked: polars' thread pool does not survive a fork
        with ProcessPoolExecutor(args.jobs,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for row, acted, regret in pool.map(_row, cells):  # in table order, each as soon
                print(row, flush=True)                        # as it and those above are done
                acts.append(acted)
                regrets.append(regret)
    print("\nWhat the learnt policy did besides waiting, by how it decided:\n")
    for (world, seed, _), acted in zip(cells, acts, strict=True):
        print(f"- {world} {seed}: {acted}")
    if args.regret:
        print("\nWhere the learnt policy leaves value to the oracle (training/regret.py): per "
              "true kind and learnt action, its decisions, the true gain over waiting of what "
              "it did, what the oracle's choice would have added on those days, and the "
              "oracle's choices instead (days / extra); days add up, gains do not (a step "
              "missed on ten mornings counts ten times):")
        for (world, seed, _), regret in zip(cells, regrets, strict=True):
            print(f"\n{world} {seed}:\n\n| kind | learnt action | decisions | true gain | "
                  "missed | the oracle instead |\n|---|---|---|---|---|---|")
            print(regret)


def _row(cell: tuple) -> tuple[str, str, str]:
    """One world × seed: the backtest, formatted as a table row, the learnt policy's
    actions other than waiting by how they were decided, and (``--regret``) the rows of where
    it leaves value to the oracle."""
    world, seed, args = cell
    from paycadence.config import load_params
    from paycadence.data.sim_world import resolve_world
    from paycadence.training.backtest import run_backtest

    t = time.perf_counter()
    r = run_backtest(args.debtors, args.days, seed, history_days=args.history_days,
                     params=load_params(ROOT / "params.yaml"), world=resolve_world(world),
                     ope=args.ope, exploration_share=args.history_exploration,
                     ope_debtors=args.ope_debtors, regret=args.regret)
    fixed, none, learnt = (o.net_value for o in r.outcomes)
    m = r.margin
    vs = f"{m.relative:+.2%} ({m.low:+.2%} to {m.high:+.2%})"
    # the oracle's: whether contacts pay in this world (it contacts more than the schedule
    # only where a contact is truly worth its cost)
    contacts = (f"{r.outcomes[0].contacts_per_invoice:.2f} → "
                f"{r.outcomes[2].contacts_per_invoice:.2f}"
                + ("" if r.oracle is None else f" ({r.oracle.contacts_per_invoice:.2f})"))
    handed = f"{r.outcomes[0].handovers} / {r.outcomes[2].handovers} / {r.oracle.handovers}"
    d = r.learnt_decided_by
    how = " / ".join(str(d.get(k, 0)) for k in ("departed", "agreed", "thin log", "unsure"))
    moves = ", ".join(f"{k} {n}" for k, n in sorted(
        r.learnt_departures.items(), key=lambda kv: -kv[1])[:3]) or "—"
    broken = f"{r.outcomes[2].violations} / {r.oracle.violations}"
    k = r.captured
    # undefined: the oracle gains nothing over fixed; say by how much, and what learnt gains
    share = (f"{k.value:.0%} ({_pct(k.low)} to {_pct(k.high)})" if k.defined
             else f"undefined (oracle {k.oracle_gain:+,.0f}, learnt {k.learnt_gain:+,.0f} "
                  "over fixed)")
    dr = "—"
    if r.ope is not None:
        c = r.ope
        error = (f"{abs(c.dr - c.simulated) / abs(c.simulated):.1%}" if c.simulated
                 else "undefined")
        inside = "inside" if c.dr_low <= c.simulated <= c.dr_high else "outside"
        dr = (f"{error} ({c.dr:,.2f} vs {c.simulated:,.2f}, truth {inside} DR's 95% interval "
              f"{c.dr_low:,.2f} to {c.dr_high:,.2f}; effective n {c.effective_n:,.0f} of "
              f"{c.decisions:,} decisions of {c.debtors} of {c.decided_debtors} debtors; gain "
              f"over the logging policy: truth {c.simulated - c.logged:+,.2f}, DR "
              f"{c.dr - c.logged:+,.2f} ({c.gain_low:+,.2f} to {c.gain_high:+,.2f}))")
    auc = "—"
    if r.forecast is not None:
        ref, best = r.forecast.best_reference
        auc = (f"{r.forecast.auc['model']:.3f} / {best:.3f} ({ref}; "
               f"{r.forecast.invoices:,} invoices)")
    acted = ", ".join(f"{k} {n}" for k, n in sorted(
        r.learnt_acted.items(), key=lambda kv: -kv[1])) or "nothing"
    regret = ""
    if r.regret is not None:
        from paycadence.training.regret import regret_rows

        regret = "\n".join(f"| {kind} | {action} | {n:,} | {gain:+,.0f} | {missed:+,.0f} | "
                           f"{instead} |" for kind, action, n, gain, missed, instead
                           in regret_rows(r.regret)[:12])
    return (f"| {world} | {seed} | {fixed:,.0f} | {none:,.0f} | {learnt:,.0f} | "
            f"{r.oracle.net_value:,.0f} | {share} | {vs} | {contacts} | {handed} | {how} | "
            f"{moves} | {broken} | {dr} | {auc} | "
            f"{time.perf_counter() - t:.0f} |"), acted, regret


def _pct(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else ("−∞" if x < 0 else "+∞")


if __name__ == "__main__":
    main()
