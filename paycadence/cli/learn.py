"""``train``: ingest, build features, train and evaluate the forecasts, register them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from paycadence.cli.common import (
    AcceptQuarantineOpt,
    AllowOtherBookOpt,
    BookOpt,
    MapOpt,
    NoPaymentsOkOpt,
    ParamsOpt,
    PolicyOpt,
    Progress,
    Quiet,
    StrictOpt,
    app,
    as_date,
    book_choice,
    console,
    input_guard,
    make_table,
    run_command,
)
from paycadence.redact import redact


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
    strict: StrictOpt = False,
    accept_quarantine: AcceptQuarantineOpt = False,
    no_payments_ok: NoPaymentsOkOpt = False,
    book: BookOpt = None,
    allow_other_book: AllowOtherBookOpt = False,
    quiet: Quiet = False,
):
    """Ingest, build features, train and evaluate the forecasts; register them in MLflow.

    With ``--features`` the tables are not held in memory: clean Parquet tables (the output of
    ``paycadence ingest``) are scanned as they are, raw input is first checked by the
    streamed ingest into a temporary folder (docs/scaling.md, "Training at scale").
    """
    import polars as pl

    from paycadence.config import load_params, load_policy
    from paycadence.data import TABLE_NAMES
    from paycadence.data.ingest import ingest as run_ingest
    from paycadence.data.ingest import span_of
    from paycadence.data.mapping import load_mapping
    from paycadence.training import train as run_train
    from paycadence.training.bounded import ScannedTables, clean_tables
    from paycadence.training.evaluation import best_reference
    from paycadence.training.history import summary as history_summary
    from paycadence.training.ope import Estimate, verdict
    from paycadence.training.tracking import tracking_uri

    def go():
        pol = load_policy(policy)
        cfg = load_params(params)
        day = as_date(as_of, "--as-of")
        mapped = load_mapping(mapping) if mapping else None
        guard = input_guard(params, strict=strict, accept_quarantine=accept_quarantine,
                            no_payments_ok=no_payments_ok)
        with Progress(quiet, "ingesting") as step, \
                tempfile.TemporaryDirectory(prefix="paycadence-train-") as tmp:
            if snapshot_dir is not None and not (feedback and _feedback_rows()):
                folder = clean_tables(data, Path(tmp) / "clean", mapped, guard)
                guard.check_day(day, span_of({name: pl.scan_parquet(folder / f"{name}.parquet")
                                              for name in TABLE_NAMES}))
                tables = ScannedTables(folder)
            else:
                if snapshot_dir is not None:
                    console.print("the /feedback store holds rows: reading the whole tables "
                                  "to merge them (memory not bounded; --no-feedback skips "
                                  "them)", highlight=False)
                checked = run_ingest(data, mapping=mapped)
                guard.check_ingested(checked, day)
                tables = checked.tables
                if feedback:
                    tables = _with_feedback(tables)
            choice, model_name = book_choice(data, book, allow_other_book)
            result = run_train(tables, params=cfg, as_of=day, data_dir=str(data), policy=pol,
                               snapshot_dir=snapshot_dir, progress=step, model_name=model_name,
                               book=choice.name, book_named=choice.named,
                               allow_other_book=allow_other_book)
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

        best, _ = best_reference(m)
        strongest = {"late_auc": "ref_best_late_auc", "late_brier": "ref_best_late_brier",
                     "late_log_loss": f"ref_{best}_late_log_loss",
                     "late_ece": f"ref_{best}_late_ece", "days_mae": "ref_median_days_mae"}
        rows = [(name, metric, f(key, d), f(strongest[key], d) if key in strongest else "",
                 f(f"naive_{key}", d)) for name, metric, key, d in (
            ("p_late (before due)", "AUC", "late_auc", 3),
            ("p_late (before due)", "Brier", "late_brier", 4),
            ("p_late (before due)", "log-loss", "late_log_loss", 4),
            ("p_late (before due)", "ECE", "late_ece", 4),
            ("unpaid in 7 days (past due)", "AUC", "open7_auc", 3),
            ("unpaid in 7 days (past due)", "ECE", "open7_ece", 4),
            ("days late", "MAE (days)", "days_mae", 2),
            ("p_unpaid_90d", "AUC", "unpaid_auc", 3), ("p_unpaid_90d", "Brier", "unpaid_brier", 4),
            ("p_unpaid_90d", "ECE", "unpaid_ece", 4),
            ("cash, 13 weeks", "WAPE", "cash_wape", 3)) if key in m]
        if "late_auc_new" in m:
            rows.append(("p_late, new (< 7 days old)", "AUC / ECE",
                         f"{f('late_auc_new', 3)} / {f('late_ece_new', 3)}", "",
                         f"{f('naive_late_auc_new', 3)} / {f('naive_late_ece_new', 3)}"))
        if not quiet:
            console.print(make_table(
                f"holdout from {result.split_date} ({result.holdout_rows:,} snapshots; "
                f"trained on {result.train_rows:,})",
                ["forecast", "metric", "model", f"best simple reference ({best or 'n/a'})",
                 "naive reference"], rows))
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
        for line in history_summary(result.models.card):  # a short history's limits
            console.print(line, highlight=False, soft_wrap=True)
        console.print(f"registered {model_name} version {result.version} (book "
                      f"'{choice.name}') as "
                      f"[bold]{result.alias}[/bold]: {result.reason}", highlight=False)
        if not quiet:
            console.print(f"MLflow run {result.run_id} in {redact(tracking_uri())}",
                          highlight=False)
    run_command(go)


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
    left_out = added.pop("left_out", 0)
    if any(added.values()):
        console.print("learning also from /feedback rows: " + ", ".join(
            f"{n:,} {name}" for name, n in added.items() if n), highlight=False)
    if left_out:
        console.print(f"left out {left_out:,} /feedback rows of debtors not in this book",
                      highlight=False)
    return merged
