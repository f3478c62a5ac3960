"""Input that cannot silently mislead (paycadence.data.checks): an export missing a table, a
mapping with day and month swapped, a semicolon file, a decision day outside the data — each
named, the same way in every command, through the real command line."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from paycadence.data.checks import InputGuard, Span
from paycadence.errors import InputError

BIN = Path(sys.executable).parent / "paycadence"


def run(*args, env=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _counts(**tables) -> dict:
    base = {"debtors": {"read": 10, "kept": 10, "quarantined": 0, "by_reason": {}},
            "invoices": {"read": 100, "kept": 100, "quarantined": 0, "by_reason": {}},
            "payments": {"read": 80, "kept": 80, "quarantined": 0, "by_reason": {}},
            "actions": {"read": 50, "kept": 50, "quarantined": 0, "by_reason": {}},
            "disputes": {"read": 0, "kept": 0, "quarantined": 0, "by_reason": {}}}
    return base | tables


ABSENT = {"read": 0, "kept": 0, "quarantined": 0, "by_reason": {}, "absent": True}


def test_no_payment_beside_invoices_stops_a_command_that_decides():
    said: list[str] = []
    guard = InputGuard(warn=said.append)
    with pytest.raises(InputError, match=r"payments: absent \(no file\) beside 100 invoices: "
                       r"no invoice can look paid.*--no-payments-ok"):
        guard.check_tables(_counts(payments=ABSENT))
    guard.check_tables(_counts(payments=ABSENT), decides=False)  # ingest only validates
    InputGuard(no_payments_ok=True, warn=said.append).check_tables(_counts(payments=ABSENT))
    assert len(said) == 2 and all("payments: absent" in s for s in said)
    with pytest.raises(InputError, match="payments: no row kept"):
        guard.check_tables(_counts(payments={"read": 5, "kept": 0, "quarantined": 5,
                                             "by_reason": {"unknown invoice_id": 5}}))


def test_an_absent_optional_table_is_named_with_what_follows_an_empty_one_is_not():
    said: list[str] = []
    InputGuard(warn=said.append).check_tables(_counts(actions=ABSENT))
    assert said == ["actions: absent (no file): no reminder was ever sent: every overdue "
                    "invoice starts the schedule at its first step, and nothing can be learnt "
                    "from the book's own log"]
    said.clear()
    InputGuard(warn=said.append).check_tables(_counts())  # disputes.csv with no row: none
    assert said == []
    with pytest.raises(InputError, match=r"actions: absent.*\(an error with --strict\)"):
        InputGuard(strict=True).check_tables(_counts(actions=ABSENT))


def test_a_quarantined_share_over_the_threshold_stops_with_the_counts():
    bad = {"read": 100, "kept": 19, "quarantined": 81,
           "by_reason": {"unparseable due_date": 70, "unknown debtor_id": 11}}
    with pytest.raises(InputError) as caught:
        InputGuard().check_tables(_counts(invoices=bad))
    text = str(caught.value)
    assert "invoices: 81 of 100 rows quarantined (81%, over ingest.max_quarantine_share 5%; " \
           "unparseable due_date 70; unknown debtor_id 11" in text
    assert "--accept-quarantine" in text and "\n" not in text
    said: list[str] = []
    InputGuard(accept_quarantine=True, warn=said.append).check_tables(_counts(invoices=bad))
    assert len(said) == 1 and "81 of 100" in said[0]
    InputGuard(max_quarantine_share=0.9).check_tables(_counts(invoices=bad))
    InputGuard().check_tables(_counts(invoices=bad | {"kept": 96, "quarantined": 4}))


def test_the_decision_day_is_checked_against_the_data():
    span = Span(dt.date(2024, 1, 15), dt.date(2025, 12, 30))
    said: list[str] = []
    guard = InputGuard(warn=said.append)
    guard.check_day(dt.date(2026, 1, 6), span)  # a week later: fine
    assert said == []
    guard.check_day(dt.date(2030, 1, 1), span)
    assert said == ["--as-of 2030-01-01: 1,463 days after the data's last day (2025-12-30), "
                    "over ingest.stale_after_days 7: the book is read as it was then, with no "
                    "payment, reminder or invoice since; export fresher data"]
    with pytest.raises(InputError, match=r"--as-of 2020-01-01: before the data's first day "
                       r"\(2024-01-15\)"):
        guard.check_day(dt.date(2020, 1, 1), span)
    with pytest.raises(InputError, match="an error with --strict"):
        InputGuard(strict=True).check_day(dt.date(2030, 1, 1), span)


# --- through the command line ----------------------------------------------------------------

@pytest.fixture(scope="module")
def no_payments(sim_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("no-payments")
    for name in ("debtors", "invoices", "actions", "disputes"):
        shutil.copy(sim_dir / f"{name}.csv", folder)
    return folder


def test_recommend_refuses_a_book_without_payments(no_payments, tables, tmp_path,
                                                   mlflow_uri):
    """Before: exit 0, 395 of 799 debtors handed to collection and 293 phone calls."""
    as_of = tables.last_date.isoformat()
    out = tmp_path / "recs.csv"
    r = run("recommend", "--data", no_payments, "--as-of", as_of, "--out", out, "-q")
    assert r.returncode == 2 and not out.exists(), r.stdout
    assert r.stderr.startswith("error: payments: absent (no file) beside")
    assert r.stderr.strip().count("\n") == 0 or "warning:" in r.stderr
    r = run("recommend", "--data", no_payments, "--as-of", as_of, "--out", out, "-q",
            "--no-payments-ok")
    assert r.returncode == 0 and out.exists(), r.stderr
    assert "warning: payments: absent (no file)" in r.stderr
    r = run("ingest", "--data", no_payments, "--out", tmp_path / "clean")
    assert r.returncode == 0, r.stderr  # ingest validates; it says what is absent
    assert "absent (no file): no invoice can look paid" in " ".join(r.stdout.split())


def test_every_command_checks_the_decision_day_the_same_way(sim_dir, tables, tmp_path,
                                                            mlflow_uri):
    early = (tables.invoices["issue_date"].min() - dt.timedelta(days=30)).isoformat()
    late = (tables.last_date + dt.timedelta(days=400)).isoformat()
    calls = {
        "recommend": ("recommend", "--data", sim_dir, "--out", tmp_path / "r.csv"),
        "report": ("report", "--data", sim_dir, "--out", tmp_path / "r.html"),
        "features": ("features", "--data", sim_dir, "--out", tmp_path / "snaps"),
        "train": ("train", "--data", sim_dir, "--no-feedback"),
    }
    for name, call in calls.items():
        r = run(*call, "--as-of", early, "-q")
        assert r.returncode == 2, (name, r.stdout)
        assert r.stderr.startswith(f"error: --as-of {early}: before the data's first day"), \
            (name, r.stderr)
    for name in ("recommend", "features"):  # the late day: a warning, an error with --strict
        r = run(*calls[name], "--as-of", late, "-q", "--strict")
        assert r.returncode == 2 and "days after the data's last day" in r.stderr, name
    r = run(*calls["recommend"], "--as-of", late, "-q")
    assert r.returncode == 0 and f"warning: --as-of {late}: 400 days after" in r.stderr


def test_a_large_quarantine_fails_the_run_after_writing_everything(sim_dir, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(sim_dir, folder)
    invoices = pl.read_csv(folder / "invoices.csv", infer_schema=False)
    broken = invoices.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0)
                                   .then(pl.lit("someday")).otherwise(pl.col("due_date"))
                                   .alias("due_date"))
    broken.write_csv(folder / "invoices.csv")
    r = run("ingest", "--data", folder, "--out", tmp_path / "clean", "-q")
    assert r.returncode == 2, r.stdout
    assert "error: invoices:" in r.stderr and "rows quarantined (20%" in r.stderr
    assert (tmp_path / "clean" / "quarantine.csv").exists()  # written for the user to read
    r = run("ingest", "--data", folder, "--out", tmp_path / "clean", "-q",
            "--accept-quarantine")
    assert r.returncode == 0 and "warning: invoices:" in r.stderr


def test_a_semicolon_export_is_read_and_said_to_be(sim_dir, tmp_path):
    folder = tmp_path / "semi"
    folder.mkdir()
    for name in ("debtors", "invoices", "payments", "actions", "disputes"):
        text = (sim_dir / f"{name}.csv").read_text(encoding="utf-8")
        (folder / f"{name}.csv").write_text(text.replace(",", ";"), encoding="utf-8")
    r = run("ingest", "--data", folder, "--out", tmp_path / "clean")
    assert r.returncode == 0, r.stderr
    assert "read as ';'-delimited" in r.stdout
    plain = pl.read_parquet(tmp_path / "clean" / "invoices.parquet")
    assert plain.height == pl.read_csv(sim_dir / "invoices.csv").height
    broken = folder / "invoices.csv"  # the header's first delimiter mistyped: no reading works
    lines = broken.read_text(encoding="utf-8").splitlines()
    broken.write_text("\n".join([lines[0].replace(";", ":", 1), *lines[1:]]) + "\n")
    r = run("ingest", "--data", folder, "--out", tmp_path / "clean2")
    assert r.returncode == 2
    assert "the header reads as one column" in r.stderr and "';'-delimited" in r.stderr


EXPORT = """Invoice,Customer,Issued,Due,Amount,Paid
A-1,C-1,{a},{b},120.50,{c}
A-2,C-2,{d},{e},80.00,{f}
"""


def _export(folder: Path, rows: dict, date_format: str | None) -> Path:
    folder.mkdir()
    (folder / "ar.csv").write_text(EXPORT.format(**rows), encoding="utf-8")
    fmt = f'  date_format: "{date_format}"\n' if date_format else ""
    mapping = folder / "ar.mapping.yaml"
    mapping.write_text(f"""format:
  delimiter: ","
{fmt}tables:
  debtors:
    file: ar.csv
    columns: {{debtor_id: Customer}}
    distinct: true
  invoices:
    file: ar.csv
    columns: {{invoice_id: Invoice, debtor_id: Customer, issue_date: Issued, due_date: Due,
              amount: Amount}}
  payments:
    file: ar.csv
    columns: {{invoice_id: Invoice, paid_on: Paid, amount: Amount}}
    require: [paid_on]
""", encoding="utf-8")
    return mapping


def test_a_mapping_with_day_and_month_swapped_stops_naming_the_column(tmp_path):
    """Before: 81% of invoices quarantined, 460 kept with swapped dates, exit 0."""
    rows = {"a": "23/01/2025", "b": "22/02/2025", "c": "01/03/2025", "d": "05/02/2025",
            "e": "07/03/2025", "f": "02/04/2025"}
    mapping = _export(tmp_path / "swapped", rows, "%m/%d/%Y")
    r = run("ingest", "--data", tmp_path / "swapped", "--out", tmp_path / "o1", "--map",
            mapping)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ar.csv: column 'Issued': 1 of 2 dates do not read as "
                               "%m/%d/%Y but every one reads as %d/%m/%Y (e.g. '23/01/2025')")
    right = _export(tmp_path / "right", rows, "%d/%m/%Y")
    r = run("ingest", "--data", tmp_path / "right", "--out", tmp_path / "o2", "--map", right)
    assert r.returncode == 0, r.stderr
    invoices = pl.read_parquet(tmp_path / "o2" / "invoices.parquet").sort("invoice_id")
    assert invoices["issue_date"].to_list() == [dt.date(2025, 1, 23), dt.date(2025, 2, 5)]


def test_dates_that_read_both_ways_need_the_mapping_to_say_which(tmp_path):
    rows = {"a": "01/03/2025", "b": "02/02/2025", "c": "03/01/2025", "d": "02/05/2025",
            "e": "03/07/2025", "f": "04/02/2025"}  # January 3 … as the mapping below says
    mapping = _export(tmp_path / "unsaid", rows, None)  # no date_format: not ISO either
    r = run("ingest", "--data", tmp_path / "unsaid", "--out", tmp_path / "o1", "--map",
            mapping)
    assert r.returncode == 2
    assert ("column 'Issued': every date reads both as %d/%m/%Y and as %m/%d/%Y (no day "
            "above 12; '01/03/2025' is 2025-03-01 or 2025-01-03): say which with date_format "
            "in the mapping") in r.stderr
    said = _export(tmp_path / "said", rows, "%m/%d/%Y")
    r = run("ingest", "--data", tmp_path / "said", "--out", tmp_path / "o2", "--map", said)
    assert r.returncode == 0, r.stderr
    invoices = pl.read_parquet(tmp_path / "o2" / "invoices.parquet").sort("invoice_id")
    assert invoices["issue_date"].to_list() == [dt.date(2025, 1, 3), dt.date(2025, 2, 5)]
    one_way = {"a": "23/01/2025", "b": "22/02/2025", "c": "21/03/2025", "d": "05/02/2025",
               "e": "07/03/2025", "f": "02/04/2025"}
    found = _export(tmp_path / "found", one_way, None)  # only one reading fits: it is used
    r = run("ingest", "--data", tmp_path / "found", "--out", tmp_path / "o3", "--map", found)
    assert r.returncode == 0, r.stderr


def test_recommend_takes_a_mapping_like_the_others(tmp_path, mlflow_uri):
    rows = {"a": "23/01/2025", "b": "22/02/2025", "c": "01/03/2025", "d": "05/02/2025",
            "e": "07/03/2025", "f": ""}
    mapping = _export(tmp_path / "export", rows, "%d/%m/%Y")
    out = tmp_path / "recs.jsonl"
    r = run("recommend", "--data", tmp_path / "export", "--map", mapping, "--as-of",
            "2025-03-20", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    assert '"debtor_id": "C-2"' in out.read_text()
