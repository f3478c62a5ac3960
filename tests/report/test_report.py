"""The manager's report: built on a simulated company with a trained champion, on the rule-based
fallback, on the real IBM sample, through the CLI with bad input, and opened in headless
Chromium (no console error, every chart drawn, a screenshot)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import load_params, load_policy
from paycadence.errors import InputError
from paycadence.models import recommend
from paycadence.report import build_report
from paycadence.serving.engine import Engine
from paycadence.training import MODEL_NAME

BIN = Path(sys.executable).parent / "paycadence"
SECTIONS = ("overview", "dso", "ageing", "discipline", "changes", "worklist", "models",
            "drivers", "policy", "data")
#: one worker builds the reports once for all the tests of this module
pytestmark = pytest.mark.xdist_group("report")
HOSTILE_SEGMENT = "<img src=x onerror=alert('segment')>"
HOSTILE_COUNTRY = "</script><script>alert('country')</script>"


@pytest.fixture(scope="module")
def as_of(tables) -> dt.date:
    return tables.last_date + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def built(trained, sim_dir, as_of, tmp_path_factory):
    """The report on the simulated company, decided by the session's champion."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(sim_dir, as_of=as_of, out=out, policy=load_policy(),
                        params=load_params(), model_name=MODEL_NAME)


@pytest.fixture(scope="module")
def hostile(sim_dir, as_of, tmp_path_factory, mlflow_uri):
    """A report on the fallback (no such model) whose debtors carry markup in their segment
    and country, without decisions.csv."""
    data = tmp_path_factory.mktemp("hostile-data")
    for name in ("debtors", "invoices", "payments", "actions", "disputes"):
        shutil.copy(sim_dir / f"{name}.csv", data / f"{name}.csv")
    debtors = pl.read_csv(data / "debtors.csv", infer_schema_length=None)
    first = pl.int_range(pl.len()) < 20
    debtors.with_columns(
        segment=pl.when(first).then(pl.lit(HOSTILE_SEGMENT)).otherwise("segment"),
        country=pl.when(first).then(pl.lit(HOSTILE_COUNTRY)).otherwise("country"),
    ).write_csv(data / "debtors.csv")
    out = tmp_path_factory.mktemp("hostile") / "report.html"
    return build_report(data, as_of=as_of, out=out, policy=load_policy(), params=load_params(),
                        model_name="no-such-model")


def test_report_holds_every_section_offline(built):
    html = built.out.read_text(encoding="utf-8")
    # plotly.js inlined once, packed (gzip, base85): the whole page under 2 MB (issue 21)
    assert 1_000_000 < built.size == built.out.stat().st_size < 2_000_000
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # the page, not plotly.js
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", markup), "external"
    assert "<script src" not in html
    assert html.count('id="plotly-packed"') == 1  # the bundle, exactly once
    assert len(re.findall(r'<div class="chart" data-chart=', html)) >= 10


def test_worklist_is_every_contact_recommend_makes_ranked_by_worth(built, tables, as_of):
    from paycadence.report.build import one_currency

    policy = load_policy()
    engine = Engine.load(policy, model_name=MODEL_NAME, alias="champion")
    tables = one_currency(tables)[0]  # the report's currency: the simulator also bills in GBP
    assert built.data.currency == "EUR" and "GBP" in built.data.currency_note
    recs = recommend(tables, as_of=as_of, policy=policy, models=engine.models,
                     model_version=engine.version)
    contacts = {r["debtor_id"]: r for r in recs if r["action"] != "wait"}
    work = built.data.worklist
    assert built.worklist == len(work) == len(contacts) > 0
    assert built.recommendations == len(recs)
    assert {w["debtor_id"] for w in work} == set(contacts)
    valued = [w["value"] for w in work if w["value"] is not None]
    assert valued == sorted(valued, reverse=True)
    assert all(w["value"] is None for w in work[len(valued):])  # the not-valued come last
    for w in work:
        rec = contacts[w["debtor_id"]]
        assert w["action"] == rec["action"] and w["invoice_ids"] == rec["invoice_ids"]
        # one worth: the recommendation's own value_vs_wait, as the API and the CSV give it
        assert w["value"] == rec.get("value_vs_wait")
        if w["value"] is not None:
            assert w["value"] == pytest.approx(w["gain"] - w["cost"])
        assert w["cost"] >= policy.costs.of(w["action"])
        assert w["open_amount"] == pytest.approx(sum(i["open_amount"] for i in rec["invoices"]))
        assert [r["feature"] for r in w["reasons"]] == [e["feature"] for e in
                                                          rec["explanation"]]
        for r in w["reasons"]:  # direction and size agree with the SHAP contribution
            assert r["points"] is not None and r["text"]
            assert (r["points"] > 0) == (r["effect"] == "raises")
    html = built.out.read_text(encoding="utf-8")
    for w in work[:5]:
        assert w["debtor_id"] in html
        assert w["reasons"][0]["text"].split(" (")[0].replace("'", "&#39;") in html


def test_models_quality_comes_from_the_champions_record(built, trained):
    from paycadence.training import tracking

    client = tracking.setup()
    champion = tracking.alias_version(client, MODEL_NAME, "champion")
    logged = client.get_run(champion.run_id).data.metrics
    d = built.data
    assert d.model_version == f"risk:{champion.version}"
    assert d.champion.found and d.champion.version == str(champion.version)
    assert d.champion.metrics == logged
    assert d.champion.calibration_png.startswith(b"\x89PNG")
    assert d.check is not None and set(d.check.scores) == {"model", "reference"}
    assert min(d.check.days) >= d.champion.split_date  # never days the model learnt from
    assert d.shap is not None and d.shap["mean_abs"].is_sorted(descending=True)
    html = built.out.read_text(encoding="utf-8")
    assert f"{logged['late_auc']:.3f}" in html and f"{logged['ref_best_late_auc']:.3f}" in html
    assert d.check.reference in ("laplace", "shrunk", "recent")
    assert "data:image/png;base64," in html


def test_models_section_shows_the_value_the_champion_was_promoted_on(built):
    """The champion's doubly robust value on its holdout's logged decisions, as recorded at
    training (the session's champion was the first model: nothing to compare with)."""
    m = built.data.champion.metrics
    section = built.out.read_text(encoding="utf-8").split('<section id="models">')[1].split(
        "</section>")[0]
    assert "Promotion by value" in section
    assert f"{m['ope_dr']:,.2f}" in section
    assert f"{m['ope_dr_low']:,.2f} … {m['ope_dr_high']:,.2f}" in section
    assert f"the {m['ope_decisions']:,.0f} logged decisions of its holdout" in section
    assert "Why it is champion: " in section


def test_value_rows_name_the_champion_it_was_compared_with():
    from paycadence.report.html import value_rows
    from paycadence.training.quality import ChampionInfo

    recorded = {"ope_dr": 10.0, "ope_dr_low": 8.0, "ope_dr_high": 12.0, "ope_decisions": 90.0,
                "champion_ope_dr": 9.0, "champion_ope_dr_low": 8.5, "champion_ope_dr_high": 9.5}
    want = [("this champion (version 3)", 10.0, 8.0, 12.0),
            ("the champion it was compared with (version 2)", 9.0, 8.5, 9.5)]
    run = ChampionInfo(True, "m@champion = version 3", "3", "r", recorded,
                       {"champion_version": "2"})
    assert value_rows(run) == want
    # a version without its run: its own tags
    tags = {k: str(v) for k, v in recorded.items()} | {"champion_version": "2"}
    assert value_rows(ChampionInfo(True, "m@champion = version 3", "3",
                                   version_tags=tags)) == want
    assert value_rows(ChampionInfo(True, "trained without a decision log", "3",
                                   metrics={"late_auc": 0.8})) == []


def test_policy_comparison_uses_the_logged_decisions(built, as_of):
    ope = built.data.ope
    assert ope.result is not None, ope.note
    assert ope.end == as_of - dt.timedelta(days=30) and (ope.end - ope.start).days == 90
    assert ope.result.decisions > 0
    assert ope.result.dr.low <= ope.result.dr.value <= ope.result.dr.high
    # the verdict against the logging policy, with the paired interval of the difference
    from markupsafe import escape

    from paycadence.training.ope import verdict

    assert str(escape(verdict(ope.result.gain))) in built.out.read_text(encoding="utf-8")
    assert "no backtest run is logged" in built.out.read_text(encoding="utf-8") or \
        built.data.backtest is not None


def test_a_logged_backtest_run_is_shown(built, monkeypatch, tmp_path):
    import dataclasses

    import matplotlib.pyplot as plt
    import mlflow

    from paycadence.report.html import render
    from paycadence.training import tracking
    from paycadence.training.quality import latest_backtest

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert latest_backtest() is None
    tracking.setup()
    fig, ax = plt.subplots()
    ax.bar(["fixed", "learnt"], [100, 112])
    with mlflow.start_run(run_name="backtest seed 1"):
        mlflow.log_metrics({"fixed_schedule_net_value": 100.0,
                            "learnt_policy_net_value": 112.0})
        mlflow.log_figure(fig, "backtest.png")
    with mlflow.start_run(run_name="a later training run"):
        mlflow.log_metric("late_auc", 0.8)
    plt.close(fig)
    run = latest_backtest()
    assert run is not None and run.metrics["learnt_policy_net_value"] == 112.0
    assert run.figures["backtest.png"].startswith(b"\x89PNG")
    html = render(dataclasses.replace(built.data, backtest=run))
    assert run.run_id in html and 'data-chart="backtest"' in html
    assert "no backtest run is logged" not in html


def test_fallback_report_escapes_data_and_says_what_is_missing(hostile):
    html = hostile.out.read_text(encoding="utf-8")
    d = hostile.data
    assert d.model_version == "fallback" and not d.champion.found
    assert "No champion model" in html and d.shap is None
    assert d.ope.result is None and "no decisions.csv" in d.ope.note
    assert HOSTILE_SEGMENT in d.by_segment["segment"].to_list()
    assert HOSTILE_SEGMENT not in html and HOSTILE_COUNTRY not in html
    assert "&lt;img src=x onerror=alert(&#39;segment&#39;)&gt;" in html
    assert d.worklist and all(r["points"] is None for w in d.worklist for r in w["reasons"])


def test_cli_report_on_the_fallback_prints_one_summary(sim_dir, as_of, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("debtors", "invoices", "payments", "actions", "disputes"):
        shutil.copy(sim_dir / f"{name}.csv", data / f"{name}.csv")
    out = tmp_path / "out" / "report.html"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
    r = subprocess.run([str(BIN), "report", "--data", str(data), "--as-of", as_of.isoformat(),
                        "--out", str(out), "--quiet"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    assert str(out) in lines[0] and "MB" in lines[0] and "debtors in the worklist" in lines[0]
    assert "fallback" in lines[0] and "Traceback" not in r.stderr
    assert out.exists() and (tmp_path / "out" / "report-ingest" / "quarantine.csv").exists()


def _bad_invoices(folder: Path, sim_dir: Path) -> None:
    for name in ("debtors", "payments"):
        shutil.copy(sim_dir / f"{name}.csv", folder / f"{name}.csv")
    pl.read_csv(sim_dir / "invoices.csv").drop("due_date").write_csv(folder / "invoices.csv")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "yesterday", "--out", "{tmp}/r.html"], "--as-of: 'yesterday' is not a date"),
        (["--as-of", "2025-01-01", "--out", "{tmp}/r.pdf"], "give --out a name ending in .html"),
        (["--as-of", "1999-01-01", "--out", "{tmp}/r.html"],
         "--as-of 1999-01-01: before the data's first day"),
        (["--as-of", "2025-01-01", "--out", "{tmp}/r.html", "--data", "{tmp}/nowhere"],
         "no such data directory"),
        (["--as-of", "2025-01-01", "--out", "{tmp}/r.html", "--data", "{tmp}/bad"],
         "required column 'due_date' is missing"),
        (["--as-of", "2025-01-01", "--out", "{tmp}/r.html", "--policy", "{tmp}/p.yaml"],
         "unknown key"),
    ],
    ids=["bad-date", "not-html", "before-any-invoice", "missing-dir", "missing-column",
         "bad-policy"],
)
def test_bad_input_is_one_line_and_exit_2(args, message, sim_dir, tmp_path, mlflow_uri):
    (tmp_path / "bad").mkdir()
    _bad_invoices(tmp_path / "bad", sim_dir)
    (tmp_path / "p.yaml").write_text("rules:\n  min_days_between_contact: 3\n")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--data" not in args:
        args = ["--data", str(sim_dir), *args]
    r = CliRunner().invoke(app, ["report", *args, "--quiet"])
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_report_on_the_ibm_sample(shared_dir, tmp_path):
    data = shared_dir / "data" / "ibm-ar"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    out = tmp_path / "ibm.html"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
    r = subprocess.run([str(BIN), "report", "--data", str(data), "--map", "ibm-ar",
                        "--as-of", "2013-09-01", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "debtors in the worklist" in r.stdout
    html = out.read_text(encoding="utf-8")
    assert "USD" in html and 'id="worklist"' in html


# --- headless Chromium ------------------------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reads what the browser saw, not the log
        pass


@pytest.fixture
def served(built, hostile):
    """Both reports on a loopback HTTP server in a thread: its base URL."""
    root = built.out.parent
    shutil.copy(hostile.out, root / "hostile.html")
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_renders_in_headless_chromium(served, built, tmp_path, chromium):
    browser = chromium
    for name in ("report.html", "hostile.html"):
        page = browser.new_page()
        problems, requests, dialogs = [], [], []
        page.on("console", lambda m, out=problems: out.append(f"{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e, out=problems: out.append(f"page error: {e}"))
        page.on("request", lambda q, out=requests: out.append(q.url))
        page.on("dialog", lambda dlg, out=dialogs: (out.append(dlg.message),
                                                   dlg.dismiss()))
        page.goto(f"{served}/{name}", wait_until="load")
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.chart .js-plotly-plot')]"
            ".every(d => d.querySelector('svg.main-svg'))", timeout=60_000)
        charts = page.evaluate("document.querySelectorAll('div.chart').length")
        drawn = page.evaluate(
            "[...document.querySelectorAll('div.chart')].filter(c => "
            "c.querySelector('.js-plotly-plot svg.main-svg')).length")
        assert problems == [], f"{name}: {problems}"
        assert dialogs == [], f"{name}: data ran as script: {dialogs}"
        assert [u for u in requests if not u.startswith(served)] == []
        assert drawn == charts and charts >= (10 if name == "report.html" else 7)
        shot = tmp_path / name.replace(".html", ".png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        print(f"screenshot of {name}: {shot}")  # noqa: T201 - where to look
        page.close()


def test_a_changed_debtor_left_waiting_says_why_and_until_when(built):
    """Before: 25 debtors flagged 'a sudden change deserves a call', all but 4 shown 'wait'
    with no reason."""
    waiting = [c for c in built.data.changed if c["action"] == "wait"]
    assert waiting, "the simulated company has changed debtors left waiting"
    for c in built.data.changed:
        assert c["why"] and (c["until"] is not None or c["action"] != "wait"), c
    html = built.out.read_text(encoding="utf-8")
    for c in waiting[:3]:
        assert f"until {c['until']}" in html


def test_the_header_gives_a_verdict_on_the_policy(built):
    html = built.out.read_text(encoding="utf-8")
    head = html[html.index("<header>"):html.index("</header>")]
    assert "Can the policy be trusted?" in head
    r = built.data.ope.result
    if r is not None:
        assert "today's policy" in head and "95% interval" in head
    else:
        assert "Not told by this book" in head


def test_amounts_are_never_summed_across_currencies(tables, tmp_path):
    """Before: EUR and GBP summed unconverted."""
    from paycadence.report.build import one_currency, read_rates

    debtors = tables.debtors["debtor_id"].to_list()[:10]
    mixed = tables.invoices.with_columns(
        pl.when(pl.col("debtor_id").is_in(debtors)).then(pl.lit("GBP")).otherwise(
            pl.col("currency")).alias("currency"))
    book = dataclasses.replace(tables, invoices=mixed)
    gbp = mixed.filter(pl.col("currency") == "GBP")
    kept, code, note = one_currency(book)
    assert code == "EUR" and kept.invoices["currency"].unique().to_list() == ["EUR"]
    assert f"{gbp.height:,} invoices" in note and "--rates" in note
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,rate\nGBP,1.2\n")
    converted, code, note = one_currency(book, rates=read_rates(rates))
    assert code == "EUR" and note == "converted into EUR: GBP at 1.2"
    assert converted.invoices["amount"].sum() == pytest.approx(
        mixed["amount"].sum() + 0.2 * gbp["amount"].sum())
    paid = tables.payments.filter(pl.col("invoice_id").is_in(gbp["invoice_id"].implode()))
    assert converted.payments["amount"].sum() == pytest.approx(
        tables.payments["amount"].sum() + 0.2 * paid["amount"].sum())
    with pytest.raises(InputError, match="no rate for GBP"):
        one_currency(book, rates={"USD": 0.9})
    rates.write_text("currency,rate\nEURO,1\n")
    with pytest.raises(InputError, match="line 2: 'EURO' is not an ISO 4217 currency"):
        read_rates(rates)
    rates.write_text("currency,rate\nGBP,-1\n")
    with pytest.raises(InputError, match="rate '-1' is not a positive number"):
        read_rates(rates)


def test_the_worklist_filters_sorts_opens_and_downloads_in_a_browser(served, built, chromium):
    """A credit manager at 1024 px: search a debtor, filter an action, sort by worth, open a
    debtor to its invoices and contacts, download the whole list as CSV."""
    work = built.data.worklist
    assert work
    page = chromium.new_page()
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(f"{served}/report.html", wait_until="load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024  # no sideways scroll
    rows = "#worklist-table > tbody > tr"
    visible = f"{rows}:visible"
    target = work[-1]["debtor_id"] if len(work) <= 150 else work[0]["debtor_id"]
    page.fill("#wl-search", target)
    assert page.locator(visible).count() == 1
    page.fill("#wl-search", "")
    action = work[0]["action"]
    page.select_option("#wl-action", action)
    shown = page.locator(visible).count()
    assert shown == sum(w["action"] == action for w in work[:150])
    page.select_option("#wl-action", "")
    page.click("#worklist-table th[data-key=worth]")
    page.click("#worklist-table th[data-key=worth]")  # descending
    first = page.locator(f"{rows} >> nth=0").get_attribute("data-debtor")
    valued = [w for w in work[:150] if w["value"] is not None]
    if valued:
        assert first == max(valued, key=lambda w: w["value"])["debtor_id"]
    page.locator(f"{rows} >> nth=0 >> summary").click()
    opened = page.locator(f"{rows} >> nth=0 >> details").inner_text()
    assert "open invoice" in opened.lower() and "Latest contacts" in opened
    with page.expect_download() as download:
        page.click("#wl-csv")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("rank,debtor,action") and len(lines) == len(work) + 1
    page.close()
