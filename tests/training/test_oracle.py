"""The backtest's oracle: the simulator's true model used greedily (training/oracle.py)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from paycadence.config import Policy
from paycadence.data.sim_engine import DebtorRun
from paycadence.data.sim_policy import DebtorContext, Decision, ScheduleLoggingPolicy
from paycadence.data.sim_world import WORLDS
from paycadence.data.simulate import company_debtors, simulate
from paycadence.guard import DebtorState, InvoiceState, audit_actions
from paycadence.training.backtest import (
    NoDunning,
    Outcome,
    captured_share,
    outcome,
    paired_margin,
)
from paycadence.training.oracle import OraclePolicy

START = dt.date(2024, 1, 1)
N, DAYS, SEED = 40, 200, 4
END = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple]:
    policy = Policy()
    truth = company_debtors(N, days=DAYS, seed=SEED, start=START)
    deciders = {"fixed": ScheduleLoggingPolicy(policy, epsilon=0.0, seed=SEED),
                "none": NoDunning(), "oracle": OraclePolicy(policy, truth, start=START)}
    out = {}
    for name, decider in deciders.items():
        result = simulate(N, days=DAYS, seed=SEED, start=START, policy=policy,
                          logging_policy=decider)
        out[name] = (result, outcome(name, result.tables, policy, start=START, end=END))
    return out


def test_company_debtors_are_the_simulated_ones(runs):
    truth = company_debtors(N, days=DAYS, seed=SEED, start=START)
    simulated = runs["fixed"][0].truth
    assert sorted(truth) == simulated["debtor_id"].to_list()
    for row in simulated.iter_rows(named=True):
        d = truth[row["debtor_id"]]
        assert (d.kind, d.pace, d.response["phone"]) == (row["kind"], row["pace"],
                                                         row["resp_phone"])


def test_oracle_breaks_no_rule_and_acts(runs):
    result, scored = runs["oracle"]
    t = result.tables
    assert audit_actions(t.actions.to_dicts(), t.invoices.to_dicts(), t.disputes.to_dicts(),
                         t.debtors.to_dicts(), Policy()) == []
    assert scored.violations == 0
    assert t.actions.height > 0  # it does act, not only wait
    # it decides every debtor-day something is open, not only on the schedule's days
    assert result.decisions.height > runs["fixed"][0].decisions.height * 5


def test_oracle_earns_more_than_fixed_and_none(runs):
    # One-step greedy is not the optimum, so this is asserted on a company (40 debtors,
    # 200 days, seed 4) where the oracle's margin is clear, debtor by debtor.
    oracle, fixed, none = (runs[k][1] for k in ("oracle", "fixed", "none"))
    over_fixed, over_none = paired_margin(oracle, fixed), paired_margin(oracle, none)
    assert oracle.net_value > fixed.net_value and oracle.net_value > none.net_value
    assert over_fixed.low > 0 and over_none.low > 0, (over_fixed, over_none)


def _share(values: dict[str, float], debtors: list[str]) -> Outcome:
    return Outcome(next(iter(values)), 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, per_debtor=pl.DataFrame(
        {"debtor_id": debtors, "net_value": list(values.values())[0]}))


@pytest.mark.parametrize(("learnt", "oracle", "expect"), [
    ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], 0.5),
    ([0.0, 0.0, 0.0], [2.0, 2.0, 2.0], 0.0),
    ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0], 1.0),
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], math.nan),  # the oracle gains nothing over fixed
    ([1.0, 1.0, 1.0], [-1.0, 0.0, 0.0], math.nan),  # the oracle loses to fixed
], ids=["half", "nothing", "all", "oracle-equals-fixed", "oracle-below-fixed"])
def test_captured_share(learnt, oracle, expect):
    ids = ["D1", "D2", "D3"]
    fixed = _share({"fixed": [0.0, 0.0, 0.0]}, ids)
    got = captured_share(_share({"learnt": learnt}, ids), fixed, _share({"oracle": oracle}, ids))
    if math.isnan(expect):
        assert not got.defined and math.isnan(got.value) and math.isnan(got.low)
    else:
        assert got.defined and got.value == pytest.approx(expect)
        assert got.low <= got.value <= got.high


def test_captured_interval_is_unbounded_when_the_oracle_gain_is_unsure():
    ids = [f"D{i}" for i in range(10)]
    fixed = _share({"fixed": [0.0] * 10}, ids)
    oracle = _share({"oracle": [10.0] + [-1.0] * 9}, ids)  # one debtor carries the gain
    got = captured_share(_share({"learnt": [1.0] * 10}, ids), fixed, oracle, seed=1)
    assert got.defined and got.value == pytest.approx(10.0)
    assert math.isinf(got.low) or math.isinf(got.high)


class _OnceOn:
    """Waits, except on one day, where it takes one action about the one invoice."""

    def __init__(self, day: dt.date | None, action: str):
        self.day, self.action, self.disputed = day, action, False

    def is_decision_day(self, state, on, context) -> bool:
        return on == self.day

    def decide(self, state, on, context) -> Decision:
        self.disputed = any(i.disputed for i in state.invoices)
        if self.disputed:  # not the debtor the oracle valued: the sample is dropped
            return Decision("wait", (), 1.0)
        return Decision(self.action, tuple(i.invoice_id for i in state.invoices), 1.0)


@pytest.mark.parametrize("action", ["phone", "payment_plan", "collection"])
def test_oracle_value_agrees_with_monte_carlo(action):
    """The oracle's value of one decision against the mean over fresh futures of the same
    debtor (all random draws new, the debtor kept only if still open and unpaid that day)."""
    rules = Policy().model_dump()
    rules["rules"] |= {"min_reminders_before_collection": 0, "min_days_overdue_for_collection": 0}
    rules["payment_plan"] |= {"min_reminders_before_offer": 0, "min_open_amount": 0.0}
    policy = Policy.model_validate(rules)
    world = WORLDS["project"]
    truth = company_debtors(60, days=400, seed=2, start=START, world=world)
    debtor = next(d for d in truth.values() if d.kind == "cash_strapped"
                  and d.changed_on is None and not d.insolvent)
    amount, issue, day = 800.0, 10, 10 + debtor.term_days + 5
    on = START + dt.timedelta(days=day)
    due = START + dt.timedelta(days=issue + debtor.term_days)
    invoice_id = f"{debtor.debtor_id}-0001"
    oracle = OraclePolicy(policy, truth, start=START)
    for t in range(issue, day + 1):  # the mornings the company saw it open and unpaid
        morning = START + dt.timedelta(days=t)
        state = DebtorState(debtor.debtor_id, (InvoiceState(invoice_id, due, amount, 0, False,
                                                            False),), (), frozenset())
        context = DebtorContext(debtor.segment, debtor.country,
                                {invoice_id: (morning - due).days})
        oracle.is_decision_day(state, morning, context)
    value, named = oracle.gains(state, on, context, {"wait": (), action: (invoice_id,)})[action]
    assert named == (invoice_id,)

    rate = math.exp(-policy.annual_cost_of_capital / 365)
    fee = policy.collection_fee_rate

    def net(rows, handed: bool) -> float:
        got = sum(a * rate ** (p - START).days for _, p, a, _ in rows["payments"])
        return got - (fee * sum(a for _, p, a, _ in rows["payments"] if p >= on) if handed
                      else 0.0)

    diffs = []
    for k in range(3000):
        kept = []
        for decider in (_OnceOn(None, "wait"), _OnceOn(on, action)):
            run = DebtorRun(debtor, [(issue, amount)], np.random.default_rng([7, k]), START,
                            day + 700, policy, decider, decider.is_decision_day)
            kept.append(run.run())
        waited, acted = kept
        if decider.disputed or any(p < on for _, p, _, _ in waited["payments"]) or any(
                p < on for _, p, _, _ in acted["payments"]):
            continue  # paid before the decision: not the debtor the oracle valued
        diffs.append(net(acted, action == "collection") - net(waited, False)
                     - policy.costs.of(action))
    diffs = np.array(diffs)
    assert len(diffs) > 1000
    mean, se = diffs.mean(), diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert abs(value - mean) < 3 * se + 0.03 * abs(mean) + 1.0, (value, mean, se)


@pytest.mark.parametrize("action", ["phone", "payment_plan", "collection"])
def test_value_from_discounts_money_to_that_day_and_leaves_costs_undiscounted(action):
    """The backtest scores its future in money of the switch day, costs paid on the day: the
    oracle valued from a later day sees the same money, worth more there, for the same cost."""
    policy, world = Policy(), WORLDS["project"]
    truth = company_debtors(60, days=400, seed=2, start=START, world=world)
    debtor = next(d for d in truth.values() if d.kind == "cash_strapped"
                  and d.changed_on is None and not d.insolvent)
    on = START + dt.timedelta(days=200)
    due = on - dt.timedelta(days=40)
    invoice_id = f"{debtor.debtor_id}-0001"
    state = DebtorState(debtor.debtor_id, (InvoiceState(invoice_id, due, 800.0, 2, False,
                                                        False),), (), frozenset())
    context = DebtorContext(debtor.segment, debtor.country, {invoice_id: 40})
    allowed = {"wait": (), action: (invoice_id,)}
    later = 150
    valued = {k: OraclePolicy(policy, truth, start=START,
                              value_from=START + dt.timedelta(days=k)).gains(
        state, on, context, allowed)[action][0] for k in (0, later)}
    cost, grow = policy.costs.of(action), math.exp(policy.annual_cost_of_capital / 365 * later)
    assert valued[later] + cost == pytest.approx((valued[0] + cost) * grow, rel=1e-9)
