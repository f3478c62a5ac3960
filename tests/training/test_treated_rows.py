"""The response model's treated rows saved beside the snapshots: a seeded sample above the cap,
weighted back, and taken by ``train --features`` only for the split they were built for."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paycadence.config import FeatureParams, Params
from paycadence.errors import InputError
from paycadence.models.response import MAX_WEIGHT
from paycadence.training.train import (
    ROW_ORDER,
    SNAPSHOT_META,
    TREATED_FILE,
    acted_keys,
    action_pairs,
    load_snapshots,
    load_treated,
    response_rows_weighted,
    save_snapshots,
    snapshots,
    time_split,
    treated_rows,
)


def with_features(params: Params, **changes) -> Params:
    return params.model_copy(update={"features": FeatureParams(
        **(params.features.model_dump() | changes))})


def split_before(folder, tables, params: Params) -> dt.date:
    snaps = load_snapshots(folder, tables, params)
    _, _, split = time_split(snaps, holdout_share=params.train.holdout_share,
                             embargo_days=params.train.embargo_days)
    return split - dt.timedelta(days=params.train.embargo_days)


def test_saved_treated_rows_are_those_train_would_build(tables, small_params, tmp_path):
    folder, _ = save_snapshots(tables, small_params, tmp_path / "f")
    before = split_before(folder, tables, small_params)
    meta = json.loads((folder / SNAPSHOT_META).read_text())["treated"]
    assert meta["before"] == before.isoformat() and meta["share"] == 1.0
    saved = load_treated(folder, before=before, data_end=tables.last_date)
    built = treated_rows(tables, before=before, horizon_days=small_params.train.horizon_days,
                         data_end=tables.last_date)
    assert saved.height == meta["rows"] == meta["actions"] > 100
    assert_frame_equal(saved, built.sort(ROW_ORDER))


def test_treated_rows_of_another_split_are_built_again(tables, small_params, tmp_path):
    folder, _ = save_snapshots(tables, small_params, tmp_path / "f")
    before = split_before(folder, tables, small_params)
    other = before - dt.timedelta(days=7)  # e.g. train.holdout_share changed since
    assert load_treated(folder, before=other, data_end=tables.last_date) is None
    (folder / TREATED_FILE).write_bytes(b"not parquet")
    with pytest.raises(InputError, match="unreadable"):
        load_treated(folder, before=before, data_end=tables.last_date)


def test_sample_of_treated_rows_is_seeded_and_bounded(tables, small_params, tmp_path):
    cap = 1000  # the least max_snapshot_rows allows: about half the logged actions here
    assert sum(action_pairs(tables).values()) > 2 * cap
    params = with_features(small_params, max_snapshot_rows=cap)
    folder, _ = save_snapshots(tables, params, tmp_path / "f")
    meta = json.loads((folder / SNAPSHOT_META).read_text())["treated"]
    assert meta["share"] == pytest.approx(cap / meta["actions"]) and meta["share"] < 0.75
    assert 0.8 * cap < meta["rows"] < 1.2 * cap
    before = dt.date.fromisoformat(meta["before"])
    kw = {"before": before, "horizon_days": params.train.horizon_days,
          "data_end": tables.last_date, "seed": params.features.snapshot_seed}
    every = treated_rows(tables, **kw)
    half = treated_rows(tables, share=0.5, **kw)
    assert set(half["invoice_id", "as_of"].rows()) < set(every["invoice_id", "as_of"].rows())
    assert_frame_equal(half, treated_rows(tables, share=0.5, **kw))  # the same draw again
    assert treated_rows(tables, **(kw | {"seed": 1}), share=0.5)["invoice_id"].to_list() != \
        half["invoice_id"].to_list()


def test_sampled_treated_rows_weigh_one_over_their_share(tables, small_params):
    snaps, _ = snapshots(tables, small_params)
    train_rows, _, split = time_split(snaps, holdout_share=small_params.train.holdout_share,
                                      embargo_days=small_params.train.embargo_days)
    before = split - dt.timedelta(days=small_params.train.embargo_days)
    kw = {"before": before, "horizon_days": small_params.train.horizon_days,
          "data_end": tables.last_date, "seed": 0}
    every = response_rows_weighted(train_rows, treated_rows(tables, **kw))
    sample = treated_rows(tables, share=0.25, **kw)
    with pytest.raises(ValueError, match="keys of every logged action"):
        response_rows_weighted(train_rows, sample)
    rows = response_rows_weighted(train_rows, sample, acted_keys(tables, before))
    # the waited rows are the same: a snapshot named by an action left out is not "waited"
    waited = rows.filter(pl.col("action") == "wait")
    assert_frame_equal(waited, every.filter(pl.col("action") == "wait"))
    acted = rows.filter(pl.col("action") != "wait")
    n_every = every.filter(pl.col("action") != "wait").height
    assert 0.15 * n_every < acted.height < 0.35 * n_every
    assert acted["weight"].min() >= 4.0 and acted["weight"].max() <= 4.0 * MAX_WEIGHT
    # the weighted count of treated rows estimates the whole log's
    full = every.filter(pl.col("action") != "wait")["weight"].sum()
    assert acted["weight"].sum() == pytest.approx(full, rel=0.25)
