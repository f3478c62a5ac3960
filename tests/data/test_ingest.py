"""Ingest: every bad row quarantined with its reason, every good row kept, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from paycadence.data import ingest
from paycadence.errors import InputError

DEBTORS = "debtor_id,country,segment,opted_out\nA,nl,b2b,\nB,DE,b2c,sms;phone\n"
INVOICES = ("invoice_id,debtor_id,issue_date,due_date,amount\n"
            "I1,A,2025-01-01,2025-01-31,100.00\nI2,B,2025-02-01,2025-02-15,20.5\n")
PAYMENTS = "invoice_id,paid_on,amount\nI1,2025-02-03,100\n"
ACTIONS = "invoice_id,sent_on,channel,step,propensity\nI1,2025-02-02,email,1,0.95\n"
DISPUTES = "invoice_id,opened_on,resolved_on\nI2,2025-02-20,\n"


def write(tmp: Path, **tables: str) -> Path:
    base = {"debtors": DEBTORS, "invoices": INVOICES, "payments": PAYMENTS,
            "actions": ACTIONS, "disputes": DISPUTES}
    base.update(tables)
    for name, text in base.items():
        if text is not None:
            (tmp / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp


@pytest.mark.parametrize(
    ("table", "bad_row", "reason"),
    [
        ("invoices", ",A,2025-01-01,2025-01-31,5", "missing invoice_id"),
        ("invoices", "I9,A,2025-02-30,2025-03-31,5", "unparsable issue_date"),
        ("invoices", "I9,A,2025-03-01,2025-02-01,5", "due_date before issue_date"),
        ("invoices", "I9,A,2025-03-01,2025-04-01,0", "non-positive amount"),
        ("invoices", "I9,A,2025-03-01,2025-04-01,-3", "non-positive amount"),
        ("invoices", "I9,A,2025-03-01,2025-04-01,lots", "unparsable amount"),
        ("invoices", "I1,A,2025-03-01,2025-04-01,7", "duplicate invoice_id"),
        ("debtors", "A,be,b2c,", "duplicate debtor_id"),
        ("debtors", "C,nl,b2c,fax", "unknown channel in opted_out"),
        ("payments", "I404,2025-02-01,5", "unknown invoice"),
        ("payments", "I1,2025-02-01,-5", "non-positive amount"),
        ("actions", "I1,2025-02-05,pigeon,1,", "unknown channel"),
        ("actions", "I1,2025-02-05,sms,1,0", "propensity outside (0, 1]"),
        ("actions", "I1,2025-02-05,sms,1,1.5", "propensity outside (0, 1]"),
        ("actions", "I1,2025-02-05,sms,0,", "step below 1"),
        ("actions", "I404,2025-02-05,sms,1,", "unknown invoice"),
        ("disputes", "I404,2025-02-05,", "unknown invoice"),
        ("disputes", "I1,2025-02-05,2025-01-01", "resolved_on before opened_on"),
    ],
    ids=["missing-key", "bad-date", "due-before-issue", "zero-amount", "negative-amount",
         "bad-amount", "duplicate-invoice", "duplicate-debtor", "bad-opt-out",
         "payment-unknown-invoice", "negative-payment", "unknown-channel", "propensity-zero",
         "propensity-above-one", "step-zero", "action-unknown-invoice",
         "dispute-unknown-invoice", "resolved-before-opened"],
)
def test_bad_row_is_quarantined_with_its_reason(tmp_path, table, bad_row, reason):
    base = {"debtors": DEBTORS, "invoices": INVOICES, "payments": PAYMENTS, "actions": ACTIONS,
            "disputes": DISPUTES}
    text = base[table] + bad_row + "\n"
    result = ingest(write(tmp_path, **{table: text}), tmp_path / "out")
    q = result.quarantine
    assert q.height == 1
    row = q.row(0, named=True)
    assert row["table"] == table and reason in row["reason"]
    assert row["row"] == len(text.splitlines())  # line number in the file, header = line 1
    assert result.counts[table]["quarantined"] == 1
    assert result.counts[table]["kept"] == len(base[table].splitlines()) - 1
    saved = pl.read_csv(tmp_path / "out" / "quarantine.csv")
    assert saved.height == 1 and json.loads(saved["record"][0])


def test_duplicate_key_keeps_the_first(tmp_path):
    text = INVOICES + "I1,B,2025-03-01,2025-04-01,7\n"
    result = ingest(write(tmp_path, invoices=text))
    kept = result.tables.invoices.filter(pl.col("invoice_id") == "I1")
    assert kept.height == 1 and kept["amount"][0] == 100.0


def test_invoice_of_unknown_debtor_creates_the_debtor(tmp_path):
    result = ingest(write(tmp_path, invoices=INVOICES + "I3,ZED,2025-03-01,2025-03-31,9\n"))
    assert result.debtors_created == 1
    assert "ZED" in result.tables.debtors["debtor_id"].to_list()
    assert result.quarantine.height == 0


def test_unknown_extra_columns_are_kept_and_ignored(tmp_path):
    text = "invoice_id,debtor_id,issue_date,due_date,amount,po_number\n" \
           "I1,A,2025-01-01,2025-01-31,100,PO-7\n"
    result = ingest(write(tmp_path, invoices=text))
    assert result.tables.invoices["po_number"].to_list() == ["PO-7"]


def test_values_are_normalised(tmp_path):
    result = ingest(write(tmp_path, actions=ACTIONS + "I1,2025-02-06, SMS ,2,\n",
                          debtors="debtor_id,country,opted_out\nA,nl, SMS ; Phone \nB,de,\n"))
    assert result.tables.actions["channel"].to_list() == ["email", "sms"]
    d = dict(zip(result.tables.debtors["debtor_id"], result.tables.debtors["opted_out"],
                 strict=True))
    assert d == {"A": "sms;phone", "B": None}
    assert result.tables.invoices["currency"].to_list() == ["EUR", "EUR"]


@pytest.mark.parametrize(
    ("table", "header", "column"),
    [("invoices", "invoice_id,debtor_id,issue_date,amount", "due_date"),
     ("payments", "invoice_id,amount", "paid_on"),
     ("actions", "invoice_id,sent_on", "channel"),
     ("debtors", "country", "debtor_id")],
    ids=["invoices", "payments", "actions", "debtors"],
)
def test_missing_required_column_stops_with_one_line(tmp_path, table, header, column):
    with pytest.raises(InputError) as err:
        ingest(write(tmp_path, **{table: header + "\n"}))
    assert str(err.value) == f"{table}.csv: required column '{column}' is missing"


def test_missing_required_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="invoices.csv: required table file is missing"):
        ingest(write(tmp_path, invoices=None))
    with pytest.raises(InputError, match="no such data directory"):
        ingest(tmp_path / "nope")


def test_unreadable_parquet_is_named(tmp_path):
    write(tmp_path)
    (tmp_path / "payments.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match="payments.parquet: cannot be read"):
        ingest(tmp_path)


def test_parquet_with_typed_columns(tmp_path):
    write(tmp_path)
    frame = pl.read_csv(tmp_path / "invoices.csv", try_parse_dates=True)
    frame.write_parquet(tmp_path / "invoices.parquet")
    result = ingest(tmp_path)
    assert result.tables.invoices.height == 2
    assert result.tables.invoices.schema["issue_date"] == pl.Date


def test_mixed_file_keeps_exactly_the_good_rows(tmp_path):
    """Known numbers of bad rows of every kind among good ones: exact counts and reasons."""
    good = [f"G{i},A,2025-01-{1 + i % 28:02d},2025-02-{1 + i % 28:02d},{10 + i}.5"
            for i in range(200)]
    bad = {
        "unparsable issue_date": [f"X{i},A,2025-02-31,2025-03-31,5" for i in range(7)],
        "non-positive amount": [f"Y{i},A,2025-01-01,2025-01-31,0" for i in range(5)],
        "due_date before issue_date": [f"Z{i},A,2025-03-01,2025-01-31,5" for i in range(3)],
        "duplicate invoice_id": [f"G{i},A,2025-01-01,2025-01-31,5" for i in range(4)],
        "missing debtor_id": [f"W{i},,2025-01-01,2025-01-31,5" for i in range(2)],
    }
    lines = list(good)
    for rows in bad.values():
        for k, row in enumerate(rows):
            lines.insert(17 * (k + 1) + len(row) % 5, row)
    text = "invoice_id,debtor_id,issue_date,due_date,amount\n" + "\n".join(lines) + "\n"
    pays = "invoice_id,paid_on,amount\n" + "".join(
        f"G{i},2025-03-01,{10 + i}.5\n" for i in range(50)) + "NOPE,2025-03-01,1\n" * 6
    result = ingest(write(tmp_path, invoices=text, payments=pays, actions=None, disputes=None),
                    tmp_path / "out")
    assert sorted(result.tables.invoices["invoice_id"].to_list()) == sorted(
        f"G{i}" for i in range(200))
    counts = result.counts["invoices"]
    assert counts["read"] == counts["kept"] + counts["quarantined"] == len(lines)
    assert counts["by_reason"] == {r: len(rows) for r, rows in bad.items()}
    assert result.counts["payments"]["by_reason"] == {"unknown invoice": 6}
    assert result.counts["payments"]["kept"] == 50
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tables"]["invoices"]["quarantined"] == sum(map(len, bad.values()))


def test_simulated_company_ingests_clean(sim_dir):
    result = ingest(sim_dir)
    assert result.quarantine.height == 0
    assert all(c["read"] == c["kept"] for c in result.counts.values())


def test_quarantine_record_keeps_the_original_text(tmp_path):
    text = DEBTORS + "A,  be ,b2c, SMS \n"
    result = ingest(write(tmp_path, debtors=text))
    record = json.loads(result.quarantine["record"][0])
    assert record == {"debtor_id": "A", "country": "  be ", "segment": "b2c",
                      "opted_out": " SMS "}


@pytest.mark.parametrize("buckets", [1, 5])
def test_streaming_ingest_gives_exactly_the_same_result(tmp_path, sim_dir, buckets):
    """ingest_files (streamed to Parquet, its row-comparing rules run in one key bucket or in
    several) and ingest (in memory) are one set of rules."""
    from paycadence.data import read_clean
    from paycadence.data.ingest import _input_bytes, ingest_files

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    bad = write(mixed, invoices=INVOICES + "I1,A,2025-03-01,2025-04-01,7\n"
                "I9,Q,2025-02-30,2025-03-01,1\n"
                "I8,NEW,2025-03-01,2025-03-31,5\n" + "".join(
                    f"X{k % 7},A,2025-03-01,2025-04-01,{k + 1}\n" for k in range(40)),
                payments=PAYMENTS + "I404,2025-02-01,5\nI2,2025-02-20,-1\n" + "".join(
                    f"X{k},2025-03-02,1\n" for k in range(12)),
                actions=ACTIONS + "I1,2025-02-05,pigeon,1,\n")
    for source in (bad, sim_dir):
        size = _input_bytes(Path(source), None)
        memory = ingest(source, tmp_path / "a")
        streamed = ingest_files(source, tmp_path / "b", bucket_bytes=-(-size // buckets))
        assert streamed.counts == memory.counts
        assert streamed.quarantine.equals(memory.quarantine)
        written = read_clean(tmp_path / "b")
        for name, frame in memory.tables.items():
            got = getattr(written, name)
            if buckets > 1:  # rows come grouped by bucket
                got, frame = got.sort(got.columns), frame.sort(frame.columns)
            assert got.equals(frame), name
        assert not list((tmp_path / "b").glob(".staging-*")), "staging files left behind"


def test_streaming_ingest_errors_are_one_line(tmp_path):
    from paycadence.data.ingest import ingest_files

    write(tmp_path, invoices="invoice_id,debtor_id,issue_date,amount\n")
    with pytest.raises(InputError, match="invoices.csv: required column 'due_date' is missing"):
        ingest_files(tmp_path, tmp_path / "out")
    write(tmp_path)
    (tmp_path / "actions.parquet").write_bytes(b"nope")
    with pytest.raises(InputError, match="actions.parquet: cannot be read"):
        ingest_files(tmp_path, tmp_path / "out")


def test_a_currency_that_is_not_iso_4217_is_quarantined(tmp_path):
    invoices = ("invoice_id,debtor_id,issue_date,due_date,amount,currency\n"
                "I1,A,2025-01-01,2025-01-31,100,eur\nI2,A,2025-01-01,2025-01-31,100,EURO\n"
                "I3,A,2025-01-01,2025-01-31,100,\nI4,A,2025-01-01,2025-01-31,100,gbp\n")
    result = ingest(write(tmp_path, invoices=invoices, payments=None, actions=None,
                          disputes=None), tmp_path / "out")
    assert result.quarantine["reason"].to_list() == ["not an ISO 4217 currency"]
    kept = result.tables.invoices.sort("invoice_id")
    assert kept["currency"].to_list() == ["EUR", "EUR", "GBP"]  # blank: EUR

