"""Training snapshots on Apache Spark (``features --engine spark``) are the single-machine ones.

Real Spark on ``local[2]`` (no mocks); skipped, with the reason, where Java or pyspark is absent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import FeatureParams, Params
from paycadence.training.train import (
    SNAPSHOT_FILE,
    SNAPSHOT_META,
    load_snapshots,
    save_snapshots,
    train,
)

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

TOL = 1e-9


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return Path(home, "bin", "java").exists() if home else shutil.which("java") is not None


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install '.[spark]')")
    if not _java():
        pytest.skip("Java is absent: Spark needs Java 17 or newer (or JAVA_HOME)")
    from paycadence.serving.spark_batch import spark_session

    session, created = spark_session("local[2]")
    yield session
    if created:
        session.stop()


def with_features(params: Params, **changes) -> Params:
    return params.model_copy(update={"features": FeatureParams(
        **(params.features.model_dump() | changes))})


def read(folder: Path) -> pl.DataFrame:
    path = folder / SNAPSHOT_FILE
    return pl.read_parquet(sorted(path.glob("*.parquet")) if path.is_dir() else path)


def assert_same_snapshots(spark_dir: Path, local_dir: Path) -> dict:
    """Same rows in the same order, floats to 1e-9, and the same snapshots.json."""
    mine, theirs = read(spark_dir), read(local_dir)
    assert mine.height > 100
    assert_frame_equal(mine, theirs, check_exact=False, rel_tol=TOL, abs_tol=TOL)
    meta = json.loads((spark_dir / SNAPSHOT_META).read_text())
    assert meta == json.loads((local_dir / SNAPSHOT_META).read_text())
    return meta


def test_spark_snapshots_equal_single_machine(spark, tables, clean_dir, small_params, tmp_path):
    """Every snapshot of the book (no sampling), over three hash buckets on two cores."""
    from paycadence.serving.spark_snapshots import snapshots_spark

    local, _ = save_snapshots(tables, small_params, tmp_path / "local")
    result = snapshots_spark(clean_dir, small_params, tmp_path / "spark", buckets=3)
    assert spark.sparkContext.master == "local[2]" and result.buckets == 3
    meta = assert_same_snapshots(result.out, local)
    assert meta["sampled_share"] == 1.0 and result.rows == meta["rows"]
    assert {v["share"] for v in meta["strata"].values()} == {1.0}
    assert read(result.out)["sampled_share"].unique().to_list() == [1.0]


def test_stratified_sample_on_spark_equals_single_machine_and_trains(
        spark, tables, clean_dir, small_params, mlflow_uri, tmp_path):
    """A book over ``max_snapshot_rows``, cut to an earlier day: the same stratified sample
    (overdue debtor-days kept twice as often), built by ``features --engine spark`` as a user
    runs it, and ``train --features`` takes it."""
    as_of = tables.last_date - dt.timedelta(days=90)
    params = with_features(small_params, max_snapshot_rows=4000, overdue_oversampling=2.0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    local, _ = save_snapshots(tables, params, tmp_path / "local", as_of)
    r = CliRunner().invoke(app, [
        "features", "--data", str(clean_dir), "--out", str(tmp_path / "spark"),
        "--as-of", as_of.isoformat(), "--params", str(tmp_path / "params.yaml"),
        "--engine", "spark", "--master", "local[2]", "--partitions", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "Spark, 4 buckets" in r.output
    meta = assert_same_snapshots(tmp_path / "spark", local)
    plan = meta["strata"]
    assert plan["overdue"]["share"] == pytest.approx(2 * plan["current"]["share"])
    assert 0 < plan["current"]["share"] < plan["overdue"]["share"] < 1
    snaps = read(tmp_path / "spark")
    assert 0.7 * 4000 < snaps.height < 1.3 * 4000
    assert snaps["sampled_share"].n_unique() == 2
    assert spark.sparkContext._jsc is not None, "the CLI stopped a session it did not start"

    from paycadence.training.train import cut_tables

    loaded = load_snapshots(tmp_path / "spark", cut_tables(tables, as_of), params, as_of)
    assert_frame_equal(loaded, snaps)
    result = train(tables, params=params, as_of=as_of, snapshot_dir=tmp_path / "spark",
                   model_name="paycadence-spark-snapshots")
    assert result.train_rows + result.holdout_rows <= snaps.height
    assert 0.5 < result.metrics["late_auc"] <= 1.0


def test_features_local_refuses_spark_options(clean_dir, tmp_path):
    r = CliRunner().invoke(app, ["features", "--data", str(clean_dir), "--out",
                                 str(tmp_path / "f"), "--partitions", "3"])
    assert r.exit_code == 2 and "need --engine spark" in r.output
