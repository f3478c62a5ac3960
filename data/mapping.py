"""Column mappings: read an ERP's export as the contract's tables without editing it.

A mapping file (YAML) says which file feeds which table, how the file is written (delimiter,
encoding, decimal comma, thousands separator, date format) and which source column becomes which
contract column, with value maps and constant defaults. One export may feed several tables
(an invoice list with a settlement date is invoices, payments and debtors at once).
docs/ingest.md documents the format; the shipped mappings live in ``paycadence/defaults``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from paycadence.data.csvstage import SOURCE_ROW, check_encoding, delimiter_hint, stage_csv
from paycadence.data.tables import COLUMNS, TABLE_NAMES
from paycadence.defaults import MAPPINGS_DIR
from paycadence.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = ["SOURCE_ROW", "Export", "FileFormat", "Mapping", "TableMap", "apply_table_map",
           "load_mapping", "read_export", "shipped_mappings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileFormat(_Strict):
    """How an export file is written."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    #: None: UTF-8 with or without a BOM, and a line that is not UTF-8 read as cp1252.
    encoding: str | None = None
    decimal: str = Field(".", pattern=r"^[.,]$")
    thousands: str | None = Field(None, max_length=1)
    date_format: str = "%Y-%m-%d"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        return None if value is None else check_encoding(value)

    @field_validator("delimiter")
    @classmethod
    def _one_byte(cls, value: str) -> str:
        if not value.isascii() or value in "\r\n\"":
            raise ValueError(f"delimiter {value!r} must be one ASCII character, not a quote "
                             "or a line break")
        return value


class TableMap(_Strict):
    """Where one contract table comes from."""

    file: str
    columns: dict[str, str] = {}
    defaults: dict[str, str | int | float | bool] = {}
    values: dict[str, dict[str, str]] = {}
    date_format: str | None = None
    require: list[str] = []
    distinct: bool = False
    keep: list[str] = []


class Mapping(_Strict):
    """A mapping file: the default file format and one entry per table it provides."""

    format: FileFormat = FileFormat()
    tables: dict[str, TableMap]

    @model_validator(mode="after")
    def _check(self):
        for name, table in self.tables.items():
            if name not in TABLE_NAMES:
                raise ValueError(f"unknown table '{name}' (use {', '.join(TABLE_NAMES)})")
            for col in [*table.columns, *table.defaults, *table.values, *table.require]:
                if col not in COLUMNS[name]:
                    raise ValueError(f"tables.{name}: '{col}' is not a column of {name}")
        return self


def shipped_mappings() -> list[str]:
    """Names of the mappings that ship with paycadence (``--map NAME``)."""
    return sorted(p.name.removesuffix(".mapping.yaml") for p in MAPPINGS_DIR.iterdir()
                  if p.name.endswith(".mapping.yaml"))


def load_mapping(path_or_name: str | Path) -> Mapping:
    """Load a mapping file, or a shipped mapping by name (e.g. ``ibm-ar``).

    Raises
    ------
    ConfigError
        Unreadable file, unknown key, unknown table or column.
    """
    path = Path(path_or_name)
    if not path.exists():
        shipped = MAPPINGS_DIR / f"{path_or_name}.mapping.yaml"
        if not shipped.is_file():
            raise ConfigError(f"{path_or_name}: no such mapping file (shipped mappings: "
                              f"{', '.join(shipped_mappings())})")
        path, text = Path(str(shipped)), shipped.read_text(encoding="utf-8")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text) or {}
        return Mapping.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{path.name}: unknown key '{key}'") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path.name}: {key + ': ' if key else ''}{msg}") from None


@dataclass(frozen=True)
class Export:
    """An export file as read: every column as text with the physical line each row starts on
    in ``__source_row``, and the lines that are no row (line, reason, record as JSON)."""

    frame: pl.DataFrame
    bad: list[tuple[int, str, str]]
    duplicated: frozenset[str]  # header names the file holds more than once


def read_export(path: Path, fmt: FileFormat, staging: Path) -> Export:
    """Read an export through the line-by-line staging pass (:mod:`paycadence.data.csvstage`)
    into ``staging`` (a folder), then whole into memory.

    Lines that cannot be a row (ragged, unbalanced quote, undecodable, cut short) are in
    ``bad``, not in the frame. Header names are trimmed, otherwise kept as written.
    """
    staged = stage_csv(path, staging / f"{path.name}.staged.csv", delimiter=fmt.delimiter,
                       encoding=fmt.encoding)
    try:
        frame = pl.read_csv(staged.path, separator=fmt.delimiter, infer_schema=False)
    except pl.exceptions.PolarsError as exc:  # pragma: no cover - the staging file is clean
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path.name}: cannot be read ({first})") from None
    if staged.plain:  # no staging copy was needed: rows numbered from line 2
        frame = frame.rename(dict(zip(frame.columns, staged.columns, strict=True)))
        frame = frame.with_row_index(SOURCE_ROW, offset=2)
    frame = frame.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    return Export(frame, staged.bad, frozenset(staged.duplicated))


def _number(expr: pl.Expr, fmt: FileFormat) -> pl.Expr:
    out = expr.str.strip_chars()
    if fmt.thousands:
        out = out.str.replace_all(fmt.thousands, "", literal=True)
    if fmt.decimal == ",":
        out = out.str.replace_all(",", ".", literal=True)
    return out


def _date(expr: pl.Expr, date_format: str) -> pl.Expr:
    """ISO text for values that parse with ``date_format``; the raw value otherwise, so that
    ingest's rules still see (and quarantine) what does not parse."""
    text = expr.str.strip_chars()
    parsed = text.str.strptime(pl.Date, date_format, strict=False)
    return pl.when(parsed.is_not_null()).then(parsed.dt.to_string("%Y-%m-%d")).otherwise(text)


#: Formats tried on a date column whose mapping gives none and whose values are not ISO dates.
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y",
                "%Y/%m/%d", "%d/%m/%y", "%m/%d/%y", "%d.%m.%y")


def _swapped(date_format: str) -> str | None:
    """``date_format`` with day and month exchanged, where that is a reading someone writes
    (``%d/%m/%Y`` ↔ ``%m/%d/%Y``); None for a year-first format (always year, month, day)."""
    if "%d" not in date_format or "%m" not in date_format or date_format.startswith("%Y"):
        return None
    return date_format.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def date_format_of(values: pl.Series, column: str, file: str, date_format: str, *,
                   stated: bool) -> str:
    """The format to read a date column with, checked against its values.

    ``stated``: the mapping names the format (``date_format`` of the table or of the file);
    otherwise it is the default ISO one.

    - Not stated, and the values are not ISO dates: the one format of :data:`DATE_FORMATS` that
      reads every value is used (logged);
    - the stated format reads only some values while day and month exchanged reads them all:
      an error (the mapping has them swapped; before, the values with a day above 12 were
      quarantined and the others kept with day and month swapped);
    - both readings read every value (no day above 12) and the mapping does not say which:
      an error naming the column and both readings.

    Raises
    ------
    InputError
        As above, naming the file, the column, the readings and an example value.
    """
    text = values.cast(pl.String).str.strip_chars()
    text = text.filter(text.is_not_null() & (text != ""))
    if text.len() == 0:
        return date_format

    def reads(fmt: str) -> int:
        return int(text.str.strptime(pl.Date, fmt, strict=False).is_not_null().sum())

    n = text.len()
    if not stated and reads(date_format) < n:
        whole = [f for f in DATE_FORMATS if reads(f) == n]
        if len(whole) == 1:
            logger.info("%s: column '%s' read as %s (every value is)", file, column, whole[0])
            return whole[0]
        if whole:
            date_format = whole[0]  # two readings: the check below names both
    swapped = _swapped(date_format)
    if swapped is None:
        return date_format
    given, other = reads(date_format), reads(swapped)
    example = text[0]
    if other == n and given < n:
        wrong = text.filter(text.str.strptime(pl.Date, date_format, strict=False).is_null())[0]
        raise InputError(f"{file}: column '{column}': {n - given:,} of {n:,} dates do not read "
                         f"as {date_format} but every one reads as {swapped} (e.g. '{wrong}'): "
                         f"day and month look swapped; set date_format: '{swapped}' in the "
                         "mapping")
    if given == n and other == n and not stated:
        a = text[:1].str.strptime(pl.Date, date_format, strict=False)[0]
        b = text[:1].str.strptime(pl.Date, swapped, strict=False)[0]
        raise InputError(f"{file}: column '{column}': every date reads both as {date_format} "
                         f"and as {swapped} (no day above 12; '{example}' is {a} or {b}): say "
                         "which with date_format in the mapping")
    return date_format


def apply_table_map(name: str, source: Export | pl.DataFrame, table: TableMap,
                    fmt: FileFormat) -> tuple[pl.DataFrame, int]:
    """One contract table from an export: renamed, converted, defaulted.

    Returns
    -------
    (frame, not_rows)
        The table as text columns with ``__source_row``, and how many source rows are not
        rows of this table (a ``require`` column was empty), which is no loss: they are rows
        of another table of the same export.
    """
    if isinstance(source, Export):
        twice = [src for src in [*table.columns.values(), *table.keep]
                 if src in source.duplicated]
        if twice:
            raise InputError(f"{table.file}: column '{twice[0]}' named in the mapping for "
                             f"{name} appears more than once in the header")
        source = source.frame
    missing = [src for src in table.columns.values() if src not in source.columns]
    if missing:
        hint = delimiter_hint([c for c in source.columns if c != SOURCE_ROW], fmt.delimiter)
        raise InputError(f"{table.file}: column '{missing[0]}' named in the mapping for "
                         f"{name} is missing" + hint
                         + ("; set format.delimiter in the mapping" if hint else ""))
    kept_extra = [c for c in table.keep if c in source.columns]
    date_format = table.date_format or fmt.date_format
    stated = table.date_format is not None or "date_format" in fmt.model_fields_set
    exprs = []
    for target, src in table.columns.items():
        col = pl.col(src).cast(pl.String)
        if target in table.values:
            col = col.replace(table.values[target])
        dtype = COLUMNS[name][target]
        if isinstance(dtype, pl.Date):
            col = _date(col, date_format_of(source[src], src, table.file, date_format,
                                            stated=stated))
        elif isinstance(dtype, pl.Float64 | pl.Int64):
            col = _number(col, fmt)
        exprs.append(col.alias(target))
    frame = source.select(SOURCE_ROW, *exprs, *[pl.col(c) for c in kept_extra])
    for target, value in table.defaults.items():
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if target in frame.columns:
            frame = frame.with_columns(pl.col(target).fill_null(pl.lit(text)))
        else:
            frame = frame.with_columns(pl.lit(text).alias(target))
    not_rows = 0
    if table.require:
        empty = pl.any_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "")
                                   for c in table.require])
        not_rows = frame.filter(empty).height
        frame = frame.filter(~empty)
    if table.distinct:
        data_cols = [c for c in frame.columns if c != SOURCE_ROW]
        frame = frame.unique(data_cols, keep="first", maintain_order=True)
    return frame, not_rows
