"""``evaluate`` (off-policy, on a book's logged decisions) and ``backtest`` (a simulated
company's future under each policy, with the oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paycadence.cli.common import (
    AcceptQuarantineOpt,
    AllowOtherBookOpt,
    BookOpt,
    NoPaymentsOkOpt,
    NoStatus,
    ParamsOpt,
    PolicyOpt,
    Progress,
    Quiet,
    StrictOpt,
    WorldOpt,
    WorldSeedOpt,
    app,
    book_choice,
    console,
    input_guard,
    make_table,
    run_command,
)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables and "
                                       "decisions.csv (the logged decisions).")],
    policy: PolicyOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write the estimates as JSON (for DVC metrics).")] = None,
    params: ParamsOpt = None,
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    no_payments_ok: NoPaymentsOkOpt = False,
    book: BookOpt = None,
    allow_other_book: AllowOtherBookOpt = False,
    quiet: Quiet = False,
):
    """Estimate off-policy what the current policy would have earned on the logged decisions."""
    from paycadence.config import get_settings, load_policy
    from paycadence.data.ingest import ingest as run_ingest
    from paycadence.serving.engine import Engine
    from paycadence.training.ope import REWARD_DAYS, evaluate_policy, read_decisions, verdict

    def go():
        pol = load_policy(policy)
        decisions = read_decisions(data)
        checked = run_ingest(data)
        input_guard(params, strict=strict, accept_quarantine=accept_quarantine,
                    no_payments_ok=no_payments_ok).check_tables(checked.counts)
        s = get_settings()
        choice, model_name = book_choice(data, book, allow_other_book)
        engine = Engine.load(pol, model_name=model_name, alias=s.model_alias)
        engine.check_book(choice, model_name, checked.tables)
        with console.status(f"asking {engine.version} about {decisions.height:,} logged "
                            "decisions") if not quiet else NoStatus():
            r = evaluate_policy(checked.tables, decisions, pol, engine.models)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({
                "model_version": engine.version, "decisions": r.decisions,
                "supported": r.supported, "effective_n": r.effective_n,
                **{f"{name}_{k}": getattr(e, k) for name, e in (
                    ("logged", r.logged), ("ips", r.ips), ("snips", r.snips), ("dr", r.dr),
                    ("gain", r.gain))
                   for k in ("value", "low", "high")}}, indent=2), encoding="utf-8")
        if quiet:
            console.print(f"doubly robust value per decision {r.dr.value:,.2f} vs logging "
                          f"policy {r.logged.value:,.2f} ({r.decisions:,} decisions): the "
                          f"candidate {verdict(r.gain)}", highlight=False)
            return
        rows = [(name, f"{e.value:,.2f}", f"{e.low:,.2f} … {e.high:,.2f}")
                for name, e in (("logging policy (observed)", r.logged), ("candidate, IPS", r.ips),
                                ("candidate, self-normalised IPS", r.snips),
                                ("candidate, doubly robust", r.dr))]
        console.print(make_table(
            f"value per decision: money in within {REWARD_DAYS} days (discounted) − costs; "
            f"{r.decisions:,} logged decisions, candidate {engine.version}",
            ["estimate", "value", "95% interval (bootstrap over debtors)"], rows))
        console.print(f"support: the candidate would have taken the logged action in "
                      f"{r.supported:,} decisions ({r.agreement:.0%}); effective sample size "
                      f"{r.effective_n:,.0f}; its choices: "
                      + ", ".join(f"{a} {n}" for a, n in sorted(r.by_action.items())),
                      highlight=False)
        console.print(f"the candidate {verdict(r.gain)}", highlight=False)
        check = forecast_quality(checked.tables, engine)
        if check is not None:
            console.print(check, highlight=False)
    run_command(go)


def forecast_quality(tables, engine) -> str | None:
    """One line on the champion's ``p_late`` over the data's last six months (after its
    holdout split), against the best simple reference on the same invoices
    (:func:`paycadence.training.quality.calibration_check`); None without a model or a
    labelled invoice."""
    import datetime as dt

    from paycadence.training.quality import calibration_check

    if engine.models is None or tables.last_date is None:
        return None
    split = engine.models.card.get("split_date")
    check = calibration_check(
        tables, engine.models, as_of=tables.last_date + dt.timedelta(days=1),
        horizon_days=int(engine.models.card.get("horizon_days", 120)),
        not_before=dt.date.fromisoformat(split) if split else None)
    if check is None or "model" not in check.scores:
        return None
    model, ref = check.scores["model"], check.scores["reference"]
    return (f"forecasts on the last {len(check.days)} check days ({check.rows:,} invoice-days "
            f"not yet due, outcome known): p_late AUC {model['auc']:.3f} vs {ref['auc']:.3f} "
            f"for the best simple reference ({check.reference}), Brier {model['brier']:.4f} vs "
            f"{ref['brier']:.4f}, ECE {model['ece']:.3f}")


@app.command()
def backtest(
    debtors: Annotated[int, typer.Option(min=5, help="Debtors of the simulated company.")] = 100,
    days: Annotated[int, typer.Option(min=120, help="Days of future run from the switch day; "
                                      "invoices due in the last 90 are run, not scored.")
                    ] = 365,
    history_days: Annotated[int, typer.Option(min=120, help="Days of logged past before the "
                                              "switch day, under the schedule exploring 10%; "
                                              "the models learn from it.")] = 365,
    seed: Annotated[int, typer.Option(help="Seed of the company.")] = 1,
    policy: PolicyOpt = None,
    params: Annotated[Path | None, typer.Option("--params", help="params.yaml for the "
                                                "models' training.")] = None,
    ope: Annotated[bool, typer.Option("--ope/--no-ope", help="Also check the off-policy "
                                      "estimate against the simulated truth.")] = True,
    oracle: Annotated[bool, typer.Option("--oracle/--no-oracle", help="Also run the "
                                         "simulator's true model greedily and say how much "
                                         "of its gain the learnt policy captured.")] = True,
    world: WorldOpt = None,
    world_seed: WorldSeedOpt = None,
    truth_replays: Annotated[int, typer.Option(
        min=0, help="Also compute the true probability that each scored invoice is paid "
        "late, from the world's latent state, by this many replays of its own luck (the "
        "ceiling p_late is scored against; 0: not computed).")] = 0,
    quiet: Quiet = False,
):
    """Train on one simulated company's logged past, then run its future under the fixed
    schedule, no dunning and the learnt policy (and the oracle)."""
    from paycadence.config import load_params, load_policy
    from paycadence.data.sim_world import resolve_world
    from paycadence.training.backtest import log_backtest, relative, run_backtest

    def go():
        pol, cfg, company = load_policy(policy), load_params(params), resolve_world(world,
                                                                                   world_seed)
        with Progress(quiet, "backtest") as step:
            result = run_backtest(debtors, days, seed, history_days=history_days, policy=pol,
                                  params=cfg, ope=ope, world=company, oracle=oracle,
                                  progress=step, truth_replays=truth_replays)
        fixed = result.outcomes[0]
        rows = [(o.policy, f"{o.net_value:,.0f}",
                 f"{relative(o.net_value, fixed.net_value):+.2%}", f"{o.mean_days_late:.1f}",
                 f"{o.mean_days_late_paid:.1f}", f"{o.unpaid_90d:,.0f}",
                 f"{o.contacts_per_invoice:.2f}", f"{o.reminders_per_invoice:.2f}",
                 str(o.handovers), str(o.violations))
                for o in [*result.outcomes, *filter(None, [result.oracle])]]
        if not quiet:
            console.print(make_table(
                f"backtest: {debtors:,} debtors, seed {seed}: {history_days:,} days logged, then "
                f"{days:,} days from {result.switch_on} ({fixed.invoices_scored:,} invoices open "
                "on that day or issued later, due ≥ 90 days before the end, scored)",
                ["policy", "net value", "vs fixed", "mean days late", "days late (paid)",
                 "unpaid at due+90", "contacts / invoice", "reminders / invoice", "hand-overs",
                 "rule violations"], rows))
        learnt, none = result.outcomes[-1], result.outcomes[1]
        m = result.margin
        worth = fixed.net_value - none.net_value
        console.print(f"learnt policy vs fixed schedule: net value "
                      f"{relative(learnt.net_value, fixed.net_value):+.2%} (95% interval over "
                      f"debtors {m.low:+.2%} to {m.high:+.2%}; {m.debtors_better:,} debtors "
                      f"better off, {m.debtors_worse:,} worse; {m.difference:+,.0f} on top of the "
                      f"{worth:,.0f} the fixed schedule earns over no dunning), mean days late "
                      f"{relative(learnt.mean_days_late, fixed.mean_days_late):+.1%}, contacts "
                      f"per invoice {learnt.contacts_per_invoice:.2f} vs "
                      f"{fixed.contacts_per_invoice:.2f} ({result.learnt_calls:,} decisions asked "
                      "of recommend)", highlight=False)
        k = result.captured
        if k is not None:
            share = (f"{k.value:.1%} (95% interval over debtors {k.low:.1%} to {k.high:.1%})"
                     if k.defined else "undefined (the oracle gains nothing over the fixed "
                     "schedule)")
            console.print(f"oracle (the simulator's true model, greedy): net value "
                          f"{result.oracle.net_value:,.0f}, {k.oracle_gain:+,.0f} over the "
                          f"fixed schedule; captured by the learnt policy "
                          f"({k.learnt_gain:+,.0f}): {share}", highlight=False)
        f = result.forecast
        if f is not None:
            ref, auc = f.best_reference
            truth = (f"; the true probability {f.auc['truth']:.3f} ({f.gap_closed:.0%} of the "
                     "way from the reference to it)" if "truth" in f.auc else "")
            console.print(
                f"p_late of the future's {f.invoices:,} new invoices, each on the first morning "
                f"that sees it: AUC {f.auc['model']:.3f} against {auc:.3f} for the best simple "
                f"reference ({ref}){truth}; Brier {f.brier['model']:.4f} vs "
                f"{f.brier[ref]:.4f}; days late MAE {f.days_mae['model']:.1f} vs "
                f"{f.days_mae['median']:.1f} for the shrunk median", highlight=False)
        c = result.ope
        if c is not None:
            console.print(
                f"off-policy check on the logged past ({c.decisions:,} logged "
                f"decisions, value per decision = money in within 30 days − costs): learnt policy "
                f"estimated DR {c.dr:,.2f} (95% interval {c.dr_low:,.2f} … {c.dr_high:,.2f}, "
                f"effective n {c.effective_n:,.0f}; IPS {c.ips:,.2f}, SNIPS {c.snips:,.2f}) vs "
                f"{c.simulated:,.2f} simulated on the same decisions "
                f"(DR off by {relative(c.dr, c.simulated):+.1%}); the logging policy earned "
                f"{c.logged:,.2f}; gain over it {c.simulated - c.logged:+,.2f} simulated, "
                f"{c.dr - c.logged:+,.2f} estimated (95% interval {c.gain_low:+,.2f} … "
                f"{c.gain_high:+,.2f})", highlight=False)
        run_id = log_backtest(result, debtors=debtors, days=days, seed=seed,
                              world=company.name, policy=pol)
        if not quiet:
            console.print(f"logged as MLflow run {run_id} (experiment paycadence-backtest; "
                          "the report shows the latest)", highlight=False)
    run_command(go)
