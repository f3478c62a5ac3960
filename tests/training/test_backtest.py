"""The backtest: three policies on one company, the learnt one through recommend, no rule
broken."""

from __future__ import annotations

import pytest

from paycadence.config import Params, TrainParams
from paycadence.training.backtest import run_backtest

HEARD: list[tuple] = []


@pytest.fixture(scope="module")
def result():
    base = Params()
    params = base.model_copy(update={"train": TrainParams(**(base.train.model_dump() | {
        "n_estimators": 60}))})
    return run_backtest(25, 240, 3, params=params, ope=True,
                        progress=lambda what, done=None, total=None: HEARD.append(
                            (what, done, total)))


def test_progress_is_reported_phase_by_phase(result):
    phases = [done for _, done, total in HEARD if total == 6]
    assert phases == sorted(phases) and {0, 1, 2, 3, 4, 5} <= set(phases)
    assert any("under the learnt policy" in what for what, _, _ in HEARD)
    checked = [done for what, done, total in HEARD if what.startswith("off-policy check")]
    assert checked == sorted(checked) and all(d <= result.ope.decisions for d in checked)


def test_three_policies_no_rule_broken(result):
    names = [o.policy for o in result.outcomes]
    assert names == ["fixed schedule", "no dunning", "learnt policy"]
    assert all(o.violations == 0 for o in result.outcomes)
    fixed, none, learnt = result.outcomes
    assert none.contacts_per_invoice == 0 and none.handovers == 0
    assert fixed.contacts_per_invoice > 0
    assert result.learnt_calls > 0, "the learnt policy decides through recommend"
    assert result.models is not None and result.models.has_response


def test_common_random_numbers_same_company(result):
    """Every run scores the same invoices: the company is the same, only the policy differs."""
    scored = {o.invoices_scored for o in result.outcomes}
    assert len(scored) == 1


def test_net_value_adds_up_debtor_by_debtor(result):
    for o in result.outcomes:
        assert o.per_debtor["net_value"].sum() == pytest.approx(o.net_value, rel=1e-9)
        assert o.per_debtor.height == 25 and o.per_debtor["debtor_id"].n_unique() == 25


def test_margin_is_paired_over_debtors_with_an_interval(result):
    from paycadence.training.backtest import paired_margin

    fixed, _, learnt = result.outcomes
    m = result.margin
    assert m.difference == pytest.approx(learnt.net_value - fixed.net_value)
    assert m.relative == pytest.approx((learnt.net_value - fixed.net_value) / fixed.net_value)
    assert m.low <= m.relative <= m.high and m.low < m.high
    assert m.debtors_better + m.debtors_worse <= 25
    same = paired_margin(fixed, fixed)
    assert (same.difference, same.low, same.high, same.debtors_better) == (0, 0, 0, 0)
    assert paired_margin(learnt, fixed, seed=1).relative == m.relative


def test_dunning_brings_money_in_sooner_than_none(result):
    fixed, none, _ = result.outcomes
    assert fixed.mean_days_late < none.mean_days_late


def test_off_policy_estimate_sits_next_to_the_simulated_truth(result):
    import math

    c = result.ope
    assert c is not None and c.decisions > 0
    for value in (c.simulated, c.dr, c.ips, c.snips, c.logged):
        assert math.isfinite(value)


def test_a_backtest_is_logged_for_the_report(result, mlflow_uri):
    from paycadence.config import Policy
    from paycadence.training.backtest import log_backtest
    from paycadence.training.quality import latest_backtest

    run_id = log_backtest(result, debtors=25, days=240, seed=3, world="project", policy=Policy())
    found = latest_backtest()
    assert found is not None and found.run_id == run_id
    fixed, learnt = result.outcomes[0], result.outcomes[-1]
    assert found.metrics["fixed_schedule_net_value"] == pytest.approx(fixed.net_value)
    assert found.metrics["learnt_policy_handovers"] == learnt.handovers
    assert found.metrics["ope_dr"] == pytest.approx(result.ope.dr)
    assert found.metrics["learnt_vs_fixed_net_value_low"] == pytest.approx(result.margin.low)
    assert found.params["seed"] == "3"
