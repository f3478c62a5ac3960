"""``models`` and ``promote``: the registered versions, and moving an alias on purpose."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated

import typer

from paycadence.cli.common import (
    BookOpt,
    app,
    book_choice,
    console,
    make_table,
    run_command,
)
from paycadence.errors import PaycadenceError
from paycadence.redact import redact


@app.command()
def models(book: BookOpt = None):
    """List the registered model versions, their aliases, holdout metrics and policy values,
    and for each the book and the data it learnt from (fingerprint, days, rows).

    With a decision log at training, a version shows its policy's doubly robust value per
    decision on the holdout's logged decisions (95% interval) and the champion's on the same
    decisions: the value rule of the promotion gate (docs/models.md).
    """
    from paycadence.training import tracking

    def go():
        _, name = book_choice(None, book)
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
                         *(f"{m[k]:.4f}" if k in m and m[k] == m[k] else "-"
                           for k in tracking.METRIC_TAGS),
                         _dr(value, "ope_") + _gain(value), n, theirs,
                         _gist(redact(v["promotion"]))))
        console.print(make_table(
            f"{name} in {redact(tracking.tracking_uri())}",
            ["version", "aliases", "created (UTC)", "p_late AUC", "Brier", "ECE", "days MAE",
             "unpaid AUC", "DR value (95%)", "decisions", "champion's DR, same decisions", "why"],
            rows, whole=("DR value (95%)", "champion's DR, same decisions")))
        for v in versions:  # the table cuts the reason to its verdict: here it is whole
            console.print(f"v{v['version']}: {_lineage(v['data'])}; "
                          f"{redact(v['promotion']) or 'no reason recorded'}", highlight=False,
                          soft_wrap=True)
        if any(v["value"] for v in versions):
            console.print("DR value: the policy's doubly robust value per decision on the "
                          "logged decisions of its holdout (95% bootstrap interval over "
                          "debtors); vs log: its gain over the logging policy, with the "
                          "interval of the difference; champion's: the champion it was "
                          "compared with (vN), on the same decisions", highlight=False)
    run_command(go)


def _lineage(data: dict[str, str]) -> str:
    """A version's book and data in words: "book sim, data 2024-01-01 … 2025-12-30, 80
    debtors, 1,842 invoices, …, fingerprint 3f2a…" (what older versions did not record is
    said to be unknown)."""
    if not data:
        return "book and data not recorded (trained before 2026-12-07)"
    parts = [f"book {data.get('book', 'not named')}"]
    if data.get("data_first_day"):
        parts.append(f"data {data['data_first_day']} … {data.get('data_last_day', '?')}")
    try:
        rows = json.loads(data.get("data_rows") or "{}")
    except ValueError:
        rows = {}
    parts += [f"{n:,} {name}" for name, n in rows.items()]
    if data.get("data_fingerprint"):
        parts.append(f"fingerprint {data['data_fingerprint']}")
    return ", ".join(parts)


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
    book: BookOpt = None,
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
        _, name = book_choice(None, book)
        was = tracking.promote(name, version, alias)
        console.print(f"{name}@{alias} → version {version} (was {was or 'unset'})",
                      highlight=False)
        if service is None:
            console.print(_pickup(alias, settings), highlight=False)
            return
        seconds = wait if wait is not None else max(settings.model_refresh_seconds, 0) + 30
        console.print(_await_service(service, version, seconds), highlight=False)
    run_command(go)
