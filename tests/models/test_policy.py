"""The policy package: valued actions, deviation only where the log supports it, exploration
with exact propensities over channel and timing, and the value model's arithmetic."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from paycadence.config import Policy
from paycadence.guard import DebtorState, InvoiceState
from paycadence.models.policy import BookValues, decide
from paycadence.models.policy.value import (
    BANDS,
    GRID,
    HORIZON_DAYS,
    REMINDER_BUCKETS,
    VALUE_COLUMNS,
    VALUED,
    band_of,
    explored_slot,
    flows,
    rolled_rows,
)

D0 = dt.date(2025, 3, 3)
AT = {f: k for k, f in enumerate(VALUE_COLUMNS)}


def _quiet(**learning) -> Policy:
    return Policy(exploration={"share": 0.0, "timing": 0.0}, learning=learning)


def _debtor(past_due=20, contacts=1, amount=800.0, last_contact=10, debtor="D"):
    inv = InvoiceState("I0", D0 - dt.timedelta(days=past_due), amount, contacts)
    days = () if last_contact is None else (D0 - dt.timedelta(days=last_contact),)
    return DebtorState(debtor, (inv,), days, frozenset())


def _values(per_unit: dict, support: float = 1e6) -> BookValues:
    return BookValues({"I0": per_unit}, {a: [support] * len(BANDS)
                                         for a in (*VALUED[1:], "collection")})


BASE = dict.fromkeys((*VALUED, "collection"), 0.5)


def test_a_supported_better_action_replaces_the_schedules_with_its_values_in_the_reason():
    state = _debtor(past_due=20)  # the schedule waits until day 18's reminder... it is due
    choice = decide(state, D0, _quiet(), _values(BASE | {"phone": 0.53, "email": 0.501}))
    assert choice.action == "phone"  # 800 × 0.03 − 6.00 = +18.00 against email's +0.75
    assert choice.reason.startswith("learnt from this book's log: phone is worth +18.00")
    assert "the schedule's email" in choice.reason
    assert choice.worth == pytest.approx(18.0)


def test_where_the_two_halves_payment_models_disagree_the_schedule_is_kept():
    state = _debtor(past_due=20)
    gain = BASE | {"phone": 0.53, "email": 0.501}
    # phone is +17.25 ahead of email; each half's advantage is value ± gap (800 × gap)
    unsure = _values(gain)
    unsure.gaps["I0"] = {"phone": 0.025, "email": 0.0}  # halves: +38.00 and −2.00 for phone
    choice = decide(state, D0, _quiet(), unsure)
    assert choice.action == "email"
    assert "the schedule's action is kept: phone looks worth +17.25 more" in choice.reason
    assert "differ by ±20.00" in choice.reason
    sure = _values(gain)
    sure.gaps["I0"] = {"phone": 0.02, "email": 0.0}  # halves: +34.00 and +2.00: both find it
    choice = decide(state, D0, _quiet(), sure)
    assert choice.action == "phone" and "differ by ±16.00" in choice.reason
    # the same gap on both actions cancels: both halves rank them alike
    alike = _values(gain)
    alike.gaps["I0"] = {"phone": 0.02, "email": 0.02}
    assert decide(state, D0, _quiet(), alike).action == "phone"
    # ... but a call that only surely beats the schedule's email, not waiting (+18.00 ± 40.00),
    # is no reason to escalate: with waiting not surely better than the email either, the
    # schedule's email stays
    alike.gaps["I0"] = {"phone": 0.05, "email": 0.05}
    choice = decide(state, D0, _quiet(), alike)
    assert choice.action == "email"
    assert "but against waiting only +18.00" in choice.reason


def test_an_action_better_than_the_schedules_but_not_than_waiting_makes_the_policy_wait():
    """The schedule hands over; a letter surely beats that, but not waiting, and waiting surely
    beats the hand-over too: the policy waits."""
    state = _debtor(past_due=60, contacts=3)
    values = _values(BASE | {"collection": 0.3, "letter": 0.51})
    values.gaps["I0"] = {"letter": 0.02, "collection": 0.01}  # letter +6.50 ± 16.00 vs waiting
    choice = decide(state, D0, _quiet(), values)
    assert choice.action == "wait"
    assert choice.reason.startswith("learnt from this book's log: waiting is worth +0.00")
    assert "letter looks worth" in choice.reason and "against waiting only +6.50" in choice.reason
    # both halves sure of the letter against waiting: the letter it is
    values.gaps["I0"] = {"letter": 0.005, "collection": 0.01}
    assert decide(state, D0, _quiet(), values).action == "letter"


def test_an_unsupported_better_action_leaves_the_best_supported_one():
    state = _debtor(past_due=20)
    values = _values(BASE | {"phone": 0.53, "sms": 0.51, "email": 0.501})
    values.support["phone"] = [5.0] * len(BANDS)
    choice = decide(state, D0, _quiet(), values)
    assert choice.action == "sms"  # 800 × 0.01 − 0.15 = +7.85, supported; phone is not
    assert "phone looks worth +18.00 but the log has only 5" in choice.reason
    values.support["sms"] = [0.0] * len(BANDS)
    assert decide(state, D0, _quiet(), values).action == "email"  # the schedule's


def test_without_support_for_the_schedules_own_action_the_schedule_decides():
    state = _debtor(past_due=20)
    choice = decide(state, D0, _quiet(), _values(BASE | {"phone": 0.53}, support=5))
    assert choice.action == "email"  # the schedule's second reminder
    assert "the schedule's action is kept" in choice.reason and "5 exploring" in choice.reason


def test_the_schedules_own_action_is_supported_by_what_the_log_explored_in_its_band():
    """The contrast with the schedule's action is what the log explored there, whatever it
    drew: a book whose logging policy never drew the schedule's own action against itself (a
    hand-over, say) can still learn to do otherwise where it explored."""
    state = _debtor(past_due=20)
    values = _values(BASE | {"phone": 0.53}, support=5)  # 5 exploring emails: too few
    values.support["phone"] = [40.0] * len(BANDS)
    # ... but 40 exploring decisions there about invoices contacted once before (the debtor's)
    explored = [0.0] * (len(BANDS) * REMINDER_BUCKETS)
    explored[explored_slot(band_of(20), 1)] = 40.0
    values.support["explored"] = explored
    choice = decide(state, D0, _quiet(), values)
    assert choice.action == "phone"
    assert "40 exploring decisions of phone and 40 of any action about invoices reminded as " \
        "often" in choice.reason
    explored[explored_slot(band_of(20), 1)] = 12.0
    explored[explored_slot(band_of(20), 2)] = 400.0  # reminded twice: not this invoice's state
    choice = decide(state, D0, _quiet(), values)
    assert choice.action == "email"
    assert "the log has 12 exploring decisions about invoices reminded as often in this band" \
        in choice.reason


def test_waiting_replaces_a_reminder_that_costs_more_than_it_brings():
    state = _debtor(past_due=20)  # 800 × 0.00001 = 0.008 in, for a reminder costing more
    choice = decide(state, D0, _quiet(), _values(BASE | {"email": 0.50001, "sms": 0.4}))
    assert choice.action == "wait"  # a learnt difference in money in, smaller than its cost
    choice = decide(state, D0, _quiet(), _values(BASE | {"email": 0.4999}))
    assert choice.action == "wait" and choice.invoice_ids == ()  # it even loses money in
    assert "waiting is worth +0.00" in choice.reason


def test_a_saved_cost_alone_does_not_replace_the_schedules_reminder():
    """Where the payment models see the reminder bring in nothing more than waiting, waiting
    would only save its cost: the schedule's reminder is kept; a learnt difference in the money
    coming in is what moves the policy."""
    state = _debtor(past_due=20)
    choice = decide(state, D0, _quiet(), _values(BASE))  # email brings exactly what waiting does
    assert choice.action == "email"
    assert "saves its cost" in choice.reason and "no learnt difference" in choice.reason
    # the reminder lowering what comes in (contacts that annoy): waiting is learnt, and taken
    choice = decide(state, D0, _quiet(), _values(BASE | {"email": 0.49}))
    assert choice.action == "wait" and choice.reason.startswith("learnt from this book's log")


def test_a_reminder_before_the_due_date_when_the_log_supports_it():
    state = _debtor(past_due=-5, contacts=0, last_contact=None)
    gain = BASE | {"sms": 0.52}
    assert decide(state, D0, _quiet(), _values(gain)).action == "sms"
    assert decide(state, D0, _quiet(), _values(gain, support=0)).action == "wait"
    assert decide(state, D0, _quiet(before_due_days=3), _values(gain)).action == "wait"


def test_a_hand_over_is_decided_by_value_against_waiting():
    state = _debtor(past_due=60, contacts=3)
    # agency recovers 0.6 of 800 less 15 %: 408 − 25 = 383 against waiting's 0.5 × 800 = 400
    keep = decide(state, D0, _quiet(), _values(BASE | {"collection": 0.6}))
    assert keep.action != "collection"
    hand = decide(state, D0, _quiet(), _values(BASE | {"collection": 0.7}))
    assert hand.action == "collection"  # 476 − 25 = 451 > 400
    assert hand.worth == pytest.approx(800 * (0.7 * 0.85 - 0.5) - 25)


def test_a_declined_hand_over_asked_again_later_is_supported_where_the_schedule_takes_it():
    """The schedule asks for a hand-over every day from its collection day on. Not taken on
    that day (waiting was surely better), it is asked again at 120 days past due, where the log
    — which followed the schedule — has no invoice left: the decision is the same one, so the
    log's exploration of it counts where the schedule takes it, and the policy keeps waiting
    instead of handing over late for want of support."""
    policy = _quiet()
    explored = [0.0] * (len(BANDS) * REMINDER_BUCKETS)
    explored[explored_slot(band_of(policy.schedule.collection), 3)] = 40.0  # at 50 days
    values = _values(BASE | {"collection": 0.3})  # 0.3 × 0.85 × 800 − 25 < 0.5 × 800
    values.support["explored"] = explored
    late = _debtor(past_due=120, contacts=3, last_contact=40)
    choice = decide(late, D0, policy, values)
    assert choice.action == "wait" and choice.reason.startswith("learnt from this book's log")
    # a reminder step is counted at its own day the same way: reminder 2 asked at 30 days
    explored[explored_slot(band_of(policy.schedule.second_reminder), 1)] = 40.0
    skipped = _debtor(past_due=30, contacts=1, last_contact=28)
    annoying = _values(BASE | {"email": 0.49, "sms": 0.49, "letter": 0.49, "phone": 0.49})
    annoying.support["explored"] = explored
    assert explored[explored_slot(band_of(30), 1)] == 0.0  # nothing explored at 30 days
    choice = decide(skipped, D0, policy, annoying)
    assert choice.action == "wait" and choice.reason.startswith("learnt from this book's log")
    # without the log's exploration at the collection day, the schedule still decides
    explored[explored_slot(band_of(policy.schedule.collection), 3)] = 0.0
    choice = decide(late, D0, policy, values)
    assert choice.action == "collection" and "the schedule's action is kept" in choice.reason
    assert "where the schedule takes this step (50 days past due)" in choice.reason


def test_a_book_without_propensities_gets_the_schedule_and_explores_its_timing():
    """No logged randomised decision: every day is the schedule's, plus exploration."""
    policy = Policy(exploration={"share": 0.05, "timing": 0.2, "seed": 3})
    values = _values(BASE | {"phone": 0.9}, support=0)
    drawn, waits = 0, 0
    for k in range(400):
        state = _debtor(past_due=5, contacts=1, last_contact=None, debtor=f"D{k}")
        choice = decide(state, D0, policy, values)
        probs = {a: p for a, (p, _) in choice.options.items()}
        assert probs["wait"] == pytest.approx(0.8)
        assert sum(p for a, p in probs.items() if a != "wait") == pytest.approx(0.2)
        drawn += choice.action != "wait"
        waits += choice.reason.startswith("no reminder due") or "following" in choice.reason
        assert choice.explored == (choice.action != "wait")
    # 400 draws at 0.2: within ±4 binomial standard deviations (8.0)
    assert abs(drawn - 80) <= 32
    assert waits == 400 - drawn


def test_exploration_skips_the_options_the_log_already_supports():
    """Where the log has enough exploring decisions of an option in its band, that option is
    not drawn and its chance stays with the choice; the others keep theirs, exactly."""
    policy = Policy(exploration={"share": 0.05, "timing": 0.2, "seed": 3})
    thin = _values(BASE | {"phone": 0.9}, support=0)
    state = _debtor(past_due=5, contacts=1, last_contact=None)
    full = {a: p for a, (p, _) in decide(state, D0, policy, thin).options.items()}
    rich = _values(BASE | {"phone": 0.9}, support=0)
    rich.support["sms"] = [40.0] * len(BANDS)  # sms is well known in every band
    rich.support["letter"] = [40.0] * len(BANDS)
    drawn = 0
    for k in range(400):
        choice = decide(_debtor(past_due=5, contacts=1, last_contact=None, debtor=f"D{k}"),
                        D0, policy, rich)
        probs = {a: p for a, (p, _) in choice.options.items()}
        assert "sms" not in probs and "letter" not in probs
        assert probs["wait"] == pytest.approx(full["wait"] + full["sms"] + full["letter"])
        for a in probs.keys() - {"wait"}:
            assert probs[a] == pytest.approx(full[a])
        assert sum(probs.values()) == pytest.approx(1.0)
        assert choice.action not in ("sms", "letter")
        drawn += choice.action != "wait"
    expected = 400 * (1 - probs["wait"])
    assert abs(drawn - expected) <= 4 * math.sqrt(expected) + 1


def test_rolled_rows_take_the_action_today_and_age_the_invoice():
    X = np.full((1, len(VALUE_COLUMNS)), 1.0)
    X[0, AT["days_past_due"]] = 10
    X[0, AT["days_since_contact_invoice"]] = np.nan
    X[0, AT["as_of_weekday"]] = 7
    waited = rolled_rows(X, "wait")
    assert waited[:, AT["days_past_due"]].tolist() == (10 + GRID).tolist()
    assert np.isnan(waited[:, AT["days_since_contact_invoice"]]).all()
    assert waited[1, AT["as_of_weekday"]] == 1  # Sunday, then Monday
    phoned = rolled_rows(X, "phone")
    assert phoned[:, AT["days_since_contact_invoice"]].tolist() == GRID.tolist()
    assert (phoned[:, AT["reminders_invoice"]] == 2).all()
    assert (phoned[:, AT["last_channel"]] == 3).all()
    capped = rolled_rows(X, "wait", cap=20)
    assert capped[:, AT["days_past_due"]].max() == 20


def test_flows_of_a_constant_rate_are_the_closed_form():
    r, rate = 0.01, 0.08
    paid, still = flows(np.full((1, len(GRID)), r), rate)
    d = math.exp(-rate / 365)
    expected = sum((1 - r) ** t * r * d ** t for t in range(HORIZON_DAYS))
    assert paid[0] == pytest.approx(expected)
    assert still[0] == pytest.approx((1 - r) ** HORIZON_DAYS)


def test_a_real_export_without_propensities_gets_the_schedule_plus_exploration():
    """A simulated book whose actions lost their propensity column, as real exports do: the
    value model is learnt, no action has support, so no decision departs from the schedule;
    the decisions still explore, and log what they explored with exact propensities."""
    import polars as pl

    from paycadence.config import Params
    from paycadence.data.simulate import simulate
    from paycadence.models import recommend
    from paycadence.training.fitting import fit_models

    book = simulate(80, days=300, seed=5).tables
    book = type(book)(**{**dict(book.items()), "actions": book.actions.with_columns(
        propensity=pl.lit(None, dtype=pl.Float64))})
    models = fit_models(book, Params())
    assert models.value_model is not None
    assert all(n == 0 for counts in models.value_model.support.values() for n in counts)
    policy = Policy(exploration={"share": 0.3, "timing": 0.3})
    recs = []
    for back in range(0, 60, 3):
        day = book.last_date - dt.timedelta(days=back)
        recs += recommend(book, as_of=day, policy=policy, models=models, explain=False)
    assert not any(r["reason"].startswith("learnt from this book's log") for r in recs)
    explored = [r for r in recs if r["explored"]]
    assert explored and all(0 < r["propensity"] < 1 for r in explored)
    assert any(r["action"] != "wait" and r["explored"] for r in recs)
