"""The manager's receivables report: gather everything it shows, then write one HTML file.

:func:`build_report` reads a data directory the way ``recommend`` does (``ingest``, with its
quarantine beside the output), asks the champion (or the rule-based fallback) through
:func:`paycadence.models.recommend` for every debtor's next action, and adds the receivables
measures (:mod:`paycadence.features.measures`), the debtors whose behaviour changed, the
collector's worklist ranked by what a contact is worth, the models' quality and global SHAP
importance, and the policy against the logging schedule (off-policy, and the latest logged
backtest). :mod:`paycadence.report.html` renders it. docs/report.md explains every part.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.books import BookChoice
from paycadence.config import Params, Policy
from paycadence.currencies import ISO_4217
from paycadence.data import Tables
from paycadence.data.checks import InputGuard
from paycadence.data.ingest import IngestResult, ingest
from paycadence.data.mapping import Mapping
from paycadence.errors import InputError
from paycadence.features import describe, invoice_features
from paycadence.features import measures as K
from paycadence.features.pit import CHANGE_DAYS, CHANGE_SHARE
from paycadence.models import RiskModels, recommend
from paycadence.models.recommend import book_cash_forecast
from paycadence.redact import redact
from paycadence.serving.engine import Engine
from paycadence.training.ope import REWARD_DAYS, OpeResult, evaluate_policy, read_decisions
from paycadence.training.quality import (
    BacktestRun,
    CalibrationCheck,
    ChampionInfo,
    calibration_check,
    champion_info,
    latest_backtest,
)
from paycadence.training.train import cut_tables

logger = logging.getLogger(__name__)

#: Logged decisions of this many days before the last REWARD_DAYS are evaluated off-policy.
OPE_DAYS = 90
#: Features in the global SHAP chart.
SHAP_TOP = 12


@dataclass(frozen=True)
class Ope:
    """The off-policy comparison on the report's window of logged decisions."""

    start: dt.date
    end: dt.date  # exclusive
    result: OpeResult | None
    note: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows (currency amounts in the tables' currency)."""

    as_of: dt.date
    data_dir: str
    currency: str
    model_version: str
    model_detail: str
    ingest: IngestResult
    quarantine_dir: Path
    kpis: dict
    unpaid_90d: float | None
    trend: pl.DataFrame
    ageing: pl.DataFrame
    by_segment: pl.DataFrame
    by_country: pl.DataFrame
    by_month: pl.DataFrame
    worklist: list[dict]
    recommendations: int
    changed: list[dict]
    cash: list[dict]
    champion: ChampionInfo
    check: CalibrationCheck | None
    shap: pl.DataFrame | None
    ope: Ope
    backtest: BacktestRun | None
    #: the book reported on (paycadence.books), shown in the title
    book: str | None = None
    #: how the amounts came to be in one currency (converted, or the others left out)
    currency_note: str = ""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote."""

    out: Path
    size: int  # bytes
    worklist: int  # debtors to contact today
    recommendations: int
    model_version: str
    quarantined: int
    data: ReportData


def check_report_path(out: str | Path) -> Path:
    """``out``, refused early unless it names an ``.html`` file in a usable place."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{out}: the report is an HTML file; give --out a name ending in .html")
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give --out a file name ending in .html")
    return out


def build_report(
    data_dir: str | Path,
    *,
    as_of: dt.date,
    out: str | Path,
    policy: Policy,
    params: Params,
    model_name: str,
    alias: str = "champion",
    mapping: Mapping | None = None,
    progress: Callable[[str], None] | None = None,
    guard: InputGuard | None = None,
    book: BookChoice | None = None,
    rates: dict[str, float] | None = None,
    currency_code: str | None = None,
) -> ReportResult:
    """Build the report on ``as_of`` for the tables in ``data_dir`` and write it to ``out``.

    Parameters
    ----------
    data_dir
        The input tables (CONTRACT.md §1), or an ERP export read through ``mapping``; a
        ``decisions.csv`` there adds the off-policy comparison.
    as_of
        The report's day: everything is as known on its morning (CONTRACT.md §1).
    progress
        Called with a one-line status before each step.
    guard
        Checks the tables and ``as_of`` right after ingest (paycadence.data.checks).
    book
        The report's book: a champion trained on another is refused (paycadence.books); the
        report names the book.
    rates, currency_code
        One reporting currency (:func:`one_currency`): amounts converted with ``rates``, or,
        without, only the invoices in ``currency_code`` (default: the most frequent).

    Raises
    ------
    InputError
        A bad output name, a missing directory, file or column (from ingest), or no invoice
        issued on or before ``as_of``.
    """
    from paycadence.report.html import render

    say = progress or (lambda msg: None)
    out = check_report_path(out)
    say("ingesting and validating the tables")
    quarantine_dir = out.parent / f"{out.stem}-ingest"
    checked = ingest(data_dir, quarantine_dir, mapping=mapping)
    if guard is not None:
        guard.check_ingested(checked, as_of)
    whole, shown_in, currency_note = one_currency(checked.tables, rates=rates,
                                                  currency=currency_code)
    tables = cut_tables(whole, as_of)
    if tables.invoices.height == 0:
        first = checked.tables.invoices["issue_date"].min()
        raise InputError(f"{data_dir}: no invoice issued on or before {as_of} (the first is "
                         f"{first}); pick a later --as-of" if first else
                         f"{data_dir}: no invoices to report on")
    say("loading the champion models")
    engine = Engine.load(policy, model_name=model_name, alias=alias)
    engine.check_book(book, model_name, checked.tables)
    say(f"recommending the next action for every debtor as of {as_of} ({engine.version})")
    recs = recommend(tables, as_of=as_of, policy=policy, models=engine.models,
                     model_version=engine.version)
    features = invoice_features(tables, as_of=as_of)
    work = worklist(recs, features, tables, as_of=as_of, policy=policy, models=engine.models)
    say("computing DSO, CEI, ageing and payment discipline")
    data_kpis = K.kpis(tables, as_of=as_of)
    trend = K.trend(tables, as_of=as_of)
    ageing = K.ageing(tables, as_of=as_of)
    by_segment = K.discipline(tables, as_of=as_of, by="segment")
    by_country = K.discipline(tables, as_of=as_of, by="country")
    by_month = K.monthly_discipline(tables, as_of=as_of)
    unpaid = K.unpaid_after_90_days(tables, as_of=as_of)
    say("reading the models' record in MLflow and checking their calibration")
    champ = champion_info(model_name, alias)
    check = calibration_check(tables, engine.models, as_of=as_of,
                              horizon_days=params.train.horizon_days,
                              not_before=champ.split_date if engine.models is not None
                              else None)
    shap = shap_importance(engine.models, features, {w["debtor_id"] for w in work})
    say("comparing the policy with the logged schedule (off-policy)")
    ope = off_policy(data_dir, tables, as_of=as_of, policy=policy, models=engine.models)
    backtest = latest_backtest()
    data = ReportData(
        as_of=as_of, data_dir=str(data_dir), currency=shown_in, currency_note=currency_note,
        model_version=engine.version, model_detail=redact(engine.detail), ingest=checked,
        book=book.name if book is not None else None,
        quarantine_dir=quarantine_dir, kpis=data_kpis, unpaid_90d=unpaid, trend=trend,
        ageing=ageing, by_segment=by_segment, by_country=by_country, by_month=by_month,
        worklist=work, recommendations=len(recs), changed=changed_debtors(features, recs),
        cash=book_cash_forecast(recs, as_of), champion=champ, check=check, shap=shap,
        ope=ope, backtest=backtest)
    say("writing the HTML report")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    quarantined = sum(c["quarantined"] for c in checked.counts.values())
    return ReportResult(out, out.stat().st_size, len(work), len(recs), engine.version,
                        quarantined, data)


def read_rates(path: str | Path) -> dict[str, float]:
    """A rates file: CSV ``currency,rate``, each rate the value of one unit of that currency in
    the reporting currency (``GBP,1.17`` to report in EUR).

    Raises
    ------
    InputError
        An unreadable file, a missing column, a code that is not ISO 4217, a rate that is not
        a positive number, a currency listed twice.
    """
    path = Path(path)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("currency", "rate") if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: column '{missing[0]}' is missing (write: currency,rate)")
    rates: dict[str, float] = {}
    for line, (code, rate) in enumerate(zip(frame["currency"], frame["rate"], strict=True), 2):
        code = (code or "").strip().upper()
        if code not in ISO_4217:
            raise InputError(f"{path}: line {line}: '{code}' is not an ISO 4217 currency")
        try:
            value = float(rate)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise InputError(f"{path}: line {line}: rate '{rate}' is not a positive number")
        if code in rates:
            raise InputError(f"{path}: line {line}: {code} is listed twice")
        rates[code] = value
    return rates


def one_currency(tables: Tables, *, rates: dict[str, float] | None = None,
                 currency: str | None = None) -> tuple[Tables, str, str]:
    """The tables in one currency, which the report is in; amounts are never summed across
    currencies unconverted.

    With ``rates`` every invoice and its payments are converted into ``currency`` (default:
    the currency with the most invoices; its own rate is 1). Without, a book in several
    currencies is reported in ``currency`` (default: the one with the most invoices) on the
    invoices in it, and ``note`` says what the others hold.

    Returns
    -------
    (tables, currency, note)

    Raises
    ------
    InputError
        A currency of the invoices that ``rates`` has no rate for.
    """
    codes = tables.invoices["currency"].fill_null("EUR")
    counts = codes.value_counts().sort(["count", "currency"], descending=[True, False])
    present = counts["currency"].to_list() or ["EUR"]
    target = (currency or present[0]).upper()
    if rates is not None:
        rates = {**rates, target: 1.0}
        lacking = [c for c in present if c not in rates]
        if lacking:
            raise InputError(f"the rates file has no rate for {', '.join(lacking)} (the "
                             f"invoices' currencies: {', '.join(present)})")
        rate = pl.col("currency").fill_null("EUR").replace_strict(rates, return_dtype=pl.Float64)
        invoices = tables.invoices.with_columns((pl.col("amount") * rate).alias("amount"),
                                                pl.lit(target).alias("currency"))
        by_invoice = tables.invoices.select("invoice_id", rate.alias("_rate"))
        payments = tables.payments.join(by_invoice, on="invoice_id", how="left").with_columns(
            (pl.col("amount") * pl.col("_rate").fill_null(1.0)).alias("amount")).drop("_rate")
        converted = ", ".join(f"{c} at {rates[c]:g}" for c in present if c != target)
        note = f"converted into {target}: {converted}" if converted else ""
        return Tables(debtors=tables.debtors, invoices=invoices, payments=payments,
                      actions=tables.actions, disputes=tables.disputes), target, note
    if len(present) == 1 and present[0] == target:
        return tables, target, ""
    keep = tables.invoices.filter(pl.col("currency").fill_null("EUR") == target)
    others = tables.invoices.filter(pl.col("currency").fill_null("EUR") != target)
    left = ", ".join(f"{c}: {n:,} invoices" for c, n in zip(
        counts["currency"], counts["count"], strict=True) if c != target)
    note = (f"only the {keep.height:,} invoices in {target} are reported ({left} left out: "
            "give --rates FILE to convert them, or --currency to report another)")
    ids = keep["invoice_id"].implode()
    return Tables(debtors=tables.debtors, invoices=keep,
                  payments=tables.payments.filter(pl.col("invoice_id").is_in(ids)),
                  actions=tables.actions.filter(pl.col("invoice_id").is_in(ids)),
                  disputes=tables.disputes.filter(pl.col("invoice_id").is_in(ids))), target, \
        note if others.height else ""


# --- the collector's worklist -----------------------------------------------------------------

def worklist(recs: list[dict], features: pl.DataFrame, tables, *, as_of: dt.date,
             policy: Policy, models: RiskModels | None) -> list[dict]:
    """Every debtor the policy contacts today (action other than ``wait``), most valuable
    contact first.

    An action's worth is the policy's own figure, the recommendation's ``value_vs_wait``
    (:mod:`paycadence.models.policy.decision`): the money the value model learnt from the
    book's log expects it to add against waiting, minus its cost (``basis``: ``learnt
    value``) — the same number the API, the CSV and the reason text give. Where nothing learnt
    valued it (the rule-based fallback, a book without a log) it has no worth (``value``
    None, ``basis``: ``not valued``): the amount it names is shown as ``at_stake`` (and a
    hand-over's agency fee on it as part of ``cost``), and such contacts come after the valued
    ones, the largest amount at stake first.
    """
    acting = [r for r in recs if r["action"] != "wait"]
    if not acting:
        return []
    ids = [r["debtor_id"] for r in acting]
    rows = features.filter(pl.col("debtor_id").is_in(pl.Series(ids, dtype=pl.String).implode()))
    by_invoice = {r["invoice_id"]: r for r in rows.to_dicts()}
    history = _contacts(tables, ids, as_of)
    meta = dict(zip(tables.debtors["debtor_id"].to_list(),
                    zip(tables.debtors["segment"].to_list(), tables.debtors["country"].to_list(),
                        strict=True), strict=True))
    out = []
    for rec in acting:
        inv = {i["invoice_id"]: i for i in rec["invoices"]}
        named = rec["invoice_ids"] or list(inv)
        action = rec["action"]
        named = [i for i in named if i in inv]
        cost = policy.costs.of(action)
        at_stake = sum(inv[i]["open_amount"] for i in named)
        if rec.get("value_vs_wait") is not None:
            value, basis = float(rec["value_vs_wait"]), "learnt value"
            gain = value + cost
        else:
            value, gain, basis = None, None, "not valued"
            if action == "collection":
                cost += policy.collection_fee_rate * at_stake
        segment, country = meta.get(rec["debtor_id"], (None, None))
        open_total = sum(i["open_amount"] for i in rec["invoices"])
        overdue = [by_invoice[i]["days_past_due"] for i in inv if i in by_invoice]
        out.append({
            "debtor_id": rec["debtor_id"], "segment": segment, "country": country,
            "action": action, "step": rec["step"], "invoice_ids": rec["invoice_ids"],
            "open_amount": open_total,
            "named_amount": sum(inv[i]["open_amount"] for i in named if i in inv),
            "max_days_past_due": max(overdue) if overdue else None,
            "p_late": rec["risk"]["p_late"], "p_open_7d": rec["risk"]["p_open_7d"],
            "p_unpaid_90d": rec["risk"]["p_unpaid_90d"],
            "gain": gain, "cost": cost, "value": value, "basis": basis, "at_stake": at_stake,
            "reasons": reasons(rec),
            "why": rec["reason"], "next_review_on": rec["next_review_on"],
            "explored": rec["explored"],
            # what a collector opens the debtor to: its open invoices and its contacts
            "open_invoices": [{"invoice_id": i["invoice_id"], "open_amount": i["open_amount"],
                               "days_past_due": by_invoice.get(i["invoice_id"], {}).get(
                                   "days_past_due"), "p_late": i["p_late"],
                               "p_open_7d": i["p_open_7d"],
                               "named": i["invoice_id"] in named}
                              for i in rec["invoices"]],
            "contacts": history.get(rec["debtor_id"], []),
        })
    out.sort(key=lambda w: (w["value"] is None, -(w["value"] if w["value"] is not None
                                                  else w["at_stake"]), -w["open_amount"],
                            w["debtor_id"]))
    return out


#: Contacts listed per debtor when the worklist opens it (the latest first).
CONTACTS_SHOWN = 10


def _contacts(tables, debtor_ids: list[str], as_of: dt.date) -> dict[str, list[dict]]:
    """Each debtor's latest contacts known on ``as_of``: day, channel, step, invoice."""
    inv = tables.invoices.filter(pl.col("debtor_id").is_in(
        pl.Series(debtor_ids, dtype=pl.String).implode())).select("invoice_id", "debtor_id")
    acts = tables.actions.filter(pl.col("sent_on") < as_of).join(inv, on="invoice_id")
    acts = acts.sort(["debtor_id", "sent_on"], descending=[False, True])
    out: dict[str, list[dict]] = {}
    for row in acts.select("debtor_id", "sent_on", "channel", "step",
                           "invoice_id").iter_rows(named=True):
        listed = out.setdefault(row["debtor_id"], [])
        if len(listed) < CONTACTS_SHOWN:
            listed.append({"sent_on": row["sent_on"].isoformat(), "channel": row["channel"],
                           "step": row["step"], "invoice_id": row["invoice_id"]})
    return out


#: The size part of a reason's text (models/recommend.py ``_reason``), which the report shows
#: as an arrow and points beside the fact; a factor worded "…, yet this lowers …" keeps it.
_SIZE = re.compile(r": (raises|lowers) (the risk of paying late|the chance it is still unpaid "
                   r"a week from now) by [0-9.]+ points?$")


def reasons(rec: dict) -> list[dict]:
    """The recommendation's top factors with direction and size: ``text`` (the factor's own
    words), ``effect`` (``raises``/``lowers``/``None``) and ``points``, the change in points
    of the focus invoice's calibrated ``p_late`` that ``recommend`` computed (None without a
    model)."""
    out = []
    for e in rec["explanation"]:
        c = float(e.get("contribution") or 0.0)
        effect = e.get("effect") or ((c > 0 and "raises") or (c < 0 and "lowers") or None)
        text = e.get("text", "")
        if e.get("points") is not None:  # "…: raises the risk … by 21 points": shown apart
            text = _SIZE.sub("", text)
        out.append({"feature": e.get("feature"), "text": text, "effect": effect,
                    "points": e.get("points")})
    return out


# --- behaviour changes, SHAP, off-policy ------------------------------------------------------

def changed_debtors(features: pl.DataFrame, recs: list[dict]) -> list[dict]:
    """Debtors with an open invoice whose ``behaviour_change`` flag is up on the report's day
    (docs/features.md: recent lateness well above their own long-run rate, or recent payments
    much later than usual), most open first, with the figures behind the flag, what changed
    in words and today's recommended action."""
    flagged = features.filter(pl.col("behaviour_change") > 0)
    if flagged.height == 0:
        return []
    action = {r["debtor_id"]: r["action"] for r in recs}
    by_id = {r["debtor_id"]: r for r in recs}
    rows = flagged.group_by("debtor_id", maintain_order=True).first().sort(
        ["debtor_open_amount", "debtor_id"], descending=[True, False])
    out = []
    for r in rows.to_dicts():
        signals = []
        more = (r["late_last_5_due"] or 0.0) - (r["share_late"] or 0.0)
        if more >= CHANGE_SHARE:
            signals.append(f"late more often: +{100 * more:.0f} points on its last invoices "
                           "due")
        if (r["days_late_trend"] or 0.0) >= CHANGE_DAYS:
            signals.append(f"pays later: {r['days_late_trend']:+.0f} days on its last "
                           "payments")
        out.append({
            "debtor_id": r["debtor_id"],
            "open_amount": r["debtor_open_amount"], "overdue_amount": r["overdue_amount"],
            "share_late": r["share_late"], "late_last_5_due": r["late_last_5_due"],
            "mean_days_late": r["mean_days_late"],
            "mean_days_late_last_5": r["mean_days_late_last_5"],
            "signals": signals or [describe("behaviour_change", r)],
            "action": action.get(r["debtor_id"], "wait"),
            # a wait says why and until when (the recommendation's reason and next review)
            "why": by_id[r["debtor_id"]]["reason"] if r["debtor_id"] in by_id else
            "no open invoice to act on today",
            "until": by_id[r["debtor_id"]]["next_review_on"] if r["debtor_id"] in by_id
            else None,
        })
    return out


def shap_importance(models: RiskModels | None, features: pl.DataFrame, debtors: set[str]
                    ) -> pl.DataFrame | None:
    """Mean |SHAP value| of each feature on ``p_late`` (log-odds) over the open invoices of
    the worklist's debtors, largest :data:`SHAP_TOP` first; None without a model or rows."""
    if models is None or not debtors:
        return None
    rows = features.filter(pl.col("debtor_id").is_in(pl.Series(sorted(debtors),
                                                               dtype=pl.String).implode()))
    if rows.height == 0:
        return None
    values, _ = models.contributions(rows)
    return pl.DataFrame({
        "feature": list(models.features),
        "mean_abs": np.abs(values).mean(axis=0),
        "mean": values.mean(axis=0),
    }).sort(["mean_abs", "feature"], descending=[True, False]).head(SHAP_TOP).with_columns(
        rows=pl.lit(rows.height))


def off_policy(data_dir: str | Path, tables, *, as_of: dt.date, policy: Policy,
               models: RiskModels | None) -> Ope:
    """The policy against the logging policy, as ``paycadence evaluate`` estimates it, on the
    logged decisions of the :data:`OPE_DAYS` days before the last :data:`REWARD_DAYS` (whose
    rewards are known on ``as_of``)."""
    end = as_of - dt.timedelta(days=REWARD_DAYS)
    start = end - dt.timedelta(days=OPE_DAYS)
    if not any((Path(data_dir) / f"decisions.{e}").exists() for e in ("csv", "parquet")):
        return Ope(start, end, None, f"no decisions.csv in {data_dir}: the off-policy estimate "
                   "needs the logged decisions with their propensities (docs/policy.md)")
    decisions = read_decisions(data_dir).filter(
        (pl.col("decided_on") >= start) & (pl.col("decided_on") < end))
    if decisions.height == 0:
        return Ope(start, end, None, f"no logged decision from {start} to "
                   f"{end - dt.timedelta(days=1)}")
    return Ope(start, end, evaluate_policy(tables, decisions, policy, models), "")
