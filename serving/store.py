"""Durable feedback store: rows posted to ``/feedback`` are committed before the 2xx.

SQLite by default (WAL journal, ``synchronous=FULL``: a committed row survives a crash of the
process or the machine), PostgreSQL when ``PAYCADENCE_DATABASE_URL`` names one. Every table has
a natural key, so re-posting the same rows stores nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping

import polars as pl
import sqlalchemy as sa

from paycadence.data import COLUMNS, TABLE_NAMES, Tables

logger = logging.getLogger(__name__)

#: Natural key of each table: a row whose key is stored already is a duplicate.
KEYS = {
    "debtors": ("debtor_id",),
    "invoices": ("invoice_id",),
    "payments": ("invoice_id", "paid_on", "amount"),
    "actions": ("invoice_id", "sent_on", "channel"),
    "disputes": ("invoice_id", "opened_on"),
}
_SQL_TYPES = {pl.String: sa.String, pl.Date: sa.Date, pl.Float64: sa.Float, pl.Int64: sa.Integer}


def _metadata() -> tuple[sa.MetaData, dict[str, sa.Table]]:
    meta = sa.MetaData()
    tables = {}
    for name in TABLE_NAMES:
        cols = []
        for col, dtype in COLUMNS[name].items():
            sql_type = _SQL_TYPES[type(dtype)]
            cols.append(sa.Column(col, sql_type(), nullable=col not in KEYS[name]))
        cols.append(sa.Column("received_at", sa.DateTime(), nullable=False))
        tables[name] = sa.Table(f"feedback_{name}", meta, *cols,
                                sa.PrimaryKeyConstraint(*KEYS[name]))
    return meta, tables


class FeedbackStore:
    """Feedback rows in a SQL database (see module docstring)."""

    def __init__(self, url: str):
        self.url = url
        connect_args = {"timeout": 30, "check_same_thread": False} if url.startswith(
            "sqlite") else {}
        self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.meta, self.tables = _metadata()
        self.meta.create_all(self.engine)
        self._lock = threading.Lock()

    def add(self, rows: Mapping[str, Iterable[Mapping]]) -> tuple[dict, dict, dict]:
        """Store rows per table in one transaction.

        Returns
        -------
        (stored, duplicates, new_rows)
            Counts per table, and the rows that were new (the ones to make visible).
        """
        stored, dupes, new_rows = {}, {}, {}
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self._lock, self.engine.begin() as conn:
            for name in TABLE_NAMES:
                batch = [dict(r) for r in rows.get(name, [])]
                if not batch:
                    continue
                table = self.tables[name]
                keys = KEYS[name]
                seen, fresh = set(), []
                for r in batch:
                    key = tuple(r.get(k) for k in keys)
                    if key in seen:
                        continue
                    seen.add(key)
                    fresh.append({c: r.get(c) for c in COLUMNS[name]} | {"received_at": now})
                existing = self._existing(conn, name, [tuple(r[k] for k in keys) for r in fresh])
                new = [r for r in fresh if tuple(r[k] for k in keys) not in existing]
                if new:
                    conn.execute(table.insert(), new)
                if name == "disputes":
                    for r in fresh:
                        if r["resolved_on"] is not None and tuple(r[k] for k in keys) in existing:
                            conn.execute(table.update().where(
                                table.c.invoice_id == r["invoice_id"],
                                table.c.opened_on == r["opened_on"],
                            ).values(resolved_on=r["resolved_on"]))
                stored[name] = len(new)
                dupes[name] = len(batch) - len(new)
                new_rows[name] = new
        return stored, dupes, new_rows

    def _existing(self, conn, name: str, keys: list[tuple]) -> set[tuple]:
        if not keys:
            return set()
        table = self.tables[name]
        cols = [table.c[k] for k in KEYS[name]]
        found: set[tuple] = set()
        first = cols[0]
        values = sorted({k[0] for k in keys})
        for i in range(0, len(values), 500):
            q = sa.select(*cols).where(first.in_(values[i:i + 500]))
            found.update(tuple(r) for r in conn.execute(q))
        return found

    def known_invoice_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` the store holds as invoices."""
        ids = list(set(ids))
        table = self.tables["invoices"]
        out: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = sa.select(table.c.invoice_id).where(table.c.invoice_id.in_(ids[i:i + 500]))
                out.update(r[0] for r in conn.execute(q))
        return out

    def load(self) -> Tables:
        """Every stored row as contract tables."""
        frames = {}
        with self.engine.connect() as conn:
            for name in TABLE_NAMES:
                cols = list(COLUMNS[name])
                rows = conn.execute(sa.select(*[self.tables[name].c[c] for c in cols])).all()
                frames[name] = pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows],
                                            schema=COLUMNS[name], orient="row")
        return Tables.from_frames(**frames)

    def count(self) -> dict[str, int]:
        """Rows per table."""
        with self.engine.connect() as conn:
            return {n: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for n, t in self.tables.items()}

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def merge_feedback(tables: Tables, url: str) -> tuple[Tables, dict[str, int]]:
    """``tables`` plus the rows the feedback store holds that they lack (by natural key, the
    stored row winning for a dispute's resolution); returns the merged tables and the number of
    rows added per table. Used by ``paycadence train`` so that outcomes posted to
    ``/feedback`` are learnt from."""
    store = FeedbackStore(url)
    try:
        stored = store.load()
    finally:
        store.close()
    out, added = {}, {}
    for name, frame in tables.items():
        cols = list(COLUMNS[name])
        extra = getattr(stored, name).select(cols)
        keys = list(KEYS[name])
        if name == "disputes":
            both = pl.concat([frame.select(cols), extra]).sort(
                "resolved_on", nulls_last=False).unique(keys, keep="last", maintain_order=True)
            added[name] = both.height - frame.height
            out[name] = both
            continue
        new = extra.join(frame.select(keys), on=keys, how="anti")
        added[name] = new.height
        out[name] = pl.concat([frame.select(cols), new]) if new.height else frame.select(cols)
    return Tables(**out), added
