"""The report's charts: Plotly figures built from :class:`paycadence.serving.report.ReportData`.

Every function returns a ``plotly.graph_objects.Figure`` (or None when there is nothing to
draw); :mod:`paycadence.report.html` embeds them with one inlined copy of plotly.js.
"""

from __future__ import annotations

import datetime as dt
import functools

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

INK = "#1f2937"
MUTED = "#6b7280"
NAVY = "#1e3a5f"
BLUE = "#2563eb"
TEAL = "#0d9488"
GREEN = "#16a34a"
AMBER = "#d97706"
RED = "#dc2626"
GREY = "#9ca3af"
#: Ageing buckets from harmless to worrying.
#: A date axis labelled by month.
DATES = {"type": "date", "tickformat": "%b %Y", "hoverformat": "%d %b %Y"}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


@functools.cache
def _template() -> go.layout.Template:
    """plotly_white's layout (fonts, grid, colours) without its defaults for every kind of
    trace: those were written into each chart, some 9 kB each, for traces the report never
    draws (the charts set their own colours)."""
    return go.layout.Template(layout=pio.templates["plotly_white"].layout)


def _layout(fig: go.Figure, *, height: int = 330, **kwargs) -> go.Figure:
    fig.update_layout(**({
        "template": _template(), "height": height,
        "font": {"family": FONT, "size": 12, "color": INK},
        "margin": {"l": 56, "r": 24, "t": 36, "b": 48}, "hovermode": "x unified",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left",
                   "x": 0},
    } | kwargs))
    return fig


def trend(frame: pl.DataFrame) -> go.Figure | None:
    """DSO, countback DSO and best possible DSO at month ends (lines) and ADD (bars)."""
    if frame.height == 0:
        return None
    x = [d.isoformat() for d in frame["date"].to_list()]
    fig = go.Figure()
    fig.add_bar(x=x, y=frame["add"].to_list(), name="ADD", width=86_400_000 * 12,
                marker_color="rgba(217,119,6,0.35)", hovertemplate="%{y:.1f} days")
    for col, name, colour, dash in (("dso", "DSO (90-day)", NAVY, "solid"),
                                    ("countback_dso", "countback DSO", BLUE, "dash"),
                                    ("best_possible_dso", "best possible DSO", GREEN, "dot")):
        fig.add_scatter(x=x, y=frame[col].to_list(), name=name, mode="lines+markers",
                        line={"color": colour, "dash": dash, "width": 2.4},
                        hovertemplate="%{y:.1f} days")
    return _layout(fig, yaxis_title="days", xaxis=DATES)


def cei(frame: pl.DataFrame) -> go.Figure | None:
    """CEI of the 90 days ending at each month end."""
    if frame.height == 0:
        return None
    x = [d.isoformat() for d in frame["date"].to_list()]
    fig = go.Figure(go.Scatter(x=x, y=frame["cei"].to_list(), mode="lines+markers",
                               name="CEI", line={"color": TEAL, "width": 2.4},
                               fill="tozeroy", fillcolor="rgba(13,148,136,0.08)",
                               hovertemplate="%{y:.1f}%"))
    return _layout(fig, height=300, yaxis={"title": "percent", "range": [0, 105]},
                   xaxis=DATES, showlegend=False)


def ageing(frame: pl.DataFrame, currency: str) -> go.Figure:
    """Open amount per ageing bucket, split into what a collector can act on, what is
    disputed and what is with the agency (stacked; the share of the open total on top)."""
    fig = go.Figure()
    for column, label, colour in (("actionable", "actionable", BLUE),
                                  ("disputed", "disputed", AMBER),
                                  ("with_agency", "with the agency", GREY)):
        fig.add_bar(x=frame["bucket"].to_list(), y=frame[column].to_list(), name=label,
                    marker_color=colour, customdata=frame["invoices"].to_list(),
                    hovertemplate="%{x}: %{y:,.2f} " + currency + " " + label
                                  + "<extra></extra>")
    fig.add_scatter(x=frame["bucket"].to_list(), y=frame["open_amount"].to_list(),
                    mode="text", text=[f"{s:.0%}" for s in frame["share"].to_list()],
                    textposition="top center", showlegend=False, hoverinfo="skip")
    return _layout(fig, height=320, yaxis_title=f"open ({currency})", barmode="stack",
                   xaxis_title="days past due", hovermode="closest")


def cash(weeks: list[dict], currency: str) -> go.Figure | None:
    """Expected cash per week over the next 13 weeks."""
    if not weeks:
        return None
    fig = go.Figure(go.Bar(
        x=[_week(w) for w in weeks], y=[w["expected"] for w in weeks],
        marker_color=BLUE, customdata=[f"{w['start']} – {w['end']}" for w in weeks],
        hovertemplate="%{customdata}: %{y:,.2f} " + currency + "<extra></extra>"))
    return _layout(fig, height=300, yaxis_title=f"expected ({currency})", showlegend=False,
                   hovermode="closest")


def _week(week: dict) -> str:
    """A forecast week by its dates: "24 Nov – 30 Nov" (week 1 starts on the report's day)."""
    start, end = (dt.date.fromisoformat(str(week[k])) for k in ("start", "end"))
    return f"{start.day} {start:%b} – {end.day} {end:%b}"


def discipline(frame: pl.DataFrame, by: str) -> go.Figure | None:
    """Share of invoices and of value paid late per group (horizontal bars)."""
    frame = frame.filter(pl.col("paid") > 0)
    if frame.height == 0:
        return None
    frame = frame.sort("share_value_late")
    names = frame[by].to_list()
    fig = go.Figure()
    fig.add_bar(y=names, x=frame["share_late"].to_list(), name="invoices paid late",
                orientation="h", marker_color=GREY, hovertemplate="%{x:.0%}")
    fig.add_bar(y=names, x=frame["share_value_late"].to_list(), name="value paid late",
                orientation="h", marker_color=AMBER, hovertemplate="%{x:.0%}")
    return _layout(fig, height=max(220, 70 + 46 * len(names)), barmode="group",
                   xaxis={"tickformat": ".0%", "range": [0, 1]}, hovermode="y unified",
                   yaxis={"type": "category"})


def monthly(frame: pl.DataFrame) -> go.Figure | None:
    """Value paid late (bars) and value-weighted days late (line) per settlement month."""
    if frame.height == 0:
        return None
    x = [d.strftime("%Y-%m") for d in frame["month"].to_list()]
    fig = go.Figure()
    fig.add_bar(x=x, y=frame["share_value_late"].to_list(), name="value paid late",
                marker_color="rgba(217,119,6,0.55)", hovertemplate="%{y:.0%}")
    fig.add_scatter(x=x, y=frame["mean_days_late"].to_list(), name="mean days late",
                    yaxis="y2", mode="lines+markers", line={"color": RED, "width": 2.4},
                    hovertemplate="%{y:.1f} days")
    return _layout(fig, height=300, xaxis={"type": "category"},
                   yaxis={"tickformat": ".0%", "range": [0, 1], "title": "value paid late"},
                   yaxis2={"overlaying": "y", "side": "right", "title": "days late",
                           "rangemode": "tozero", "showgrid": False, "tickformat": ".0f"})


def calibration(bins: pl.DataFrame) -> go.Figure | None:
    """Observed share paid late against the forecast, per forecast tenth (marker area ~ n)."""
    if bins.height == 0:
        return None
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect",
                    line={"color": GREY, "dash": "dash", "width": 1}, hoverinfo="skip")
    for who, name, colour in (("model", "champion model", NAVY),
                              ("reference", "best simple reference", AMBER)):
        part = bins.filter(pl.col("who") == who)
        if part.height == 0:
            continue
        n = part["n"].to_list()
        top = max(n)
        fig.add_scatter(x=part["forecast"].to_list(), y=part["observed"].to_list(),
                        mode="lines+markers", name=name, customdata=n,
                        line={"color": colour, "width": 2},
                        marker={"size": [8 + 14 * (v / top) ** 0.5 for v in n]},
                        hovertemplate="forecast %{x:.0%} → paid late %{y:.0%} "
                                      "(%{customdata} invoices)")
    return _layout(fig, height=360, hovermode="closest",
                   xaxis={"title": "forecast p_late", "tickformat": ".0%", "range": [0, 1]},
                   yaxis={"title": "observed share paid late", "tickformat": ".0%",
                          "range": [0, 1.02]})


def auc(rows: list[tuple[str, float | None, float | None]]) -> go.Figure | None:
    """AUC of the model beside the best simple reference, one pair of bars per (label,
    model, reference) row; rows with neither value are left out."""
    rows = [r for r in rows if r[1] is not None or r[2] is not None]
    if not rows:
        return None
    labels = [r[0] for r in rows]
    fig = go.Figure()
    for j, name, colour in ((1, "model", NAVY), (2, "best simple reference", AMBER)):
        values = [r[j] for r in rows]
        if all(v is None for v in values):
            continue
        fig.add_bar(x=labels, y=values, name=name, marker_color=colour,
                    text=["" if v is None else f"{v:.3f}" for v in values],
                    textposition="outside", hovertemplate="%{y:.3f}")
    fig.add_hline(y=0.5, line={"color": GREY, "dash": "dot", "width": 1})
    return _layout(fig, height=340, barmode="group", yaxis={"title": "AUC", "range": [0, 1.08]},
                   hovermode="x unified")


def shap(frame: pl.DataFrame | None) -> go.Figure | None:
    """Mean |SHAP| per feature (log-odds of paying late), largest at the top."""
    if frame is None or frame.height == 0:
        return None
    frame = frame.reverse()
    colours = [RED if m > 0 else GREEN for m in frame["mean"].to_list()]
    fig = go.Figure(go.Bar(
        y=frame["feature"].to_list(), x=frame["mean_abs"].to_list(), orientation="h",
        marker_color=colours, customdata=frame["mean"].to_list(),
        hovertemplate="%{y}: mean |SHAP| %{x:.3f} (mean %{customdata:+.3f})<extra></extra>"))
    return _layout(fig, height=max(260, 60 + 26 * frame.height), hovermode="closest",
                   xaxis_title="mean |SHAP value| (log-odds of paying late)",
                   yaxis={"type": "category"}, margin={"l": 190, "r": 24, "t": 20, "b": 48},
                   showlegend=False)


def ope(estimates: list[tuple[str, float, float, float]], currency: str) -> go.Figure:
    """Value per decision of the logging policy and of the candidate (three estimators),
    each with its 95% bootstrap interval."""
    names = [e[0] for e in estimates]
    values = [e[1] for e in estimates]
    colours = [GREY] + [NAVY] * (len(estimates) - 1)
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=colours,
        error_y={"type": "data", "symmetric": False,
                 "array": [e[3] - e[1] for e in estimates],
                 "arrayminus": [e[1] - e[2] for e in estimates], "color": INK},
        texttemplate="%{y:,.2f}", textposition="inside", insidetextanchor="start",
        hovertemplate="%{x}: %{y:,.2f} " + currency + " per decision<extra></extra>"))
    return _layout(fig, height=330, yaxis_title=f"value per decision ({currency})",
                   showlegend=False, hovermode="closest")


def backtest(metrics: dict[str, float]) -> go.Figure | None:
    """A logged backtest's net value per policy (metrics ``<policy>_net_value``, as
    :func:`paycadence.training.backtest.log_backtest` names them)."""
    values = {k.removesuffix("_net_value").replace("_", " "): v
              for k, v in sorted(metrics.items())
              if k.endswith("_net_value") and not k.startswith("learnt_vs")}
    if not values:
        return None
    fig = go.Figure(go.Bar(x=list(values), y=list(values.values()), marker_color=NAVY,
                           texttemplate="%{y:,.0f}", textposition="outside"))
    return _layout(fig, height=300, yaxis_title="net value", showlegend=False,
                   hovermode="closest")
