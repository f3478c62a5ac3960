"""Read a CSV file line by line into a clean staging copy before polars parses it.

Exports come with any line ending (LF, CRLF, or CR from Excel for Mac), in UTF-8 or a Windows
code page, with ragged lines, stray quotes and a last line cut short. polars' reader stops at
the first malformed line and replaces undecodable bytes, so a table is first streamed through
:func:`stage_csv`, in blocks of ``BLOCK_BYTES`` (memory does not grow with the file), which

- splits physical lines at ``\\n``, ``\\r\\n`` or ``\\r`` (mixed endings included) and counts
  them, so that every row keeps the number of the physical line it starts on;
- decodes each line: the declared encoding, or else UTF-8 (with or without a BOM) and, for a
  line that is not UTF-8, cp1252 (a superset of Latin-1's letters); bytes are never replaced;
- writes the good records to a UTF-8 LF staging file with their line number in a first
  column, :data:`SOURCE_ROW`;
- hands back the lines that cannot be a row (wrong number of fields, unbalanced quote,
  undecodable value, a last line cut short) with their line number and reason, for the
  quarantine.

A first pass only reads: when every line of the file is *plain* (UTF-8, LF or CRLF endings, no
quote, no BOM, no empty line, the header's number of fields on every line), polars reads the
file itself and a row's line is its position + 2, so the common case costs one read and no copy.
Otherwise the second pass writes the staging copy: blocks that are plain are copied as they
are, with their line numbers; only the other blocks go through Python's ``csv`` parser.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from paycadence.errors import InputError

logger = logging.getLogger(__name__)

#: First column of a staging file: the physical line (1-based, the header is line 1) a row
#: starts on in its source file.
SOURCE_ROW = "__source_row"
#: Bytes read at a time.
BLOCK_BYTES = 8 << 20
#: A quoted value may hold line breaks, but one record spans at most this many physical lines;
#: beyond that its opening quote is taken as a stray quote and reading resumes on the next line.
MAX_RECORD_LINES = 100
#: A first line longer than this is not a header: the file's line endings were not found.
MAX_HEADER_BYTES = 1 << 16
#: A physical line longer than this stops the run (no line ending found for 16 MiB).
MAX_LINE_BYTES = 1 << 24
#: What a line that is not UTF-8 is read as when the encoding is not declared.
FALLBACK_ENCODING = "cp1252"

UNBALANCED = "unbalanced quote"
TRUNCATED = "line looks truncated (no line break at the end of the file, too few fields)"
_SURROGATE = re.compile("[\udc80-\udcff]")
_HEADER_SPACE = re.compile(r"[\s\-]+")


@dataclass
class Staged:
    """A staged CSV table: where it is, its header and the lines that are not rows."""

    path: Path
    columns: list[str]  # the header, normalised (without SOURCE_ROW)
    separator: str
    rows: int = 0  # rows written to the staging file
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, record)
    duplicated: set[str] = field(default_factory=set)  # names the header holds twice or more
    line_ending: str = "none"  # LF, CRLF, CR, mixed or none (the first block's)
    encodings: set[str] = field(default_factory=set)  # what the lines were read as
    final_line_break: bool = True
    #: True: no staging copy was needed, ``path`` is the source file (polars reads it as it
    #: is; a row's line is its position + 2) and there is no SOURCE_ROW column
    plain: bool = False


class _TooLong(Exception):
    """A record ran over MAX_RECORD_LINES physical lines."""


class _NotPlain(Exception):
    """The read-only first pass met a line polars alone would not read right."""


class _Feed:
    """The lines of a block, fed to ``csv.reader`` from ``pos``; refuses to go past ``stop``."""

    __slots__ = ("lines", "pos", "stop")

    def __init__(self, lines: list[str]):
        self.lines, self.pos, self.stop = lines, 0, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        pos = self.pos
        if pos >= len(self.lines):
            raise StopIteration
        if pos >= self.stop:
            raise _TooLong
        self.pos = pos + 1
        return self.lines[pos]


def check_encoding(name: str) -> str:
    """``name`` if it is a known encoding that writes ASCII as ASCII (so the delimiter, quotes
    and line breaks are single bytes); ValueError otherwise (UTF-16, UTF-32, unknown)."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding '{name}'") from None
    probe = ",;\t|\"\r\nAz09"
    try:
        same = probe.encode("ascii").decode(name) == probe
    except UnicodeError:
        same = False
    if not same:
        raise ValueError(f"encoding '{name}' is not supported: export the file as UTF-8 "
                         "(or another encoding that keeps ASCII as is, such as cp1252)")
    return name


class _Decoding:
    """How lines are decoded: a declared encoding, or UTF-8 and else cp1252, line by line."""

    def __init__(self, declared: str | None):
        if declared is None:
            self.names = ("utf-8", FALLBACK_ENCODING)
            self.describe = f"UTF-8 or {FALLBACK_ENCODING}"
        else:
            name = codecs.lookup(check_encoding(declared)).name
            self.names = ("utf-8",) if name == "utf-8-sig" else (name,)
            self.describe = declared
        self.utf8_first = self.names[0] == "utf-8"

    def block_is_utf8(self, data: bytes) -> bool:
        """True when the whole block reads as it is (ASCII, or UTF-8 read as UTF-8)."""
        if data.isascii():
            return True
        if not self.utf8_first:
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def line(self, raw: bytes) -> tuple[str, str | None]:
        """(text, encoding it was read as); the encoding is None when no encoding reads it, the
        text then holds each undecodable byte as a lone surrogate (never a replacement)."""
        for name in self.names:
            try:
                return raw.decode(name), name
            except UnicodeDecodeError:
                continue
        return raw.decode(self.names[-1], "surrogateescape"), None


def shown(text: str) -> str:
    """Text with each undecodable byte written as ``\\xNN``, for the quarantine's record."""
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def header_key(name: str) -> str:
    """The form a header name is matched in: trimmed, lower-case, spaces and dashes as ``_``
    (``' Invoice-ID '`` → ``invoice_id``)."""
    return _HEADER_SPACE.sub("_", name.strip().lstrip("\ufeff").strip()).lower()


def normalise_header(names: list[str], contract: Collection[str] | None,
                     file: str) -> tuple[list[str], set[str]]:
    """Header names as read: (names, names seen more than once).

    A name that matches a contract column in :func:`header_key` form becomes that column; a
    contract column named twice stops the run. Other names are trimmed and kept, a repeated
    one suffixed ``_duplicated_<k>`` (as polars does); an empty one is ``column_<position>``.
    """
    out: list[str] = []
    where: dict[str, int] = {}
    duplicated: set[str] = set()
    for pos, raw in enumerate(names, start=1):
        name = raw.strip().lstrip("\ufeff").strip() or f"column_{pos}"
        if contract is not None and header_key(name) in contract:
            name = header_key(name)
        if name in where:
            duplicated.add(name)
            if contract is not None and name in contract:
                raise InputError(
                    f"{file}: column '{name}' appears twice in the header (columns "
                    f"{where[name]} and {pos}, as '{names[where[name] - 1]}' and '{raw}'): "
                    "remove or rename one")
            k = sum(1 for n in out if n.startswith(f"{name}_duplicated_"))
            name = f"{name}_duplicated_{k}"
        where[name] = pos
        out.append(name)
    return out, duplicated


#: Delimiters an export may use besides the contract's comma.
DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(path: Path, required: Collection[str]) -> str:
    """The delimiter of the CSV file ``path``: the comma, unless its header line holds none of
    the ``required`` columns read with commas and all of them read with one of
    :data:`DELIMITERS` (a semicolon-separated export from a European Excel, a tab-separated
    one). Only the first line is read."""
    with path.open("rb") as fh:
        head = fh.read(MAX_HEADER_BYTES).split(b"\n", 1)[0].rstrip(b"\r")
    text = head.decode("utf-8-sig", errors="replace")

    def names(sep: str) -> set[str]:
        try:
            fields = next(csv.reader([text], delimiter=sep))
        except (csv.Error, StopIteration):
            return set()
        return {header_key(f.strip().lstrip("\ufeff")) for f in fields}

    if not required or set(required) <= names(","):
        return ","
    for sep in DELIMITERS[1:]:
        if set(required) <= names(sep):
            return sep
    return ","


def delimiter_hint(columns: list[str], delimiter: str) -> str:
    """What to say when a header read with ``delimiter`` is one column holding another
    delimiter: ``" (the header reads as one column 'a;b;c': the file looks ';'-delimited)"``."""
    if len(columns) != 1:
        return ""
    for sep in DELIMITERS:
        if sep != delimiter and sep in columns[0]:
            shown = columns[0] if len(columns[0]) <= 60 else columns[0][:57] + "..."
            named = "tab" if sep == "\t" else f"'{sep}'"
            return (f" (the header reads as one column '{shown}': the file looks "
                    f"{named}-delimited)")
    return ""


def _blocks(src: BinaryIO, file: str, block_bytes: int):
    """(bytes, physical lines without their ending, at end of file, ends with a line break)
    per block of about ``block_bytes``; a line is never split between two blocks."""
    carry = b""
    limit = MAX_HEADER_BYTES
    while True:
        chunk = src.read(block_bytes)
        data = carry + chunk if carry else chunk
        if not chunk:
            yield data, data.splitlines(), True, data.endswith((b"\n", b"\r")) or not data
            return
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut == len(data) - 1 and data[cut] == 0x0D:  # maybe the first half of a \r\n
            cut = max(data.rfind(b"\n", 0, cut), data.rfind(b"\r", 0, cut))
        if cut < 0:
            carry = data
            if len(carry) > limit:
                _too_long(file, limit == MAX_HEADER_BYTES, len(carry))
            continue
        carry = data[cut + 1:]
        limit = MAX_LINE_BYTES
        yield data[:cut + 1], data[:cut + 1].splitlines(), False, True


def _too_long(file: str, header: bool, size: int) -> None:
    if header:
        raise InputError(
            f"{file}: the first line is over {size:,} bytes long, which is no header: its "
            "lines do not end in LF, CRLF or CR (save it again as CSV)")
    raise InputError(f"{file}: a line is over {size:,} bytes long without a line break")


def _line_ending(data: bytes) -> str:
    crlf = data.count(b"\r\n")
    cr, lf = data.count(b"\r") - crlf, data.count(b"\n") - crlf
    kinds = [k for k, n in (("CRLF", crlf), ("CR", cr), ("LF", lf)) if n]
    return kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "none")


class _Stager:
    """The state of one staging pass (see :func:`stage_csv`)."""

    def __init__(self, staged: Staged, dec: _Decoding, dst: BinaryIO | None):
        self.staged, self.dec, self.dst = staged, dec, dst  # dst None: the read-only pass
        self.n = len(staged.columns)
        self.sep = staged.separator
        self.sep_b = self.sep.encode()
        self.fast = b"%d" + self.sep_b.replace(b"%", b"%%") + b"%b\n"

    def bad(self, line: int, reason: str, record: dict | str) -> None:
        if isinstance(record, str):
            record = {"line": shown(record)}
        self.staged.bad.append((line, reason, json.dumps(record, ensure_ascii=False)))

    def utf8_lines(self, data: bytes, lines: list[bytes]) -> tuple[list[bytes], dict[int, str]]:
        """The lines as UTF-8, and the text of those no encoding reads, by index."""
        if self.dec.block_is_utf8(data):
            if lines:
                self.staged.encodings.add("UTF-8" if self.dec.utf8_first else
                                          self.dec.describe)
            return lines, {}
        out, undecodable, used = [], {}, set()
        for i, raw in enumerate(lines):
            if raw.isascii():
                out.append(raw)
                continue
            text, name = self.dec.line(raw)
            if name is None:
                undecodable[i] = text
                out.append(raw)
            else:
                used.add(name)
                out.append(raw if name == "utf-8" else text.encode("utf-8"))
        self.staged.encodings |= used or {"UTF-8"}
        return out, undecodable

    def block(self, data: bytes, lines: list[bytes], first: int, pending: tuple,
              at_eof: bool, final_break: bool) -> tuple:
        """Stage one block whose first line is physical line ``first``; returns the lines of a
        quoted record that runs on into the next block (and those of them no encoding
        reads), to prepend to it."""
        if self.dst is None:
            if not self.plain(data, lines):
                raise _NotPlain
            self.staged.rows += len(lines)
            return [], {}
        lines, undecodable = self.utf8_lines(data, lines)
        pending, pending_undecodable = pending
        if not pending and not undecodable and b'"' not in data:
            n_sep = self.n - 1
            counts = [line.count(self.sep_b) for line in lines]
            if counts.count(n_sep) == len(counts) and (n_sep or b"" not in lines):
                fmt = self.fast
                self.dst.write(b"".join([fmt % pair for pair in zip(
                    range(first, first + len(lines)), lines, strict=True)]))
                self.staged.rows += len(lines)
                return [], {}
        if pending:
            lines, first = pending + lines, first - len(pending)
            undecodable = pending_undecodable | {i + len(pending): t
                                                 for i, t in undecodable.items()}
        return self.parse(lines, undecodable, first, at_eof, final_break)

    def plain(self, data: bytes, lines: list[bytes]) -> bool:
        """Whether polars alone reads these lines right, numbered by position."""
        crs = data.count(b"\r")
        if crs and crs != data.count(b"\r\n"):  # CR endings, or a stray CR
            return False
        if b'"' in data or not self.dec.block_is_utf8(data):
            return False
        n_sep = self.n - 1
        if not n_sep:
            return b"" not in lines
        counts = [line.count(self.sep_b) for line in lines]
        return counts.count(n_sep) == len(counts)

    def parse(self, raw: list[bytes], undecodable: dict[int, str], first: int, at_eof: bool,
              final_break: bool) -> tuple:
        """Parse a block record by record with ``csv`` (quotes, line breaks in values)."""
        texts = [undecodable[i] + "\n" if i in undecodable else line.decode("utf-8") + "\n"
                 for i, line in enumerate(raw)]
        count = len(texts)
        feed = _Feed(texts)
        reader = csv.reader(feed, delimiter=self.sep, strict=True)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.sep, lineterminator="\n")
        last_cut_short = at_eof and not final_break
        pending: tuple = ([], {})
        start = 0
        while start < count:
            feed.pos, feed.stop = start, start + MAX_RECORD_LINES
            try:
                row = next(reader)
            except StopIteration:
                break
            except _TooLong:
                self.bad(first + start, UNBALANCED, texts[start][:-1])
                start += 1
                continue
            except csv.Error as exc:
                open_quote = "unexpected end of data" in str(exc)
                if open_quote and feed.pos >= count and not at_eof:
                    # a quoted value runs on into the next block
                    pending = raw[start:], {i - start: t for i, t in undecodable.items()
                                            if i >= start}
                    break
                # strict csv's other errors are quotes too ('"," expected after """'), but
                # for a value over csv.field_size_limit()
                reason = f"malformed line ({exc})" if "field larger" in str(exc) else UNBALANCED
                if open_quote and last_cut_short and start == count - 1:
                    reason = TRUNCATED
                self.bad(first + start, reason, texts[start][:-1])
                start += 1
                continue
            end = feed.pos
            if not row:  # an empty line
                start = end
                continue
            if len(row) != self.n:
                if end - start > 1:  # an opening quote that closes lines later: a stray quote
                    self.bad(first + start, UNBALANCED, texts[start][:-1])
                    start += 1
                    continue
                short = last_cut_short and end == count and len(row) < self.n
                self.bad(first + start, TRUNCATED if short else
                         f"wrong number of fields (header has {self.n})", texts[start][:-1])
            elif undecodable and any(i in undecodable for i in range(start, end)):
                cols = [c for c, v in zip(self.staged.columns, row, strict=True)
                        if _SURROGATE.search(v)]
                self.bad(first + start, "; ".join(
                    f"undecodable {c} (not {self.dec.describe})" for c in cols),
                    {c: shown(v) for c, v in zip(self.staged.columns, row, strict=True)})
            else:
                writer.writerow([first + start, *row])
                self.staged.rows += 1
            start = end
        self.dst.write(out.getvalue().encode("utf-8"))
        return pending


def stage_csv(
    path: Path,
    out: Path,
    *,
    delimiter: str = ",",
    encoding: str | None = None,
    contract: Collection[str] | None = None,
    on_header: Callable[[list[str]], None] | None = None,
    file: str | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Staged:
    """Stream the CSV file ``path`` into the staging file ``out`` (UTF-8, LF, ``delimiter``).

    Parameters
    ----------
    encoding
        Declared encoding (a mapping's ``encoding:``); None reads UTF-8 (BOM or not) and a
        line that is not UTF-8 as cp1252.
    contract
        The table's contract columns: header names matching one in :func:`header_key` form
        are renamed to it, and one named twice stops the run. None keeps the names (trimmed).
    on_header
        Called with the normalised header before any row is read (to refuse a missing
        column before reading a large file).
    block_bytes
        Bytes read at a time (memory is a few times this); the result does not depend on it.

    Raises
    ------
    InputError
        Unreadable or empty file, a first line too long to be a header, a header that does
        not parse, a contract column named twice.
    """
    file = file or path.name
    dec = _Decoding(encoding)
    args = (path, dec, delimiter, contract, on_header, file, block_bytes)
    try:
        try:
            staged = _pass(None, *args)
        except _NotPlain:
            with open(out, "wb") as dst:
                staged = _pass(dst, *args)
                staged.path = out
    except OSError as exc:
        raise InputError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if not staged.final_line_break:
        logger.warning("%s: no line break after the last line (was the file cut short?)", file)
    logger.info("%s: %s line endings, read as %s%s; %d rows, %d lines quarantined", file,
                staged.line_ending, " and ".join(sorted(staged.encodings)) or "UTF-8",
                " (plain, no staging copy)" if staged.plain else "", staged.rows,
                len(staged.bad))
    return staged


def _pass(dst: BinaryIO | None, path: Path, dec: _Decoding, delimiter: str, contract,
          on_header, file: str, block_bytes: int) -> Staged:
    """One pass over the file: read-only when ``dst`` is None (raises _NotPlain at the first
    line that needs staging), else writing the staging copy to ``dst``."""
    with open(path, "rb") as src:
        blocks = _blocks(src, file, block_bytes)
        data, lines, at_eof, final_break = next(blocks)
        if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
            raise InputError(f"{file}: the file is UTF-16; export it as UTF-8 CSV")
        bom = bool(lines) and lines[0].startswith(codecs.BOM_UTF8)
        if bom:
            lines[0] = lines[0][len(codecs.BOM_UTF8):]
        if not lines or not lines[0].strip():
            raise InputError(f"{file}: the file is empty (no header line)")
        if len(lines[0]) > MAX_HEADER_BYTES:
            _too_long(file, True, len(lines[0]))
        staged = Staged(path, [], delimiter, line_ending=_line_ending(data),
                        final_line_break=final_break, plain=dst is None)
        staged.columns, staged.duplicated = _header(lines[0], dec, delimiter, contract, file)
        if on_header is not None:
            on_header(staged.columns)
        if dst is None and (bom or b'"' in lines[0]):
            raise _NotPlain
        if dst is not None:
            head = io.StringIO()
            csv.writer(head, delimiter=delimiter, lineterminator="\n").writerow(
                [SOURCE_ROW, *staged.columns])
            dst.write(head.getvalue().encode("utf-8"))
        stager = _Stager(staged, dec, dst)
        body = data[len(data.split(b"\n", 1)[0].split(b"\r", 1)[0]):]
        pending = stager.block(body, lines[1:], 2, ([], {}), at_eof, final_break)
        line = 2 + len(lines) - 1
        for data, lines, at_eof, final_break in blocks:
            staged.final_line_break = final_break
            pending = stager.block(data, lines, line, pending, at_eof, final_break)
            line += len(lines)
    if dst is None:
        staged.encodings = {"UTF-8"}
    return staged


def _header(raw: bytes, dec: _Decoding, delimiter: str, contract, file: str):
    text, name = dec.line(raw)
    if name is None:
        raise InputError(f"{file}: the header is not {dec.describe} ({shown(text)!r})")
    try:
        names = next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise InputError(f"{file}: the header cannot be parsed ({exc})") from None
    return normalise_header(names, contract, file)
