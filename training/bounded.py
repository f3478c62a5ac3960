"""What ``train --features`` reads of the clean tables, without holding them.

``train --features`` trains on snapshots built beforehand (``paycadence features``, on one
machine or on Spark); of the tables themselves it needs only a few things, each read here
from lazy scans of the clean Parquet tables (the output of ``paycadence ingest``), so that
the driver's memory does not grow with the history (docs/scaling.md, "Training at scale"):

- the data fingerprint that ``snapshots.json`` must match: the same digest as
  :func:`fingerprint` of the tables in memory, summed over batches of rows
  (:meth:`ScannedTables.fingerprint_parts`);
- the last day of the data (:attr:`ScannedTables.last_date`, a streaming max);
- the keys of the logged actions (``train``'s ``acted_keys`` reads two columns of the
  actions table, lazily);
- for the off-policy evaluation, the rows of a bounded sample of the holdout's decided
  debtors only (:func:`ope_sample`, :meth:`ScannedTables.for_debtors`).

Raw input is first checked into clean Parquet tables by the streamed
:func:`paycadence.data.ingest.ingest_files` (:func:`clean_tables`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from paycadence.data import COLUMNS, TABLE_NAMES, Tables, conform, known_as_of
from paycadence.data.checks import InputGuard
from paycadence.data.ingest import ingest_files
from paycadence.data.mapping import Mapping

logger = logging.getLogger(__name__)

#: Rows per batch when the fingerprint is summed over a table's Parquet file.
BATCH_ROWS = 262_144


def frame_parts(name: str, frame: pl.DataFrame) -> tuple[int, int]:
    """Rows of table ``name``'s ``frame`` and the sum of the hashes of its contract columns'
    rows (modulo 2**64): additive over any split of the rows."""
    if frame.height == 0:
        return 0, 0
    return frame.height, int(frame.select(list(COLUMNS[name])).hash_rows(seed=0).sum())


def fingerprint_of(*parts: dict[str, tuple[int, int]]) -> str:
    """The data fingerprint of the tables whose :func:`frame_parts` per table are ``parts``
    (each a dict table → (rows, hash sum); they add up)."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        height = sum(p[name][0] for p in parts)
        value = sum(p[name][1] for p in parts) % 2**64
        digest.update(f"{name}:{height}:{value};".encode())
    return digest.hexdigest()[:16]


def is_clean(folder: Path) -> bool:
    """Whether ``folder`` holds ``paycadence ingest``'s output: ``summary.json`` and the five
    ``NAME.parquet`` tables."""
    return (folder / "summary.json").is_file() and all(
        (folder / f"{n}.parquet").is_file() for n in TABLE_NAMES)


def clean_tables(data_dir: str | Path, staging: str | Path,
                 mapping: Mapping | None = None, guard: InputGuard | None = None) -> Path:
    """Where the clean Parquet tables of ``data_dir`` are: ``data_dir`` itself when it is
    ``paycadence ingest``'s output (and no ``mapping`` is given; its tables are trusted, as
    ``features --engine spark`` trusts them), else ``staging`` after the streamed
    :func:`paycadence.data.ingest.ingest_files` checked the raw files into it.

    ``guard`` checks the tables' counts (those ingest recorded in ``summary.json`` for a clean
    folder) and raises :class:`paycadence.errors.InputError` as it says.
    """
    folder = Path(data_dir)
    if mapping is None and is_clean(folder):
        if guard is not None:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
            guard.check_tables(summary.get("tables", {}))
        return folder
    result = ingest_files(folder, staging, mapping=mapping)
    if guard is not None:
        guard.check_tables(result.counts)
    bad = sum(c["quarantined"] for c in result.counts.values())
    if bad:
        logger.warning("%d input rows quarantined (reasons in %s)", bad,
                       Path(staging) / "quarantine.csv")
    return Path(staging)


@dataclass(frozen=True)
class ScannedTables:
    """The five clean tables of ``folder`` (``NAME.parquet``) as lazy scans, as known on the
    morning of ``as_of`` (None: everything); what ``train`` needs of them is computed in
    bounded memory. :meth:`collect` gives the :class:`paycadence.data.Tables`."""

    folder: Path
    as_of: dt.date | None = None

    def cut(self, as_of: dt.date) -> ScannedTables:
        """Only what was known on the morning of ``as_of`` (as ``cut_tables``)."""
        if self.as_of is not None and self.as_of < as_of:
            return self
        return replace(self, as_of=as_of)

    def _path(self, name: str) -> Path | None:
        path = Path(self.folder) / f"{name}.parquet"
        return path if path.is_file() else None

    def _known(self, name: str, frame):
        frame = conform(name, frame)
        if self.as_of is None or name == "debtors":
            return frame
        return known_as_of(frame, self.as_of, table=name)

    def scan(self, name: str) -> pl.LazyFrame:
        """Table ``name`` as a lazy scan (contract columns typed, extras kept), cut to
        ``as_of``; an absent file is an empty table."""
        path = self._path(name)
        frame = pl.scan_parquet(path) if path else pl.DataFrame(schema=COLUMNS[name]).lazy()
        return self._known(name, frame)

    @property
    def debtors(self) -> pl.LazyFrame:
        return self.scan("debtors")

    @property
    def invoices(self) -> pl.LazyFrame:
        return self.scan("invoices")

    @property
    def payments(self) -> pl.LazyFrame:
        return self.scan("payments")

    @property
    def actions(self) -> pl.LazyFrame:
        return self.scan("actions")

    @property
    def disputes(self) -> pl.LazyFrame:
        return self.scan("disputes")

    def batches(self, name: str) -> Iterator[pl.DataFrame]:
        """Table ``name`` in batches of at most :data:`BATCH_ROWS` rows (only its contract
        columns read), each cut to ``as_of``."""
        path = self._path(name)
        if path is None:
            return
        file = pq.ParquetFile(path)
        present = [c for c in COLUMNS[name] if c in file.schema_arrow.names]
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=present):
            yield self._known(name, pl.from_arrow(batch))

    def fingerprint_parts(self) -> dict[str, tuple[int, int]]:
        """Per table, its rows and the sum of its rows' hashes: ``fingerprint_parts`` of the
        tables in memory, summed batch by batch (once: kept for the next call)."""
        return self._parts

    @cached_property
    def _parts(self) -> dict[str, tuple[int, int]]:
        parts = {}
        for name in TABLE_NAMES:
            height, value = 0, 0
            for frame in self.batches(name):
                h, v = frame_parts(name, frame)
                height, value = height + h, (value + v) % 2**64
            parts[name] = (height, value)
        return parts

    def fingerprint(self) -> str:
        """The data fingerprint (``fingerprint`` of :meth:`collect`), in bounded memory."""
        return fingerprint_of(self.fingerprint_parts())

    @property
    def last_date(self) -> dt.date | None:
        """The latest date any row carries (as :attr:`paycadence.data.Tables.last_date`)."""
        dates = pl.collect_all(
            [self.scan(name).select(pl.col(col).max().alias("last"))
             for name, col in (("invoices", "issue_date"), ("payments", "paid_on"),
                               ("actions", "sent_on"), ("disputes", "opened_on"))],
            engine="streaming")
        found = [d["last"].item() for d in dates if d["last"].item() is not None]
        return max(found) if found else None

    def for_debtors(self, debtor_ids: list[str] | pl.Series) -> Tables:
        """The rows about ``debtor_ids`` only (their invoices and everything about those), as
        :meth:`paycadence.data.Tables.for_debtors` of the whole tables gives them."""
        ids = pl.Series(list(debtor_ids), dtype=pl.String).implode()
        invoices = self.invoices.filter(pl.col("debtor_id").is_in(ids)).collect(
            engine="streaming")
        inv_ids = invoices["invoice_id"].implode()
        frames = pl.collect_all(
            [self.debtors.filter(pl.col("debtor_id").is_in(ids)),
             *(self.scan(n).filter(pl.col("invoice_id").is_in(inv_ids))
               for n in ("payments", "actions", "disputes"))], engine="streaming")
        return Tables(debtors=frames[0], invoices=invoices, payments=frames[1],
                      actions=frames[2], disputes=frames[3])

    def collect(self) -> Tables:
        """The whole tables in memory (memory not bounded)."""
        frames = pl.collect_all([self.scan(n) for n in TABLE_NAMES])
        return Tables(**dict(zip(TABLE_NAMES, frames, strict=True)))


@dataclass(frozen=True)
class OpeSample:
    """The logged decisions ``train`` evaluates policies on, and the tables they need."""

    decisions: pl.DataFrame
    tables: Tables
    debtors: int  # decided debtors evaluated
    decided: int  # decided debtors in the period

    @property
    def sampled(self) -> bool:
        return self.debtors < self.decided


def sampled_debtors(decisions: pl.LazyFrame, *, max_debtors: int, seed: int) -> pl.LazyFrame:
    """The decisions of at most ``max_debtors`` of the decided debtors: those whose
    ``debtor_id`` hashes (with ``seed``) lowest, every one when they are fewer. Only the
    hashes of the distinct debtors are held (8 bytes each), in a streaming pass."""
    key = pl.col("debtor_id").hash(seed=seed)
    hashes = decisions.select(h=key).unique().collect(engine="streaming")["h"]
    if hashes.len() <= max_debtors:
        return decisions
    cut = np.sort(hashes.to_numpy())[max_debtors - 1]
    return decisions.filter(key <= cut)


def ope_sample(tables: Tables | ScannedTables, decisions: pl.LazyFrame, *, since: dt.date,
               max_debtors: int, seed: int) -> OpeSample | None:
    """The logged decisions from ``since`` on (``decisions``: a lazy scan of the log, e.g.
    :func:`paycadence.training.ope.scan_decisions`), of at most ``max_debtors`` decided
    debtors (:func:`sampled_debtors`), with the tables' rows about those debtors (all of
    ``tables`` when they are in memory and nothing was sampled); None when there are none."""
    period = decisions.filter(pl.col("decided_on") >= since)
    decided = period.select(pl.col("debtor_id").n_unique()).collect(engine="streaming").item()
    if not decided:
        return None
    kept = sampled_debtors(period, max_debtors=max_debtors, seed=seed).collect(
        engine="streaming")
    ids = kept["debtor_id"].unique().sort()
    if isinstance(tables, ScannedTables):
        tables = tables.for_debtors(ids)
    elif ids.len() < decided:
        tables = tables.for_debtors(ids)
    if ids.len() < decided:
        logger.info("off-policy evaluation on %d of %d decided debtors (%d decisions; "
                    "train.ope_max_debtors)", ids.len(), decided, kept.height)
    return OpeSample(kept, tables, ids.len(), decided)
