"""Training snapshots on Apache Spark (``paycadence features --engine spark``): the very same
polars code as :func:`paycadence.training.snapshots.save_snapshots`, one hash bucket of debtors
at a time, so that the driver never holds the book.

The clean tables are read and bucketed as for the batch (:func:`debtor_rows`:
``pmod(xxhash64(debtor_id), n)``) and kept, bucketed, by Spark for three passes, each a
``groupBy(bucket).applyInArrow`` over every bucket's :class:`paycadence.data.Tables` (cut to
what was known on ``as_of`` by :func:`paycadence.training.snapshots.cut_tables`), and a fourth:

1. each bucket's first invoice, last date, fingerprint parts and logged (invoice, day) pairs
   per day: the driver adds them up into the snapshot dates, the data fingerprint and the
   action pairs of the whole book;
2. each bucket's snapshot rows per stratum (:func:`paycadence.features.snapshots.stratum_rows`):
   the driver adds them up and computes the shares to keep (:func:`sampling_plan`);
3. each bucket's snapshots, built and labelled by
   :func:`paycadence.features.build_snapshots` with those shares, written by Spark as Parquet,
   then sorted as the single-machine table is into ``snapshots.parquet/`` (part files).
4. each bucket's treated rows of the response model
   (:func:`paycadence.training.snapshots.treated_rows`) before the day ``train`` will split at
   minus its embargo (from the days the snapshots hold), a seeded sample of them above
   ``features.max_snapshot_rows`` (:func:`paycadence.training.snapshots.treated_plan`), sorted
   into ``treated.parquet/``.

A debtor's features, labels and sampling draws read only that debtor's rows, so the result
is the single-machine tables row for row (docs/scaling.md, "Training at scale"). The driver
receives a few numbers per bucket and the snapshot days, never rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from paycadence.config import Params
from paycadence.data import Tables
from paycadence.data.ingest import IngestResult
from paycadence.errors import InputError, PaycadenceError
from paycadence.features import build_snapshots, label
from paycadence.features.pit import features_at
from paycadence.features.snapshots import STRATA, stratum_rows
from paycadence.serving.spark_batch import (
    BUCKET_INVOICES,
    _quiet,
    bucket_tables,
    clean_source,
    debtor_rows,
    spark_session,
)
from paycadence.training.history import plan_between
from paycadence.training.train import (
    ROW_ORDER,
    SNAPSHOT_FILE,
    TREATED_FILE,
    action_pairs,
    clear_output,
    cut_tables,
    fingerprint_of,
    fingerprint_parts,
    sampling_plan,
    snapshot_key,
    treated_before,
    treated_plan,
    treated_rows,
    write_snapshot_meta,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

_SPARK = {pl.String(): "string", pl.Float64(): "double", pl.Date(): "date"}
_ARROW = {pl.String(): pa.string(), pl.Float64(): pa.float64(), pl.Date(): pa.date32()}


@dataclass(frozen=True)
class SparkSnapshotResult:
    """What ``features --engine spark`` wrote."""

    out: Path  # the folder: snapshots.parquet/ (part files) and snapshots.json
    rows: int
    plan: dict[str, dict]  # rows and kept share per stratum
    buckets: int
    ingest: IngestResult | None  # None when the data were already clean Parquet tables


def snapshot_schema(horizon_days: int) -> pl.Schema:
    """The columns and types of the snapshot table (those of an empty book's)."""
    empty = Tables.from_frames()
    points = pl.DataFrame(schema={"debtor_id": pl.String, "as_of": pl.Date})
    frame = features_at(empty, points, max_days_past_due=horizon_days).collect()
    frame = label(frame, empty, data_end=dt.date(2000, 1, 1), horizon_days=horizon_days)
    return pl.Schema({**frame.schema, "sampled_share": pl.Float64()})


def treated_schema(horizon_days: int) -> pl.Schema:
    """The columns and types of :func:`paycadence.training.snapshots.treated_rows`' table."""
    empty = Tables.from_frames()
    points = pl.DataFrame(schema={"debtor_id": pl.String, "as_of": pl.Date})
    acts = pl.DataFrame(schema={"invoice_id": pl.String, "as_of": pl.Date,
                                "action": pl.String, "propensity": pl.Float64})
    frame = features_at(empty, points, max_days_past_due=horizon_days).collect().join(
        acts, on=["invoice_id", "as_of"], how="inner")
    frame = label(frame, empty, data_end=dt.date(2000, 1, 1), horizon_days=horizon_days)
    return pl.Schema({**frame.schema, "sampled_share": pl.Float64()})


# -- one bucket, on a worker ---------------------------------------------------------------------
def known_bucket_tables(table: pa.Table, as_of: dt.date | None) -> Tables:
    """The :class:`Tables` of one bucket (:func:`bucket_tables`), as known on ``as_of``."""
    tables = bucket_tables(table)
    return cut_tables(tables, as_of) if as_of is not None else tables


def bucket_stats(table: pa.Table, *, as_of: dt.date | None) -> pa.Table:
    """Pass 1: the bucket's first invoice day, last date and fingerprint parts (JSON)."""
    tables = known_bucket_tables(table, as_of)
    first = tables.invoices["issue_date"].min()
    stats = {"first": first.isoformat() if first else None,
             "last": tables.last_date.isoformat() if tables.last_date else None,
             "parts": fingerprint_parts(tables), "pairs": action_pairs(tables)}
    return pa.table({"stats": [json.dumps(stats)]})


def bucket_counts(table: pa.Table, *, as_of: dt.date | None, dates: list[dt.date],
                  horizon_days: int) -> pa.Table:
    """Pass 2: the bucket's snapshot rows per stratum."""
    rows = stratum_rows(known_bucket_tables(table, as_of), dates, horizon_days=horizon_days)
    return pa.table({k: pa.array([rows[k]], pa.int64()) for k in STRATA})


def bucket_snapshots(table: pa.Table, *, as_of: dt.date | None, dates: list[dt.date],
                     horizon_days: int, data_end: dt.date, seed: int,
                     shares: dict[str, float], schema: pa.Schema) -> pa.Table:
    """Pass 3: the bucket's labelled snapshots, sampled with the book's ``shares``."""
    frame = build_snapshots(known_bucket_tables(table, as_of), dates, horizon_days=horizon_days,
                            data_end=data_end, seed=seed, shares=shares)
    if frame.height == 0:
        return schema.empty_table()
    return frame.select(schema.names).to_arrow().cast(schema)


def bucket_treated(table: pa.Table, *, as_of: dt.date | None, before: dt.date,
                   horizon_days: int, data_end: dt.date, share: float, seed: int,
                   schema: pa.Schema) -> pa.Table:
    """Pass 4: the bucket's treated rows before ``before``, sampled at ``share``."""
    frame = treated_rows(known_bucket_tables(table, as_of), before=before,
                         horizon_days=horizon_days, data_end=data_end, share=share, seed=seed)
    if frame.height == 0:
        return schema.empty_table()
    return frame.select(schema.names).to_arrow().cast(schema)


# -- the driver ----------------------------------------------------------------------------------
def snapshots_spark(
    data_dir: str | Path,
    params: Params,
    out: str | Path,
    *,
    as_of: dt.date | None = None,
    master: str | None = None,
    buckets: int | None = None,
) -> SparkSnapshotResult:
    """:func:`paycadence.training.snapshots.save_snapshots` on Spark: the same rows, sampling and
    ``snapshots.json``; ``snapshots.parquet`` is a folder of Parquet part files, in the order
    of the single-machine file (``train --features`` reads either).

    Parameters
    ----------
    data_dir
        Raw input (checked by ``ingest_files`` into ``<out>-ingest/``), or clean Parquet
        tables: the output of ``paycadence ingest`` or a URI Spark reads.
    params
        ``features`` (dates, sampling) and ``train.horizon_days`` are read.
    master
        Spark master for a new session (else ``$SPARK_MASTER``, else ``local[*]``).
    buckets
        Hash buckets of debtors (default: about 200,000 invoices each, at least twice the
        default parallelism). The result does not depend on it.
    """
    if buckets is not None and buckets < 1:
        raise PaycadenceError(f"--partitions must be at least 1, not {buckets}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spark, created = spark_session(master)
    try:
        with _quiet():
            return _build(spark, data_dir, params, out, as_of, buckets)
    finally:
        if created:
            spark.stop()


def _build(spark, data_dir, params: Params, out: Path, as_of, buckets) -> SparkSnapshotResult:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    source, checked = clean_source(data_dir, out.parent / f"{out.name}-ingest")
    if buckets is None:
        n_invoices = spark.read.parquet(f"{source}/invoices.parquet").count()
        buckets = max(2 * spark.sparkContext.defaultParallelism,
                      -(-n_invoices // BUCKET_INVOICES))
    horizon, f = params.train.horizon_days, params.features
    # shuffled once into its buckets and kept (memory, then disk) for the three passes
    rows = debtor_rows(spark, source, buckets).repartition(buckets, "_bucket").persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        def stats(table: pa.Table) -> pa.Table:
            return bucket_stats(table, as_of=as_of)

        found = [json.loads(r["stats"]) for r in
                 _per_bucket(rows, stats, "stats string").collect()]
        firsts = [s["first"] for s in found if s["first"]]
        lasts = [s["last"] for s in found if s["last"]]
        if not firsts or not lasts:
            raise InputError("no invoices to train on")
        last = dt.date.fromisoformat(max(lasts))
        # the same days as the local engine, a short history's too (training/history.py)
        dates = plan_between(dt.date.fromisoformat(min(firsts)), last, params).dates()
        digest = fingerprint_of(*({k: tuple(v) for k, v in s["parts"].items()}
                                  for s in found))
        pairs: dict[str, int] = {}
        for s in found:
            for day, n in s["pairs"].items():
                pairs[day] = pairs.get(day, 0) + n

        def counts(table: pa.Table) -> pa.Table:
            return bucket_counts(table, as_of=as_of, dates=dates, horizon_days=horizon)

        summed = _per_bucket(rows, counts, ", ".join(f"{k} bigint" for k in STRATA)).agg(
            *(F.sum(k).alias(k) for k in STRATA)).collect()[0]
        plan = sampling_plan({k: int(summed[k] or 0) for k in STRATA}, params)
        shares = {k: v["share"] for k, v in plan.items()}
        logger.info("spark snapshots: %s rows by stratum, shares %s, %d buckets",
                    {k: v["rows"] for k, v in plan.items()}, shares, buckets)

        schema = snapshot_schema(horizon)
        arrow = pa.schema([(c, _ARROW[t]) for c, t in schema.items()])

        def build(table: pa.Table) -> pa.Table:
            return bucket_snapshots(table, as_of=as_of, dates=dates, horizon_days=horizon,
                                    data_end=last, seed=f.snapshot_seed, shares=shares,
                                    schema=arrow)

        built = _per_bucket(rows, build, ", ".join(f"{c} {_SPARK[t]}"
                                                     for c, t in schema.items()))
        # written as built first: sorting straight away would build every bucket twice
        # (once more to sample the sort's ranges); no leading dot, Spark skips those
        staging = out / "snapshots-unsorted"
        built.write.mode("overwrite").parquet(staging.resolve().as_uri())
        # the days the snapshots hold (a few hundred values) give train's split
        days = sorted(r["as_of"] for r in spark.read.parquet(staging.resolve().as_uri())
                      .select("as_of").distinct().collect())
        before = treated_before(days, params)
        treated = None
        treated_staging = out / "treated-unsorted"
        if before is not None:
            treated = treated_plan(pairs, before=before, data_end=last, params=params)
            share = treated["share"]
            t_schema = treated_schema(horizon)
            t_arrow = pa.schema([(c, _ARROW[t]) for c, t in t_schema.items()])

            def treat(table: pa.Table) -> pa.Table:
                return bucket_treated(table, as_of=as_of, before=before, horizon_days=horizon,
                                      data_end=last, share=share, seed=f.snapshot_seed,
                                      schema=t_arrow)

            _per_bucket(rows, treat, ", ".join(f"{c} {_SPARK[t]}" for c, t in t_schema.items())
                        ).write.mode("overwrite").parquet(treated_staging.resolve().as_uri())
    finally:
        rows.unpersist()
    target = out / SNAPSHOT_FILE
    count = _sorted_parts(spark, staging, target)
    if count == 0:
        raise InputError("no open invoice on any snapshot date: nothing to learn from")
    treated_target = out / TREATED_FILE
    clear_output(treated_target)
    if treated is not None:
        treated["rows"] = _sorted_parts(spark, treated_staging, treated_target)
        if treated["rows"] == 0:  # as the single-machine build: no file
            clear_output(treated_target)
        logger.info("spark treated rows: %d of %d logged pairs before %s (share %.4g)",
                    treated["rows"], treated["actions"], before, treated["share"])
    write_snapshot_meta(out, snapshot_key(digest, params, as_of), count, plan, treated)
    logger.info("spark snapshots: %d rows from %d buckets into %s", count, buckets, target)
    return SparkSnapshotResult(out, count, plan, buckets, checked)


def _sorted_parts(spark, staging: Path, target: Path) -> int:
    """Sort the rows written to ``staging`` as the single-machine tables are (so that
    training reads the very same rows) into part files in ``target``; their number."""
    clear_output(target)  # also an earlier single-machine build's file
    if not any(staging.glob("part-*")):  # nothing written at all: no rows
        shutil.rmtree(staging, ignore_errors=True)
        return 0
    spark.read.parquet(staging.resolve().as_uri()).orderBy(*ROW_ORDER).write.mode(
        "overwrite").parquet(target.resolve().as_uri())
    shutil.rmtree(staging, ignore_errors=True)
    for extra in target.iterdir():  # Spark's _SUCCESS and .crc files: only the parts stay
        if extra.name.startswith("part-"):
            continue
        if extra.is_dir():
            shutil.rmtree(extra)
        else:
            extra.unlink()
    return spark.read.parquet(target.resolve().as_uri()).count()


def _per_bucket(rows: DataFrame, fn, schema: str) -> DataFrame:
    return rows.groupBy("_bucket").applyInArrow(fn, schema)
