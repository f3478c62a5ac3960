"""Render :class:`paycadence.serving.report.ReportData` as one self-contained HTML page.

The page carries its own CSS and one inlined copy of plotly.js: it opens offline, from a file
or a mail attachment, and asks no network for anything. Every piece of data passes through
Jinja's autoescape; the charts' data is JSON that plotly escapes for a script tag.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import io
import logging
import math
import re

import plotly.io as pio
from jinja2 import Environment, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from paycadence.redact import redact
from paycadence.report import charts as C
from paycadence.report.build import ReportData
from paycadence.report.template import TEMPLATE
from paycadence.training.ope import verdict
from paycadence.training.quality import ChampionInfo
from paycadence.training.tracking import COMPARED_TAG, VALUE_TAGS

logger = logging.getLogger(__name__)

#: Rows of the worklist shown in the page (the rest are counted).
WORKLIST_SHOWN = 150
def worklist_rows(worklist: list[dict]) -> list[dict]:
    """The whole worklist as the page's CSV download writes it (and its search reads it),
    in rank order: one flat row per contact."""
    return [{"rank": k, "debtor": w["debtor_id"], "action": w["action"],
             "segment": w.get("segment"), "country": w.get("country"),
             "open": round(w["open_amount"], 2), "days_past_due": w.get("max_days_past_due"),
             "p_late": round(w["p_late"], 3), "p_open_7d": round(w["p_open_7d"], 3),
             "worth": None if w["value"] is None else round(w["value"], 2),
             "next_review": w["next_review_on"], "invoice_ids": ";".join(w["invoice_ids"]),
             "why": w["why"]} for k, w in enumerate(worklist, start=1)]


#: Rows of the behaviour-change table shown.
CHANGED_SHOWN = 25
CONFIG = {"displayModeBar": False, "responsive": True}
ACTION_LABELS = {"email": "email", "sms": "SMS", "letter": "letter", "phone": "phone call",
                 "payment_plan": "payment plan", "collection": "hand to collection",
                 "wait": "wait"}


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def money(v, digits: int = 0) -> str:
    return "n/a" if _missing(v) else f"{v:,.{digits}f}"


def days(v) -> str:
    return "n/a" if _missing(v) else f"{v:,.1f}"


def pct(v, digits: int = 0) -> str:
    return "n/a" if _missing(v) else f"{100 * v:.{digits}f}%"


def num(v, digits: int = 3) -> str:
    return "n/a" if _missing(v) else f"{v:.{digits}f}"


def points(v: float) -> str:
    """Signed percentage points, one decimal below 1."""
    return f"{v:+.1f}" if abs(v) < 1 else f"{v:+.0f}"


#: The type of a chart's script: not run by the browser as the page is read, but once plotly.js
#: is unpacked (the page's loader runs them in order).
CHART_SCRIPT = "text/x-paycadence-chart"


def _chart(fig, name: str) -> Markup | None:
    """A figure as a ``<div>`` plus its script, which runs once plotly.js (inlined once,
    packed: :func:`packed_plotly`) is unpacked."""
    if fig is None:
        return None
    html = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=CONFIG,
                       div_id=f"chart-{name}", default_width="100%")
    html = html.replace("<script>", f'<script type="{CHART_SCRIPT}">')
    return Markup(f'<div class="chart" data-chart="{name}">{html}</div>')  # noqa: S704


@functools.cache
def packed_plotly() -> str:
    """plotly.js gzipped and written in base85 (Python's alphabet, which holds no ``/``, so
    no ``</script``): 1.8 MB where the plain bundle takes 4.8 MB, which kept the report
    above 2 MB. The page unpacks it with the browser's ``DecompressionStream`` and then draws
    the charts."""
    data = gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b85encode(data).decode("ascii")


def _png(data: bytes | None) -> str | None:
    """A figure logged in MLflow as a data URI, in 128 colours (a chart's few flat colours
    survive; the page stays under 2 MB), or as logged when it cannot be read."""
    if data is None:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            small = io.BytesIO()
            image.convert("RGB").quantize(colors=128).save(small, format="PNG", optimize=True)
        if small.tell() < len(data):
            data = small.getvalue()
    except (ImportError, OSError, ValueError):
        pass
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _delta(trend) -> dict | None:
    """DSO now against the previous month end: ``{"days", "since"}`` (None without one)."""
    if trend.height < 2:
        return None
    now, before = trend["dso"][-1], trend["dso"][-2]
    if _missing(now) or _missing(before):
        return None
    return {"days": now - before, "since": trend["date"][-2]}


def _reference(m: dict, key: str) -> float | None:
    """The best simple reference's holdout figure for ``key`` (``ref_best_<key>``, or the
    reference of that name, e.g. ``ref_median_days_mae``); the naive reference's for a model
    trained before the references were recorded."""
    for k in (f"ref_best_{key}", f"ref_median_{key}", f"naive_{key}"):
        if k in m:
            return m[k]
    return None


def _auc_rows(d: ReportData) -> list[tuple[str, float | None, float | None]]:
    m = d.champion.metrics if d.champion.found else {}
    rows = [("p_late<br>holdout", m.get("late_auc"), _reference(m, "late_auc")),
            ("unpaid in 7 days<br>(past due) holdout", m.get("open7_auc",
                                                             m.get("late_auc_after_due")),
             m.get("naive_open7_auc", m.get("naive_late_auc_after_due"))),
            ("p_unpaid_90d<br>holdout", m.get("unpaid_auc"), m.get("naive_unpaid_auc"))]
    if d.check is not None:
        rows.append(("p_late<br>recent check", d.check.scores.get("model", {}).get("auc"),
                     d.check.scores["reference"]["auc"]))
    return [(label, None if _missing(a) else a, None if _missing(b) else b)
            for label, a, b in rows]


def _metric_rows(d: ReportData) -> list[tuple[str, str, str, str]]:
    """(forecast, metric, model, reference) rows of the champion's logged holdout metrics:
    ``p_late`` and days late beside the best simple reference, the rest beside the naive
    one."""
    m = d.champion.metrics
    spec = (("p_late", "AUC (higher is better)", "late_auc", 3),
            ("p_late", "Brier score (lower is better)", "late_brier", 4),
            ("p_late", "calibration error, ECE (lower is better)", "late_ece", 4),
            ("unpaid in 7 days (past due)", "AUC", "open7_auc", 3),
            ("p_unpaid_90d", "AUC", "unpaid_auc", 3),
            ("p_unpaid_90d", "Brier score", "unpaid_brier", 4),
            ("days late", "mean absolute error (days)", "days_mae", 2),
            ("cash, 13 weeks", "WAPE (lower is better)", "cash_wape", 3))
    return [(f, label, num(m.get(k), dd),
             num(_reference(m, k) if k in ("late_auc", "late_brier", "days_mae")
                 else m.get(f"naive_{k}"), dd))
            for f, label, k, dd in spec if k in m]


def _recorded(champion: ChampionInfo) -> dict[str, float]:
    """The champion's off-policy values recorded at training (:data:`tracking.VALUE_TAGS`):
    its run's metrics, else its version's tags."""
    out = {}
    for key in VALUE_TAGS:
        text = champion.metrics.get(key, champion.version_tags.get(key))
        try:
            out[key] = float(text)
        except (TypeError, ValueError):
            continue
    return out


def value_rows(champion: ChampionInfo) -> list[tuple[str, float, float, float]]:
    """(policy, DR value, low, high) per decision on the logged decisions of the champion's
    holdout: its own policy and, when there was one, the champion it was compared with on the
    same decisions (the promotion gate's value rule); empty when none was recorded."""
    m = _recorded(champion)
    if "ope_dr" not in m:
        return []
    rows = [(f"this champion (version {champion.version})", m["ope_dr"],
             m.get("ope_dr_low", math.nan), m.get("ope_dr_high", math.nan))]
    if "champion_ope_dr" in m:
        before = champion.version_tags.get(COMPARED_TAG) or champion.tags.get(COMPARED_TAG)
        rows.append(("the champion it was compared with"
                     + (f" (version {before})" if before else ""), m["champion_ope_dr"],
                     m.get("champion_ope_dr_low", math.nan),
                     m.get("champion_ope_dr_high", math.nan)))
    return rows


def _ope_rows(d: ReportData) -> list[tuple[str, float, float, float]]:
    r = d.ope.result
    if r is None:
        return []
    return [(name, e.value, e.low, e.high) for name, e in (
        ("logging policy (observed)", r.logged), ("candidate, IPS", r.ips),
        ("candidate, SNIPS", r.snips), ("candidate, doubly robust", r.dr))]


def render(d: ReportData) -> str:
    """The whole page."""
    charts = {
        "trend": _chart(C.trend(d.trend), "trend"),
        "cei": _chart(C.cei(d.trend), "cei"),
        "ageing": _chart(C.ageing(d.ageing, d.currency), "ageing"),
        "cash": _chart(C.cash(d.cash, d.currency), "cash"),
        "segment": _chart(C.discipline(d.by_segment, "segment"), "segment"),
        "country": _chart(C.discipline(d.by_country, "country"), "country"),
        "monthly": _chart(C.monthly(d.by_month), "monthly"),
        "calibration": _chart(C.calibration(d.check.bins) if d.check else None,
                              "calibration"),
        "auc": _chart(C.auc(_auc_rows(d)), "auc"),
        "shap": _chart(C.shap(d.shap), "shap"),
        "ope": _chart(C.ope(_ope_rows(d), d.currency) if d.ope.result else None, "ope"),
        "backtest": _chart(C.backtest(d.backtest.metrics) if d.backtest else None,
                           "backtest"),
    }
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(money=money, days=days, pct=pct, num=num, points=points)
    template = env.from_string(TEMPLATE)
    quarantined = sum(c["quarantined"] for c in d.ingest.counts.values())
    return squeeze(template.render(
        d=d, k=d.kpis, charts=charts, plotlyjs=Markup(packed_plotly()),  # noqa: S704
        delta=_delta(d.trend), shown=d.worklist[:WORKLIST_SHOWN],
        wl_rows=worklist_rows(d.worklist),
        wl_options={k: sorted({str(w[k]) for w in d.worklist if w.get(k)})
                    for k in ("action", "segment", "country")},
        hidden=max(len(d.worklist) - WORKLIST_SHOWN, 0),
        labels=ACTION_LABELS, metric_rows=_metric_rows(d), ope_rows=_ope_rows(d),
        ope_verdict=verdict(d.ope.result.gain) if d.ope.result else "",
        value_rows=value_rows(d.champion) if d.champion.found else [],
        value_decisions=_recorded(d.champion).get("ope_decisions"),
        promotion=redact(d.champion.promotion) if d.champion.found else "",
        calibration_png=_png(d.champion.calibration_png),
        backtest_pngs={k: _png(v) for k, v in (d.backtest.figures.items()
                                               if d.backtest else [])},
        quarantined=quarantined, named=sum(w["named_amount"] for w in d.worklist),
        cash4=sum(w["expected"] for w in d.cash[:4]), cash13=sum(w["expected"] for w in d.cash),
        last_closed=d.as_of - dt.timedelta(days=1),
        unpaid_window_end=d.as_of - dt.timedelta(days=91),
        fallback=d.model_version == "fallback", changed_shown=CHANGED_SHOWN,
    ))


#: Scripts are kept as they are: their text is code and data, not markup.
_SCRIPT = re.compile(r"(<script\b.*?</script>)", re.S)
_INDENT = re.compile(r"\n[ \t]+")


def squeeze(html: str) -> str:
    """The page without the template's indentation: outside scripts, the spaces that begin a
    line go (the line break stays, so words stay apart; the page has no ``<pre>``). Tens of
    kilobytes of the budget of 2 MB, the same page in the browser."""
    parts = _SCRIPT.split(html)
    return "".join(p if k % 2 else _INDENT.sub("\n", p) for k, p in enumerate(parts))
