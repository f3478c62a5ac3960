"""The CSV staging pass: the same rows, line numbers and quarantined lines however the file is cut
into blocks, and an oracle for the line numbers."""

from __future__ import annotations

import csv
import io

import pytest

from paycadence.data.csvstage import SOURCE_ROW, stage_csv

HEADER = "invoice_id,debtor_id,amount"
#: Every hard case at once: CRLF and CR and LF, quoted line breaks (one of them "\r\n" split by
#: a block boundary when blocks are small), a stray quote, a ragged line, blank lines, a
#: Latin-1 and an undecodable key, a quoted delimiter, a cut-short last line.
NASTY = (
    HEADER.encode() + b"\r\n"
    b"I1,A,5\r\n"                                   # 2
    b'I2,"B\r\nstill B",6\r\n'                      # 3-4
    b"\r\n"                                         # 5 blank
    b"I3,A,7,extra\r\n"                             # 6 ragged
    b'I4,"A,with comma",8\r'                        # 7 (CR)
    b"I5,M\xfcller,9\n"                             # 8 (LF, Latin-1)
    b'I6,"open,10\r\n'                              # 9 stray quote
    b"I7,A,11\r\n"                                  # 10
    b"I\x81,A,12\r\n"                               # 11 undecodable
    b'I8,"x\ny\nz",13\r\n'                          # 12-14
    b"I9,A"                                         # 15 cut short, no line break
)
GOOD = {2: ["I1", "A", "5"], 3: ["I2", "B\nstill B", "6"], 7: ["I4", "A,with comma", "8"],
        8: ["I5", "Müller", "9"], 10: ["I7", "A", "11"], 12: ["I8", "x\ny\nz", "13"]}
BAD = {6: "wrong number of fields (header has 3)", 9: "unbalanced quote",
       11: "undecodable invoice_id (not UTF-8 or cp1252)",
       15: "line looks truncated (no line break at the end of the file, too few fields)"}


def staged_rows(path) -> dict[int, list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        assert next(reader) == [SOURCE_ROW, "invoice_id", "debtor_id", "amount"]
        return {int(r[0]): r[1:] for r in reader}


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 16, 50, 1 << 20])
def test_the_result_does_not_depend_on_the_block_size(tmp_path, block_bytes):
    (tmp_path / "in.csv").write_bytes(NASTY)
    staged = stage_csv(tmp_path / "in.csv", tmp_path / "out.csv", block_bytes=block_bytes,
                       contract={"invoice_id", "debtor_id", "amount"})
    assert staged_rows(tmp_path / "out.csv") == GOOD
    assert {line: reason for line, reason, _ in staged.bad} == BAD
    assert staged.rows == len(GOOD) and not staged.final_line_break


def test_line_numbers_match_a_slow_oracle(tmp_path):
    """Python's own csv module over universal-newline text numbers rows the same way, on a
    file with no bad line (csv.reader.line_num after a row is the last line it read)."""
    rows = [[f"K{i}", "x" if i % 3 else "two\nlines", str(i)] for i in range(400)]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows([HEADER.split(","), *rows])
    text = buf.getvalue().replace("\r\n", "\n", 7)  # a few LF-only lines among CRLF ones
    (tmp_path / "in.csv").write_bytes(text.encode())
    oracle, reader = {}, csv.reader(io.StringIO(text, newline=None))
    next(reader)
    first = reader.line_num + 1
    for row in reader:
        oracle[first] = row
        first = reader.line_num + 1
    stage_csv(tmp_path / "in.csv", tmp_path / "out.csv", block_bytes=97)
    assert staged_rows(tmp_path / "out.csv") == oracle


@pytest.mark.parametrize(("ending", "plain"), [("\n", True), ("\r\n", True), ("\r", False)],
                         ids=["LF", "CRLF", "CR"])
def test_a_plain_file_is_read_as_it_is(tmp_path, ending, plain):
    """A file polars reads right by itself gets no staging copy; one it would not, does."""
    text = ending.join([HEADER, "I1,A,5", "I2,B,6"]) + ending
    (tmp_path / "in.csv").write_bytes(text.encode())
    staged = stage_csv(tmp_path / "in.csv", tmp_path / "out.csv")
    assert staged.plain is plain and staged.rows == 2
    assert staged.path == tmp_path / ("in.csv" if plain else "out.csv")
    assert (tmp_path / "out.csv").exists() is not plain
