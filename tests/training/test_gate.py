"""Promotion by value: the gate's two rules, its fallback without a decision log, and what a
training run records and ``paycadence models`` prints (real MLflow, real training)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import Params, TrainParams, get_settings
from paycadence.training import tracking, train
from paycadence.training.train import gate

CHAMPION = {"champion_late_auc": 0.80, "champion_late_brier": 0.15,
            "champion_ope_dr": 12.0, "champion_ope_dr_low": 9.5, "champion_ope_dr_high": 14.0}
GOOD = {"late_auc": 0.81, "late_brier": 0.14, "ope_decisions": 812.0}


def with_train(params: Params, **changes) -> Params:
    return params.model_copy(update={"train": TrainParams(
        **(params.train.model_dump() | changes))})


@pytest.mark.parametrize(("low", "promoted"), [(10.0, True), (9.5, True), (9.0, False)],
                         ids=["higher", "equal", "lower"])
def test_value_rule_compares_the_doubly_robust_lower_bounds(small_params, low, promoted):
    ok, why = gate(GOOD | {"ope_dr_low": low}, CHAMPION, small_params)
    assert ok is promoted, why
    assert f"lower bound {low:,.2f}" in why and "champion's 9.50" in why  # both bounds named
    assert "812 holdout decisions" in why
    if promoted:
        assert why.startswith("promoted by the value and forecast rules"), why
    else:
        assert why.startswith("stays challenger by the value rule"), why
        assert "forecast rule holds" in why


def test_forecast_rule_still_applies_when_the_value_rule_holds(small_params):
    ok, why = gate({"late_auc": 0.79, "late_brier": 0.14, "ope_dr_low": 11.0}, CHAMPION,
                   small_params)
    assert not ok and why.startswith("stays challenger by the forecast rule"), why
    assert "AUC 0.7900 < champion's 0.8000" in why and "value rule holds" in why
    ok, why = gate({"late_auc": 0.79, "late_brier": 0.14, "ope_dr_low": 1.0}, CHAMPION,
                   small_params)
    assert not ok and why.startswith("stays challenger by the value and forecast rules"), why


@pytest.mark.parametrize(("champion_low", "low", "promoted"),
                         [(9.5, 8.6, True), (9.5, 8.5, False), (-2.0, -2.1, True)],
                         ids=["within", "beyond", "negative"])
def test_margin_is_a_share_of_the_champions_lower_bound(small_params, champion_low, low,
                                                         promoted):
    params = with_train(small_params, gate_ope_margin=0.1)
    ok, why = gate(GOOD | {"ope_dr_low": low}, CHAMPION | {"champion_ope_dr_low": champion_low},
                   params)
    assert ok is promoted, why
    assert "− 10%" in why


@pytest.mark.parametrize(("scores", "champion", "params_change", "says"), [
    (GOOD, CHAMPION, {}, "no logged decisions with propensities in the holdout"),
    (GOOD | {"ope_dr_low": 1.0}, {"champion_late_auc": 0.80, "champion_late_brier": 0.15}, {},
     "the champion's value could not be estimated"),
    (GOOD | {"ope_dr_low": 1.0}, CHAMPION, {"gate_ope_margin": None},
     "train.gate_ope_margin is null, the value rule is off"),
    (GOOD | {"ope_dr_low": float("nan")}, CHAMPION, {}, "not finite"),
], ids=["no-decisions", "champion-not-valued", "rule-off", "not-finite"])
def test_without_the_value_rule_the_forecast_rule_decides_and_says_why(
        small_params, scores, champion, params_change, says):
    params = with_train(small_params, **params_change) if params_change else small_params
    ok, why = gate(scores, champion, params)
    assert ok and why.startswith("promoted by the forecast rule alone"), why
    assert says in why
    ok, why = gate(scores | {"late_brier": 0.2}, champion, params)
    assert not ok and why.startswith("stays challenger by the forecast rule alone"), why
    assert says in why and "Brier 0.2000 > champion's 0.1500" in why


def test_first_and_unscorable_champions_as_before(small_params):
    assert gate(GOOD | {"ope_dr_low": 1.0}, None, small_params) == (
        True, "first model (or none comparable): it becomes champion")
    ok, why = gate(GOOD | {"ope_dr_low": 1.0},
                   CHAMPION | {"champion_late_auc": float("nan")}, small_params)
    assert ok and "could not be scored" in why


def dr(m: dict, prefix: str) -> str:
    """How ``paycadence models`` prints a recorded estimate."""
    return (f"{m[f'{prefix}dr']:,.2f} ({m[f'{prefix}dr_low']:,.2f} … "
            f"{m[f'{prefix}dr_high']:,.2f})")


def test_two_trainings_record_both_estimates_and_models_prints_them(
        tables, sim_dir, small_params, mlflow_uri, monkeypatch):
    name = "paycadence-value-gate"
    fast = with_train(small_params, n_estimators=30, ope_max_debtors=40)  # a quick test
    first = train(tables, params=fast, data_dir=str(sim_dir), model_name=name)
    assert first.alias == "champion" and first.reason.startswith("first model")
    second = train(tables, params=with_train(fast, num_leaves=7), data_dir=str(sim_dir),
                   model_name=name)
    m = second.metrics
    # the champion (version 1) valued on the very same holdout decisions
    assert m["champion_ope_decisions"] == m["ope_decisions"] > 0
    assert m["champion_ope_dr"] == pytest.approx(first.metrics["ope_dr"])
    assert m["champion_ope_dr_low"] <= m["champion_ope_dr"] <= m["champion_ope_dr_high"]
    assert f"lower bound {m['ope_dr_low']:,.2f}" in second.reason
    assert f"champion's {m['champion_ope_dr_low']:,.2f}" in second.reason
    if second.alias == "champion":
        assert m["ope_dr_low"] >= m["champion_ope_dr_low"]
    elif "by the value rule" in second.reason:
        assert m["ope_dr_low"] < m["champion_ope_dr_low"]

    client = tracking.setup()
    run = client.get_run(second.run_id)
    tags = client.get_model_version(name, second.version).tags
    for key in tracking.VALUE_TAGS:
        assert run.data.metrics[key] == pytest.approx(m[key])
        assert float(tags[key]) == pytest.approx(m[key], abs=1e-6)
    assert tags[tracking.COMPARED_TAG] == run.data.tags[tracking.COMPARED_TAG] == first.version
    assert tags["promotion"] == run.data.tags["promotion"] == second.reason

    monkeypatch.setenv("PAYCADENCE_MODEL_NAME", name)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["models"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "DR value (95%)" in out and "champion's DR, same decisions" in out
    assert dr(first.metrics, "ope_") in out  # version 1: its own estimate, no champion's
    assert dr(m, "ope_") in out and f"v{first.version}: {dr(m, 'champion_ope_')}" in out
    # under each version's value, its gain over the logging policy with the paired interval
    assert (f"vs log {m['ope_gain']:+,.2f} ({m['ope_gain_low']:+,.2f} … "
            f"{m['ope_gain_high']:+,.2f})") in out
