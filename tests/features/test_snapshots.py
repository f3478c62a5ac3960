"""The training snapshot table: every open invoice on every date, or a fixed sample of
(debtor, date) pairs when the book is too large, always exactly what each date's call gives."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paycadence.features import build_snapshots, invoice_features, label, snapshot_dates
from paycadence.features.snapshots import snapshot_points

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
