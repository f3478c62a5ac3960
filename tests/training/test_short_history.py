"""Short histories: a book of 60, 90 or 180 days trains, through the gate and the registry,
and says what it could not learn yet; one below ``train.required_history_days`` is refused
with the days it still needs (docs/models.md, "Short histories")."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from paycadence.config import load_params
from paycadence.errors import InputError
from paycadence.training import tracking
from paycadence.training.history import (
    days_until,
    fit_params,
    history_plan,
    plan_between,
    summary,
    value_ready,
)
from paycadence.training.snapshots import embargo_of, snapshots, time_split
from paycadence.training.valuerows import span_days

BIN = Path(sys.executable).parent / "paycadence"
START = dt.date(2024, 1, 1)
DEBTORS = 120


@pytest.fixture(scope="module")
def params():
    return load_params()


@pytest.fixture(scope="module")
def books():
    """A small simulated company over 60, 90 and 180 days (seeded)."""
    from paycadence.data.simulate import simulate

    return {days: simulate(DEBTORS, days=days, seed=3).tables for days in (60, 90, 180)}


@pytest.mark.parametrize(("days", "warmup", "every", "short"), [
    (60, 40, 1, True), (80, 60, 1, True), (90, 60, 7, True), (180, 60, 7, True),
    (365, 60, 7, False), (730, 60, 7, False)], ids=["60", "80", "90", "180", "365", "730"])
def test_a_short_history_is_snapshot_daily_after_a_shorter_warm_up(days, warmup, every, short,
                                                                   params):
    plan = plan_between(START, START + dt.timedelta(days=days - 1), params)
    assert (plan.days, plan.warmup_days, plan.every_days, plan.short) == (
        days, warmup, every, short)
    dates = plan.dates()
    assert dates[0] == START + dt.timedelta(days=warmup) and dates[-1] <= plan.last
    assert len(dates) >= params.features.min_snapshot_dates
    assert (plan.last - dates[0]).days + 1 >= params.features.short_snapshot_days


@pytest.mark.parametrize("days", [60, 90, 180])
def test_the_split_leaves_labelled_rows_on_both_sides(days, books, params):
    snaps, _ = snapshots(books[days], params)
    dates = snaps["as_of"].unique().sort().to_list()
    train_rows, holdout, split = time_split(snaps, holdout_share=params.train.holdout_share,
                                            embargo_days=params.train.embargo_days)
    embargo = embargo_of(dates, split, params.train.embargo_days)
    assert embargo == min(params.train.embargo_days, (split - dates[0]).days // 2)
    assert train_rows["as_of"].max() < split - dt.timedelta(days=embargo)
    for rows in (train_rows, holdout):
        assert rows.filter(pl.col("y_late").is_not_null()).height > 0


@pytest.mark.parametrize("days", [60, 90, 180])
def test_a_short_history_trains_and_says_what_it_could_not_learn(days, books, params,
                                                                 mlflow_uri):
    from paycadence.training import train

    name = f"short-history-{days}"
    result = train(books[days], params=params, model_name=name)
    card = result.models.card
    assert card["history"]["days"] == days and card["history"]["short"]
    assert result.train_rows > 0 and result.holdout_rows > 0
    assert np.isfinite(result.metrics["late_brier"])
    # none of these is followed long enough for the value model: the schedule decides
    assert result.models.value_model is None
    missing = card["not_learnt"]
    assert any("value model" in line and "schedule decides" in line for line in missing)
    more = days_until(history_plan(books[days], params), params,
                      lambda p: value_ready(p, params))
    assert more is not None and more > 0
    assert any(f"after about {more} more days" in line for line in missing)
    if days < 91 + 60:  # no snapshot day followed for the 13 weeks of the cash forecast
        assert any("p_unpaid_90d" in line for line in missing)
    lines = summary(card)
    assert lines[0].startswith(f"learnt from {days} days of history")
    assert all(line.startswith("not learnt yet: ") for line in lines[1:])
    # through the gate and the registry as any model: the smaller model's settings logged
    client = tracking.setup()
    assert result.alias == "champion"
    version = client.get_model_version(name, result.version)
    assert version.tags["history_days"] == str(days)
    assert "value model" in version.tags["not_learnt"]
    run = client.get_run(result.run_id)
    small = params.train.short_model
    assert run.data.params["train.num_leaves"] == str(small.num_leaves)
    assert run.data.params["train.min_child_samples"] == str(small.min_child_samples)


def test_a_long_history_is_fit_as_before(params):
    plan = plan_between(START, START + dt.timedelta(days=729), params)
    assert not plan.short and summary({"history": plan.card(), "not_learnt": []}) == []
    assert fit_params(params, plan) is params


def test_the_short_model_is_never_larger_than_the_usual_one(params):
    plan = plan_between(START, START + dt.timedelta(days=89), params)
    small = fit_params(params, plan).train
    assert (small.num_leaves, small.min_child_samples, small.n_estimators) == (4, 100, 150)
    quick = params.model_copy(update={"train": params.train.model_copy(
        update={"n_estimators": 40, "min_child_samples": 300, "num_leaves": 3})})
    small = fit_params(quick, plan).train
    assert (small.num_leaves, small.min_child_samples, small.n_estimators) == (3, 300, 40)
    off = params.model_copy(update={"train": params.train.model_copy(
        update={"short_model": None})})
    assert fit_params(off, plan) is off


@pytest.mark.parametrize(("days", "more"), [(41, 19), (59, 1), (1, 59)], ids=["41", "59", "1"])
def test_below_the_minimum_the_error_names_the_days_still_needed(days, more, params):
    from paycadence.data.simulate import simulate

    tables = simulate(30, days=days, seed=1).tables  # issues on its first and last day
    assert (tables.last_date - tables.invoices["issue_date"].min()).days + 1 == days
    with pytest.raises(InputError) as err:
        history_plan(tables, params)
    assert str(err.value) == (f"{days} days of history; at least 60 are needed to train "
                              f"({more} more days)")
    with pytest.raises(InputError, match=f"at least 60 are needed to train .{more} more"):
        snapshots(tables, params)  # the features stage refuses it the same way


def test_the_cli_says_how_much_more_history_is_needed(tmp_path, mlflow_uri):
    from paycadence.data.simulate import simulate, write_simulation

    write_simulation(simulate(30, days=41, seed=2), tmp_path / "book")
    done = subprocess.run([str(BIN), "train", "--data", str(tmp_path / "book")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri})
    assert done.returncode == 2
    assert done.stderr == ("error: 41 days of history; at least 60 are needed to train "
                           "(19 more days)\n")
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(("every", "want"), [(7, 7), (1, 1), (3, 3)])
def test_a_value_row_stands_for_the_days_to_the_next_snapshot(every, want):
    days = pl.Series([START + dt.timedelta(days=every * k) for k in range(5)] * 2)
    assert span_days(days) == want
    assert span_days(pl.Series([START])) == 7


def test_a_holdout_with_nothing_to_score_is_refused_saying_when_it_will_have(params):
    from paycadence.training.history import check_holdout

    plan = plan_between(START, START + dt.timedelta(days=59), params)
    split = plan.dates()[15]
    holdout = pl.DataFrame({"days_past_due": [-5.0, 3.0], "y_late": [None, 1.0],
                            "due_date": [plan.last + dt.timedelta(days=4), START]})
    with pytest.raises(InputError, match=(
            f"nothing to evaluate a model on: no invoice held out .snapshot days from {split}. "
            f"was due by {plan.last}, the data's last day; after 4 more days of history it "
            "will")):
        check_holdout(holdout, split, plan)
    check_holdout(holdout.with_columns(y_late=pl.lit(0.0)), split, plan)  # one is known
