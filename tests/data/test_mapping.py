"""ERP exports read through a column mapping, without editing them."""

from __future__ import annotations

import json

import polars as pl
import pytest

from paycadence.data import ingest
from paycadence.data.mapping import load_mapping
from paycadence.errors import ConfigError, InputError

EU_MAPPING = """
format:
  delimiter: ";"
  decimal: ","
  thousands: "."
  encoding: utf-8-sig
  date_format: "%d-%m-%Y"
tables:
  debtors:
    file: klanten.csv
    columns: {debtor_id: Klantnr, country: Land, opted_out: Geen}
    values: {opted_out: {"geen sms": sms}}
  invoices:
    file: facturen.csv
    columns: {invoice_id: Factuur, debtor_id: Klant, issue_date: Datum, due_date: Vervaldatum,
              amount: Bedrag}
    defaults: {currency: EUR}
  payments:
    file: facturen.csv
    columns: {invoice_id: Factuur, paid_on: Betaald, amount: Bedrag}
    require: [paid_on]
"""


def eu_export(tmp_path):
    (tmp_path / "klanten.csv").write_bytes(
        "\ufeffKlantnr;Land;Geen\nK1;NL;geen sms\nK2;BE;\n".encode())
    (tmp_path / "facturen.csv").write_bytes((
        "\ufeffFactuur;Klant;Datum;Vervaldatum;Bedrag;Betaald;Opmerking\n"
        "F1;K1;01-02-2025;03-03-2025;1.250,50;10-03-2025;spoed\n"
        "F2;K2;15-02-2025;17-03-2025;99,95;;\n"
        "F3;K2;31-02-2025;17-03-2025;10,00;;\n"
        "F4;K1;01-03-2025;31-03-2025;-5,00;;\n").encode())
    (tmp_path / "map.yaml").write_text(EU_MAPPING)
    return tmp_path


def test_semicolons_decimal_commas_bom_and_day_first_dates(tmp_path):
    result = ingest(eu_export(tmp_path), tmp_path / "out",
                    mapping=load_mapping(tmp_path / "map.yaml"))
    inv = result.tables.invoices.sort("invoice_id")
    assert inv["invoice_id"].to_list() == ["F1", "F2"]
    assert inv["amount"].to_list() == [1250.5, 99.95]
    assert str(inv["issue_date"][0]) == "2025-02-01"
    assert inv["currency"].to_list() == ["EUR", "EUR"]
    pay = result.tables.payments
    assert pay.to_dicts() == [{"invoice_id": "F1", "paid_on": pay["paid_on"][0],
                               "amount": 1250.5, "payment_id": None}]  # optional, absent
    assert str(pay["paid_on"][0]) == "2025-03-10"
    assert result.counts["payments"]["source_rows_without_this_table"] == 3
    debtors = dict(zip(result.tables.debtors["debtor_id"], result.tables.debtors["opted_out"],
                       strict=True))
    assert debtors == {"K1": "sms", "K2": None}
    q = {r["row"]: r["reason"] for r in result.quarantine.to_dicts()}
    assert q == {4: "unparsable issue_date", 5: "non-positive amount"}  # source line numbers
    record = json.loads(result.quarantine.filter(pl.col("row") == 4)["record"][0])
    assert record["issue_date"] == "31-02-2025"


def test_us_dates_and_a_latin1_file(tmp_path):
    (tmp_path / "inv.csv").write_bytes(
        "nr,cust,issued,due,amt,naam\n7,C,2/3/2025,3/5/2025,12.5,Müller\n".encode("latin-1"))
    (tmp_path / "debtors.csv").write_text("debtor_id\nC\n")
    (tmp_path / "m.yaml").write_text(
        "format: {encoding: latin-1, date_format: '%m/%d/%Y'}\n"
        "tables:\n  invoices:\n    file: inv.csv\n"
        "    columns: {invoice_id: nr, debtor_id: cust, issue_date: issued, due_date: due,"
        " amount: amt}\n    keep: [naam]\n")
    result = ingest(tmp_path, mapping=load_mapping(tmp_path / "m.yaml"))
    row = result.tables.invoices.row(0, named=True)
    assert str(row["issue_date"]) == "2025-02-03" and str(row["due_date"]) == "2025-03-05"
    assert row["naam"] == "Müller"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables:\n  invoices:\n    file: x.csv\n    colums: {}\n", "unknown key"),
        ("tables:\n  bills:\n    file: x.csv\n", "unknown table 'bills'"),
        ("tables:\n  invoices:\n    file: x.csv\n    columns: {total: amt}\n",
         "'total' is not a column of invoices"),
        ("format: {decimal: ';'}\ntables: {}\n", "format.decimal"),
    ],
    ids=["typo", "unknown-table", "unknown-column", "bad-decimal"],
)
def test_bad_mapping_is_refused_naming_the_key(tmp_path, text, message):
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_mapping(tmp_path / "m.yaml")


def test_mapped_column_missing_from_the_export(tmp_path):
    eu_export(tmp_path)
    (tmp_path / "facturen.csv").write_text("Factuur;Klant\nF1;K1\n")
    with pytest.raises(InputError, match="facturen.csv: column 'Datum' named in the mapping"):
        ingest(tmp_path, mapping=load_mapping(tmp_path / "map.yaml"))


def test_unknown_mapping_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="ibm-ar"):
        load_mapping("sap-export")


@pytest.fixture(scope="module")
def ibm_dir(shared_dir):
    path = shared_dir / "data" / "ibm-ar"
    if not (path / "WA_Fn-UseC_-Accounts-Receivable.csv").exists():
        pytest.skip("../shared/data/ibm-ar is absent")
    return path


def test_ibm_sample_through_the_shipped_mapping(ibm_dir, tmp_path):
    result = ingest(ibm_dir, tmp_path, mapping=load_mapping("ibm-ar"))
    t = result.tables
    assert (t.debtors.height, t.invoices.height, t.payments.height) == (100, 2466, 2466)
    assert result.quarantine.height == 0
    assert t.invoices["invoice_id"].str.len_chars().eq(10).all(), "leading zeros kept"
    assert (t.invoices["due_date"] - t.invoices["issue_date"]).dt.total_days().eq(30).all()
    late = t.invoices.join(t.payments, on="invoice_id").select(
        (pl.col("paid_on") > pl.col("due_date")).sum())
    assert late.item() == 877  # PROVENANCE.md: 877 rows with DaysLate > 0
