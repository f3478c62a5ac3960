"""Issue 19, ingest: files as exports really come (CR line endings, Latin-1, ragged lines, stray
quotes, a cut-short last line, doubled or oddly written headers, absurd amounts and dates).
Each test writes real files and reads them with both entry points (in memory and streamed), or
runs the real ``paycadence ingest`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from paycadence.bounds import MAX_AMOUNT, MAX_DAY, MIN_DAY
from paycadence.data import ingest
from paycadence.data.ingest import ingest_files
from paycadence.data.mapping import load_mapping
from paycadence.errors import ConfigError, InputError

INVOICE_HEADER = "invoice_id,debtor_id,issue_date,due_date,amount"
DEBTORS = "debtor_id,country\nA,NL\nB,DE\n"
PAYCADENCE = Path(sys.executable).parent / "paycadence"


def invoice_lines(n: int, start: int = 0) -> list[str]:
    return [f"I{i},{'AB'[i % 2]},2025-01-{1 + i % 28:02d},2025-02-{1 + i % 28:02d},{10 + i}.5"
            for i in range(start, start + n)]


def write(folder: Path, **files: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files.setdefault("debtors", DEBTORS)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / (name if "." in name else f"{name}.csv")).write_bytes(data)
    return folder


def run(folder: Path, how: str, mapping=None):
    """(result, clean tables) from ``ingest`` (in memory) or ``ingest_files`` (streamed)."""
    if how == "memory":
        result = ingest(folder, mapping=mapping)
        return result, result.tables
    from paycadence.data import read_clean

    out = folder.parent / f"{folder.name}-clean"
    result = ingest_files(folder, out, mapping=mapping)
    return result, read_clean(out)


HOW = pytest.mark.parametrize("how", ["memory", "streamed"])


def quarantined(result) -> dict[int, str]:
    return {r["row"]: r["reason"] for r in result.quarantine.to_dicts()}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PAYCADENCE), "ingest", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_COLOR": "1"})


# --- 3. line endings ---------------------------------------------------------------------


@HOW
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_gives_the_same_clean_tables(tmp_path, how, ending):
    lines = [INVOICE_HEADER, *invoice_lines(30), "I99,A,2025-02-30,2025-03-01,5"]
    debtors = DEBTORS.replace("\n", ending)
    lf, _ = run(write(tmp_path / "lf", invoices="\n".join(lines) + "\n"), "memory")
    result, tables = run(write(tmp_path / "x", invoices=ending.join(lines) + ending,
                               debtors=debtors), how)
    assert result.counts["invoices"] == lf.counts["invoices"]
    assert result.counts["invoices"]["read"] == 31
    assert tables.invoices.sort("invoice_id").equals(lf.tables.invoices.sort("invoice_id"))
    assert quarantined(result) == {32: "unparsable issue_date"}
    assert tables.debtors["country"].to_list() == ["NL", "DE"]


@HOW
@pytest.mark.parametrize(
    ("content", "message"),
    [(INVOICE_HEADER + "\n", "invoices.csv: no rows below the header line"),
     (INVOICE_HEADER + "\r\n\r\n", "invoices.csv: no rows below the header line"),
     # rows joined by a record separator polars does not know: one line, no rows
     ("\x1e".join([INVOICE_HEADER, *invoice_lines(3)]), "invoices.csv: "),
     # the same at export size: a first line that long is no header
     ("\x1e".join([INVOICE_HEADER, *invoice_lines(3000)]),
      "invoices.csv: the first line is over"),
     ("", "invoices.csv: the file is empty")],
    ids=["header-only", "header-and-blank-lines", "one-line", "one-giant-header", "empty"],
)
def test_a_file_with_no_rows_stops_with_a_clear_error(tmp_path, how, content, message):
    with pytest.raises(InputError) as err:
        run(write(tmp_path / "d", invoices=content), how)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_giant_header_of_an_optional_table_stops_too(tmp_path):
    pays = "\x1e".join(
        ["invoice_id,paid_on,amount", *[f"I{i},2025-03-01,1" for i in range(6000)]])
    with pytest.raises(InputError, match="payments.csv: the first line is over .* no header"):
        ingest(write(tmp_path, invoices=INVOICE_HEADER + "\nI1,A,2025-01-01,2025-01-31,5\n",
                     payments=pays))


# --- 4. ragged lines, stray quotes, physical line numbers ---------------------------------


@pytest.fixture(scope="module")
def big_faulty(tmp_path_factory) -> tuple[Path, dict[int, str]]:
    """50,000 invoices; line 20,001 has an extra field, line 30,001 opens a quote it never
    closes, line 40,001 has a field too few."""
    lines = [INVOICE_HEADER, *invoice_lines(50_000)]
    lines[20_000] += ",surplus"
    head, rest = lines[30_000].rsplit(",", 1)
    lines[30_000] = f'{head},"{rest}'
    lines[40_000] = lines[40_000].rsplit(",", 1)[0]
    folder = write(tmp_path_factory.mktemp("big") / "data", invoices="\n".join(lines) + "\n")
    ragged = "wrong number of fields (header has 5)"
    return folder, {20_001: ragged, 30_001: "unbalanced quote", 40_001: ragged}, lines


@HOW
def test_malformed_lines_are_quarantined_and_the_rest_loads(big_faulty, how):
    folder, expected, lines = big_faulty
    result, tables = run(folder, how)
    assert quarantined(result) == expected
    counts = result.counts["invoices"]
    assert (counts["read"], counts["kept"], counts["quarantined"]) == (50_000, 49_997, 3)
    assert counts["by_reason"] == {"wrong number of fields (header has 5)": 2,
                                   "unbalanced quote": 1}
    record = json.loads(result.quarantine.filter(pl.col("row") == 30_001)["record"][0])
    assert record == {"line": lines[30_000]} and lines[30_000].endswith(',"30009.5')
    kept = tables.invoices
    assert kept.height == 49_997
    assert not kept["invoice_id"].is_in(["I19999", "I29999", "I39999"]).any()
    assert kept.filter(pl.col("invoice_id") == "I30000")["amount"].item() == 30_010.5


def test_the_cli_quarantines_a_malformed_line_and_exits_0(big_faulty, tmp_path):
    folder, expected, _ = big_faulty
    done = cli("--data", str(folder), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 0, done.stderr
    saved = pl.read_csv(tmp_path / "out" / "quarantine.csv")
    assert dict(zip(saved["row"], saved["reason"], strict=True)) == expected
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tables"]["invoices"]["kept"] == 49_997


@HOW
def test_row_numbers_are_physical_lines_after_quoted_line_breaks(tmp_path, how):
    text = (INVOICE_HEADER + ",note\r\n"
            'I1,A,2025-01-01,2025-01-31,5,"two\r\nlines"\r\n'
            'I2,A,2025-01-01,2025-01-31,-5,plain\r\n'                       # line 4
            'I3,A,2025-01-01,2025-01-31,5,"three\nlines,\r\nwith a comma"\r\n'
            'I4,B,2025-01-01,2025-01-31,0,plain\r\n')                       # line 8
    result, tables = run(write(tmp_path / "d", invoices=text), how)
    assert quarantined(result) == {4: "non-positive amount", 8: "non-positive amount"}
    notes = dict(zip(tables.invoices["invoice_id"], tables.invoices["note"], strict=True))
    assert notes == {"I1": "two\nlines", "I3": "three\nlines,\nwith a comma"}


# --- 10. encodings -------------------------------------------------------------------------


@HOW
def test_latin1_keys_stay_exact_and_distinct(tmp_path, how):
    debtors = "debtor_id,country\nMüller,DE\nMöller,DE\n".encode("latin-1")
    invoices = (INVOICE_HEADER + "\nI1,Müller,2025-01-01,2025-01-31,5\n"
                "I2,Möller,2025-01-01,2025-01-31,7\nI3,Müller,2025-01-02,2025-02-01,9\n"
                ).encode("cp1252")
    result, tables = run(write(tmp_path / "d", debtors=debtors, invoices=invoices), how)
    assert result.quarantine.height == 0
    assert sorted(tables.debtors["debtor_id"].to_list()) == ["Möller", "Müller"]
    per = tables.invoices.group_by("debtor_id").agg(pl.col("amount").sum())
    assert dict(per.iter_rows()) == {"Müller": 14.0, "Möller": 7.0}
    assert result.debtors_created == 0


@HOW
def test_an_undecodable_key_is_quarantined_never_replaced(tmp_path, how):
    invoices = (INVOICE_HEADER.encode() + b"\nI1,A,2025-01-01,2025-01-31,5\n"
                b"I\x81x,A,2025-01-01,2025-01-31,5\nI\x8dx,B,2025-01-01,2025-01-31,5\n"
                b"I2,B,2025-01-01,2025-01-31,5\n")
    result, tables = run(write(tmp_path / "d", invoices=invoices), how)
    reason = "undecodable invoice_id (not UTF-8 or cp1252)"
    assert quarantined(result) == {3: reason, 4: reason}
    assert json.loads(result.quarantine["record"][0])["invoice_id"] == "I\\x81x"
    assert sorted(tables.invoices["invoice_id"].to_list()) == ["I1", "I2"]
    assert not tables.invoices["invoice_id"].str.contains("\ufffd").any()


def test_a_mapping_declares_the_encoding(tmp_path):
    export = ("Factuur;Klant;Datum;Vervaldatum;Bedrag\n"
              "F1;Müller;01-02-2025;03-03-2025;1.250,50\n"
              "F2;Möller;01-02-2025;03-03-2025;99,95\n")
    mapping = ("format: {delimiter: ';', decimal: ',', thousands: '.', "
               "date_format: '%d-%m-%Y'ENC}\n"
               "tables:\n  invoices:\n    file: f.csv\n"
               "    columns: {invoice_id: Factuur, debtor_id: Klant, issue_date: Datum,"
               " due_date: Vervaldatum, amount: Bedrag}\n")
    write(tmp_path, **{"f.csv": export.encode("latin-1")})
    # declared: read as it says
    (tmp_path / "latin.yaml").write_text(mapping.replace("ENC", ", encoding: latin-1"))
    result = ingest(tmp_path, mapping=load_mapping(tmp_path / "latin.yaml"))
    assert sorted(result.tables.invoices["debtor_id"]) == ["Möller", "Müller"]
    # declared UTF-8 but it is not: those rows are quarantined, not rewritten, nor the run
    (tmp_path / "utf8.yaml").write_text(mapping.replace("ENC", ", encoding: utf-8"))
    result = ingest(tmp_path, mapping=load_mapping(tmp_path / "utf8.yaml"))
    assert quarantined(result) == {2: "undecodable Klant (not utf-8)",  # the export's name
                                   3: "undecodable Klant (not utf-8)"}
    assert result.counts["invoices"]["read"] == 2
    # not declared: UTF-8, else cp1252 line by line
    (tmp_path / "none.yaml").write_text(mapping.replace("ENC", ""))
    result = ingest(tmp_path, mapping=load_mapping(tmp_path / "none.yaml"))
    assert sorted(result.tables.invoices["debtor_id"]) == ["Möller", "Müller"]
    # an encoding whose delimiters are not single ASCII bytes is refused up front
    (tmp_path / "utf16.yaml").write_text(mapping.replace("ENC", ", encoding: utf-16"))
    with pytest.raises(ConfigError, match="encoding 'utf-16' is not supported"):
        load_mapping(tmp_path / "utf16.yaml")


def test_a_mapped_export_quarantines_its_malformed_lines_once(tmp_path):
    export = ("nr,cust,issued,due,amt,paid\n"
              "1,A,2025-01-01,2025-01-31,5,2025-02-01\n"
              "2,A,2025-01-01,2025-01-31,5,2025-02-01,extra\n"
              '3,A,2025-01-01,2025-01-31,"5,2025-02-01\n'
              "4,B,2025-01-01,2025-01-31,3000000000000,\n"
              "5,B,1901-01-01,2025-01-31,5,\n")
    write(tmp_path, **{"e.csv": export})
    (tmp_path / "m.yaml").write_text(
        "tables:\n  invoices:\n    file: e.csv\n"
        "    columns: {invoice_id: nr, debtor_id: cust, issue_date: issued, due_date: due,"
        " amount: amt}\n"
        "  payments:\n    file: e.csv\n    columns: {invoice_id: nr, paid_on: paid,"
        " amount: amt}\n    require: [paid_on]\n")
    result = ingest(tmp_path, mapping=load_mapping(tmp_path / "m.yaml"))
    invoices = result.quarantine.filter(pl.col("table") == "invoices")
    assert dict(zip(invoices["row"], invoices["reason"], strict=True)) == {
        3: "wrong number of fields (header has 6)", 4: "unbalanced quote",
        5: f"amount not below {MAX_AMOUNT:g}", 6: f"issue_date outside {MIN_DAY}..{MAX_DAY}"}
    assert result.quarantine.filter(pl.col("table") == "payments").height == 0
    assert result.counts["invoices"]["read"] == 5
    assert result.tables.invoices["invoice_id"].to_list() == ["1"]
    assert result.tables.payments["invoice_id"].to_list() == ["1"]


# --- 12. headers, a cut-short last line -----------------------------------------------------


@HOW
@pytest.mark.parametrize("header", ["Invoice_ID,Debtor_ID,Issue_Date,Due_Date,Amount",
                                    " invoice_id , debtor_id,issue_date ,due_date,amount ",
                                    '"Invoice ID",debtor-id,ISSUE_DATE,due_date,AMOUNT'],
                         ids=["capitals", "spaces", "quoted-words"])
def test_header_names_are_normalised(tmp_path, how, header):
    result, tables = run(write(tmp_path / "d", invoices="\n".join(
        [header, *invoice_lines(3)]) + "\n"), how)
    assert result.counts["invoices"]["kept"] == 3
    assert tables.invoices["invoice_id"].to_list() == ["I0", "I1", "I2"]


@HOW
def test_a_duplicated_contract_header_is_an_error_naming_it(tmp_path, how):
    text = "\n".join([INVOICE_HEADER + ",Amount", "I1,A,2025-01-01,2025-01-31,5,6"]) + "\n"
    with pytest.raises(InputError) as err:
        run(write(tmp_path / "d", invoices=text), how)
    assert str(err.value).startswith(
        "invoices.csv: column 'amount' appears twice in the header (columns 5 and 6")


def test_a_duplicated_extra_column_is_kept_under_a_new_name(tmp_path):
    text = "\n".join([INVOICE_HEADER + ",note,note", "I1,A,2025-01-01,2025-01-31,5,x,y"])
    result = ingest(write(tmp_path, invoices=text + "\n"))
    row = result.tables.invoices.row(0, named=True)
    assert (row["note"], row["note_duplicated_0"]) == ("x", "y")


@HOW
@pytest.mark.parametrize(
    ("last", "reason"),
    [("I9,A,2025-03-01,2025-0",
      "line looks truncated (no line break at the end of the file, too few fields)"),
     ('I9,A,2025-03-01,2025-04-01,"12',
      "line looks truncated (no line break at the end of the file, too few fields)")],
    ids=["mid-date", "mid-quoted-number"],
)
def test_a_last_line_cut_short_is_quarantined_as_truncated(tmp_path, how, last, reason):
    text = "\n".join([INVOICE_HEADER, *invoice_lines(5), last])  # no final line break
    result, tables = run(write(tmp_path / "d", invoices=text), how)
    assert quarantined(result) == {7: reason}
    assert tables.invoices.height == 5


# --- 6. bounds ----------------------------------------------------------------------------


AMOUNT_REASON = f"amount not below {MAX_AMOUNT:g}"


def day_reason(col: str) -> str:
    return f"{col} outside {MIN_DAY}..{MAX_DAY}"


@HOW
@pytest.mark.parametrize(
    ("table", "row", "reason"),
    [("invoices", "I9,A,2025-01-01,2025-01-31,1e12", AMOUNT_REASON),
     ("invoices", "I9,A,2025-01-01,2025-01-31,1.7e308", AMOUNT_REASON),
     ("invoices", "I9,A,2025-01-01,2025-01-31,1000000000000.00", AMOUNT_REASON),
     ("invoices", "I9,A,1969-12-31,2025-01-31,5", day_reason("issue_date")),
     ("invoices", "I9,A,2025-01-01,2201-01-01,5", day_reason("due_date")),
     ("invoices", "I9,A,2025-01-01,9999-12-31,5", day_reason("due_date")),
     ("payments", "I1,2025-02-01,2e12", AMOUNT_REASON),
     ("payments", "I1,9999-12-31,5", day_reason("paid_on")),
     ("debtors", "C,NL,1900-01-01", day_reason("created_on")),
     ("actions", "I1,0001-01-01,email", day_reason("sent_on")),
     ("disputes", "I1,2025-01-05,2201-01-01", day_reason("resolved_on"))],
    ids=["amount-1e12", "amount-1.7e308", "amount-1e12-written-out", "issue-1969",
         "due-2201", "due-9999", "payment-2e12", "paid-9999", "created-1900", "sent-year-1",
         "resolved-2201"],
)
def test_amounts_and_dates_outside_the_bounds_are_quarantined(tmp_path, how, table, row,
                                                              reason):
    base = {"invoices": INVOICE_HEADER + "\nI1,A,2025-01-01,2025-01-31,5\n",
            "payments": "invoice_id,paid_on,amount\nI1,2025-02-01,5\n",
            "debtors": "debtor_id,country,created_on\nA,NL,2020-01-01\n",
            "actions": "invoice_id,sent_on,channel\nI1,2025-02-01,sms\n",
            "disputes": "invoice_id,opened_on,resolved_on\nI1,2025-01-05,2025-01-09\n"}
    base[table] += row + "\n"
    result, _ = run(write(tmp_path / "d", **base), how)
    assert quarantined(result) == {3: reason}
    assert result.quarantine["table"].to_list() == [table]


@HOW
def test_typed_parquet_dates_and_amounts_obey_the_bounds(tmp_path, how):
    folder = write(tmp_path / "d")
    pl.DataFrame({"invoice_id": ["I1", "I2", "I3", "I4"], "debtor_id": ["A"] * 4,
                  "issue_date": [date(2025, 1, 1), date(1960, 1, 1), date(2025, 1, 1),
                                 date(2025, 1, 1)],
                  "due_date": [date(2025, 2, 1), date(2025, 2, 1), date(2300, 1, 1),
                               date(2025, 2, 1)],
                  "amount": [5.0, 5.0, 5.0, 1e15]}).write_parquet(folder / "invoices.parquet")
    result, tables = run(folder, how)
    assert quarantined(result) == {2: day_reason("issue_date"), 3: day_reason("due_date"),
                                   4: AMOUNT_REASON}
    assert tables.invoices["invoice_id"].to_list() == ["I1"]


def test_the_bounds_are_the_bounds_a_day_inside_is_kept(tmp_path):
    text = (INVOICE_HEADER + f"\nI1,A,{MIN_DAY},{MAX_DAY},{MAX_AMOUNT * (1 - 1e-9):.2f}\n")
    result = ingest(write(tmp_path, invoices=text))
    assert result.quarantine.height == 0 and result.tables.invoices.height == 1


# --- the command: exit codes and one line ------------------------------------------------


@pytest.mark.parametrize(
    ("invoices", "code", "stderr"),
    [(INVOICE_HEADER + "\r" + "\r".join(invoice_lines(4)) + "\r", 0, ""),
     (INVOICE_HEADER + "\n", 2, "error: invoices.csv: no rows below the header line"),
     (INVOICE_HEADER + ",invoice_id\nI1,A,2025-01-01,2025-01-31,5,I1\n", 2,
      "error: invoices.csv: column 'invoice_id' appears twice in the header"),
     ("Invoice_ID,debtor_id,issue_date,amount\n", 2,
      "error: invoices.csv: required column 'due_date' is missing"),
     ("\x1e".join([INVOICE_HEADER, *invoice_lines(3000)]), 2,
      "error: invoices.csv: the first line is over"),
     (b"\xff\xfei\x00n\x00", 2, "error: invoices.csv: the file is UTF-16")],
    ids=["cr-only-ok", "header-only", "duplicated-header", "missing-column", "giant-header",
         "utf-16"],
)
def test_the_cli_exits_0_or_2_with_one_error_line(tmp_path, invoices, code, stderr):
    folder = write(tmp_path / "d", invoices=invoices)
    done = cli("--data", str(folder), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    if code == 0:
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["tables"]["invoices"]["kept"] == 4
    else:
        assert done.stderr.startswith(stderr)
        assert len(done.stderr.strip().splitlines()) == 1
