"""The value model's rows, read off a book small enough to check by hand, and its fit on a
simulated one."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from paycadence.data import Tables
from paycadence.features import FEATURES
from paycadence.training.valuerows import continuation_rows, day_rows, support

D = dt.date


def _book() -> Tables:
    """One invoice of 100 due 31 January: an email on 5 February (an exploring draw, logged
    with propensity 0.04), a letter on 12 February (no propensity), 40 paid on 10 February
    and 60 on the 20th; a second invoice handed over on 1 April, 30 of its 50 recovered on
    1 May."""
    return Tables.from_frames(
        debtors=pl.DataFrame({"debtor_id": ["D"]}),
        invoices=pl.DataFrame({
            "invoice_id": ["A", "B"], "debtor_id": ["D", "D"],
            "issue_date": [D(2024, 1, 1), D(2024, 1, 1)],
            "due_date": [D(2024, 1, 31), D(2024, 1, 31)], "amount": [100.0, 50.0]}),
        payments=pl.DataFrame({"invoice_id": ["A", "A", "B"],
                               "paid_on": [D(2024, 2, 10), D(2024, 2, 20), D(2024, 5, 1)],
                               "amount": [40.0, 60.0, 30.0]}),
        actions=pl.DataFrame({"invoice_id": ["A", "A", "B"],
                              "sent_on": [D(2024, 2, 5), D(2024, 2, 12), D(2024, 4, 1)],
                              "channel": ["email", "letter", "collection"],
                              "propensity": [0.04, None, 0.95]}),
    )


def _snaps() -> pl.DataFrame:
    days = [D(2024, 1, 29) + dt.timedelta(days=7 * k) for k in range(16)]
    rows = [{"invoice_id": i, "debtor_id": "D", "as_of": d, "due_date": D(2024, 1, 31),
             "open_amount": a, **dict.fromkeys(FEATURES, 0.0)}
            for i, a in (("A", 100.0), ("B", 50.0)) for d in days]
    return pl.DataFrame(rows)


def test_each_day_has_its_share_paid_and_its_contacts_so_far():
    rows, hand = day_rows(_book(), _snaps(), before=D(2024, 12, 1))
    a = {r["day"]: r for r in rows.filter(pl.col("invoice_id") == "A").to_dicts()}
    assert a[D(2024, 2, 10)]["y"] == pytest.approx(0.4)
    assert a[D(2024, 2, 20)]["y"] == pytest.approx(1.0)  # 60 of the 60 still open
    assert a[D(2024, 2, 4)]["reminders_invoice"] == 0
    assert a[D(2024, 2, 5)]["days_since_contact_invoice"] == 0  # the day's own action
    assert a[D(2024, 2, 5)]["last_channel"] == 0  # email
    assert a[D(2024, 2, 14)]["last_channel"] == 2 and a[D(2024, 2, 14)]["reminders_invoice"] \
        == 2
    assert a[D(2024, 2, 7)]["days_past_due"] == 7
    # invoice A's days end with its settlement, B's the day before its hand-over
    assert max(a) == D(2024, 2, 20)
    assert max(rows.filter(pl.col("invoice_id") == "B")["day"]) <= D(2024, 3, 31)  # thinned
    assert hand.height == 1 and hand["open_then"][0] == pytest.approx(50.0)
    assert hand["paid"][0].to_list() == [30.0] and hand["days_after"][0].to_list() == [30]


def test_the_continuation_counts_what_followed_and_the_agency_net_of_its_fee():
    rows = continuation_rows(_book(), _snaps(), before=D(2024, 12, 1), fee_rate=0.15,
                             annual_rate=0.0)
    by = rows.with_columns(pl.Series("n", range(rows.height)))
    assert by.height > 0
    ys = sorted(set(np.round(rows["y"].to_numpy(), 6)))
    # A before its payments: all 100 of 100; B before its hand-over: 30 × 0.85 of 50
    assert 1.0 in ys and pytest.approx(30 * 0.85 / 50) in ys


def test_support_counts_only_exploring_decisions_by_band():
    counts = support(_book(), before=D(2024, 12, 1))
    assert counts["email"][1] == 1  # drawn against the logging policy, 5 days past due
    # what the log explored, of any action, by band and earlier contacts: the email was the
    # invoice's first contact, 5 days past due
    assert counts["explored"][4] == 1 and sum(counts["explored"]) == 1
    assert sum(counts["letter"]) == 0  # no propensity: a policy that did not randomise
    assert sum(counts["collection"]) == 0  # the logging policy's own choice (0.95)


def test_the_payment_model_is_learnt_once_from_each_half_of_the_debtors(tmp_path):
    """Every debtor's days fall in one half; the value is the mean of the two halves' and the
    gap half their difference on each action's advantage over waiting; the second model is
    saved and read back with the bundle."""
    from paycadence.config import Params, Policy
    from paycadence.data.simulate import simulate
    from paycadence.models import RiskModels
    from paycadence.models.policy.value import VALUE_COLUMNS, VALUED, rolled_values
    from paycadence.training.fitting import fit_models
    from paycadence.training.valuerows import halves

    ids = pl.Series("debtor_id", ["a", "b", "a", "c", "d", "b", "e"])
    first = halves(ids, seed=3)
    assert first.sum() in (3, 4)  # rows of 3 of the 5 debtors
    by_debtor = pl.DataFrame({"d": ids, "first": first}).group_by("d").agg(
        pl.col("first").n_unique())
    assert (by_debtor["first"] == 1).all()
    assert halves(ids, seed=3).equals(first)  # the same draw for the same seed

    book = simulate(60, days=300, seed=4).tables
    models = fit_models(book, Params(), Policy())
    value = models.value_model
    assert value is not None and value.rate_b is not None
    X = np.zeros((3, len(VALUE_COLUMNS)))
    X[:, VALUE_COLUMNS.index("days_past_due")] = [-3, 10, 40]
    X[:, VALUE_COLUMNS.index("last_channel")] = np.nan
    a, b = rolled_values((value.rate, value.rate_b), value.after, X, VALUED, 0.08, value.cap)
    mean, gaps = value.per_unit_gaps(X, 0.08)
    for action in VALUED:
        assert mean[action] == pytest.approx((a[action] + b[action]) / 2)
    assert gaps["phone"] == pytest.approx(
        ((a["phone"] - a["wait"]) - (b["phone"] - b["wait"])) / 2)
    assert np.abs(gaps["phone"]).max() > 0  # two models learnt from different debtors

    # the rolled days and the hazard's bins are read a block at a time
    # (paycadence.models.forest): LightGBM's own numbers, on the book's own invoices
    from paycadence.features import invoice_features
    from paycadence.models import forest
    from paycadence.models.hazard import N_BINS, every_bin
    from paycadence.models.policy.value import GRID, rolled_rows

    feats = invoice_features(book, as_of=book.last_date - dt.timedelta(days=30))
    M = models.matrix(feats)
    rows = np.vstack([rolled_rows(np.column_stack([M, feats["last_channel"].to_numpy()]), a,
                                  cap=value.cap) for a in VALUED])
    for rate in (value.rate, value.rate_b):
        assert forest.forest_of(rate.booster_) is not None
        assert np.array_equal(rate.predict(rows, block=len(GRID)), rate.booster_.predict(rows))
    bins = every_bin(M, feats["days_past_due"].to_numpy())
    hazard = models.boosters["hazard"]
    assert np.array_equal(forest.predict(hazard, bins, N_BINS), hazard.predict(bins))

    back = RiskModels.load(models.save(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rate_b.txt").is_file()
    again, again_gaps = back.value_model.per_unit_gaps(X, 0.08)
    assert again["email"] == pytest.approx(mean["email"])
    assert again_gaps["email"] == pytest.approx(gaps["email"])


def test_value_rounds_follow_the_training_bound_and_are_150_with_the_shipped_params():
    """The value model boosts half of ``train.n_estimators``: 150 rounds at learning rate 0.1
    with the shipped params (as before the rounds followed the params), fewer in quick runs."""
    from paycadence.config import Params, TrainParams, load_params
    from paycadence.models.policy.value import Continuation, PaymentRate, Recovery
    from paycadence.training.fitting import value_rounds

    assert value_rounds(load_params().train) == value_rounds(Params().train) == 150
    assert PaymentRate().n_estimators == Continuation().n_estimators == 150
    assert Recovery().n_estimators == 150 and PaymentRate().params["learning_rate"] == 0.1
    small = TrainParams(**(Params().train.model_dump() | {"n_estimators": 80}))
    assert value_rounds(small) == 40
    assert value_rounds(TrainParams(**(small.model_dump() | {"n_estimators": 1}))) == 1
