"""Batch recommendations on Apache Spark: the very same polars code, one hash bucket of debtors
at a time.

The clean tables (Parquet) are read by Spark; every row gets its debtor (payments, actions and
disputes through their invoice) and a bucket, ``pmod(xxhash64(debtor_id), n)``. Each bucket —
all the rows of its debtors, nothing else — reaches one Python worker as an Arrow table through
``groupBy(bucket).applyInArrow``, becomes a :class:`paycadence.data.Tables` and goes through
:func:`paycadence.models.recommend`, exactly as the single-machine batch does with the whole
book. A debtor's features, forecasts and decision read only that debtor's rows (docs/scaling.md),
so the answers are the same. ``pyspark`` is an optional dependency (``paycadence[spark]``); it is
imported only here and only when a function is called.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from paycadence.config import Policy
from paycadence.data import COLUMNS, TABLE_NAMES, Tables
from paycadence.data.checks import InputGuard
from paycadence.data.ingest import IngestResult, ingest_files
from paycadence.errors import PaycadenceError
from paycadence.models import FALLBACK_VERSION, RiskModels, recommend
from paycadence.models.hazard import CASH_WEEKS
from paycadence.models.recommend import cash_forecast
from paycadence.serving.batch import FLAT_SCHEMA, check_output, flat, write_recommendations
from paycadence.training import tracking

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

#: Environment variable naming the Spark master when ``--master`` is not given.
MASTER_ENV = "SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
#: About this many invoices per bucket when the number of buckets is not given: a bucket is
#: held whole by one Python worker (a few hundred MB at most).
BUCKET_INVOICES = 200_000
MIN_JAVA = 17
#: Columns of the Spark output beyond the flat file's: the whole recommendation as JSON (the
#: .jsonl line), its 13 weeks of expected cash in cents, and the order of the printed summary.
EXTRA_COLUMNS = {"record": pa.string(), "cash_cents": pa.list_(pa.int64()),
                 "priority": pa.float64()}
_ARROW = {pl.String(): pa.string(), pl.Int64(): pa.int64(), pl.Float64(): pa.float64(),
          pl.Boolean(): pa.bool_(), pl.Date(): pa.date32()}
RESULT_SCHEMA = pa.schema([*((c, _ARROW[t]) for c, t in FLAT_SCHEMA.items()),
                           *EXTRA_COLUMNS.items()])
PANDAS_WARNING = "PySpark does not yet fully support pandas"

#: Models loaded in this (worker) process, by the digest of their files: once per worker.
_LOADED: dict[str, RiskModels] = {}


@dataclass(frozen=True)
class SparkBatchResult:
    """What a Spark batch run wrote and what it was built on."""

    count: int
    top: list[dict]  # the acting debtors with the most money at risk (up to 12), for a summary
    out: Path
    parts: Path  # the Spark output: Parquet files sorted by debtor_id
    model_version: str
    model_detail: str
    ingest: IngestResult | None  # None when the data were already clean Parquet tables
    cash_forecast: list[dict]
    cash_path: Path
    buckets: int


# -- the Spark session -------------------------------------------------------------------------
def check_java() -> None:
    """Refuse early, in one line, when no Java ≥ 17 is there to run Spark's driver."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # started by spark-submit: the JVM is running
        return
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise PaycadenceError(f"--engine spark needs Java {MIN_JAVA} or newer and none was found:"
                              " install a JDK (e.g. openjdk-17-jre-headless) or set JAVA_HOME")
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PaycadenceError(f"--engine spark: {java} does not run ({exc})") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    major = int(found.group(1)) if found else 0
    major = int(found.group(2)) if found and major == 1 and found.group(2) else major
    if major < MIN_JAVA:
        raise PaycadenceError(f"--engine spark needs Java {MIN_JAVA} or newer; {java} is "
                              f"{found.group(0) if found else 'of unknown version'}")


def _pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise PaycadenceError("--engine spark needs pyspark: pip install 'paycadence[spark]'"
                              ) from None


@contextmanager
def _quiet():
    """pyspark warns that it has not caught up with pandas 3; we hand it Arrow, not pandas."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
        yield


def resolve_master(master: str | None) -> str | None:
    """``master``, else ``$SPARK_MASTER``, else what spark-submit set (None), else local[*]."""
    if master:
        return master
    if os.environ.get(MASTER_ENV):
        return os.environ[MASTER_ENV]
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return None
    return DEFAULT_MASTER


def spark_session(master: str | None = None) -> tuple[SparkSession, bool]:
    """The active Spark session, or a new one; returns it and whether it was created here.

    A new session honours ``master`` / ``$SPARK_MASTER`` (``local[*]`` by default, or what
    spark-submit configured), enables Arrow and logs at WARN. On a local master the Python
    workers run this interpreter, so they see the same paycadence install.
    """
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    check_java()
    master = resolve_master(master)
    builder = (SparkSession.builder.appName("paycadence-recommend")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.debug.maxToStringFields", "200")
               .config("spark.executorEnv.PYTHONWARNINGS",
                       f"ignore:{PANDAS_WARNING}:FutureWarning")
               # Spark runs one task per core: one polars thread per task, not one per core
               .config("spark.executorEnv.POLARS_MAX_THREADS",
                       os.environ.get("POLARS_MAX_THREADS", "1"))
               .config("spark.driver.extraJavaOptions",
                       f"-Dlog4j2.configurationFile={_log_config().as_uri()}"))
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.ui.enabled", "false")
    with _quiet():
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - the JVM did not start: say why in one line
            raise PaycadenceError(f"Spark did not start ({master}): "
                                  f"{str(exc).strip().splitlines()[0]}") from None
    spark.sparkContext.setLogLevel("WARN")
    logger.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark, True


def _log_config() -> Path:
    """A log4j2 file that keeps Spark at WARN (and hushes the native-Hadoop notice)."""
    path = Path(tempfile.gettempdir()) / "paycadence-spark-log4j2.properties"
    text = "\n".join([
        "rootLogger.level = warn",
        "rootLogger.appenderRef.stderr.ref = console",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.target = SYSTEM_ERR",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex",
        "logger.native.name = org.apache.hadoop.util.NativeCodeLoader",
        "logger.native.level = error",
        "",
    ])
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


# -- the champion, shipped to the workers ------------------------------------------------------
def champion_bundle(model_name: str, alias: str) -> tuple[dict | None, str, str]:
    """The champion's saved files as bytes (None for the rule-based fallback), its version and
    a description; a model that does not load on the driver is not shipped (as in
    :meth:`paycadence.serving.engine.Engine.reload_models`)."""
    try:
        path, version = tracking.download_model(model_name, alias)
        RiskModels.load(path)
    except Exception as exc:  # noqa: BLE001 - any failure means: the rule-based fallback
        logger.warning("model %s@%s not loaded (%s): recommending with the rule-based fallback",
                       model_name, alias, type(exc).__name__)
        return None, FALLBACK_VERSION, f"fallback to the rule-based schedule: {exc}"
    files = {p.name: p.read_bytes() for p in sorted(Path(path).iterdir()) if p.is_file()}
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + data)
    return ({"digest": digest.hexdigest(), "files": files}, f"risk:{version}",
            f"{model_name}@{alias} = version {version}")


def _models(bundle: dict | None) -> RiskModels | None:
    """The shipped models, loaded once per worker process; scored on one thread, since Spark
    runs one task per core (the answers do not depend on the number of threads)."""
    if bundle is None:
        return None
    models = _LOADED.get(bundle["digest"])
    if models is None:
        folder = Path(tempfile.mkdtemp(prefix="paycadence-model-"))
        for name, data in bundle["files"].items():
            (folder / name).write_bytes(data)
        models = RiskModels.load(folder)
        models.threads = 1
        _LOADED[bundle["digest"]] = models
    return models


# -- one bucket, on a worker ---------------------------------------------------------------------
def bucket_tables(table: pa.Table) -> Tables:
    """The :class:`Tables` of one bucket (``table``: the five tables' columns as
    ``<table>__<column>``, ``_table`` naming each row's table)."""
    frame = pl.from_arrow(table)
    frames = {}
    for name in TABLE_NAMES:
        names = {f"{name}__{c}": c for c in COLUMNS[name]}
        frames[name] = frame.filter(pl.col("_table") == name).select(list(names)).rename(names)
    return Tables.from_frames(**frames)


def score_bucket(table: pa.Table, *, as_of: dt.date, policy: Policy, bundle,
                 model_version: str) -> pa.Table:
    """Recommendations for the debtors of one bucket, from all of their rows (``table``: the
    five tables' columns as ``<table>__<column>``, with ``_table`` naming each row's table).

    Runs :func:`paycadence.models.recommend` on the bucket's :class:`Tables`; returns one
    :func:`paycadence.serving.batch.flat` row per debtor plus :data:`EXTRA_COLUMNS`.
    """
    tables = bucket_tables(table)
    models = _models(bundle.value if bundle is not None else None)
    recs = recommend(tables, as_of=as_of, policy=policy, models=models,
                     model_version=model_version)
    rows = [{**flat(rec), "record": json.dumps(rec),
             "cash_cents": [round(w["expected"] * 100) for w in rec["cash_forecast"]],
             "priority": None if rec["action"] == "wait" else
             rec["risk"]["p_open_7d"] * sum(i["open_amount"] for i in rec["invoices"])}
            for rec in recs]
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


# -- the driver ----------------------------------------------------------------------------------
def _is_uri(path: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


def clean_source(data_dir: str | Path, staging: Path) -> tuple[str, IngestResult | None]:
    """Where Spark reads clean tables: ``data_dir`` itself when it is a URI or the output of
    ``paycadence ingest`` (five ``NAME.parquet`` and ``summary.json``), else ``staging`` after
    :func:`paycadence.data.ingest_files` checked the raw files into it."""
    text = str(data_dir)
    if _is_uri(text) and not text.startswith("file://"):
        return text.rstrip("/"), None
    local = Path(text.removeprefix("file://"))
    if (local / "summary.json").is_file() and all(
            (local / f"{n}.parquet").is_file() for n in TABLE_NAMES):
        return str(local.resolve()), None
    result = ingest_files(local, staging)
    return str(staging.resolve()), result


def _spark_type(dtype: pl.DataType) -> str:
    return {pl.String(): "string", pl.Int64(): "bigint", pl.Float64(): "double",
            pl.Date(): "date", pl.Boolean(): "boolean"}[dtype]


def debtor_rows(spark: SparkSession, source: str, buckets: int) -> DataFrame:
    """Every row of the five tables in one frame: ``_debtor``, ``_bucket``, ``_table`` and the
    contract columns as ``<table>__<column>`` (null outside their table). Rows of payments,
    actions and disputes take their invoice's debtor; those of unknown invoices are left out
    (ingest has already quarantined them, and the features would not read them)."""
    from pyspark.sql import functions as F

    read = {n: spark.read.parquet(f"{source}/{n}.parquet") for n in TABLE_NAMES}
    owners = read["invoices"].select("invoice_id", F.col("debtor_id").alias("_debtor"))
    parts = []
    for name in TABLE_NAMES:
        frame = read[name]
        if name in ("debtors", "invoices"):
            frame = frame.withColumn("_debtor", F.col("debtor_id"))
        else:
            frame = frame.join(owners, on="invoice_id", how="inner")
        cols = [(F.col(c) if c in frame.columns else F.lit(None)).cast(_spark_type(t))
                .alias(f"{name}__{c}") for c, t in COLUMNS[name].items()]
        parts.append(frame.select("_debtor", F.lit(name).alias("_table"), *cols))
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    return rows.withColumn("_bucket", F.pmod(F.xxhash64("_debtor"), F.lit(buckets)))


def recommend_spark(
    data_dir: str | Path,
    *,
    as_of: dt.date,
    out: str | Path,
    policy: Policy,
    model_name: str,
    alias: str = "champion",
    master: str | None = None,
    buckets: int | None = None,
    guard: InputGuard | None = None,
) -> SparkBatchResult:
    """:func:`paycadence.serving.batch.recommend_batch` on Spark: the same file, rows and cash
    forecast.

    Spark writes the recommendations, sorted by ``debtor_id``, as Parquet files to
    ``<out stem>-spark/`` beside ``out``; the driver then copies them, file by file, into
    ``out`` in its format (so the driver never holds the whole result).

    Parameters
    ----------
    data_dir
        Raw input (checked by ``ingest_files`` into ``<out stem>-ingest/``, as the local batch
        does), or clean Parquet tables: the output of ``paycadence ingest``, or any URI Spark
        reads (``s3a://…``, ``hdfs://…``), used as they are.
    master
        Spark master for a new session (else ``$SPARK_MASTER``, else ``local[*]``); an active
        session (spark-submit, a notebook) is used as it is.
    buckets
        Hash buckets of debtors (default: about :data:`BUCKET_INVOICES` invoices per bucket,
        at least twice the default parallelism). The answers do not depend on it.
    guard
        Checks raw input's tables and ``as_of`` once ingest has read them (clean tables were
        checked when they were ingested).
    """
    out = check_output(out)
    if buckets is not None and buckets < 1:
        raise PaycadenceError(f"--partitions must be at least 1, not {buckets}")
    out.parent.mkdir(parents=True, exist_ok=True)
    spark, created = spark_session(master)
    try:
        with _quiet():
            return _run(spark, data_dir, as_of, out, policy, model_name, alias, buckets, guard)
    finally:
        if created:
            spark.stop()


def _run(spark, data_dir, as_of, out, policy, model_name, alias, buckets,
         guard) -> SparkBatchResult:
    from pyspark.sql import functions as F

    source, checked = clean_source(data_dir, out.parent / f"{out.stem}-ingest")
    if guard is not None and checked is not None:
        guard.check_ingested(checked, as_of)
    bundle, version, detail = champion_bundle(model_name, alias)
    if buckets is None:
        n_invoices = spark.read.parquet(f"{source}/invoices.parquet").count()
        buckets = max(2 * spark.sparkContext.defaultParallelism,
                      -(-n_invoices // BUCKET_INVOICES))
    shipped = spark.sparkContext.broadcast(bundle) if bundle is not None else None
    schema = ", ".join(f"{f.name} {_result_type(f.type)}" for f in RESULT_SCHEMA)

    def score(table: pa.Table) -> pa.Table:  # typed: pyspark reads the hints (no partial)
        return score_bucket(table, as_of=as_of, policy=policy, bundle=shipped,
                            model_version=version)

    scored = debtor_rows(spark, source, buckets).groupBy("_bucket").applyInArrow(score, schema)
    parts = out.parent / f"{out.stem}-spark"
    staging = out.parent / f"{out.stem}-spark-unsorted"  # no leading dot: Spark skips those
    scored.write.mode("overwrite").parquet(staging.resolve().as_uri())
    written = spark.read.parquet(staging.resolve().as_uri())
    count = written.count()
    cents = dict(written.select(F.posexplode("cash_cents")).groupBy("pos")
                 .agg(F.sum("col")).collect())
    top = [json.loads(r["record"]) for r in written.where(F.col("priority").isNotNull())
           .orderBy(F.desc("priority"), "debtor_id").limit(12).select("record").collect()]
    written.drop("cash_cents", "priority").orderBy("debtor_id").write.mode("overwrite").parquet(
        parts.resolve().as_uri())
    shutil.rmtree(staging, ignore_errors=True)
    if shipped is not None:
        shipped.destroy()
    gather(parts, out)
    cash = cash_forecast([[cents.get(w, 0) / 100 for w in range(CASH_WEEKS)]], as_of)
    cash_path = out.parent / f"{out.stem}-cash-forecast.csv"
    pl.DataFrame(cash).write_csv(cash_path)
    logger.info("spark batch: %d recommendations from %d buckets into %s", count, buckets, out)
    return SparkBatchResult(count, top, out, parts, version, detail, checked, cash, cash_path,
                            buckets)


def _result_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"array<{_result_type(t.value_type)}>"
    return {pa.string(): "string", pa.int64(): "bigint", pa.float64(): "double",
            pa.bool_(): "boolean"}[t]


def gather(parts: Path, out: Path) -> Path:
    """Copy the Spark output (``part-*.parquet`` in name order, i.e. sorted by debtor) into
    ``out`` in the format its extension names, one file at a time."""
    files = sorted(parts.glob("part-*.parquet"))
    if not files:
        return write_recommendations([], out)
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        with out.open("w", encoding="utf-8") as fh:
            for file in files:
                for batch in pq.ParquetFile(file).iter_batches(columns=["record"]):
                    for line in batch.column(0).to_pylist():
                        fh.write(line + "\n")
        return out
    frame = pl.scan_parquet(files).select(
        [pl.col(c).cast(t) for c, t in FLAT_SCHEMA.items()])
    if suffix == ".csv":
        frame.sink_csv(out)
    else:
        frame.sink_parquet(out)
    return out
