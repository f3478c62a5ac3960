"""Training snapshots on Apache Spark (``features --engine spark``) are the single-machine ones.

Real Spark on ``local[2]`` (no mocks); skipped, with the reason, where Java or pyspark is absent.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import FeatureParams, Params
from paycadence.training.train import (
    ROW_ORDER,
    SNAPSHOT_FILE,
    SNAPSHOT_META,
    TREATED_FILE,
    cut_tables,
    load_snapshots,
    save_snapshots,
    train,
    treated_rows,
)

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

TOL = 1e-9


def with_features(params: Params, **changes) -> Params:
    return params.model_copy(update={"features": FeatureParams(
        **(params.features.model_dump() | changes))})


def read(folder: Path, name: str = SNAPSHOT_FILE) -> pl.DataFrame:
    path = folder / name
    return pl.read_parquet(sorted(path.glob("*.parquet")) if path.is_dir() else path)


def assert_same_snapshots(spark_dir: Path, local_dir: Path) -> dict:
    """Same rows in the same order, floats to 1e-9, and the same snapshots.json; the same
    treated rows too."""
    mine, theirs = read(spark_dir), read(local_dir)
    assert mine.height > 100
    assert_frame_equal(mine, theirs, check_exact=False, rel_tol=TOL, abs_tol=TOL)
    meta = json.loads((spark_dir / SNAPSHOT_META).read_text())
    assert meta == json.loads((local_dir / SNAPSHOT_META).read_text())
    treated = read(spark_dir, TREATED_FILE)
    assert treated.height == meta["treated"]["rows"] > 100
    assert_frame_equal(treated, read(local_dir, TREATED_FILE), check_exact=False, rel_tol=TOL,
                       abs_tol=TOL)
    return meta


def assert_treated_rows(folder: Path, tables, params: Params, meta: dict) -> None:
    """The saved treated rows are :func:`treated_rows` of the whole book, row for row."""
    t = meta["treated"]
    expected = treated_rows(tables, before=dt.date.fromisoformat(t["before"]),
                            horizon_days=params.train.horizon_days,
                            data_end=dt.date.fromisoformat(t["data_end"]), share=t["share"],
                            seed=params.features.snapshot_seed).sort(ROW_ORDER)
    assert_frame_equal(read(folder, TREATED_FILE), expected, check_exact=False, rel_tol=TOL,
                       abs_tol=TOL)


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
    # every logged action before train's split day minus the embargo, none sampled out
    assert meta["treated"]["share"] == 1.0
    assert meta["treated"]["rows"] == meta["treated"]["actions"]
    assert_treated_rows(result.out, tables, small_params, meta)


def test_stratified_sample_on_spark_equals_single_machine_and_trains(
        spark, tables, clean_dir, small_params, mlflow_uri, tmp_path):
    """A book over ``max_snapshot_rows``, cut to an earlier day: the same stratified sample
    (overdue debtor-days kept twice as often) and the same sample of treated rows, built by
    ``features --engine spark`` as a user runs it; ``train --features`` takes them and gives
    the model it gives from the single-machine files."""
    as_of = tables.last_date - dt.timedelta(days=90)
    cap = 1200  # below the ~1,500 logged actions before the split too
    params = with_features(small_params, max_snapshot_rows=cap, overdue_oversampling=2.0)
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
    assert 0.7 * cap < snaps.height < 1.3 * cap
    assert snaps["sampled_share"].n_unique() == 2
    assert spark.sparkContext._jsc is not None, "the CLI stopped a session it did not start"
    t = meta["treated"]
    assert t["share"] == pytest.approx(cap / t["actions"]) and t["share"] < 1
    assert 0.7 * cap < t["rows"] < 1.3 * cap
    assert read(tmp_path / "spark", TREATED_FILE)["sampled_share"].unique().to_list() == [
        t["share"]]
    assert_treated_rows(tmp_path / "spark", cut_tables(tables, as_of), params, meta)

    loaded = load_snapshots(tmp_path / "spark", cut_tables(tables, as_of), params, as_of)
    assert_frame_equal(loaded, snaps)
    result = train(tables, params=params, as_of=as_of, snapshot_dir=tmp_path / "spark",
                   model_name="paycadence-spark-snapshots")
    assert result.train_rows + result.holdout_rows <= snaps.height
    assert 0.5 < result.metrics["late_auc"] <= 1.0
    assert result.split_date - dt.timedelta(days=params.train.embargo_days) == \
        dt.date.fromisoformat(t["before"])  # the split they were saved for: train reads them
    assert result.models.card["response_rows_by_action"]
    theirs = train(tables, params=params, as_of=as_of, snapshot_dir=local,
                   model_name="paycadence-local-snapshots")
    assert model_files(result.models, tmp_path / "m-spark") == model_files(
        theirs.models, tmp_path / "m-local")


def model_files(models, folder: Path) -> dict[str, bytes]:
    """Every file a model saves (booster text files, card.json), by name."""
    models.save(folder)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_features_local_refuses_spark_options(clean_dir, tmp_path):
    r = CliRunner().invoke(app, ["features", "--data", str(clean_dir), "--out",
                                 str(tmp_path / "f"), "--partitions", "3"])
    assert r.exit_code == 2 and "need --engine spark" in r.output
