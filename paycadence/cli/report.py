"""``report``: the manager's receivables report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paycadence.cli.common import (
    AcceptQuarantineOpt,
    AllowOtherBookOpt,
    BookOpt,
    MapOpt,
    NoPaymentsOkOpt,
    NoStatus,
    ParamsOpt,
    PolicyOpt,
    Quiet,
    StrictOpt,
    app,
    as_date,
    book_choice,
    console,
    input_guard,
    run_command,
)
from paycadence.errors import PaycadenceError


@app.command()
def report(
    data: Annotated[Path, typer.Option("--data", help="Directory with the input tables (a "
                                       "decisions.csv there adds the off-policy comparison).")],
    as_of: Annotated[str, typer.Option("--as-of", help="Report day (YYYY-MM-DD): the book as "
                                       "known that morning.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    policy: PolicyOpt = None,
    mapping: MapOpt = None,
    params: ParamsOpt = None,
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    no_payments_ok: NoPaymentsOkOpt = False,
    book: BookOpt = None,
    allow_other_book: AllowOtherBookOpt = False,
    rates: Annotated[Path | None, typer.Option(
        "--rates", help="CSV currency,rate: each currency's value in the reporting currency; "
        "every amount is converted into it.")] = None,
    currency: Annotated[str | None, typer.Option(
        "--currency", help="The reporting currency (default: the invoices' most frequent); "
        "without --rates only its invoices are reported.")] = None,
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
    from paycadence.report import build_report, check_report_path
    from paycadence.report.build import read_rates

    def go():
        pol = load_policy(policy)
        day = as_date(as_of, "--as-of")
        check_report_path(out)
        s = get_settings()
        choice, model_name = book_choice(data, book, allow_other_book)
        with console.status("building the report", spinner="dots") if not quiet else \
                NoStatus() as status:
            result = build_report(data, as_of=day, out=out, policy=pol,
                                  params=load_params(params), model_name=model_name,
                                  alias=s.model_alias,
                                  mapping=load_mapping(mapping) if mapping else None,
                                  progress=status.update if status else None,
                                  guard=input_guard(params, strict=strict,
                                                    accept_quarantine=accept_quarantine,
                                                    no_payments_ok=no_payments_ok),
                                  book=choice,
                                  rates=read_rates(rates) if rates else None,
                                  currency_code=_currency(currency))
        if result.quarantined and not quiet:
            console.print(f"{result.quarantined:,} input rows quarantined (reasons in "
                          f"{result.data.quarantine_dir / 'quarantine.csv'})", highlight=False)
        console.print(f"report as of {day} written to {result.out} "
                      f"({result.size / 1e6:.1f} MB): {result.worklist:,} debtors in the worklist "
                      f"of {result.recommendations:,} with open invoices; decisions by "
                      f"{result.model_version}", highlight=False, soft_wrap=True)
    run_command(go)


def _currency(code: str | None) -> str | None:
    """``--currency``, checked against ISO 4217."""
    from paycadence.currencies import ISO_4217

    if code is None:
        return None
    if code.strip().upper() not in ISO_4217:
        raise PaycadenceError(f"--currency: '{code}' is not an ISO 4217 currency")
    return code.strip().upper()
