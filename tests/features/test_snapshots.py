"""The training snapshot table: every open invoice on every date, or a sample of (debtor, date)
pairs when the book is too large, always exactly what each date's call gives; the sample is
stratified (overdue debtor-days kept more often), each row carrying its share so that weighting
by 1 / share estimates the whole table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paycadence.features import build_snapshots, invoice_features, label, snapshot_dates
from paycadence.features.snapshots import sampling_shares, snapshot_points, stratum_rows
from paycadence.training.metrics import binary_metrics, regression_metrics

HORIZON = 120


@pytest.fixture(scope="module")
def dates(tables):
    return snapshot_dates(tables, every_days=7, min_history_days=60)


@pytest.fixture(scope="module")
def full(tables, dates):
    return build_snapshots(tables, dates, horizon_days=HORIZON)


def one_by_one(tables, days) -> pl.DataFrame:
    parts = [invoice_features(tables, as_of=d).filter(pl.col("days_past_due") <= HORIZON)
             for d in days]
    frame = pl.concat([p for p in parts if p.height])
    return label(frame, tables, data_end=tables.last_date, horizon_days=HORIZON)


def test_whole_table_equals_each_date_alone(tables, dates, full):
    want = one_by_one(tables, dates).sort("as_of", "debtor_id", "due_date", "invoice_id")
    assert full["sampled_share"].unique().to_list() == [1.0]
    assert_frame_equal(full.drop("sampled_share"), want)


def test_row_count_is_known_before_building(tables, dates, full):
    points, share = snapshot_points(tables, dates, horizon_days=HORIZON, max_rows=full.height)
    assert share == 1.0
    assert points.height == full.select(pl.struct("debtor_id", "as_of").n_unique()).item()


def test_a_large_table_keeps_a_fixed_sample_of_whole_debtor_days(tables, dates, full):
    cap = full.height // 4
    sample = build_snapshots(tables, dates, horizon_days=HORIZON, max_rows=cap, seed=5)
    share = sample["sampled_share"][0]
    assert share == pytest.approx(cap / full.height)
    assert 0.7 * cap < sample.height < 1.3 * cap
    # a kept (debtor, date) pair carries all its open invoices, with the very same values
    pairs = sample.select("debtor_id", "as_of").unique()
    want = full.join(pairs, on=["debtor_id", "as_of"], how="semi")
    assert_frame_equal(sample.drop("sampled_share"), want.drop("sampled_share"))
    again = build_snapshots(tables, dates, horizon_days=HORIZON, max_rows=cap, seed=5)
    assert_frame_equal(sample, again)
    other = build_snapshots(tables, dates, horizon_days=HORIZON, max_rows=cap, seed=6)
    assert not other.select("debtor_id", "as_of").equals(sample.select("debtor_id", "as_of"))


def test_no_dates_no_rows(tables):
    assert build_snapshots(tables, [], horizon_days=HORIZON).height == 0
    late = [tables.last_date + dt.timedelta(days=400)]
    assert build_snapshots(tables, late, horizon_days=HORIZON).height == 0


def overdue_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by("debtor_id", "as_of").agg(overdue=(pl.col("days_past_due") > 0).any())


@pytest.mark.parametrize(("rows", "max_rows", "k", "want"), [
    ({"current": 600, "overdue": 400}, 1000, 4.0, {"current": 1.0, "overdue": 1.0}),
    ({"current": 600, "overdue": 400}, 500, 1.0, {"current": 0.5, "overdue": 0.5}),
    ({"current": 600, "overdue": 400}, 500, 2.0, {"current": 500 / 1400, "overdue": 1000 / 1400}),
    ({"current": 900, "overdue": 100}, 500, 10.0, {"current": 400 / 900, "overdue": 1.0}),
    ({"current": 0, "overdue": 4000}, 1000, 3.0, {"current": 1000 / 12000, "overdue": 0.25}),
], ids=["under-the-cap", "uniform", "twice-as-often", "overdue-capped-at-1", "no-current"])
def test_shares_keep_max_rows_in_expectation(rows, max_rows, k, want):
    shares = sampling_shares(rows, max_rows=max_rows, overdue_oversampling=k)
    assert shares == pytest.approx(want)
    if sum(rows.values()) > max_rows:
        assert sum(rows[s] * shares[s] for s in rows) == pytest.approx(max_rows)


def test_strata_count_the_rows_of_the_table(tables, dates, full):
    counts = stratum_rows(tables, dates, horizon_days=HORIZON)
    pairs = overdue_pairs(full).join(full.group_by("debtor_id", "as_of").len(),
                                     on=["debtor_id", "as_of"])
    assert counts["overdue"] == pairs.filter("overdue")["len"].sum()
    assert counts["current"] == pairs.filter(~pl.col("overdue"))["len"].sum()
    assert counts["overdue"] > 0 and counts["current"] > 0


def test_stratified_sample_is_weighted_back_to_the_whole_table(tables, dates, full):
    cap = full.height // 4
    sample = build_snapshots(tables, dates, horizon_days=HORIZON, max_rows=cap, seed=3,
                             overdue_oversampling=3.0)
    counts = stratum_rows(tables, dates, horizon_days=HORIZON)
    shares = sampling_shares(counts, max_rows=cap, overdue_oversampling=3.0)
    assert shares["overdue"] == pytest.approx(3 * shares["current"])
    # every kept pair has all its rows, with the values of the whole table
    pairs = sample.select("debtor_id", "as_of").unique()
    want = full.join(pairs, on=["debtor_id", "as_of"], how="semi")
    assert_frame_equal(sample.drop("sampled_share"), want.drop("sampled_share"))
    # each row carries its pair's stratum share
    kinds = overdue_pairs(sample).with_columns(
        want=pl.when("overdue").then(shares["overdue"]).otherwise(shares["current"]))
    got = sample.join(kinds, on=["debtor_id", "as_of"])
    assert (got["sampled_share"] == got["want"]).all()
    # 1 / share estimates each stratum's rows (and the late rate) of the whole table
    weight = 1.0 / got["sampled_share"].to_numpy()
    for overdue in (True, False):
        mask = got["overdue"].to_numpy() == overdue
        assert weight[mask].sum() == pytest.approx(counts["overdue" if overdue else "current"],
                                                   rel=0.2)
    known = got.filter(pl.col("y_late").is_not_null())
    rate = np.average(known["y_late"], weights=1.0 / known["sampled_share"].to_numpy())
    assert rate == pytest.approx(full["y_late"].drop_nulls().mean(), abs=0.05)
    # the same shares given instead of computed: the same sample (how Spark builds a bucket)
    assert_frame_equal(build_snapshots(tables, dates, horizon_days=HORIZON, seed=3,
                                       shares=shares), sample)


def test_unit_weights_change_no_metric():
    rng = np.random.default_rng(0)
    y, p = (rng.random(500) < 0.3).astype(float), rng.random(500)
    plain, weighted = binary_metrics(y, p), binary_metrics(y, p, np.ones(500))
    assert weighted == pytest.approx(plain)
    assert regression_metrics(y, p, np.ones(500)) == pytest.approx(regression_metrics(y, p))
