"""What every command shares: the Typer app, the console, the options written once, one-line
errors (:func:`run_command`) and progress."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycadence.errors import PaycadenceError
from paycadence.quiet import quiet_libraries
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


StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Make every warning about the input an error (docs/ingest.md, 'What every "
    "command checks').")]


AcceptQuarantineOpt = Annotated[bool, typer.Option(
    "--accept-quarantine", help="Go on with the rows kept when more than "
    "ingest.max_quarantine_share (params) of a table is quarantined.")]


NoPaymentsOkOpt = Annotated[bool, typer.Option(
    "--no-payments-ok", help="Go on with invoices but not one payment (every invoice then "
    "reads as unpaid).")]


BookOpt = Annotated[str | None, typer.Option(
    "--book", help="The book (company) this is: its own registered model, '<model>.<book>', "
    "and a champion of another book is refused (default: PAYCADENCE_BOOK, else derived from "
    "the data; docs/operations.md, 'Books').")]


AllowOtherBookOpt = Annotated[bool, typer.Option(
    "--allow-other-book", help="Use (or replace) a champion trained on another book, on "
    "purpose.")]


def book_choice(data, given: str | None, allow_other: bool = False):
    """The command's :class:`paycadence.books.BookChoice` and the registered model it uses:
    ``--book`` (or ``PAYCADENCE_BOOK``) names the book and its own model; otherwise the book
    is derived from ``data`` and the model is ``PAYCADENCE_MODEL_NAME``'s."""
    from paycadence.books import BookChoice, registered_name
    from paycadence.config import get_settings

    settings = get_settings()
    given = given or settings.book
    local = data if data is None or "://" not in str(data) else None
    return (BookChoice.of(local, given, allow_other),
            registered_name(settings.model_name, given))


def input_guard(params: Path | None = None, *, strict: bool = False,
                accept_quarantine: bool = False, no_payments_ok: bool = False):
    """The :class:`paycadence.data.checks.InputGuard` of a command's flags, with the
    ``ingest`` section of ``params`` (shipped by default); its warnings go to stderr."""
    from paycadence.config import load_params
    from paycadence.data.checks import InputGuard

    cfg = load_params(params).ingest
    return InputGuard(cfg.max_quarantine_share, cfg.stale_after_days, strict=strict,
                      accept_quarantine=accept_quarantine, no_payments_ok=no_payments_ok,
                      warn=lambda text: typer.echo(f"warning: {redact(text)}", err=True))


def as_date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PaycadenceError(f"{name}: '{value}' is not a date (use YYYY-MM-DD)") from None


def run_command(fn, *args, **kwargs):
    """Call a stage; a PaycadenceError becomes one line on stderr and exit code 2."""
    quiet_libraries()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redact_log_handlers()  # no credential of a URI in a warning line
    try:
        return fn(*args, **kwargs)
    except PaycadenceError as exc:
        typer.echo(f"error: {redact(exc)}", err=True)
        raise typer.Exit(2) from None


def make_table(title: str, columns: list[str], rows: list[tuple],
           whole: tuple[str, ...] = ()) -> Table:
    """A table of ``rows``; the cells of the ``whole`` columns are never wrapped."""
    table = Table(title=title, title_justify="left", min_width=len(title) + 2)
    for col in columns:
        table.add_column(col, no_wrap=col in whole)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    return table


class EngineName(StrEnum):
    local = "local"
    spark = "spark"


MasterOpt = Annotated[str | None, typer.Option(
    "--master", help="Spark master with --engine spark (default: $SPARK_MASTER, else "
    "local[*]).")]


PartitionsOpt = Annotated[int | None, typer.Option(
    "--partitions", help="Hash buckets of debtors with --engine spark (default: about "
    "200,000 invoices each).")]


def spark_only(engine: EngineName, master: str | None, partitions: int | None) -> None:
    """Refuse Spark's options without ``--engine spark``."""
    if engine is EngineName.local and (master is not None or partitions is not None):
        raise PaycadenceError("--master and --partitions need --engine spark")


class NoStatus:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class Progress:
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
