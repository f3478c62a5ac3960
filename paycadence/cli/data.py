"""``simulate``, ``ingest`` and ``features``: data in, checked, and made into snapshots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from paycadence.books import valid_book
from paycadence.cli.common import (
    AcceptQuarantineOpt,
    EngineName,
    MapOpt,
    MasterOpt,
    NoPaymentsOkOpt,
    NoStatus,
    ParamsOpt,
    PartitionsOpt,
    PolicyOpt,
    Progress,
    Quiet,
    StrictOpt,
    WorldOpt,
    WorldSeedOpt,
    app,
    as_date,
    console,
    input_guard,
    make_table,
    run_command,
    spark_only,
)
from paycadence.errors import PaycadenceError


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
        with console.status("simulating", spinner="dots") if not quiet else NoStatus():
            result = run(debtors, days=days, seed=seed, start=as_date(start, "--start"),
                         world=resolve_world(world, world_seed), policy=pol)
            paths = write_simulation(result, out)
        rows = [(name, f"{frame.height:,}") for name, frame in result.tables.items()]
        if not quiet:
            console.print(make_table(f"simulated {debtors:,} debtors, seed {seed}",
                                     ["table", "rows"], rows))
        console.print(f"wrote {len(paths)} files to {out} in {time.perf_counter() - t:.1f} s: "
                      + ", ".join(sorted(Path(p).name for p in paths)), highlight=False)
    run_command(go)


@app.command()
def ingest(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for clean tables + quarantine.")],
    mapping: MapOpt = None,
    params: ParamsOpt = None,
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    book: Annotated[str | None, typer.Option(
        "--book", help="The book (company) these tables are, recorded in summary.json "
        "(default: the input folder's name).")] = None,
    quiet: Quiet = False,
):
    """Validate a data directory into clean tables, a quarantine file and a summary.

    Everything is written, and then the run fails (exit 2) when more than
    ``ingest.max_quarantine_share`` of a table was quarantined, unless --accept-quarantine.
    """
    from paycadence.data.ingest import ingest_files as run
    from paycadence.data.ingest import summary_rows
    from paycadence.data.mapping import load_mapping

    def go():
        with Progress(quiet, "ingest") as step:
            result = run(data, out, mapping=load_mapping(mapping) if mapping else None,
                         progress=step, book=valid_book(book) if book else None)
        if not quiet:
            console.print(make_table("ingest", ["table", "read", "kept", "quarantined",
                                                "reasons"], summary_rows(result)))
        kept = sum(c["kept"] for c in result.counts.values())
        bad = sum(c["quarantined"] for c in result.counts.values())
        console.print(f"{kept:,} rows kept, {bad:,} quarantined: clean tables, quarantine.csv "
                      f"and summary.json in {out}", highlight=False)
        input_guard(params, strict=strict, accept_quarantine=accept_quarantine).check_tables(
            result.counts, decides=False)
    run_command(go)


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
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    no_payments_ok: NoPaymentsOkOpt = False,
    quiet: Quiet = False,
):
    """Build the point-in-time training snapshots once (``train --features`` uses them)."""
    from paycadence.config import load_params
    from paycadence.data.ingest import ingest as run_ingest
    from paycadence.data.mapping import load_mapping
    from paycadence.training.train import save_snapshots

    def go():
        spark_only(engine, master, partitions)
        if engine is EngineName.spark and mapping is not None:
            raise PaycadenceError("--map needs --engine local: ingest with it first "
                                  "(paycadence ingest --map) and give --engine spark the "
                                  "clean tables")
        cfg, day = load_params(params), as_date(as_of, "--as-of")
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
        guard = input_guard(params, strict=strict, accept_quarantine=accept_quarantine,
                            no_payments_ok=no_payments_ok)
        with Progress(quiet, "ingesting") as step:
            checked = run_ingest(data, mapping=load_mapping(mapping) if mapping else None)
            guard.check_ingested(checked, day)
            tables = checked.tables
            if step:
                step("building point-in-time snapshots and their labels")
            folder, rows = save_snapshots(tables, cfg, out, day)
        console.print(f"{rows:,} labelled snapshots in {folder} "
                      f"({time.perf_counter() - t:.1f} s)", highlight=False)
    run_command(go)
