"""The batch on Apache Spark (``recommend --engine spark``) gives the single-machine answers.

Real Spark on ``local[2]`` (no mocks); skipped, with the reason, where Java or pyspark is absent.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import get_settings, load_policy
from paycadence.serving.batch import recommend_batch, write_recommendations
from paycadence.serving.spark_batch import gather, recommend_spark

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

BIN = Path(sys.executable).parent / "paycadence"
TOL = 1e-9


def assert_same(a, b, where="rec"):
    """Equal, floats to within 1e-9, recursively through dicts and lists."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), where
        assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_spark_equals_single_machine(spark, trained, sim_dir, tables, mlflow_uri, tmp_path):
    """Same debtors in the same order, same actions, risks, explanations and cash, row for
    row, with the debtors spread over three hash buckets on two cores."""
    as_of = tables.last_date
    policy, s = load_policy(None), get_settings()
    local = recommend_batch(sim_dir, as_of=as_of, out=tmp_path / "local.jsonl", policy=policy,
                            model_name=s.model_name, alias=s.model_alias)
    result = recommend_spark(sim_dir, as_of=as_of, out=tmp_path / "spark.jsonl", policy=policy,
                             model_name=s.model_name, alias=s.model_alias, buckets=3)
    assert result.model_version == local.model_version == f"risk:{trained.version}"
    assert spark.sparkContext.master == "local[2]" and result.buckets == 3
    recs = [json.loads(line) for line in result.out.read_text().splitlines()]
    assert len(local.recommendations) > 50
    assert [r["debtor_id"] for r in recs] == sorted(r["debtor_id"] for r in recs)
    assert [r["debtor_id"] for r in recs] == [r["debtor_id"] for r in local.recommendations]
    for mine, theirs in zip(recs, local.recommendations, strict=True):
        assert_same(mine, theirs, mine["debtor_id"])
    assert {r["action"] for r in recs} - {"wait"}, "only waits: nothing was compared"
    assert result.count == len(recs)
    assert result.cash_forecast == local.cash_forecast
    assert result.top and all(r["action"] != "wait" for r in result.top)

    # the flat formats, from the same Spark output: the local writer's columns and rows
    for ext in ("csv", "parquet"):
        write_recommendations(local.recommendations, tmp_path / f"local.{ext}")
        gather(result.parts, tmp_path / f"spark.{ext}")
        read = pl.read_csv if ext == "csv" else pl.read_parquet
        assert_frame_equal(read(tmp_path / f"spark.{ext}"), read(tmp_path / f"local.{ext}"),
                           check_exact=False, rel_tol=TOL, abs_tol=TOL)


def test_cli_engine_spark_end_to_end(spark, trained, sim_dir, tables, mlflow_uri, tmp_path):
    """``paycadence recommend --engine spark`` as a user runs it (in this process, so that it
    takes the active local[2] session instead of starting a second JVM): the summary, the file,
    the cash forecast and the staged ingest."""
    out = tmp_path / "recs.csv"
    r = CliRunner().invoke(app, [
        "recommend", "--data", str(sim_dir), "--as-of", tables.last_date.isoformat(),
        "--out", str(out), "--engine", "spark", "--master", "local[2]"])
    assert r.exit_code == 0, r.output
    assert f"risk:{trained.version}" in r.output and "Spark output" in r.output
    assert "expected cash, next 4 weeks" in r.output and "top factors" in r.output
    frame = pl.read_csv(out)
    assert frame.height > 50 and frame["debtor_id"].is_sorted()
    assert (tmp_path / "recs-cash-forecast.csv").is_file()
    assert (tmp_path / "recs-ingest" / "quarantine.csv").is_file()
    assert spark.sparkContext._jsc is not None, "the CLI stopped a session it did not start"


def test_no_java_is_one_line(sim_dir, tmp_path):
    """Without Java the command stops with one line that says what to install."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install '.[spark]')")
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk"),
           "PYTHONWARNINGS": "ignore:PySpark does not yet fully support pandas:FutureWarning"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    r = subprocess.run(
        [str(BIN), "recommend", "--data", str(sim_dir), "--as-of", "2025-01-01",
         "--out", str(tmp_path / "r.csv"), "--engine", "spark"],
        capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "needs Java 17" in r.stderr
    assert "Traceback" not in r.stderr
