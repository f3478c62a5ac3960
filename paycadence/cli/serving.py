"""``recommend`` (batch), ``serve`` (the HTTP API) and ``demo`` (the whole path)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from paycadence.books import valid_book
from paycadence.cli.common import (
    AcceptQuarantineOpt,
    AllowOtherBookOpt,
    BookOpt,
    EngineName,
    MapOpt,
    MasterOpt,
    NoPaymentsOkOpt,
    NoStatus,
    ParamsOpt,
    PartitionsOpt,
    PolicyOpt,
    Quiet,
    StrictOpt,
    app,
    as_date,
    book_choice,
    console,
    input_guard,
    make_table,
    run_command,
    spark_only,
)
from paycadence.errors import PaycadenceError


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
    mapping: MapOpt = None,
    params: ParamsOpt = None,
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    no_payments_ok: NoPaymentsOkOpt = False,
    book: BookOpt = None,
    allow_other_book: AllowOtherBookOpt = False,
    quiet: Quiet = False,
):
    """Write the next action for every debtor with an open invoice (no server needed).

    Refused before anything is decided: invoices without a single payment (unless
    --no-payments-ok), a table quarantined over ingest.max_quarantine_share (unless
    --accept-quarantine), --as-of before the data's first day; warned: --as-of long after its
    last day.
    """
    from paycadence.config import get_settings, load_policy
    from paycadence.data.mapping import load_mapping
    from paycadence.serving.batch import check_output, recommend_batch

    def go():
        spark_only(engine, master, partitions)
        if engine is EngineName.spark and mapping is not None:
            raise PaycadenceError("--map needs --engine local: ingest with it first "
                                  "(paycadence ingest --map) and give --engine spark the "
                                  "clean tables")
        pol = load_policy(policy)
        day = as_date(as_of, "--as-of")
        check_output(out)
        s = get_settings()
        guard = input_guard(params, strict=strict, accept_quarantine=accept_quarantine,
                            no_payments_ok=no_payments_ok)
        choice, model_name = book_choice(data, book, allow_other_book)
        if engine is EngineName.spark:
            from paycadence.serving.spark_batch import recommend_spark

            result = recommend_spark(data, as_of=day, out=out, policy=pol,
                                     model_name=model_name, alias=s.model_alias,
                                     master=master, buckets=partitions, guard=guard)
            top, count = result.top, result.count
            where = f"{result.out} (Spark output: {result.parts}, {result.buckets} buckets)"
        else:
            result = recommend_batch(data, as_of=day, out=out, policy=pol,
                                     model_name=model_name, alias=s.model_alias,
                                     mapping=load_mapping(mapping) if mapping else None,
                                     guard=guard, book=choice)
            top, count, where = result.recommendations, len(result.recommendations), result.out
        if not quiet:
            _print_recommendations(top, f"recommendations as of {day}")
        console.print(f"{count:,} recommendations ({result.model_version}) written to {where}",
                      highlight=False)
        weeks = result.cash_forecast
        console.print(f"expected cash, next 4 weeks: {sum(w['expected'] for w in weeks[:4]):,.2f}"
                      f"; 13 weeks: {sum(w['expected'] for w in weeks):,.2f} (by week in "
                      f"{result.cash_path})", highlight=False)
    run_command(go)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; any but a loopback address needs "
                                      "PAYCADENCE_API_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    data: Annotated[Path | None, typer.Option("--data", help="Clean tables for stored debtors "
                                              "(the output of ingest).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each loads "
                                         "the models).")] = 1,
    book: BookOpt = None,
    allow_other_book: AllowOtherBookOpt = False,
):
    """Start the HTTP API on the registered champion models (JSON logs on stderr).

    With --book it serves that book's own registered model; with --data it refuses to start on
    a champion trained on another book (--allow-other-book to do it on purpose).

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

        if book:
            os.environ["PAYCADENCE_BOOK"] = valid_book(book)
        get_settings.cache_clear()
        settings = get_settings()
        if data is not None:
            _check_served_book(data, settings, allow_other_book)
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
    run_command(go)


def _check_served_book(data: Path, settings, allow: bool) -> None:
    """Refuse to serve the stored debtors of ``data`` with a champion of another book (a
    registry that cannot be reached is left to the service, which then degrades)."""
    import polars as pl

    from paycadence.books import BookChoice, registered_name
    from paycadence.errors import RegistryUnavailableError
    from paycadence.training import tracking

    choice = BookChoice.of(data, settings.book, allow)
    name = registered_name(settings.model_name, settings.book)
    try:
        held = tracking.alias_version(tracking.setup(), name, settings.model_alias)
    except RegistryUnavailableError:
        return
    if held is None:
        return
    table = next((data / f"debtors{x}" for x in (".parquet", ".csv")
                  if (data / f"debtors{x}").is_file()), None)
    if table is None:
        return
    ids = (pl.read_parquet(table, columns=["debtor_id"]) if table.suffix == ".parquet"
           else pl.read_csv(table, columns=["debtor_id"], infer_schema=False))["debtor_id"]
    choice.check(dict(held.tags or {}), ids.to_list(),
                 what=f"the champion {name} version {held.version}")


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
        with console.status("demo", spinner="dots") if not quiet else NoStatus() as status:
            result = run_demo(out, params=load_params(), policy=load_policy(), debtors=debtors,
                              seed=seed, days=days,
                              progress=(status.update if status else None))
        m = result.train.metrics
        console.print(make_table("what paycadence recommends", ["action", "debtors"],
                             sorted(result.actions.items(), key=lambda kv: -kv[1])))
        if not quiet:
            _print_recommendations(result.recommendations, f"top debtors as of {result.as_of}")
        console.print(
            f"p_late on the holdout: AUC {m['late_auc']:.3f} (best simple reference "
            f"{m.get('ref_best_late_auc', float('nan')):.3f}), Brier {m['late_brier']:.4f} "
            f"(reference {m.get('ref_best_late_brier', float('nan')):.4f}); "
            f"model version {result.train.version} is {result.train.alias}", highlight=False)
        console.print("where everything went:")
        for name, path in result.paths.items():
            console.print(f"  {name:18s} {path}", highlight=False, soft_wrap=True)
        console.print(f"demo finished in {time.perf_counter() - t:.1f} s", highlight=False)
    run_command(go)


def _print_recommendations(recs: list[dict], title: str, limit: int = 12) -> None:
    """The day's contacts, the most worth first (``value_vs_wait``, as the report ranks
    them), then those nothing learnt valued, the most open at risk first (open amount × the
    chance it is still unpaid in a week)."""
    def rank(r: dict) -> tuple:
        worth = r.get("value_vs_wait")
        at_risk = r["risk"]["p_open_7d"] * sum(i["open_amount"] for i in r["invoices"])
        return (worth is None, -(worth if worth is not None else at_risk))

    acting = sorted((r for r in recs if r["action"] != "wait"), key=rank)
    rows = [(r["debtor_id"], r["action"], len(r["invoice_ids"]),
             f"{sum(i['open_amount'] for i in r['invoices']):,.2f}",
             f"{r['risk']['p_late']:.2f}", f"{r['risk']['p_open_7d']:.2f}",
             "-" if r.get("value_vs_wait") is None else f"{r['value_vs_wait']:,.2f}",
             r["next_review_on"], r["reason"],
             "; ".join(e["text"] for e in r["explanation"][:2])) for r in acting[:limit]]
    console.print(make_table(title, ["debtor", "action", "invoices", "open", "p_late",
                                     "unpaid in 7 days", "worth", "next review", "why",
                                     "top factors"], rows))


def _is_loopback(host: str) -> bool:
    """Whether ``host`` binds loopback only (the app's own rule: without a token, it answers
    nothing but ``/health`` that arrives on another address, however it is started)."""
    from paycadence.serving.deps import is_loopback

    return is_loopback(host)
