"""The ``paycadence`` command: one Typer app, thin commands, one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycadence.errors import PaycadenceError
from paycadence.redact import redact, redact_log_handlers

app = typer.Typer(help="paycadence: learn how each debtor pays and choose the next reminder.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# piped output (CI, files) gets a wide console so that paths and reasons are not cut
console = Console() if sys.stdout.isatty() else Console(width=200)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the essentials.")]
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="Policy YAML (default: shipped)."
                                                )]
MapOpt = Annotated[str | None, typer.Option(
    "--map", help="Column-mapping YAML for an ERP export, or a shipped mapping name (ibm-ar).")]


WorldOpt = Annotated[str | None, typer.Option(
    "--world", help="Simulated world: project (default), other, restraint, calls, plans, agency, "
    "early, soured or b2b (docs/simulator.md, 'The family of worlds').")]
WorldSeedOpt = Annotated[int | None, typer.Option(
    "--world-seed", help="Simulate a structurally random world drawn from this seed instead.")]
ParamsOpt = Annotated[Path | None, typer.Option("--params", help="params.yaml (default: shipped)."
                                                )]


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PaycadenceError(f"{name}: '{value}' is not a date (use YYYY-MM-DD)") from None


def _run(fn, *args, **kwargs):
    """Call a stage; a PaycadenceError becomes one line on stderr and exit code 2."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redact_log_handlers()  # no credential of a URI in a warning line
    try:
        return fn(*args, **kwargs)
    except PaycadenceError as exc:
        typer.echo(f"error: {redact(exc)}", err=True)
        raise typer.Exit(2) from None


def _table(title: str, columns: list[str], rows: list[tuple],
           whole: tuple[str, ...] = ()) -> Table:
    """A table of ``rows``; the cells of the ``whole`` columns are never wrapped."""
    table = Table(title=title, title_justify="left", min_width=len(title) + 2)
    for col in columns:
        table.add_column(col, no_wrap=col in whole)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    return table


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the tables to.")],
    debtors: Annotated[int, typer.Option(min=1, help="Number of debtors.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    days: Annotated[int, typer.Option(min=60, help="Days of history.")] = 730,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = (
        "2024-01-01"),
    world: WorldOpt = None,
    world_seed: WorldSeedOpt = None,
    policy: PolicyOpt = None,
    quiet: Quiet = False,
):
    """Write a simulated company's receivables (the five contract tables).

    The policy file's rules bind the logging schedule, and its ``exploration.timing`` sets how
    often the schedule tries a contact between its own days (docs/simulator.md).
    """
    from paycadence.config import load_policy
    from paycadence.data.sim_world import resolve_world
    from paycadence.data.simulate import simulate as run
    from paycadence.data.simulate import write_simulation

    def go():
        t = time.perf_counter()
        pol = load_policy(policy)
        with console.status("simulating", spinner="dots") if not quiet else _null():
            result = run(debtors, days=days, seed=seed, start=_date(start, "--start"),
                         world=resolve_world(world, world_seed), policy=pol)
            paths = write_simulation(result, out)
        rows = [(name, frame.height) for name, frame in result.tables.items()]
        if not quiet:
            console.print(_table(f"simulated {debtors} debtors, seed {seed}", ["table", "rows"],
                                 rows))
            console.print(f"wrote {len(paths)} files to {out} in {time.perf_counter() - t:.1f} s")
    _run(go)


@app.command()
def ingest(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for clean tables + quarantine.")],
    mapping: MapOpt = None,
    quiet: Quiet = False,
):
    """Validate a data directory into clean tables, a quarantine file and a summary."""
    from paycadence.data.ingest import ingest_files as run
    from paycadence.data.ingest import summary_rows
    from paycadence.data.mapping import load_mapping

    def go():
        with _Progress(quiet, "ingest") as step:
            result = run(data, out, mapping=load_mapping(mapping) if mapping else None,
                         progress=step)
        if not quiet:
            console.print(_table("ingest", ["table", "read", "kept", "quarantined",
                                            "reasons"], summary_rows(result)))
        kept = sum(c["kept"] for c in result.counts.values())
        bad = sum(c["quarantined"] for c in result.counts.values())
        console.print(f"{kept:,} rows kept, {bad:,} quarantined: clean tables, quarantine.csv "
                      f"and summary.json in {out}", highlight=False)
    _run(go)


class EngineName(StrEnum):
    local = "local"
    spark = "spark"


MasterOpt = Annotated[str | None, typer.Option(
    "--master", help="Spark master with --engine spark (default: $SPARK_MASTER, else "
    "local[*]).")]
PartitionsOpt = Annotated[int | None, typer.Option(
    "--partitions", help="Hash buckets of debtors with --engine spark (default: about "
    "200,000 invoices each).")]


def _spark_only(engine: EngineName, master: str | None, partitions: int | None) -> None:
    """Refuse Spark's options without ``--engine spark``."""
    if engine is EngineName.local and (master is not None or partitions is not None):
        raise PaycadenceError("--master and --partitions need --engine spark")


@app.command()
def features(
    data: Annotated[str, typer.Option("--data", help="Directory with the input tables (with "
                                      "--engine spark also clean Parquet tables at a URI).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for snapshots.parquet + "
                                      "snapshots.json.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="As if on this date.")] = None,
    params: ParamsOpt = None,
    mapping: MapOpt = None,
    engine: Annotated[EngineName, typer.Option(
        "--engine", help="local: this process; spark: debtors hash-partitioned over Apache "
        "Spark, the same snapshots (docs/scaling.md).")] = EngineName.local,
    master: MasterOpt = None,
    partitions: PartitionsOpt = None,
    quiet: Quiet = False,
):
    """Build the point-in-time training snapshots once (``train --features`` uses them)."""
    from paycadence.config import load_params
    from paycadence.data.ingest import ingest as run_ingest
    from paycadence.data.mapping import load_mapping
    from paycadence.training.train import save_snapshots

    def go():
        _spark_only(engine, master, partitions)
        if engine is EngineName.spark and mapping is not None:
            raise PaycadenceError("--map needs --engine local: ingest with it first "
                                  "(paycadence ingest --map) and give --engine spark the "
                                  "clean tables")
        cfg, day = load_params(params), _date(as_of, "--as-of")
        t = time.perf_counter()
        if engine is EngineName.spark:
            from paycadence.serving.spark_snapshots import snapshots_spark

            result = snapshots_spark(data, cfg, out, as_of=day, master=master,
                                     buckets=partitions)
            shares = ", ".join(f"{k} {v['share']:.3g} of {v['rows']:,}"
                               for k, v in result.plan.items())
            console.print(f"{result.rows:,} labelled snapshots in {result.out} "
                          f"({time.perf_counter() - t:.1f} s; Spark, {result.buckets} buckets; "
                          f"kept: {shares})", highlight=False)
            return
        with _Progress(quiet, "ingesting") as step:
            tables = run_ingest(data, mapping=load_mapping(mapping) if mapping else None).tables
            if step:
                step("building point-in-time snapshots and their labels")
            folder, rows = save_snapshots(tables, cfg, out, day)
        console.print(f"{rows:,} labelled snapshots in {folder} "
                      f"({time.perf_counter() - t:.1f} s)", highlight=False)
    _run(go)


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Train as if on this date.")] = None,
    policy: PolicyOpt = None,
    params: ParamsOpt = None,
    metrics_out: Annotated[Path | None, typer.Option(
        "--metrics-out", help="Also write the holdout metrics as JSON (for DVC).")] = None,
    plots_out: Annotated[Path | None, typer.Option(
        "--plots-out", help="Also write the holdout's calibration points as CSV (for DVC).")
    ] = None,
    snapshot_dir: Annotated[Path | None, typer.Option(
        "--features", help="Snapshots built by `paycadence features` from the same data and "
        "params (checked) instead of building them again; the tables are then scanned, not "
        "held in memory (docs/scaling.md).")] = None,
    mapping: MapOpt = None,
    feedback: Annotated[bool, typer.Option(
        "--feedback/--no-feedback", help="Also learn from the rows posted to /feedback "
        "(PAYCADENCE_DATABASE_URL, when that store exists).")] = True,
    quiet: Quiet = False,
):
    """Ingest, build features, train and evaluate the forecasts; register them in MLflow.

    With ``--features`` the tables are not held in memory: clean Parquet tables (the output of
    ``paycadence ingest``) are scanned as they are, raw input is first checked by the
    streamed ingest into a temporary folder (docs/scaling.md, "Training at scale").
    """
    from paycadence.config import load_params, load_policy
    from paycadence.data.ingest import ingest as run_ingest
    from paycadence.data.mapping import load_mapping
    from paycadence.training import train as run_train
    from paycadence.training.bounded import ScannedTables, clean_tables
    from paycadence.training.ope import Estimate, verdict
    from paycadence.training.tracking import tracking_uri

    def go():
        pol = load_policy(policy)
        cfg = load_params(params)
        day = _date(as_of, "--as-of")
        mapped = load_mapping(mapping) if mapping else None
        with _Progress(quiet, "ingesting") as step, \
                tempfile.TemporaryDirectory(prefix="paycadence-train-") as tmp:
            if snapshot_dir is not None and not (feedback and _feedback_rows()):
                tables = ScannedTables(clean_tables(data, Path(tmp) / "clean", mapped))
            else:
                if snapshot_dir is not None:
                    console.print("the /feedback store holds rows: reading the whole tables "
                                  "to merge them (memory not bounded; --no-feedback skips "
                                  "them)", highlight=False)
                tables = run_ingest(data, mapping=mapped).tables
                if feedback:
                    tables = _with_feedback(tables)
            result = run_train(tables, params=cfg, as_of=day, data_dir=str(data), policy=pol,
                               snapshot_dir=snapshot_dir, progress=step)
        m = result.metrics
        if plots_out is not None and result.reliability is not None:
            plots_out.parent.mkdir(parents=True, exist_ok=True)
            result.reliability.write_csv(plots_out)
        if metrics_out is not None:
            metrics_out.parent.mkdir(parents=True, exist_ok=True)
            metrics_out.write_text(json.dumps(
                {"version": result.version, "alias": result.alias,
                 **{k: v for k, v in m.items() if v == v}}, indent=2), encoding="utf-8")
        def f(key: str, digits: int) -> str:
            value = m.get(key, float("nan"))
            return f"{value:.{digits}f}" if value == value else "n/a"

        rows = [(name, metric, f(key, d), f(f"naive_{key}", d)) for name, metric, key, d in (
            ("p_late", "AUC", "late_auc", 3), ("p_late", "Brier", "late_brier", 4),
            ("p_late", "log-loss", "late_log_loss", 4), ("p_late", "ECE", "late_ece", 4),
            ("days late", "MAE (days)", "days_mae", 2),
            ("p_unpaid_90d", "AUC", "unpaid_auc", 3), ("p_unpaid_90d", "Brier", "unpaid_brier", 4),
            ("p_unpaid_90d", "ECE", "unpaid_ece", 4),
            ("cash, 13 weeks", "WAPE", "cash_wape", 3))]
        for stage, label in (("new", "new (< 7 days old)"), ("before_due", "before due"),
                             ("after_due", "after due")):
            if f"late_auc_{stage}" in m:
                rows.append((f"p_late, {label}", "AUC / ECE",
                             f"{f(f'late_auc_{stage}', 3)} / {f(f'late_ece_{stage}', 3)}",
                             f"{f(f'naive_late_auc_{stage}', 3)} / "
                             f"{f(f'naive_late_ece_{stage}', 3)}"))
        if not quiet:
            console.print(_table(
                f"holdout from {result.split_date} ({result.holdout_rows} snapshots; "
                f"trained on {result.train_rows})",
                ["forecast", "metric", "model", "naive reference"], rows))
        if "ope_dr" in m and not quiet:
            of = (f" of {m['ope_debtors']:.0f} of its {m['ope_debtors_decided']:.0f} decided "
                  "debtors (train.ope_max_debtors)"
                  if m["ope_debtors"] < m["ope_debtors_decided"] else "")
            console.print(
                f"off-policy value per decision on the holdout's {m['ope_decisions']:.0f} logged "
                f"decisions{of}: logging policy {m['ope_logged']:,.2f}; this model's policy "
                f"{m['ope_dr']:,.2f} doubly robust ({m['ope_dr_low']:,.2f} … "
                f"{m['ope_dr_high']:,.2f}), IPS {m['ope_ips']:,.2f}, SNIPS {m['ope_snips']:,.2f}",
                highlight=False)
            if "ope_gain" in m:
                console.print("this model's policy " + verdict(Estimate(
                    m["ope_gain"], m["ope_gain_low"], m["ope_gain_high"])), highlight=False)
            if "champion_ope_dr" in m:
                console.print(
                    f"the champion's policy on the same decisions: {m['champion_ope_dr']:,.2f} "
                    f"doubly robust ({m['champion_ope_dr_low']:,.2f} … "
                    f"{m['champion_ope_dr_high']:,.2f})", highlight=False)
        if not quiet:
            console.print(f"p_late calibration: {result.models.calibrator.method} (lowest "
                          "log-loss on the latest training days)", highlight=False)
        console.print(f"registered paycadence-risk version {result.version} as "
                      f"[bold]{result.alias}[/bold]: {result.reason}", highlight=False)
        if not quiet:
            console.print(f"MLflow run {result.run_id} in {redact(tracking_uri())}",
                          highlight=False)
    _run(go)


def _feedback_rows() -> int:
    """Rows the ``/feedback`` store holds (0 when it does not exist)."""
    from paycadence.config import get_settings
    from paycadence.serving.store import FeedbackStore

    url = get_settings().database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return 0
    store = FeedbackStore(url)
    try:
        return sum(store.count().values())
    finally:
        store.close()


def _with_feedback(tables):
    """The tables plus what ``/feedback`` stored (when the store exists)."""
    from paycadence.config import get_settings
    from paycadence.serving.store import merge_feedback

    url = get_settings().database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return tables
    merged, added = merge_feedback(tables, url)
    if any(added.values()):
        console.print("learning also from /feedback rows: " + ", ".join(
            f"{n} {name}" for name, n in added.items() if n), highlight=False)
    return merged


@app.command()
def recommend(
    data: Annotated[str, typer.Option("--data", help="Directory with the input tables (with "
                                      "--engine spark also clean Parquet tables at a URI).")],
    as_of: Annotated[str, typer.Option("--as-of", help="Decision day (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .csv, .parquet or .jsonl.")],
    policy: PolicyOpt = None,
    engine: Annotated[EngineName, typer.Option(
        "--engine", help="local: this process; spark: debtors hash-partitioned over Apache "
        "Spark, the same answers (docs/scaling.md).")] = EngineName.local,
    master: MasterOpt = None,
    partitions: PartitionsOpt = None,
    quiet: Quiet = False,
):
    """Write the next action for every debtor with an open invoice (no server needed)."""
    from paycadence.config import get_settings, load_policy
    from paycadence.serving.batch import check_output, recommend_batch

    def go():
        _spark_only(engine, master, partitions)
        pol = load_policy(policy)
        day = _date(as_of, "--as-of")
        check_output(out)
        s = get_settings()
        if engine is EngineName.spark:
            from paycadence.serving.spark_batch import recommend_spark

            result = recommend_spark(data, as_of=day, out=out, policy=pol,
                                     model_name=s.model_name, alias=s.model_alias,
                                     master=master, buckets=partitions)
            top, count = result.top, result.count
            where = f"{result.out} (Spark output: {result.parts}, {result.buckets} buckets)"
        else:
            result = recommend_batch(data, as_of=day, out=out, policy=pol,
                                     model_name=s.model_name, alias=s.model_alias)
            top, count, where = result.recommendations, len(result.recommendations), result.out
        if not quiet:
            _print_recommendations(top, f"recommendations as of {day}")
        console.print(f"{count} recommendations ({result.model_version}) written to {where}",
                      highlight=False)
        weeks = result.cash_forecast
        console.print(f"expected cash, next 4 weeks: {sum(w['expected'] for w in weeks[:4]):,.2f}"
                      f"; 13 weeks: {sum(w['expected'] for w in weeks):,.2f} (by week in "
                      f"{result.cash_path})", highlight=False)
    _run(go)


@app.command()
def report(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables (a "
                                       "decisions.csv there adds the off-policy comparison).")],
    as_of: Annotated[str, typer.Option("--as-of", help="Report day (YYYY-MM-DD): the book as "
                                       "known that morning.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    policy: PolicyOpt = None,
    mapping: MapOpt = None,
    quiet: Quiet = False,
):
    """Write the manager's receivables report: one self-contained HTML file (works offline).

    DSO and its trend, countback and best possible DSO, ADD, CEI, ageing,
    payment discipline by segment and country, debtors whose behaviour changed,
    today's worklist ranked by what a contact is worth (with its reasons), the
    models' quality and SHAP importance, and the policy against the fixed
    schedule. docs/report.md defines every measure.
    """
    from paycadence.config import get_settings, load_params, load_policy
    from paycadence.data.mapping import load_mapping
    from paycadence.serving.report import build_report, check_report_path

    def go():
        pol = load_policy(policy)
        day = _date(as_of, "--as-of")
        check_report_path(out)
        s = get_settings()
        with console.status("building the report", spinner="dots") if not quiet else \
                _null() as status:
            result = build_report(data, as_of=day, out=out, policy=pol, params=load_params(),
                                  model_name=s.model_name, alias=s.model_alias,
                                  mapping=load_mapping(mapping) if mapping else None,
                                  progress=status.update if status else None)
        if result.quarantined and not quiet:
            console.print(f"{result.quarantined} input rows quarantined (reasons in "
                          f"{result.data.quarantine_dir / 'quarantine.csv'})", highlight=False)
        console.print(f"report as of {day} written to {result.out} "
                      f"({result.size / 1e6:.1f} MB): {result.worklist} debtors in the worklist "
                      f"of {result.recommendations} with open invoices; decisions by "
                      f"{result.model_version}", highlight=False, soft_wrap=True)
    _run(go)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables and "
                                       "decisions.csv (the logged decisions).")],
    policy: PolicyOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write the estimates as JSON (for DVC metrics).")] = None,
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
        s = get_settings()
        engine = Engine.load(pol, model_name=s.model_name, alias=s.model_alias)
        with console.status(f"asking {engine.version} about {decisions.height} logged "
                            "decisions") if not quiet else _null():
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
                          f"policy {r.logged.value:,.2f} ({r.decisions} decisions): the "
                          f"candidate {verdict(r.gain)}", highlight=False)
            return
        rows = [(name, f"{e.value:,.2f}", f"{e.low:,.2f} … {e.high:,.2f}")
                for name, e in (("logging policy (observed)", r.logged), ("candidate, IPS", r.ips),
                                ("candidate, self-normalised IPS", r.snips),
                                ("candidate, doubly robust", r.dr))]
        console.print(_table(
            f"value per decision: money in within {REWARD_DAYS} days (discounted) − costs; "
            f"{r.decisions} logged decisions, candidate {engine.version}",
            ["estimate", "value", "95% interval (bootstrap over debtors)"], rows))
        console.print(f"support: the candidate would have taken the logged action in "
                      f"{r.supported} decisions ({r.agreement:.0%}); effective sample size "
                      f"{r.effective_n:,.0f}; its choices: "
                      + ", ".join(f"{a} {n}" for a, n in sorted(r.by_action.items())),
                      highlight=False)
        console.print(f"the candidate {verdict(r.gain)}", highlight=False)
    _run(go)


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
        with _Progress(quiet, "backtest") as step:
            result = run_backtest(debtors, days, seed, history_days=history_days, policy=pol,
                                  params=cfg, ope=ope, world=company, oracle=oracle,
                                  progress=step)
        fixed = result.outcomes[0]
        rows = [(o.policy, f"{o.net_value:,.0f}",
                 f"{relative(o.net_value, fixed.net_value):+.2%}", f"{o.mean_days_late:.1f}",
                 f"{o.mean_days_late_paid:.1f}", f"{o.unpaid_90d:,.0f}",
                 f"{o.contacts_per_invoice:.2f}", f"{o.reminders_per_invoice:.2f}",
                 str(o.handovers), str(o.violations))
                for o in [*result.outcomes, *filter(None, [result.oracle])]]
        if not quiet:
            console.print(_table(
                f"backtest: {debtors} debtors, seed {seed}: {history_days} days logged, then "
                f"{days} days from {result.switch_on} ({fixed.invoices_scored} invoices open "
                "on that day or issued later, due ≥ 90 days before the end, scored)",
                ["policy", "net value", "vs fixed", "mean days late", "days late (paid)",
                 "unpaid at due+90", "contacts / invoice", "reminders / invoice", "hand-overs",
                 "rule violations"], rows))
        learnt, none = result.outcomes[-1], result.outcomes[1]
        m = result.margin
        worth = fixed.net_value - none.net_value
        console.print(f"learnt policy vs fixed schedule: net value "
                      f"{relative(learnt.net_value, fixed.net_value):+.2%} (95% interval over "
                      f"debtors {m.low:+.2%} to {m.high:+.2%}; {m.debtors_better} debtors "
                      f"better off, {m.debtors_worse} worse; {m.difference:+,.0f} on top of the "
                      f"{worth:,.0f} the fixed schedule earns over no dunning), mean days late "
                      f"{relative(learnt.mean_days_late, fixed.mean_days_late):+.1%}, contacts "
                      f"per invoice {learnt.contacts_per_invoice:.2f} vs "
                      f"{fixed.contacts_per_invoice:.2f} ({result.learnt_calls} decisions asked "
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
        c = result.ope
        if c is not None:
            console.print(
                f"off-policy check on the logged past ({c.decisions} logged "
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
    _run(go)


@app.command()
def models():
    """List the registered model versions, their aliases, holdout metrics and policy values.

    With a decision log at training, a version shows its policy's doubly robust value per
    decision on the holdout's logged decisions (95% interval) and the champion's on the same
    decisions: the value rule of the promotion gate (docs/models.md).
    """
    from paycadence.config import get_settings
    from paycadence.training import tracking

    def go():
        name = get_settings().model_name
        versions = tracking.list_versions(name)
        if not versions:
            console.print(f"no registered versions of {name} in "
                          f"{redact(tracking.tracking_uri())}",
                          highlight=False)
            return
        rows = []
        for v in versions:
            m = v["metrics"]
            created = dt.datetime.fromtimestamp(v["created"] / 1000, dt.UTC).strftime(
                "%Y-%m-%d %H:%M") if v["created"] else ""
            value = v["value"]
            n = f"{value['ope_decisions']:.0f}" if "ope_decisions" in value else "-"
            theirs = _dr(value, "champion_ope_")
            if theirs != "-" and v["compared_with"]:
                theirs = f"v{v['compared_with']}: {theirs}"
            rows.append((v["version"], ", ".join(v["aliases"]) or "-", created,
                         *(f"{m[k]:.4f}" if k in m else "-" for k in tracking.METRIC_TAGS),
                         _dr(value, "ope_") + _gain(value), n, theirs,
                         _gist(redact(v["promotion"]))))
        console.print(_table(f"{name} in {redact(tracking.tracking_uri())}",
                             ["version", "aliases", "created (UTC)", "p_late AUC", "Brier",
                              "ECE", "days MAE", "unpaid AUC", "DR value (95%)", "decisions",
                              "champion's DR, same decisions", "why"], rows,
                             whole=("DR value (95%)", "champion's DR, same decisions")))
        if any(v["value"] for v in versions):
            console.print("DR value: the policy's doubly robust value per decision on the "
                          "logged decisions of its holdout (95% bootstrap interval over "
                          "debtors); vs log: its gain over the logging policy, with the "
                          "interval of the difference; champion's: the champion it was "
                          "compared with (vN), on the same decisions", highlight=False)
    _run(go)


def _gist(why: str, width: int = 60) -> str:
    """A promotion message cut for a table cell: a long one down to its verdict (the part
    before its first colon, e.g. ``stays challenger by the value rule``)."""
    if len(why) <= width:
        return why
    head = why.split(":", 1)[0]
    return (head if len(head) <= width else head[:width - 1]) + " …"


def _dr(value: dict[str, float], prefix: str) -> str:
    """``value (low … high)`` of a doubly robust estimate recorded as ``prefix``dr tags."""
    if f"{prefix}dr" not in value:
        return "-"
    low, high = value.get(f"{prefix}dr_low", float("nan")), value.get(f"{prefix}dr_high",
                                                                       float("nan"))
    return f"{value[f'{prefix}dr']:,.2f} ({low:,.2f} … {high:,.2f})"


def _gain(value: dict[str, float]) -> str:
    """A second line ``vs log gain (low … high)`` of a recorded gain over the logging policy
    (``ope_gain`` tags), or nothing."""
    if "ope_gain" not in value:
        return ""
    low, high = value.get("ope_gain_low", float("nan")), value.get("ope_gain_high",
                                                                    float("nan"))
    return f"\nvs log {value['ope_gain']:+,.2f} ({low:+,.2f} … {high:+,.2f})"


def _pickup(alias: str, settings) -> str:
    """When a service started with this process's ``PAYCADENCE_*`` settings serves the alias
    just moved: what these settings say, not what a running service did (``--service``)."""
    every = settings.model_refresh_seconds
    if alias != settings.model_alias:
        return (f"a service serves it only with PAYCADENCE_MODEL_ALIAS={alias} (with these "
                f"settings it serves {settings.model_alias})")
    if every <= 0:
        return ("a service started with these settings picks it up on restart "
                "(PAYCADENCE_MODEL_REFRESH_SECONDS=0)")
    return (f"a service started with these settings loads it within {every:g} s, without a "
            "restart (PAYCADENCE_MODEL_REFRESH_SECONDS); --service URL checks that it did")


def _served_version(url: str) -> tuple[str | None, str]:
    """``GET <url>/health``: the model version the running service says it serves, and its
    reason code (``None`` and why, when it does not answer)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as answer:
            health = json.loads(answer.read())
        return health.get("model_version"), health.get("reason", "")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"no answer from {url}/health ({type(exc).__name__})"


def _await_service(url: str, version: str, seconds: float) -> str:
    """Poll the running service until it serves ``risk:<version>`` or ``seconds`` pass; the
    truth either way, in one sentence."""
    want, deadline = f"risk:{version}", time.monotonic() + seconds
    served, reason = _served_version(url)
    while served != want and time.monotonic() < deadline:
        time.sleep(1.0)
        served, reason = _served_version(url)
    if served == want:
        return f"the service at {url} now serves {want}"
    if served is None:
        raise PaycadenceError(f"promoted, but {reason}: whether it serves {want} is unknown")
    raise PaycadenceError(f"promoted, but the service at {url} still serves {served} "
                          f"({reason}) after {seconds:g} s: it serves another alias or model, "
                          "reloads less often (PAYCADENCE_MODEL_REFRESH_SECONDS), or refused "
                          "the new version (its /health and log say why)")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    service: Annotated[str | None, typer.Option(
        "--service", help="A running service's URL (http://127.0.0.1:8000): wait until its "
        "/health says it serves the new version, or fail saying what it serves.")] = None,
    wait: Annotated[float | None, typer.Option(
        min=0, help="Seconds to wait for --service (default: the refresh period + 30).")] = None,
):
    """Move an alias (champion by default) to a model version on purpose.

    Without ``--service`` it says what a service started with these settings will do; with
    it, what the running service did.
    """
    from paycadence.config import get_settings
    from paycadence.training import tracking

    def go():
        settings = get_settings()
        name = settings.model_name
        was = tracking.promote(name, version, alias)
        console.print(f"{name}@{alias} → version {version} (was {was or 'unset'})",
                      highlight=False)
        if service is None:
            console.print(_pickup(alias, settings), highlight=False)
            return
        seconds = wait if wait is not None else max(settings.model_refresh_seconds, 0) + 30
        console.print(_await_service(service, version, seconds), highlight=False)
    _run(go)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; any but a loopback address needs "
                                      "PAYCADENCE_API_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    data: Annotated[Path | None, typer.Option("--data", help="Clean tables for stored debtors "
                                              "(the output of ingest).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each loads "
                                         "the models).")] = 1,
):
    """Start the HTTP API on the registered champion models (JSON logs on stderr).

    SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in flight finish, and
    exits 0 (docs/operations.md).
    """

    def go():
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # its records: JSON too
        if data is not None:
            if not data.is_dir():
                raise PaycadenceError(f"--data {data}: not a directory")
            os.environ["PAYCADENCE_DATA_DIR"] = str(data.resolve())
        metrics_dir = None
        if workers > 1:  # every worker writes its metrics there; /metrics adds them up
            metrics_dir = tempfile.mkdtemp(prefix="paycadence-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        else:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        from paycadence.config import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        if not _is_loopback(host) and not (settings.api_token or "").strip():
            raise PaycadenceError(f"--host {host} is not a loopback address: set "
                                  "PAYCADENCE_API_TOKEN to require a bearer token first")
        import uvicorn

        from paycadence.serving.app import cors_origins
        from paycadence.serving.logs import log_config
        from paycadence.serving.store import FeedbackStore

        # a bad value stops here with one line, not in every worker; the store's tables are
        # created once, here, rather than by workers racing to create them
        cors_origins(settings.cors_origins)
        FeedbackStore(settings.database_url).close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # uvicorn shuts down gracefully, then re-raises the signal: end with exit code 0
            signal.signal(sig, _exit_after_shutdown)
        try:
            uvicorn.run("paycadence.serving.app:app_from_env", factory=True, host=host,
                        port=port, workers=workers, log_config=log_config("INFO"),
                        log_level="info", access_log=False,
                        http="paycadence.serving.protocol:NoDelayH11Protocol")
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    _run(go)


def _exit_after_shutdown(signum, frame):
    raise SystemExit(0)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for the demo's outputs.")] = Path(
        "demo-output"),
    debtors: Annotated[int, typer.Option(min=20, help="Simulated debtors.")] = 400,
    days: Annotated[int, typer.Option(min=240, help="Days of simulated history.")] = 730,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    quiet: Quiet = False,
):
    """Simulate a company → ingest → train → recommend, and summarise what it recommends."""
    from paycadence.config import load_params, load_policy
    from paycadence.serving.demo import run_demo

    def go():
        t = time.perf_counter()
        with console.status("demo", spinner="dots") if not quiet else _null() as status:
            result = run_demo(out, params=load_params(), policy=load_policy(), debtors=debtors,
                              seed=seed, days=days,
                              progress=(status.update if status else None))
        m = result.train.metrics
        console.print(_table("what paycadence recommends", ["action", "debtors"],
                             sorted(result.actions.items(), key=lambda kv: -kv[1])))
        if not quiet:
            _print_recommendations(result.recommendations, f"top debtors as of {result.as_of}")
        console.print(
            f"p_late on the holdout: AUC {m['late_auc']:.3f} (naive {m['naive_late_auc']:.3f}), "
            f"Brier {m['late_brier']:.4f} (naive {m['naive_late_brier']:.4f}); "
            f"model version {result.train.version} is {result.train.alias}", highlight=False)
        console.print("where everything went:")
        for name, path in result.paths.items():
            console.print(f"  {name:18s} {path}", highlight=False, soft_wrap=True)
        console.print(f"demo finished in {time.perf_counter() - t:.1f} s", highlight=False)
    _run(go)


def _print_recommendations(recs: list[dict], title: str, limit: int = 12) -> None:
    acting = sorted((r for r in recs if r["action"] != "wait"),
                    key=lambda r: -r["risk"]["p_late"] * sum(i["open_amount"]
                                                             for i in r["invoices"]))
    rows = [(r["debtor_id"], r["action"], len(r["invoice_ids"]),
             f"{sum(i['open_amount'] for i in r['invoices']):,.2f}",
             f"{r['risk']['p_late']:.2f}", r["next_review_on"], r["reason"],
             "; ".join(e["text"] for e in r["explanation"][:2])) for r in acting[:limit]]
    console.print(_table(title, ["debtor", "action", "invoices", "open", "p_late",
                                 "next review", "why", "top factors"], rows))


def _is_loopback(host: str) -> bool:
    """Whether ``host`` binds loopback only (the app's own rule: without a token, it answers
    nothing but ``/health`` that arrives on another address, however it is started)."""
    from paycadence.serving.deps import is_loopback

    return is_loopback(host)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _Progress:
    """A progress bar for a long command: the library calls ``step(what, done, total)`` as it
    goes (see ``progress=`` in run_backtest, train, ingest_files). Nothing with ``--quiet``, and
    nothing left on screen afterwards: the command's summary follows it."""

    def __init__(self, quiet: bool, what: str):
        self.quiet, self.what, self.bar = quiet, what, None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                            transient=True)
        self.task = self.bar.add_task(self.what, total=None)
        self.bar.start()
        return self.step

    def step(self, what: str, done: int | None = None, total: int | None = None) -> None:
        self.bar.update(self.task, description=what, completed=done, total=total)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def main() -> None:  # pragma: no cover - entry point for python -m
    app(sys.argv[1:])
