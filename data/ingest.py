"""Ingest: read a data directory's tables, quarantine bad rows with their reasons, keep the rest.

A CSV file is first streamed line by line into a clean staging copy
(:mod:`paycadence.data.csvstage`: any line ending, UTF-8 or cp1252 or a declared encoding,
each row numbered with its physical line); a line that cannot be a row (ragged, unbalanced
quote, undecodable, cut short) is quarantined there. Every row rule is then a named polars
expression over the raw (string) values; a row that breaks any rule goes to ``quarantine.csv``
with its row number and every reason, never silently dropped. A table that lacks a required
column, names one twice, or a file that cannot be read, stops the run with one line naming the
file (:class:`paycadence.errors.InputError`). docs/ingest.md lists the rules.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandera.polars as pa
import polars as pl

from paycadence.books import derived_book
from paycadence.bounds import MAX_AMOUNT, MAX_DAY, MIN_DAY
from paycadence.config import CHANNELS, OPTABLE_CHANNELS
from paycadence.currencies import ISO_4217
from paycadence.data.checks import WITHOUT, Span
from paycadence.data.csvstage import (
    delimiter_hint,
    normalise_header,
    sniff_delimiter,
    stage_csv,
)
from paycadence.data.mapping import SOURCE_ROW, Export, Mapping, apply_table_map, read_export
from paycadence.data.tables import COLUMNS, REQUIRED, TABLE_NAMES, Tables, conform, write_tables
from paycadence.errors import InputError

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("debtors", "invoices")
KEYS = {"debtors": "debtor_id", "invoices": "invoice_id"}
QUARANTINE_SCHEMA = {"table": pl.String, "file": pl.String, "row": pl.Int64,
                     "reason": pl.String, "record": pl.String}


@dataclass(frozen=True)
class IngestResult:
    """Clean tables, quarantined rows and the counts per table and reason."""

    tables: Tables | None  # None from ingest_files: the clean tables are in its output folder
    quarantine: pl.DataFrame
    counts: dict[str, dict]
    debtors_created: int
    paths: list[Path] = field(default_factory=list)
    #: the days the clean rows cover (what --as-of is checked against: paycadence.data.checks)
    span: Span = Span(None, None)


class _Debtors(pa.DataFrameModel):
    debtor_id: str = pa.Field(unique=True)

    class Config:
        strict = False


class _Invoices(pa.DataFrameModel):
    invoice_id: str = pa.Field(unique=True)
    debtor_id: str
    amount: float = pa.Field(gt=0)

    class Config:
        strict = False

    @pa.dataframe_check
    def due_not_before_issue(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("due_date") >= pl.col("issue_date"))


class _Payments(pa.DataFrameModel):
    invoice_id: str
    amount: float = pa.Field(gt=0)

    class Config:
        strict = False


class _Actions(pa.DataFrameModel):
    invoice_id: str
    channel: str = pa.Field(isin=list(CHANNELS))

    class Config:
        strict = False


class _Disputes(pa.DataFrameModel):
    invoice_id: str

    class Config:
        strict = False


#: Non-strict pandera models the clean tables must pass (extra columns allowed).
SCHEMAS = {"debtors": _Debtors, "invoices": _Invoices, "payments": _Payments,
           "actions": _Actions, "disputes": _Disputes}


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null()


def _parsed(col: str) -> str:
    return f"__{col}"


def _parse_exprs(name: str, frame: pl.Schema) -> list[pl.Expr]:
    """Typed versions of every contract column present, named ``__<col>`` (null if unparsable)."""
    out = []
    for col, dtype in COLUMNS[name].items():
        if col not in frame:
            continue
        src = pl.col(col)
        if frame[col] == dtype:
            out.append(src.alias(_parsed(col)))
        elif isinstance(dtype, pl.Date):
            if frame[col] in (pl.Datetime, pl.Datetime("us"), pl.Datetime("ns")):
                out.append(src.cast(pl.Date).alias(_parsed(col)))
            else:
                out.append(src.cast(pl.String).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
                           .alias(_parsed(col)))
        elif isinstance(dtype, pl.Float64 | pl.Int64):
            text = src.cast(pl.String)
            value = text.cast(pl.Float64, strict=False)
            if isinstance(dtype, pl.Int64):
                value = pl.when(value == value.round(0)).then(value.cast(pl.Int64))
            out.append(value.alias(_parsed(col)))
        else:
            out.append(src.cast(pl.String).alias(_parsed(col)))
    return out


def _rules(name: str, frame: pl.Schema) -> dict[str, pl.Expr]:
    """Named row rules of table ``name``: each expression is True on a bad row."""
    rules: dict[str, pl.Expr] = {}
    for col in REQUIRED[name]:
        rules[f"missing {col}"] = _blank(col)
    for col, dtype in COLUMNS[name].items():
        if col not in frame or isinstance(dtype, pl.String):
            continue
        rules[f"unparsable {col}"] = ~_blank(col) & _blank(_parsed(col))
    p = _parsed
    if name == "invoices":
        rules["due_date before issue_date"] = pl.col(p("due_date")) < pl.col(p("issue_date"))
        if "currency" in frame:  # upper-cased by _normalise; absent: EUR
            rules["not an ISO 4217 currency"] = ~_blank("currency") & ~pl.col(
                p("currency")).is_in(sorted(ISO_4217))
    if name in ("invoices", "payments"):
        rules["non-positive amount"] = pl.col(p("amount")) <= 0
        rules["amount not finite"] = ~pl.col(p("amount")).is_finite()
    for col in AMOUNT_COLUMNS:
        if col in COLUMNS[name] and col in frame:
            value = pl.col(p(col))
            rules[f"{col} not below {MAX_AMOUNT:g}"] = value.is_finite() & (value >= MAX_AMOUNT)
    for col, dtype in COLUMNS[name].items():
        if col in frame and isinstance(dtype, pl.Date):
            day = pl.col(p(col))
            rules[f"{col} outside {MIN_DAY}..{MAX_DAY}"] = (day < MIN_DAY) | (day > MAX_DAY)
    if name == "actions":
        rules["unknown channel"] = ~_blank("channel") & ~pl.col(p("channel")).is_in(
            list(CHANNELS))
        if "step" in frame:
            rules["step below 1"] = pl.col(p("step")) < 1
        if "propensity" in frame:
            rules["propensity outside (0, 1]"] = (pl.col(p("propensity")) <= 0) | (
                pl.col(p("propensity")) > 1)
    if name == "disputes" and "resolved_on" in frame:
        rules["resolved_on before opened_on"] = pl.col(p("resolved_on")) < pl.col(p("opened_on"))
    if name == "debtors" and "opted_out" in frame:
        parts = pl.col(p("opted_out")).str.split(";").list.eval(
            pl.element().str.strip_chars().filter(pl.element() != ""))
        rules["unknown channel in opted_out"] = parts.list.eval(
            ~pl.element().is_in(list(OPTABLE_CHANNELS))).list.any().fill_null(False)
    return rules


#: Columns that hold an amount of money (currency): each must be below MAX_AMOUNT.
AMOUNT_COLUMNS = ("amount",)


def _normalise(name: str, frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """Trim strings, blank → null, lower-case channels, upper-case currency and country."""
    strings = [c for c, t in schema.items() if t == pl.String]
    # when/then rather than replace(): replace() is not streamed and held a whole table
    trimmed = {c: pl.col(c).str.strip_chars() for c in strings}
    frame = frame.with_columns(
        pl.when(t != "").then(t).alias(c) for c, t in trimmed.items())
    lower = {"actions": ["channel"], "debtors": ["opted_out", "segment"]}.get(name, [])
    upper = {"invoices": ["currency"], "debtors": ["country"]}.get(name, [])
    return frame.with_columns(
        [pl.col(c).cast(pl.String).str.to_lowercase() for c in lower if c in schema]
        + [pl.col(c).cast(pl.String).str.to_uppercase() for c in upper if c in schema])


def validate_rows(
    name: str,
    frame: pl.DataFrame,
    *,
    known_invoice_ids: pl.Series | None = None,
    offset: int = 2,
    file: str = "",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply table ``name``'s row rules to ``frame``; returns (clean, quarantined).

    Parameters
    ----------
    frame
        Raw rows (strings or typed values); extra columns are kept.
    known_invoice_ids
        For payments, actions and disputes: rows naming another invoice are quarantined
        (``unknown invoice``). None skips that check.
    offset
        Row number of the first row (2 for a CSV: line 1 is the header).

    Returns
    -------
    (clean, quarantined)
        ``clean`` conformed to the contract types; ``quarantined`` with columns
        ``table, file, row, reason, record`` (the original row as JSON).
    """
    return _collect(name, frame.lazy(), known_invoice_ids, offset, file)


def _collect(name, source: pl.LazyFrame, known, offset: int, file: str):
    """Run the rule query in memory: (clean conformed frame, quarantined rows)."""
    try:
        clean, bad = tag_rows(name, source, known_invoice_ids=known, offset=offset, file=file)
        clean, quarantined = pl.collect_all([clean, bad])
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{file or name}: cannot be read ({_first_line(exc)})") from None
    clean = conform(name, clean)
    SCHEMAS[name].validate(clean)
    return clean, quarantined


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def tag_rows(
    name: str,
    frame: pl.LazyFrame,
    *,
    known_invoice_ids: pl.Series | pl.LazyFrame | None = None,
    offset: int = 2,
    file: str = "",
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The row rules as one lazy query: (clean rows, quarantined rows), both lazy.

    :func:`validate_rows` collects it; :func:`ingest_files` streams it to Parquet, so that a
    large export is checked in bounded memory. Duplicate keys: among the rows that pass every
    other rule, the one with the lowest row number is kept. It is the two halves below run
    back to back: the rules that read one row (:func:`_tag_row_rules`), then those that
    compare rows (:func:`_tag_key_rules`), which ``ingest_files`` runs one key bucket at a
    time.
    """
    tagged, original = _tag_row_rules(name, frame, offset=offset, file=file)
    return _tag_key_rules(name, tagged, original, known_invoice_ids=known_invoice_ids,
                          file=file)


def _tag_row_rules(name: str, frame: pl.LazyFrame, *, offset: int, file: str):
    """Number the rows, keep their original values, parse them and tag every broken rule that
    one row can tell: (tagged rows, the original column names)."""
    schema = frame.collect_schema()
    missing = [c for c in REQUIRED[name] if c not in schema]
    if missing:
        raise InputError(f"{file or name}: required column '{missing[0]}' is missing")
    original = [c for c in schema if c != SOURCE_ROW]
    if SOURCE_ROW in schema:  # a staged CSV or mapped export: rows numbered in the source file
        frame = frame.rename({SOURCE_ROW: "__row"})
        schema = pl.Schema({c: t for c, t in schema.items() if c != SOURCE_ROW})
    else:
        frame = frame.with_row_index("__row", offset=offset)
    # the untouched values stay beside the normalised ones (a zero-copy alias) for the record
    frame = frame.with_columns(pl.col("__row").cast(pl.Int64),
                               *[pl.col(c).alias(f"__orig_{c}") for c in original])
    frame = _normalise(name, frame, schema)
    frame = frame.with_columns(_parse_exprs(name, schema))
    hits = [pl.when(rule.fill_null(False)).then(pl.lit(reason))
            for reason, rule in _rules(name, schema).items()]
    tagged = frame.with_columns(
        __reason=pl.concat_list(hits).list.drop_nulls().list.join("; ")
        if hits else pl.lit(""))
    return tagged, original


def _tag_key_rules(
    name: str,
    tagged: pl.LazyFrame,
    original: list[str],
    *,
    known_invoice_ids: pl.Series | pl.LazyFrame | None,
    file: str,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The rules that compare rows (unknown invoice, duplicate key), then (clean, bad)."""
    if name in ("payments", "actions", "disputes") and known_invoice_ids is not None:
        if isinstance(known_invoice_ids, pl.LazyFrame):
            known = known_invoice_ids.select("invoice_id").unique().with_columns(
                __known=pl.lit(True))
            tagged = tagged.join(known, on="invoice_id", how="left", maintain_order="left")
            unknown = pl.col("__known").is_null()
        else:
            unknown = ~pl.col("invoice_id").is_in(known_invoice_ids.implode())
        rule = ~_blank("invoice_id") & unknown
        reason = pl.col("__reason")
        tagged = tagged.with_columns(__reason=pl.when(rule.fill_null(False)).then(
            pl.when(reason == "").then(pl.lit("unknown invoice"))
            .otherwise(reason + pl.lit("; unknown invoice"))).otherwise(reason))
        if isinstance(known_invoice_ids, pl.LazyFrame):
            tagged = tagged.drop("__known")
    if name in KEYS:
        key = KEYS[name]
        first = tagged.filter(pl.col("__reason") == "").group_by(key).agg(
            __first=pl.col("__row").min())
        tagged = tagged.join(first, on=key, how="left", maintain_order="left").with_columns(
            __reason=pl.when((pl.col("__reason") == "") & (pl.col("__row") != pl.col("__first")))
            .then(pl.lit(f"duplicate {key}")).otherwise(pl.col("__reason"))).drop("__first")
    bad = tagged.filter(pl.col("__reason") != "").select(
        table=pl.lit(name), file=pl.lit(file or name), row=pl.col("__row"),
        reason=pl.col("__reason"),
        record=pl.struct([pl.col(f"__orig_{c}").cast(pl.String).alias(c) for c in original])
        .struct.json_encode(),
    )
    good = tagged.filter(pl.col("__reason") == "")
    present = set(original)
    typed = good.with_columns([pl.col(_parsed(c)).alias(c) for c in COLUMNS[name]
                               if c in present])
    clean = typed.select([c for c in original if not c.startswith("__")])
    if name == "invoices":
        clean = clean.with_columns(pl.col("currency").fill_null("EUR") if "currency" in
                                   present else pl.lit("EUR").alias("currency"))
    if name == "debtors" and "opted_out" in present:
        joined = pl.col("opted_out").str.split(";").list.eval(
            pl.element().str.strip_chars().filter(pl.element() != "")).list.join(";")
        clean = clean.with_columns(opted_out=pl.when(joined != "").then(joined))
    return clean, bad


@dataclass(frozen=True)
class _Source:
    """Where a table's rows come from."""

    rows: pl.LazyFrame | None  # None: the table is absent and optional
    file: str = ""
    not_rows: int = 0  # source rows of a mapped export that are rows of another table
    unreadable: pl.DataFrame | None = None  # lines quarantined before the rules (no row)
    offset: int = 1  # number of the first row when rows carry no SOURCE_ROW
    separator: str = ","  # a CSV file's delimiter, as sniffed


def _source(name: str, data_dir: Path, mapping: Mapping | None, exports: dict,
            staging: Path) -> _Source:
    """Where table ``name`` comes from; CSV files are staged into the folder ``staging``.

    An export's lines that are no row are quarantined once, with the first table (in contract
    order) that reads the export.
    """
    mapped = mapping.tables if mapping is not None else {}
    if name in mapped:
        table = mapped[name]
        first = table.file not in exports
        if first:
            path = data_dir / table.file
            if not path.is_file():
                raise InputError(f"{path}: export file named in the mapping is missing")
            exports[table.file] = read_export(path, mapping.format, staging)
        export = exports[table.file]
        raw, not_rows = apply_table_map(name, export, table, mapping.format)
        return _Source(raw.lazy(), table.file, not_rows,
                       _unreadable(name, table.file, export.bad if first else []))
    path = _locate(data_dir, name)
    if path is None:
        if name in REQUIRED_FILES:
            raise InputError(f"{data_dir / (name + '.csv')}: required table file is missing")
        return _Source(None)
    if path.suffix == ".parquet":
        return _Source(_scan_parquet(path, name), path.name, 0, _unreadable(name, path.name, []))
    separator = sniff_delimiter(path, REQUIRED[name])
    staged = stage_csv(path, staging / f"{name}.staged.csv", contract=COLUMNS[name],
                       delimiter=separator,
                       on_header=lambda columns: _require(name, path.name, columns))
    if staged.rows == 0 and not staged.bad and name in REQUIRED_FILES:
        raise InputError(f"{path.name}: no rows below the header line ({name} cannot be "
                         "empty)")
    rows = pl.scan_csv(staged.path, infer_schema=False, separator=staged.separator)
    if staged.plain:  # the file itself: its header names normalised, rows numbered from line 2
        rows = rows.rename(dict(zip(rows.collect_schema().names(), staged.columns,
                                    strict=True)))
    return _Source(rows, path.name, 0, _unreadable(name, path.name, staged.bad),
                   offset=2 if staged.plain else 1, separator=separator)


def _require(name: str, file: str, columns: list[str]) -> None:
    missing = [c for c in REQUIRED[name] if c not in columns]
    if missing:
        raise InputError(f"{file or name}: required column '{missing[0]}' is missing"
                         + delimiter_hint(columns, ","))


def _unreadable(name: str, file: str, bad: list[tuple[int, str, str]]) -> pl.DataFrame:
    """Lines quarantined by the staging pass, as quarantine rows."""
    return pl.DataFrame([(name, file, line, reason, record) for line, reason, record in bad],
                        schema=QUARANTINE_SCHEMA, orient="row")


def _with_unreadable(bad: pl.DataFrame, unreadable: pl.DataFrame) -> pl.DataFrame:
    """The rules' quarantine and the staging pass's, in line order."""
    if unreadable.height == 0:
        return bad
    return pl.concat([unreadable, bad]).sort("row", maintain_order=True)


def _locate(data_dir: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = data_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def ingest(data_dir: str | Path, out_dir: str | Path | None = None, *,
           mapping: Mapping | None = None) -> IngestResult:
    """Validate a data directory into clean tables, a quarantine and a summary.

    Parameters
    ----------
    data_dir
        Holds ``NAME.csv`` or ``NAME.parquet`` for the five tables (Parquet preferred when both
        exist). ``debtors`` and ``invoices`` are required; the others may be absent (empty).
    out_dir
        When given: clean tables as Parquet, ``quarantine.csv`` and ``summary.json`` go there.
    mapping
        Read the tables it names from the ERP export files it names, through its column map
        (:mod:`paycadence.data.mapping`); the other tables are read as usual.

    Raises
    ------
    InputError
        A missing directory, required file or required column, a contract column named twice,
        a required table with no rows, or an unreadable file.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such data directory")
    clean: dict[str, pl.DataFrame] = {}
    quarantined: list[pl.DataFrame] = []
    counts: dict[str, dict] = {}
    exports: dict[str, Export] = {}
    with tempfile.TemporaryDirectory(prefix="paycadence-ingest-") as staging:
        for name in TABLE_NAMES:
            known = clean["invoices"]["invoice_id"] if name in ("payments", "actions",
                                                                "disputes") else None
            src = _source(name, data_dir, mapping, exports, Path(staging))
            if src.rows is None:
                clean[name] = conform(name, pl.DataFrame(schema=COLUMNS[name]))
                counts[name] = {"read": 0, "kept": 0, "quarantined": 0, "by_reason": {},
                                "absent": True}
                continue
            good, bad = _collect(name, src.rows, known, src.offset, src.file)
            bad = _with_unreadable(bad, src.unreadable)
            clean[name] = good
            quarantined.append(bad)
            counts[name] = _counts(src.rows, src.file, good.height, bad, src.not_rows,
                                   src.unreadable.height)
            if src.separator != ",":
                counts[name]["delimiter"] = src.separator
    clean, created = _add_missing_debtors(clean)
    counts["debtors"]["created_for_unknown_debtor_id"] = created
    quarantine = pl.concat(quarantined) if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    tables = Tables(**clean)
    logger.info("ingest %s: %s", data_dir, {n: (c["kept"], c["quarantined"])
                                           for n, c in counts.items()})
    paths: list[Path] = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths = write_tables(tables, out_dir)
        paths += _write_report(out_dir, data_dir, quarantine, counts, created)
    return IngestResult(tables, quarantine, counts, created, paths,
                        span_of({name: frame.lazy() for name, frame in tables.items()}))


def _write_report(out_dir: Path, data_dir: Path, quarantine: pl.DataFrame, counts: dict,
                  created: int, book: str | None = None) -> list[Path]:
    """``quarantine.csv`` and ``summary.json`` beside the clean tables; the summary names the
    book (given, or the input folder's: paycadence.books), which the clean folder keeps."""
    quarantine.write_csv(out_dir / "quarantine.csv")
    summary = {"data_dir": str(data_dir), "book": book or derived_book(data_dir),
               "tables": counts, "debtors_created": created}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return [out_dir / "quarantine.csv", out_dir / "summary.json"]


#: Above this many bytes of input, the rules that compare rows run one key bucket at a time.
BUCKET_BYTES = 128_000_000
MAX_BUCKETS = 256


def ingest_files(data_dir: str | Path, out_dir: str | Path, *,
                 mapping: Mapping | None = None, bucket_bytes: int = BUCKET_BYTES,
                 progress: Callable[..., None] | None = None,
                 book: str | None = None) -> IngestResult:
    """:func:`ingest` for large inputs: the same rules, streamed from the files to Parquet.
    ``progress(what, done, total)`` hears each table as it is checked.

    CSV files go through the staging pass first (:mod:`paycadence.data.csvstage`, streamed);
    CSV and Parquet tables are then scanned lazily (tables read through a mapping are read
    whole).
    The rules that read one row are streamed into a staging file with each row's key bucket
    (a hash of its ``invoice_id``, or ``debtor_id`` for debtors); the rules that compare rows
    (duplicate keys, payments of unknown invoices) then run one bucket at a time, against the
    clean invoices of the same bucket. Memory is thus set by ``bucket_bytes`` of input, not by
    the size of the export. The result's ``tables`` is None: the clean tables are the Parquet
    files in ``out_dir`` (their rows grouped by bucket, not in file order).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such data directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    exports: dict[str, Export] = {}
    quarantined, counts, paths = [], {}, []
    n_buckets = min(MAX_BUCKETS, max(1, -(-_input_bytes(data_dir, mapping) // bucket_bytes)))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as staging:
        work = Path(staging)
        for k, name in enumerate(TABLE_NAMES):
            if progress is not None:
                progress(f"checking {name}", k, len(TABLE_NAMES))
            target = out_dir / f"{name}.parquet"
            src = _source(name, data_dir, mapping, exports, work)
            if src.rows is None:
                conform(name, pl.DataFrame(schema=COLUMNS[name])).write_parquet(target)
                counts[name] = {"read": 0, "kept": 0, "quarantined": 0, "by_reason": {},
                                "absent": True}
                paths.append(target)
                continue
            try:
                bad = _stream_table(name, src.rows, src.file, target, work, n_buckets,
                                    out_dir, src.offset)
            except pl.exceptions.PolarsError as exc:
                raise InputError(f"{src.file}: cannot be read ({_first_line(exc)})") from None
            bad = _with_unreadable(bad, src.unreadable)
            quarantined.append(bad)
            kept = pl.scan_parquet(target).select(pl.len()).collect().item()
            counts[name] = _counts(src.rows, src.file, kept, bad, src.not_rows,
                                   src.unreadable.height)
            if src.separator != ",":
                counts[name]["delimiter"] = src.separator
            paths.append(target)
    debtors = pl.read_parquet(out_dir / "debtors.parquet")
    invoice_debtors = pl.scan_parquet(out_dir / "invoices.parquet").select(
        "debtor_id").unique().collect()
    fixed, created = _add_missing_debtors({"debtors": debtors, "invoices": invoice_debtors})
    if created:
        fixed["debtors"].write_parquet(out_dir / "debtors.parquet")
    counts["debtors"]["created_for_unknown_debtor_id"] = created
    quarantine = pl.concat(quarantined) if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    paths += _write_report(out_dir, data_dir, quarantine, counts, created, book)
    for log in DECISION_LOGS:  # not a contract table: kept as is for off-policy evaluation
        if (data_dir / log).is_file():
            shutil.copyfile(data_dir / log, out_dir / log)
            paths.append(out_dir / log)
    logger.info("ingest %s → %s (%d key buckets): %s", data_dir, out_dir, n_buckets,
                {n: (c["kept"], c["quarantined"]) for n, c in counts.items()})
    return IngestResult(None, quarantine, counts, created, paths, span_of(
        {name: pl.scan_parquet(out_dir / f"{name}.parquet") for name in TABLE_NAMES}))


def span_of(tables: dict[str, pl.LazyFrame]) -> Span:
    """The first invoice's issue day and the latest day any row carries."""
    first = tables["invoices"].select(pl.col("issue_date").min()).collect().item()
    last = [tables[name].select(pl.col(col).max()).collect().item() for name, col in (
        ("invoices", "issue_date"), ("payments", "paid_on"), ("actions", "sent_on"),
        ("disputes", "opened_on"))]
    last = [d for d in last if d is not None]
    return Span(first, max(last) if last else None)


def _stream_table(name: str, source: pl.LazyFrame, file: str, target: Path, work: Path,
                  n_buckets: int, out_dir: Path, offset: int) -> pl.DataFrame:
    """Check one table into ``target``; returns its quarantined rows (in row order)."""
    tagged, original = _tag_row_rules(name, source, offset=offset, file=file)
    child = name in ("payments", "actions", "disputes")
    if n_buckets == 1:
        known = pl.scan_parquet(out_dir / "invoices.parquet") if child else None
        clean, bad = _tag_key_rules(name, tagged, original, known_invoice_ids=known, file=file)
        conform(name, clean).sink_parquet(target)
        return bad.collect()
    key = "debtor_id" if name == "debtors" else "invoice_id"
    stage = work / f"{name}.parquet"
    tagged.with_columns(__bucket=pl.col(key).cast(pl.String).hash(seed=BUCKET_SEED)
                        % n_buckets).sink_parquet(stage)
    (work / name).mkdir()
    bads = []
    for b in range(n_buckets):
        part = pl.scan_parquet(stage).filter(pl.col("__bucket") == b).drop("__bucket")
        known = pl.scan_parquet(work / "invoices" / f"{b}.parquet") if child else None
        clean, bad = _tag_key_rules(name, part, original, known_invoice_ids=known, file=file)
        conform(name, clean).sink_parquet(work / name / f"{b}.parquet")
        bads.append(bad.collect())
    pl.scan_parquet(work / name / "*.parquet").sink_parquet(target)
    stage.unlink()
    return pl.concat(bads).sort("row")


BUCKET_SEED = 20_261_124
#: The decision log a simulator or dunning engine may leave beside the tables (docs/policy.md);
#: ingest copies it to the clean directory so that ``evaluate`` and ``train`` find it there.
DECISION_LOGS = ("decisions.csv", "decisions.parquet")


def _input_bytes(data_dir: Path, mapping: Mapping | None) -> int:
    """Bytes of the files the tables are read from."""
    files = {data_dir / t.file for t in (mapping.tables.values() if mapping else [])}
    files |= {p for n in TABLE_NAMES if (p := _locate(data_dir, n)) is not None}
    return sum(p.stat().st_size for p in files if p.is_file())


def _scan_parquet(path: Path, name: str) -> pl.LazyFrame:
    """A lazy scan of a Parquet table file as stored, contract column names normalised."""
    try:
        lf = pl.scan_parquet(path)
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(f"{path.name}: cannot be read ({_first_line(exc)})") from None
    names, _ = normalise_header(list(schema), COLUMNS[name], path.name)
    renamed = {old: new for old, new in zip(schema, names, strict=True) if old != new}
    return lf.rename(renamed) if renamed else lf


def _counts(source: pl.LazyFrame, file: str, kept: int, bad: pl.DataFrame,
            not_rows: int, unreadable: int) -> dict:
    """A table's line in the summary, after checking that every row read was either kept or
    quarantined (counted independently of the rules). ``unreadable`` lines (quarantined by
    the staging pass, never rows of ``source``) count as read."""
    read = source.select(pl.len()).collect().item() + unreadable
    if read != kept + bad.height:  # pragma: no cover - a bug in the rules, never the data
        raise AssertionError(f"{file}: {read} rows read, {kept} kept + {bad.height} quarantined")
    out = {"read": read, "kept": kept, "quarantined": bad.height,
           "by_reason": _by_reason(bad)}
    if not_rows:
        out["source_rows_without_this_table"] = not_rows
    return out


def _by_reason(bad: pl.DataFrame) -> dict[str, int]:
    if bad.height == 0:
        return {}
    reasons = bad.select(pl.col("reason").str.split("; ")).explode("reason")
    return dict(sorted(Counter(reasons["reason"].to_list()).items(), key=lambda kv: -kv[1]))


def _add_missing_debtors(clean: dict[str, pl.DataFrame]) -> tuple[dict, int]:
    """Invoices of a debtor missing from debtors: the debtor is created with defaults."""
    known = clean["debtors"]["debtor_id"]
    missing = clean["invoices"].filter(~pl.col("debtor_id").is_in(known.implode()))[
        "debtor_id"].unique(maintain_order=True)
    if missing.len() == 0:
        return clean, 0
    extra = conform("debtors", pl.DataFrame({"debtor_id": missing}))
    extras = [c for c in clean["debtors"].columns if c not in extra.columns]
    extra = extra.with_columns(pl.lit(None, dtype=clean["debtors"].schema[c]).alias(c)
                               for c in extras)
    clean["debtors"] = pl.concat([clean["debtors"], extra.select(clean["debtors"].columns)])
    return clean, missing.len()


def summary_rows(result: IngestResult) -> list[tuple]:
    """(table, read, kept, quarantined, top reasons) per table, for printing."""
    rows = []
    for name, c in result.counts.items():
        reasons = ", ".join(f"{r}: {n}" for r, n in list(c["by_reason"].items())[:3])
        if c.get("delimiter"):
            sep = "tab" if c["delimiter"] == "\t" else f"'{c['delimiter']}'"
            reasons = f"read as {sep}-delimited" + (f"; {reasons}" if reasons else "")
        if c.get("absent"):
            reasons = f"absent (no file): {WITHOUT[name]}"
        elif c["kept"] == 0 and name in WITHOUT and result.counts["invoices"]["kept"]:
            reasons = (reasons + "; " if reasons else "") + f"no row: {WITHOUT[name]}"
        if name == "debtors" and result.debtors_created:
            reasons = (reasons + ", " if reasons else "") + \
                f"created for unknown debtor_id: {result.debtors_created}"
        rows.append((name, c["read"], c["kept"], c["quarantined"], reasons or "-"))
    return rows
