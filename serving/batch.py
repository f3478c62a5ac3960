"""Batch recommendations (no server): ingest a data directory, score, decide, write a file."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from paycadence.books import BookChoice
from paycadence.config import Policy
from paycadence.data.checks import InputGuard
from paycadence.data.ingest import IngestResult, ingest
from paycadence.data.mapping import Mapping
from paycadence.errors import InputError
from paycadence.models import recommend
from paycadence.models.recommend import book_cash_forecast, refuse_non_finite
from paycadence.serving.engine import Engine

logger = logging.getLogger(__name__)

FORMATS = (".csv", ".parquet", ".jsonl")


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote and what it was built on."""

    recommendations: list[dict]
    out: Path
    model_version: str
    model_detail: str
    ingest: IngestResult
    cash_forecast: list[dict]
    cash_path: Path


def check_output(out: str | Path) -> Path:
    """The output path, refused early when its extension names no supported format."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise InputError(f"{out}: unsupported output format '{out.suffix}'; use "
                         + ", ".join(FORMATS))
    return out


def recommend_batch(
    data_dir: str | Path,
    *,
    as_of: dt.date,
    out: str | Path,
    policy: Policy,
    model_name: str,
    alias: str = "champion",
    mapping: Mapping | None = None,
    guard: InputGuard | None = None,
    book: BookChoice | None = None,
) -> BatchResult:
    """Recommend for every debtor with an open invoice on ``as_of`` and write ``out``.

    The data directory (or an ERP export read through ``mapping``) is validated like
    ``ingest`` (its quarantine and summary go beside ``out``), and ``guard`` checks the tables
    and ``as_of`` before anything is decided; the champion model is used, or the rule-based
    fallback when none loads. The book's expected cash per week for the next 13 weeks goes to
    ``<out>-cash-forecast.csv``. A champion trained on another ``book`` is refused
    (:class:`paycadence.books.BookChoice`) before anything is decided.
    """
    out = check_output(out)
    checked = ingest(data_dir, out.parent / f"{out.stem}-ingest", mapping=mapping)
    if guard is not None:
        guard.check_ingested(checked, as_of)
    engine = Engine.load(policy, model_name=model_name, alias=alias)
    engine.check_book(book, model_name, checked.tables)
    recs = recommend(checked.tables, as_of=as_of, policy=policy, models=engine.models,
                     model_version=engine.version)
    cash = book_cash_forecast(recs, as_of)
    refuse_non_finite(recs, cash, where=str(out))  # before anything is written
    write_recommendations(recs, out)
    cash_path = out.parent / f"{out.stem}-cash-forecast.csv"
    pl.DataFrame(cash).write_csv(cash_path)
    return BatchResult(recs, out, engine.version, engine.detail, checked, cash, cash_path)


#: Columns and types of the CSV and Parquet outputs (one :func:`flat` row per debtor).
FLAT_SCHEMA: dict[str, pl.DataType] = {
    "debtor_id": pl.String(), "action": pl.String(), "invoice_ids": pl.String(),
    "step": pl.Int64(), "next_review_on": pl.String(), "p_late": pl.Float64(),
    "expected_days_late": pl.Float64(), "p_unpaid_90d": pl.Float64(),
    "p_open_7d": pl.Float64(), "expected_value": pl.Float64(), "value_vs_wait": pl.Float64(),
    "propensity": pl.Float64(),
    "explored": pl.Boolean(),
    "model_version": pl.String(), "reason": pl.String(), "explanation": pl.String(),
    "invoices": pl.String(), "cash_13_weeks": pl.Float64(), "cash_forecast": pl.String(),
    "alternatives": pl.String(),
}


def flat(rec: dict) -> dict:
    """One flat row of a recommendation for CSV/Parquet (lists as JSON text)."""
    return {
        "debtor_id": rec["debtor_id"], "action": rec["action"],
        "invoice_ids": ";".join(rec["invoice_ids"]), "step": rec["step"],
        "next_review_on": rec["next_review_on"],
        "p_late": rec["risk"]["p_late"], "expected_days_late": rec["risk"]["expected_days_late"],
        "p_unpaid_90d": rec["risk"]["p_unpaid_90d"],
        "p_open_7d": rec["risk"].get("p_open_7d"), "expected_value": rec["expected_value"],
        "value_vs_wait": rec.get("value_vs_wait"),
        "propensity": rec["propensity"], "explored": rec["explored"],
        "model_version": rec["model_version"], "reason": rec["reason"],
        "explanation": json.dumps(rec["explanation"]), "invoices": json.dumps(rec["invoices"]),
        "cash_13_weeks": round(sum(w["expected"] for w in rec["cash_forecast"]), 2),
        "cash_forecast": json.dumps(rec["cash_forecast"]),
        "alternatives": json.dumps(rec.get("alternatives", [])),
    }


def write_recommendations(recs: list[dict], out: str | Path) -> Path:
    """Write recommendations; the format follows the extension (.csv, .parquet, .jsonl).

    Raises
    ------
    NonFiniteOutputError
        When a number of a recommendation is infinite or NaN (nothing is written): JSON has
        no such numbers, and ``Infinity`` in a file breaks every reader.
    """
    out = check_output(out)
    refuse_non_finite(recs, where=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        with out.open("w", encoding="utf-8") as fh:
            for rec in recs:
                fh.write(json.dumps(rec, allow_nan=False) + "\n")
        return out
    frame = pl.DataFrame([flat(r) for r in recs], schema=FLAT_SCHEMA, orient="row")
    if suffix == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    return out
