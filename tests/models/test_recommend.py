"""Recommendations on the simulated company: contract-valid, explained, and rule-abiding."""

from __future__ import annotations

import datetime as dt
import re

import jsonschema
import numpy as np
import polars as pl
import pytest

from paycadence.config import Policy, Rules
from paycadence.features import invoice_features
from paycadence.guard import audit_actions
from paycadence.models import recommend


def audit_with_history(tables, recs, as_of, policy):
    """Violations by the actions recommended for ``as_of``, judged with the history before it
    (the history itself was logged under the default rules)."""
    history = tables.actions.filter(pl.col("sent_on") < as_of).to_dicts()
    new = [{"invoice_id": i, "sent_on": as_of, "channel": r["action"]}
           for r in recs if r["action"] != "wait" for i in r["invoice_ids"]]
    disputes = tables.disputes.filter(pl.col("opened_on") <= as_of).with_columns(
        pl.when(pl.col("resolved_on") <= as_of).then(pl.col("resolved_on")).alias("resolved_on")
    ).to_dicts()
    found = audit_actions(history + new, tables.invoices.to_dicts(), disputes,
                          tables.debtors.to_dicts(), policy)
    return [v for v in found if v.on == as_of]


@pytest.mark.parametrize("use_model", [True, False], ids=["champion", "fallback"])
def test_recommendations_are_valid_and_break_no_rule(trained, tables, response_schema,
                                                     use_model):
    policy = Policy()
    last = tables.last_date
    for back in (120, 60, 20, 0):
        as_of = last - dt.timedelta(days=back)
        recs = recommend(tables, as_of=as_of, policy=policy,
                         models=trained.models if use_model else None,
                         model_version=f"risk:{trained.version}" if use_model else "fallback")
        assert recs, "the simulated company has debtors with open invoices"
        jsonschema.validate({"recommendations": recs}, response_schema)
        assert audit_with_history(tables, recs, as_of, policy) == []
        for r in recs:
            assert r["explanation"] and all(e["text"] for e in r["explanation"])
            assert dt.date.fromisoformat(r["next_review_on"]) > as_of
            if r["action"] != "wait":
                assert r["invoice_ids"]
            for inv in r["invoices"]:
                assert dt.date.fromisoformat(inv["expected_settled_on"]) >= as_of


def test_stricter_rules_are_respected(trained, tables):
    policy = Policy(rules=Rules(min_days_between_contacts=10, max_contacts_per_30_days=2,
                                min_reminders_before_collection=3,
                                min_days_overdue_for_collection=60))
    as_of = tables.last_date
    recs = recommend(tables, as_of=as_of, policy=policy, models=trained.models)
    assert audit_with_history(tables, recs, as_of, policy) == []


def test_exploration_logs_exact_propensities(trained, tables):
    policy = Policy(exploration={"share": 0.5, "seed": 3})
    recs = recommend(tables, as_of=tables.last_date, policy=policy, models=trained.models)
    explored = [r for r in recs if r["explored"]]
    assert explored, "half the decisions explore"
    for r in recs:
        assert 0 < r["propensity"] <= 1
        if r["explored"]:
            assert r["propensity"] < 0.5
    again = recommend(tables, as_of=tables.last_date, policy=policy, models=trained.models)
    assert [r["action"] for r in again] == [r["action"] for r in recs], "draws are reproducible"
    for r in recs:
        probs = {a["action"]: a["probability"] for a in r["alternatives"]}
        assert abs(sum(probs.values()) - 1) < 1e-5 and probs[r["action"]] == r["propensity"]


def test_near_best_exploration_never_adds_a_contact_beyond_the_timing_budget(trained, tables):
    """Exploring varies the channel and day of the contacts the policy makes: with no timing
    budget, every debtor the greedy policy leaves alone today is left alone whatever the
    draws."""
    from paycadence.models.policy import CONTACTS

    as_of = tables.last_date
    greedy = recommend(tables, as_of=as_of, policy=Policy(exploration={
        "share": 0.0, "timing": 0.0}), models=trained.models, explain=False)
    for seed in range(4):
        explored = recommend(tables, as_of=as_of, policy=Policy(
            exploration={"share": 1.0, "seed": seed, "timing": 0.0}), models=trained.models,
            explain=False)
        for g, e in zip(greedy, explored, strict=True):
            if g["action"] == "wait":
                assert e["action"] == "wait" and e["propensity"] == 1.0
            elif g["action"] in CONTACTS:
                assert e["action"] in (*CONTACTS, "wait")


def test_explanations_name_real_features_with_their_shap_values(trained, tables):
    from paycadence.features import FEATURES

    recs = recommend(tables, as_of=tables.last_date, policy=Policy(), models=trained.models)
    for r in recs:
        for e in r["explanation"]:
            assert e["feature"] in FEATURES
        sizes = [abs(e["contribution"]) for e in r["explanation"]]
        assert sizes == sorted(sizes, reverse=True)


def test_each_reason_says_its_size_in_points_of_risk(trained, tables):
    """"paid 4 of the last 5 invoices late: +21 points of risk": the points are the calibrated
    p_late with the factor against without it, so they follow the contribution's sign and,
    for a lone factor, equal the whole move of p_late away from the base value."""
    from paycadence.models.recommend import points

    models = trained.models
    recs = recommend(tables, as_of=tables.last_date, policy=Policy(), models=models)
    seen = 0
    for r in recs:
        for e in r["explanation"]:
            if e["feature"] == "n_open" and not e["contribution"]:
                continue  # "no open invoice"
            seen += 1
            assert (e["points"] > 0) == (e["effect"] == "raises") or e["points"] == 0
            # the words say the direction and the figure the reason moves
            shown = f"{abs(e['points']):.1f}" if abs(e["points"]) < 1 else \
                f"{abs(e['points']):.0f}"
            assert re.search(rf"(: |, yet this ){e['effect']} (the risk of paying late|the "
                             rf"chance it is still unpaid a week from now) by {re.escape(shown)} "
                             r"points?$", e["text"]), e["text"]
    assert seen
    p = models.calibrator.apply
    raw, c = 0.4, 0.9
    expected = 100 * (p(np.array([1 / (1 + np.exp(-raw))]))[0]
                      - p(np.array([1 / (1 + np.exp(-(raw - c)))]))[0])
    assert points(models, raw, c) == pytest.approx(expected)
    assert points(models, raw, 0.0) == 0.0


def test_a_reason_reads_in_the_direction_of_its_sign_and_the_terms_of_its_figure():
    """Before: "pays late more often lately: 57 points above its long-run rate: −4 points of
    risk" and "481 days past due: −1 points of risk of paying late" (p_late of an overdue
    invoice is the chance it is still unpaid a week from now)."""
    from paycadence.models.recommend import _reason

    due = {"days_past_due": -5, "n_settled": 5, "n_late_last_5": 4}
    assert _reason("n_late_last_5", 0.8, due, 21.3)["text"] == (
        "paid 4 of the last 5 invoices late: raises the risk of paying late by 21 points")
    overdue = {"days_past_due": 481}
    assert _reason("days_past_due", -0.02, overdue, -1.04)["text"] == (
        "481 days past due: lowers the chance it is still unpaid a week from now by 1 point")
    trend = {"days_past_due": 0, "late_trend": 0.57}
    entry = _reason("late_trend", -0.1, trend, -4.2)
    assert entry["effect"] == "lowers" and entry["text"] == (
        "pays late more often lately: 57 points above its long-run rate, yet this lowers the "
        "risk of paying late by 4 points")
    assert _reason("late_trend", 0.1, trend, 4.2)["text"].endswith(
        "long-run rate: raises the risk of paying late by 4 points")


def test_disputed_invoices_are_never_named(trained, tables):
    as_of = tables.last_date
    recs = recommend(tables, as_of=as_of, policy=Policy(), models=trained.models)
    open_disputes = set(tables.disputes.filter(
        (pl.col("opened_on") <= as_of)
        & (pl.col("resolved_on").is_null() | (pl.col("resolved_on") > as_of)))["invoice_id"])
    for r in recs:
        assert not open_disputes & set(r["invoice_ids"])


def test_p_late_keeps_the_contracts_meaning_and_p_open_7d_says_the_rest(trained, tables):
    """CONTRACT.md §5: p_late is the probability of settling after the due date for every open
    invoice — 1.0 once one is past due — and "still unpaid 7 days from now" has its own field,
    the same booster's calibrated figure for an invoice past due (what its reasons explain)."""
    models = trained.models
    frame = invoice_features(tables, as_of=tables.last_date)
    f = models.predict_matrix(models.matrix(frame))
    overdue = frame["days_past_due"].to_numpy() > 0
    assert overdue.any() and (~overdue).any()
    assert np.all(f.p_late[overdue] == 1.0)
    assert np.array_equal(f.p_late[~overdue], f.risk[~overdue])
    assert np.array_equal(f.p_open_7d[overdue], f.risk[overdue])
    assert np.all((f.p_open_7d >= 0) & (f.p_open_7d <= 1))
    recs = recommend(tables, as_of=tables.last_date, policy=Policy(), models=models,
                     explain=False)
    by_id = dict(zip(frame["invoice_id"], zip(f.p_late, f.p_open_7d, strict=True), strict=True))
    seen = 0
    for r in recs:
        for i in r["invoices"]:
            assert (i["p_late"], i["p_open_7d"]) == pytest.approx(by_id[i["invoice_id"]],
                                                                  abs=1e-4)
            seen += 1
        assert 0 <= r["risk"]["p_open_7d"] <= 1
    assert seen


def test_each_meaning_of_the_booster_is_calibrated_on_its_own_rows():
    """Not yet due and past due are two figures: one calibration each, chosen on its rows."""
    from paycadence.models import calibration

    rng = np.random.default_rng(0)
    n = 4000
    overdue = rng.random(n) < 0.5
    p = rng.uniform(0.05, 0.95, n)
    # before due the raw score is right; past due the truth is its square (over-confident)
    truth = np.where(overdue, p ** 2, p)
    y = (rng.random(n) < truth).astype(float)
    order = np.arange(n)
    before, after = calibration.by_stage(p, y, order, overdue)
    grid = np.array([0.2, 0.5, 0.8])
    assert np.allclose(before.apply(grid), grid, atol=0.07)
    assert np.allclose(after.apply(grid), grid ** 2, atol=0.07)
    few, joint = calibration.by_stage(p, y, order, np.arange(n) < 20)  # 20 rows past due
    assert joint == calibration.choose(p, y, order)  # too few: the one chosen on all rows
    assert few != joint
