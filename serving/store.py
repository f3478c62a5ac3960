"""Durable feedback store: rows posted to ``/feedback`` are committed before the 2xx.

SQLite by default (WAL journal, ``synchronous=FULL``: a committed row survives a crash of the
process or the machine), PostgreSQL when ``PAYCADENCE_DATABASE_URL`` names one (driver
psycopg 3; ``postgresql://`` URLs get it). Every table has a natural key, and rows are written
with ``INSERT ... ON CONFLICT DO NOTHING``, so re-posting the same rows stores nothing twice,
even when several processes post them at once.

Every table also has a ``seq`` column: the number of the transaction that stored (or last
changed) the row. One counter row, ``feedback_seq``, hands the numbers out; a writer takes it
first in its transaction, so writers commit one after the other, in ``seq`` order, and a
process that has read every row up to ``seq`` = N only ever needs the rows above N
(:meth:`FeedbackStore.changes`). That is how each serve process picks up what the others
stored. A database made before ``seq`` existed gets the column (``0`` for its rows) when the
first new process opens it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from paycadence.data import COLUMNS, TABLE_NAMES, Tables
from paycadence.errors import ConfigError, PaycadenceError

logger = logging.getLogger(__name__)

#: Natural key of each table (contract columns): a row whose key is stored already is a
#: duplicate. Payments also carry a ``payment_key`` (see :data:`STORE_KEYS`).
KEYS = {
    "debtors": ("debtor_id",),
    "invoices": ("invoice_id",),
    "payments": ("invoice_id", "paid_on", "amount"),
    "actions": ("invoice_id", "sent_on", "channel"),
    "disputes": ("invoice_id", "opened_on"),
}
#: A payment's identity beyond its contract columns: ``id:<payment_id>`` when the row has a
#: ``payment_id``, else ``n:<k>``, the k-th row with the same invoice, day and amount (and no
#: id) in one body or file. Two identical partial payments of one request are then two
#: payments, and a re-posted request is still stored once (CONTRACT.md §5).
PAYMENT_KEY = "payment_key"
#: The keys the feedback tables are unique on.
STORE_KEYS = KEYS | {"payments": (*KEYS["payments"], PAYMENT_KEY)}
_SQL_TYPES = {pl.String: sa.String, pl.Date: sa.Date, pl.Float64: sa.Float, pl.Int64: sa.Integer}
_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
#: PostgreSQL errors after which the whole transaction is simply tried again.
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_TRIES = 3
#: The row of ``feedback_seq`` that holds the last transaction number handed out.
_COUNTER_ID = 1


class StoreUnavailableError(PaycadenceError):
    """The database did not take the rows (down, locked too long); nothing was stored."""


def _metadata() -> tuple[sa.MetaData, dict[str, sa.Table], sa.Table]:
    meta = sa.MetaData()
    tables = {}
    for name in TABLE_NAMES:
        cols = []
        for col, dtype in COLUMNS[name].items():
            sql_type = _SQL_TYPES[type(dtype)]
            cols.append(sa.Column(col, sql_type(), nullable=col not in KEYS[name]))
        if name == "payments":  # rows stored before the column: each its key's first occurrence
            cols.append(sa.Column(PAYMENT_KEY, sa.String(), nullable=False,
                                  server_default="n:1"))
        cols.append(sa.Column("received_at", sa.DateTime(), nullable=False))
        # rows written by a process older than the column get 0 (read at start only)
        cols.append(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
        tables[name] = sa.Table(f"feedback_{name}", meta, *cols,
                                sa.PrimaryKeyConstraint(*STORE_KEYS[name]),
                                sa.Index(f"ix_feedback_{name}_seq", "seq"))
    counter = sa.Table("feedback_seq", meta,
                       sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
                       sa.Column("value", sa.BigInteger(), nullable=False))
    return meta, tables, counter


def database_url(url: str) -> sa.URL:
    """Parse a ``PAYCADENCE_DATABASE_URL``: SQLite or PostgreSQL (psycopg 3), else an error.

    Raises
    ------
    ConfigError
        When the URL cannot be parsed or names another database or driver.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"PAYCADENCE_DATABASE_URL: '{url}' is not a database URL (use "
                          "sqlite:///path/feedback.db or postgresql+psycopg://user@host/db)"
                          ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(f"PAYCADENCE_DATABASE_URL: driver '{parsed.drivername}' is not "
                          "supported (use sqlite:/// or postgresql+psycopg://)")
    return parsed


class FeedbackStore:
    """Feedback rows in a SQL database (see module docstring).

    Raises
    ------
    ConfigError
        When the URL is not a supported database or the database cannot be opened.
    """

    def __init__(self, url: str):
        self.url = url
        parsed = database_url(url)
        self._shown = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            connect_args = {"timeout": 30, "check_same_thread": False}
        else:
            connect_args = {"connect_timeout": 10}
        self.engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.meta, self.tables, self.counter = _metadata()
        for attempt in range(5):
            try:
                self.meta.create_all(self.engine)
                self._upgrade()
                break
            except sa.exc.SQLAlchemyError as exc:
                # another process (worker, instance) may have created a table, column or index
                # between the check and the CREATE: look again, then give up with one line
                if attempt < 4 and _raced(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self.engine.dispose()
                raise ConfigError(f"PAYCADENCE_DATABASE_URL: cannot open {self._shown} "
                                  f"({_first_line(exc)})") from None
        self._lock = threading.Lock()
        self._last_seq = sa.select(self.counter.c.value).where(
            self.counter.c.id == _COUNTER_ID)

    def _upgrade(self) -> None:
        """Bring a database made by an older version up to this schema: the ``seq`` column
        and its index on each table, and the counter's row (idempotent)."""
        with self.engine.begin() as conn:
            inspector = sa.inspect(conn)
            for name, table in self.tables.items():
                have = {c["name"] for c in inspector.get_columns(table.name)}
                for col in COLUMNS[name]:  # optional contract columns added since (payment_id)
                    if col not in have and col not in KEYS[name]:
                        kind = table.c[col].type.compile(dialect=conn.dialect)
                        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {col} "
                                             f"{kind}"))
                        logger.info("feedback store %s: added column %s to %s", self._shown,
                                    col, table.name)
                if name == "payments" and PAYMENT_KEY not in have:
                    if self._add_payment_key(conn, table):
                        continue  # made again: with seq and its index
                if "seq" not in have:
                    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN seq BIGINT "
                                         "NOT NULL DEFAULT 0"))
                    logger.info("feedback store %s: added column seq to %s (rows stored "
                                "before count as seq 0)", self._shown, table.name)
                index = f"ix_feedback_{name}_seq"
                if index not in {i["name"] for i in inspector.get_indexes(table.name)}:
                    conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {index} "
                                         f"ON {table.name} (seq)"))
            conn.execute(_INSERT[self.dialect](self.counter).values(
                id=_COUNTER_ID, value=0).on_conflict_do_nothing(index_elements=["id"]))

    def _add_payment_key(self, conn, table: sa.Table) -> bool:
        """Give a payments table made before ``payment_key`` the column (``n:1`` for its rows:
        their key was unique without it) and make it part of the primary key; returns whether
        the table was made again (SQLite), with every column and index of this version."""
        if self.dialect == "postgresql":
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {PAYMENT_KEY} VARCHAR "
                                 "NOT NULL DEFAULT 'n:1'"))
            pk = sa.inspect(conn).get_pk_constraint(table.name)["name"]
            conn.execute(sa.text(f'ALTER TABLE {table.name} DROP CONSTRAINT "{pk}"'))
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD PRIMARY KEY "
                                 f"({', '.join(STORE_KEYS['payments'])})"))
        else:  # SQLite cannot change a primary key: the table is made again, rows copied
            old = f"{table.name}_before_payment_key"
            have = [c["name"] for c in sa.inspect(conn).get_columns(table.name)]
            for index in sa.inspect(conn).get_indexes(table.name):
                conn.execute(sa.text(f"DROP INDEX IF EXISTS {index['name']}"))
            conn.execute(sa.text(f"ALTER TABLE {table.name} RENAME TO {old}"))
            table.create(conn)
            cols = ", ".join(have)
            conn.execute(sa.text(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {old}"))
            conn.execute(sa.text(f"DROP TABLE {old}"))
        logger.info("feedback store %s: payments keyed by payment_key too (rows stored before "
                    "count as their key's first occurrence)", self._shown)
        return self.dialect != "postgresql"

    def add(self, rows: Mapping[str, Iterable[Mapping]]) -> tuple[dict, dict, dict]:
        """Store rows per table in one transaction, committed when this returns.

        A row whose natural key is stored already is a duplicate and changes nothing, except
        that a dispute's ``resolved_on`` is filled in or updated.

        Returns
        -------
        (stored, duplicates, new_rows)
            Counts per table, and the rows that were new (the ones to make visible).

        Raises
        ------
        StoreUnavailableError
            When the database cannot take the rows; then none of them is stored.
        """
        batches = {name: [dict(r) for r in rows.get(name, [])] for name in TABLE_NAMES}
        with_payment_keys(batches["payments"])
        for attempt in range(1, _TRIES + 1):
            try:
                with self._lock, self.engine.begin() as conn:
                    return self._add(conn, batches)
            except sa.exc.OperationalError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if code in _RETRY_SQLSTATES and attempt < _TRIES:
                    logger.info("feedback transaction retried after %s", code)
                    time.sleep(0.05 * attempt)
                    continue
                raise StoreUnavailableError(
                    f"feedback store {self._shown}: {_first_line(exc)}") from exc
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise StoreUnavailableError(
                        f"feedback store {self._shown}: {_first_line(exc)}") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _add(self, conn, batches: dict[str, list[dict]]) -> tuple[dict, dict, dict]:
        stored, dupes, new_rows = {}, {}, {}
        if not any(batches.values()):
            return stored, dupes, new_rows
        # first statement of the transaction: the counter's row lock (the database's write
        # lock on SQLite) is held until the commit, so transactions commit in seq order
        seq = conn.execute(self.counter.update().where(self.counter.c.id == _COUNTER_ID)
                           .values(value=self.counter.c.value + 1)
                           .returning(self.counter.c.value)).scalar_one()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for name, batch in batches.items():
            if not batch:
                continue
            table, keys = self.tables[name], STORE_KEYS[name]
            cols = _stored_columns(name)
            fresh: dict[tuple, dict] = {}
            for r in batch:
                row = {c: r.get(c) for c in cols} | {"received_at": now, "seq": seq}
                fresh.setdefault(tuple(row[k] for k in keys), row)
            # key order: concurrent writers then take row locks in the same order (no deadlock)
            ordered = [fresh[k] for k in sorted(fresh, key=_sort_key)]
            stmt = (_INSERT[self.dialect](table).on_conflict_do_nothing(index_elements=keys)
                    .returning(*[table.c[k] for k in keys]))
            inserted = {tuple(r) for r in conn.execute(stmt, ordered)}
            new = [r for r in ordered if tuple(r[k] for k in keys) in inserted]
            if name == "disputes":
                for r in ordered:
                    if r["resolved_on"] is not None and tuple(r[k] for k in keys) not in inserted:
                        conn.execute(table.update().where(
                            table.c.invoice_id == r["invoice_id"],
                            table.c.opened_on == r["opened_on"],
                        ).values(resolved_on=r["resolved_on"], seq=seq))
            stored[name] = len(new)
            dupes[name] = len(batch) - len(new)
            new_rows[name] = [{c: r[c] for c in cols} for r in new]
        return stored, dupes, new_rows

    def changes(self, after: int | None) -> tuple[Tables, int] | None:
        """Rows stored or changed after transaction ``after`` (every row when None), and the
        number to pass next time; None when there is nothing new (one indexed query).

        Every transaction up to the returned number has committed (they commit in order), so
        no row is missed; a row may come back again (a dispute resolved later), which the
        caller merges by natural key.
        """
        try:
            with self.engine.connect() as conn:
                last = conn.execute(self._last_seq).scalar_one()
                if after is not None and last <= after:
                    return None
                frames = {}
                for name in TABLE_NAMES:
                    table, cols = self.tables[name], _stored_columns(name)
                    query = sa.select(*[table.c[c] for c in cols])
                    if after is not None:
                        query = query.where(table.c.seq > after, table.c.seq <= last)
                    rows = conn.execute(query).all()
                    schema = COLUMNS[name] | ({PAYMENT_KEY: pl.String()}
                                              if name == "payments" else {})
                    frames[name] = pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows],
                                                schema=schema, orient="row")
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailableError(f"feedback store {self._shown}: {_first_line(exc)}"
                                        ) from exc
        return Tables.from_frames(**frames), last

    def known_invoice_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` the store holds as invoices.

        Raises
        ------
        StoreUnavailableError
            When the database cannot be read (the route answers 503, never 500).
        """
        ids = list(set(ids))
        table = self.tables["invoices"]
        out: set[str] = set()
        try:
            with self.engine.connect() as conn:
                for i in range(0, len(ids), 500):
                    q = sa.select(table.c.invoice_id).where(
                        table.c.invoice_id.in_(ids[i:i + 500]))
                    out.update(r[0] for r in conn.execute(q))
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailableError(f"feedback store {self._shown}: {_first_line(exc)}"
                                        ) from exc
        return out

    def load(self) -> Tables:
        """Every stored row as contract tables (contract columns only)."""
        tables = self.changes(None)[0]
        return replace(tables, payments=tables.payments.select(list(COLUMNS["payments"])))

    def count(self) -> dict[str, int]:
        """Rows per table.

        Raises
        ------
        StoreUnavailableError
            When the database cannot be read.
        """
        try:
            with self.engine.connect() as conn:
                return {n: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                        for n, t in self.tables.items()}
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailableError(f"feedback store {self._shown}: {_first_line(exc)}"
                                        ) from exc

    def close(self) -> None:
        self.engine.dispose()


def _stored_columns(name: str) -> list[str]:
    """The columns a feedback table stores besides ``received_at`` and ``seq``."""
    return [*COLUMNS[name], PAYMENT_KEY] if name == "payments" else list(COLUMNS[name])


def with_payment_keys(rows: list[dict]) -> list[dict]:
    """Give each payment row (in body or file order) its ``payment_key`` (see
    :data:`PAYMENT_KEY`), in place; returns ``rows``."""
    seen: dict[tuple, int] = {}
    for r in rows:
        if r.get("payment_id") is not None:
            r[PAYMENT_KEY] = f"id:{r['payment_id']}"
        else:
            key = (r.get("invoice_id"), r.get("paid_on"), r.get("amount"))
            seen[key] = seen.get(key, 0) + 1
            r[PAYMENT_KEY] = f"n:{seen[key]}"
    return rows


def payment_keys(payments: pl.DataFrame) -> pl.DataFrame:
    """``payments`` with its ``payment_key`` column: kept when it has one, else made from the
    rows' order as :func:`with_payment_keys` does."""
    if PAYMENT_KEY in payments.columns:
        return payments
    nth = pl.int_range(1, pl.len() + 1).over([*KEYS["payments"], "payment_id"])
    return payments.with_columns(pl.when(pl.col("payment_id").is_not_null())
                                 .then(pl.lit("id:") + pl.col("payment_id"))
                                 .otherwise(pl.lit("n:") + nth.cast(pl.String))
                                 .alias(PAYMENT_KEY))


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, v if v is not None else "") for v in key)


def _raced(exc: Exception) -> bool:
    """Whether ``exc`` says another process created the same table, column or index first."""
    text = str(exc).lower()
    return any(s in text for s in ("already exists", "duplicate column", "duplicate key value",
                                   "unique constraint"))


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    ``/feedback`` are learnt from.

    Only this book's rows are merged: invoices of the tables' own debtors, and payments,
    actions and disputes of the tables' invoices or of those. A store that also holds another
    company's rows (posted to a service of another book) lends none of them; how many were left
    out is logged and counted as ``left_out`` (:func:`book_rows`).
    """
    store = FeedbackStore(url)
    try:
        stored = store.changes(None)[0]
    finally:
        store.close()
    stored, left_out = book_rows(stored, tables)
    if left_out:
        logger.warning("%d /feedback rows of debtors not in this book left out", left_out)
    out, added = {}, {"left_out": left_out} if left_out else {}
    for name, frame in tables.items():
        cols = list(COLUMNS[name])
        extra = getattr(stored, name).select(_stored_columns(name))
        keys = list(STORE_KEYS[name])
        if name == "payments":  # the files' identical rows: occurrences in file order
            frame = payment_keys(frame.select(cols))
            new = extra.join(frame.select(keys), on=keys, how="anti", nulls_equal=True)
            added[name] = new.height
            out[name] = pl.concat([frame.select(cols), new.select(cols)])
            continue
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


def book_rows(stored: Tables, tables: Tables) -> tuple[Tables, int]:
    """The rows of ``stored`` that belong to the book of ``tables`` (its debtors, their
    invoices), and how many did not."""
    debtors = pl.concat([tables.debtors["debtor_id"], tables.invoices["debtor_id"]]).unique()
    invoices = stored.invoices.filter(pl.col("debtor_id").is_in(debtors.implode()))
    known = pl.concat([tables.invoices["invoice_id"], invoices["invoice_id"]]).unique()
    kept = {"debtors": stored.debtors.filter(pl.col("debtor_id").is_in(debtors.implode())),
            "invoices": invoices}
    for name in ("payments", "actions", "disputes"):
        frame = getattr(stored, name)
        kept[name] = frame.filter(pl.col("invoice_id").is_in(known.implode()))
    left_out = sum(getattr(stored, n).height - kept[n].height for n in kept)
    return Tables(**kept), left_out
