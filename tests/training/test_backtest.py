"""The backtest: one company's logged past, then its future under three policies (and the
oracle), the learnt one through recommend, no rule broken."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paycadence.config import Params, Policy, TrainParams
from paycadence.data.sim_policy import ScheduleLoggingPolicy
from paycadence.data.simulate import company_debtors, simulate
from paycadence.data.tables import Tables
from paycadence.training.backtest import LearntPolicy, NoDunning, Switch, outcome, run_backtest
from paycadence.training.oracle import OraclePolicy
from paycadence.training.snapshots import cut_tables

#: one worker builds the module's backtests (each fixture once, not once per worker)
pytestmark = pytest.mark.xdist_group("backtest")

HEARD: list[tuple] = []
START = dt.date(2024, 1, 1)
HISTORY, FUTURE = 240, 150


@pytest.fixture(scope="module")
def result():
    base = Params()
    params = base.model_copy(update={"train": TrainParams(**(base.train.model_dump() | {
        "n_estimators": 60}))})
    # no timing exploration: the off-policy check replays every logged decision, and timing
    # draws make six times as many (measured apart: tests/data/test_timing_exploration.py)
    return run_backtest(25, FUTURE, 3, history_days=HISTORY, params=params, ope=True,
                        policy=Policy(exploration={"timing": 0.0}), regret=True,
                        progress=lambda what, done=None, total=None: HEARD.append(
                            (what, done, total)))


def test_progress_is_reported_phase_by_phase(result):
    phases = [done for _, done, total in HEARD if total == 6]  # the oracle is a phase too
    assert phases == sorted(phases) and {0, 1, 2, 3, 4, 5} <= set(phases)
    assert any("under the oracle" in what for what, _, _ in HEARD)
    assert any("under the learnt policy" in what for what, _, _ in HEARD)
    checked = [done for what, done, total in HEARD if what.startswith("off-policy check")]
    assert checked == sorted(checked) and all(d <= result.ope.decisions for d in checked)


def test_every_learnt_decision_is_valued_by_the_true_model(result):
    from paycadence.config import ACTIONS
    from paycadence.data.sim_world import KIND_NAMES
    from paycadence.training.regret import regret_rows

    tallies = result.regret
    assert sum(t.decisions for t in tallies.values()) == result.learnt_calls
    assert {k for k, _ in tallies} <= set(KIND_NAMES) and {a for _, a in tallies} <= set(ACTIONS)
    for (_, action), t in tallies.items():
        if action == "wait":
            assert t.gain == 0.0  # the oracle values every action against waiting
        assert action not in t.instead  # what it would have done instead is another action
        assert all(days > 0 and extra > 0 for days, extra in t.instead.values())
        assert sum(days for days, _ in t.instead.values()) <= t.decisions
    rows = regret_rows(tallies)
    assert len(rows) == len(tallies)
    assert [r[4] for r in rows] == sorted((r[4] for r in rows), reverse=True)
    # the oracle sees something worth doing on some of the days the learnt policy waits
    assert any(t.missed() > 0 for (_, a), t in tallies.items() if a == "wait")


def test_three_policies_no_rule_broken(result):
    names = [o.policy for o in result.outcomes]
    assert names == ["fixed schedule", "no dunning", "learnt policy"]
    assert all(o.violations == 0 for o in result.outcomes)
    fixed, none, learnt = result.outcomes
    assert none.contacts_per_invoice == 0 and none.handovers == 0
    assert fixed.contacts_per_invoice > 0
    assert result.learnt_calls > 0, "the learnt policy decides through recommend"
    assert sum(result.learnt_decided_by.values()) == result.learnt_calls
    assert set(result.learnt_decided_by) <= {"departed", "agreed", "thin log", "unsure",
                                             "explored", "held back", "schedule"}
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


def test_the_oracle_runs_on_the_same_company_and_captured_is_paired(result):
    from paycadence.training.backtest import captured_share

    fixed, _, learnt = result.outcomes
    oracle = result.oracle
    assert oracle.policy == "oracle" and oracle.violations == 0
    assert oracle.invoices_scored == fixed.invoices_scored  # common random numbers
    k = result.captured
    assert k.oracle_gain == pytest.approx(oracle.net_value - fixed.net_value, abs=1e-6)
    assert k.learnt_gain == pytest.approx(learnt.net_value - fixed.net_value, abs=1e-6)
    if k.defined:
        assert k.value == pytest.approx(k.learnt_gain / k.oracle_gain)
        assert k.low <= k.value <= k.high
    assert captured_share(learnt, fixed, oracle, seed=3) == k


#: The engine's runs of 30 debtors × 200 days, seed 3, under the fixed schedule and no dunning,
#: computed before the oracle touched the engine (commit d65b457), scored over the whole run:
#: the engine's behaviour must not move (policy, net value, collected, contact costs, agency
#: fees, hand-overs, mean days late).
BEFORE_THE_ORACLE = {
    "project": [("fixed schedule", 40900.21560886604, 42585.50000000001, 448.0, 144.906, 16,
                 24.63529411764706),
                ("no dunning", 40110.96079991694, 41179.39, 0.0, 0.0, 0, 33.2)],
    "other": [("fixed schedule", 32544.427694947724, 34548.79, 1046.7, 59.229, 38,
               40.83529411764706),
              ("no dunning", 31387.28856272216, 32225.56, 0.0, 0.0, 0, 47.129411764705885)],
}


@pytest.mark.parametrize("world", ["project", "other"])
def test_engine_outcomes_unchanged_by_the_oracle(world):
    from paycadence.data.sim_world import WORLDS

    policy, end = Policy(), START + dt.timedelta(days=199)
    deciders = [ScheduleLoggingPolicy(policy, epsilon=0.0, seed=3), NoDunning()]
    for decider, want in zip(deciders, BEFORE_THE_ORACLE[world], strict=True):
        run = simulate(30, days=200, seed=3, start=START, policy=policy,
                       logging_policy=decider, world=WORLDS[world])
        o = outcome(want[0], run.tables, policy, start=START, end=end)
        have = (o.net_value, o.collected, o.contact_costs, o.collection_fees, o.handovers,
                o.mean_days_late)
        assert have == pytest.approx(want[1:], rel=1e-12)  # the last bit: polars' sum order


def test_dunning_brings_money_in_sooner_than_none(result):
    fixed, none, _ = result.outcomes
    assert fixed.mean_days_late < none.mean_days_late


def test_off_policy_estimate_sits_next_to_the_simulated_truth(result):
    c = result.ope
    assert c is not None and c.decisions > 0
    for value in (c.simulated, c.dr, c.ips, c.snips, c.logged):
        assert math.isfinite(value)
    # DR's own interval and effective sample size, to tell its variance from its bias
    assert c.dr_low <= c.dr <= c.dr_high
    assert 0 < c.effective_n <= c.decisions
    # the gain over the logging policy, with its paired interval
    assert c.gain_low <= c.dr - c.logged <= c.gain_high


def test_a_backtest_is_logged_for_the_report(result, mlflow_uri):
    from paycadence.training.backtest import log_backtest
    from paycadence.training.quality import latest_backtest

    run_id = log_backtest(result, debtors=25, days=FUTURE, seed=3, world="project",
                          policy=Policy())
    found = latest_backtest()
    assert found is not None and found.run_id == run_id
    fixed, learnt = result.outcomes[0], result.outcomes[-1]
    assert found.metrics["fixed_schedule_net_value"] == pytest.approx(fixed.net_value)
    assert found.metrics["learnt_policy_handovers"] == learnt.handovers
    assert found.metrics["ope_dr"] == pytest.approx(result.ope.dr)
    assert found.metrics["ope_dr_low"] == pytest.approx(result.ope.dr_low)
    assert found.metrics["ope_effective_n"] == pytest.approx(result.ope.effective_n)
    assert found.metrics["learnt_vs_fixed_net_value_low"] == pytest.approx(result.margin.low)
    assert found.params["seed"] == "3"
    assert found.params["history_days"] == str(HISTORY)
    assert found.params["switch_on"] == str(START + dt.timedelta(days=HISTORY))
    assert found.metrics["oracle_net_value"] == pytest.approx(result.oracle.net_value)
    if result.captured.defined:
        assert found.metrics["captured"] == pytest.approx(result.captured.value)


# -- the switch: a shared past, then each run's own policy ----------------------------------

SWITCH = START + dt.timedelta(days=120)


@pytest.fixture(scope="module")
def switched() -> dict:
    """20 debtors × 220 days, seed 5: the schedule exploring 10% until day 120, then each
    policy."""
    policy = Policy()
    truth = company_debtors(20, days=220, seed=5, start=START)
    afters = {"fixed": ScheduleLoggingPolicy(policy, 0.0, 5), "none": NoDunning(),
              "learnt": LearntPolicy(policy, None),
              "oracle": OraclePolicy(policy, truth, start=START, value_from=SWITCH)}
    return {name: simulate(20, days=220, seed=5, start=START, policy=policy,
                           logging_policy=Switch(ScheduleLoggingPolicy(policy, 0.10, 5), after,
                                                 on=SWITCH))
            for name, after in afters.items()}


def test_every_run_has_the_same_past(switched):
    """Common random numbers: the tables as known on the switch morning, and the decisions
    logged before it, are the same whatever policy takes over."""
    first = cut_tables(switched["fixed"].tables, SWITCH)
    logged = switched["fixed"].decisions.filter(pl.col("decided_on") < SWITCH)
    assert first.actions.height > 0 and logged["explored"].any()
    for name, run in switched.items():
        for table, frame in cut_tables(run.tables, SWITCH).items():
            assert frame.equals(getattr(first, table)), f"{name}: {table} differs"
        assert_frame_equal(run.decisions.filter(pl.col("decided_on") < SWITCH), logged)


def test_after_the_switch_each_run_follows_its_own_policy(switched):
    later = {name: run.tables.actions.filter(pl.col("sent_on") >= SWITCH)
             for name, run in switched.items()}
    assert later["none"].height == 0
    assert later["fixed"].height > 0 and later["oracle"].height > 0
    fixed = switched["fixed"].decisions.filter(pl.col("decided_on") >= SWITCH)
    assert not fixed["explored"].any()  # the fixed schedule does not explore


class OneByOne:
    """A decider without ``decide_many``: the simulator asks it debtor by debtor."""

    def __init__(self, inner):
        self.inner = inner

    def is_decision_day(self, state, on, context):
        return self.inner.is_decision_day(state, on, context)

    def decide(self, state, on, context):
        return self.inner.decide(state, on, context)


def test_deciding_a_morning_at_once_changes_no_row():
    """The learnt policy is asked once per morning for every debtor deciding on it (one call to
    recommend, the debtors' runs stepped side by side): every row and decision is what asking
    it debtor by debtor gives, and it was asked as often."""
    policy = Policy()
    alone = LearntPolicy(policy, None)

    def run(decider):
        return simulate(10, days=200, seed=5, start=START, policy=policy,
                        logging_policy=decider)

    one_by_one = run(OneByOne(Switch(ScheduleLoggingPolicy(policy, 0.10, 5), alone,
                                     on=SWITCH)))
    sizes = []

    class Counted(LearntPolicy):
        def decide_many(self, requests):
            sizes.append(len(requests))
            return super().decide_many(requests)

    together = run(Switch(ScheduleLoggingPolicy(policy, 0.10, 5), Counted(policy, None),
                          on=SWITCH))
    assert max(sizes) > 1 and len(sizes) < sum(sizes)  # mornings with several debtors
    for table, frame in one_by_one.tables.items():
        assert_frame_equal(getattr(together.tables, table), frame, check_exact=True)
    assert_frame_equal(together.decisions, one_by_one.decisions, check_exact=True)
    learnt = together.decisions.filter(pl.col("decided_on") >= SWITCH)
    assert learnt.height == alone.calls > 10  # many mornings, several debtors on some


def test_a_decider_answering_too_few_decisions_is_refused():
    class Short(OneByOne):
        def decide_many(self, requests):
            return [self.decide(*r) for r in requests[1:]]

    policy = Policy()
    with pytest.raises(ValueError, match="decide_many answered"):
        simulate(5, days=60, seed=5, start=START, policy=policy,
                 logging_policy=Short(ScheduleLoggingPolicy(policy, 0.10, 5)))


def test_the_later_policy_watches_every_morning_of_the_past():
    """The oracle keeps what the company has seen of each invoice, morning by morning, so the
    switch shows it the past (its answer ignored) before it decides."""

    class Watcher:
        def __init__(self):
            self.mornings: list[dt.date] = []

        def is_decision_day(self, state, on, context):
            self.mornings.append(on)
            return False

        def decide(self, state, on, context):
            raise AssertionError("never asked")

    policy, watcher = Policy(), Watcher()
    run = simulate(5, days=100, seed=5, start=START, policy=policy,
                   logging_policy=Switch(ScheduleLoggingPolicy(policy, 0.10, 5), watcher,
                                         on=START + dt.timedelta(days=50)))
    assert min(watcher.mornings) < START + dt.timedelta(days=50) <= max(watcher.mornings)
    assert run.decisions["decided_on"].max() < START + dt.timedelta(days=50)


def test_the_models_learn_only_the_past(monkeypatch):
    """``fit_models`` gets the tables as known on the switch morning: nothing after it."""
    import paycadence.training.fitting as fitting

    seen: list[Tables] = []
    monkeypatch.setattr(fitting, "fit_models",
                        lambda tables, params, policy=None: seen.append(tables))
    got = run_backtest(12, 100, 7, history_days=150, oracle=False)  # no models: the rules
    switch = START + dt.timedelta(days=150)
    assert (got.switch_on, got.history_days, got.models) == (switch, 150, None)
    (tables,) = seen
    assert tables.payments["paid_on"].max() < switch and tables.actions["sent_on"].max() < switch
    assert tables.invoices["issue_date"].max() <= switch
    policy = Policy()
    other = simulate(12, days=250, seed=7, start=START, policy=policy,
                     logging_policy=Switch(ScheduleLoggingPolicy(policy, 0.10, 7), NoDunning(),
                                           on=switch))
    for table, frame in cut_tables(other.tables, switch).items():
        assert getattr(tables, table).equals(frame), f"{table} differs"


def test_only_the_future_is_scored():
    """Invoices open on the switch morning or issued later, due 90 days before the end; their
    payments and actions from the switch day on, discounted to it."""
    day = dt.date.fromisoformat
    invoices = pl.DataFrame({
        "invoice_id": ["A", "B", "C", "D"], "debtor_id": ["X"] * 4,
        "issue_date": [day("2024-02-01"), day("2024-04-01"), day("2024-07-01"),
                       day("2024-10-01")],
        "due_date": [day("2024-03-01"), day("2024-05-01"), day("2024-08-01"),
                     day("2024-11-01")],
        "amount": [100.0, 200.0, 300.0, 400.0], "currency": ["EUR"] * 4})
    payments = pl.DataFrame({
        "invoice_id": ["A", "B", "B", "C", "D"],
        "paid_on": [day("2024-03-05"), day("2024-05-10"), day("2024-06-11"), day("2024-08-01"),
                    day("2024-11-05")],
        "amount": [100.0, 50.0, 150.0, 300.0, 400.0]})
    actions = pl.DataFrame({
        "invoice_id": ["B", "B", "D"],
        "sent_on": [day("2024-05-05"), day("2024-06-05"), day("2024-11-02")],
        "channel": ["email", "email", "letter"], "step": [1, 2, 1],
        "propensity": [1.0, 1.0, 1.0]})
    debtors = pl.DataFrame({"debtor_id": ["X"], "country": ["DE"], "segment": ["b2b"],
                            "created_on": [day("2023-01-01")], "opted_out": [None]})
    tables = Tables.from_frames(debtors=debtors, invoices=invoices, payments=payments,
                                actions=actions)
    policy, switch = Policy(), day("2024-06-01")
    got = outcome("p", tables, policy, start=day("2024-01-01"), end=day("2024-12-31"),
                  scored_from=switch)
    rate = policy.annual_cost_of_capital / 365
    want = 150 * math.exp(-rate * 10) + 300 * math.exp(-rate * 61) - policy.costs.of("email")
    assert got.net_value == pytest.approx(want, rel=1e-12)
    assert (got.invoices_scored, got.collected, got.contact_costs) == (
        2, 450.0, pytest.approx(policy.costs.of("email")))
    assert got.contacts_per_invoice == 0.5 and got.mean_days_late == 20.5  # B 41 days, C 0
    whole = outcome("p", tables, policy, start=day("2024-01-01"), end=day("2024-12-31"))
    assert whole.collected == 1000.0 and whole.invoices_scored == 3  # A, B, C: due by Oct 2


# -- when the learnt policy is asked ---------------------------------------------------------

ON = dt.date(2024, 3, 1)


def _asked(days_past_due: int, *, contacted: int | None = None, disputed: bool = False,
           opted_out: frozenset = frozenset()) -> bool:
    from paycadence.data.sim_policy import DebtorContext
    from paycadence.guard import DebtorState, InvoiceState

    inv = InvoiceState("I1", ON - dt.timedelta(days=days_past_due), 500.0, 0, disputed, False)
    last = () if contacted is None else (ON - dt.timedelta(days=contacted),)
    state = DebtorState("D1", (inv,), last, opted_out)
    context = DebtorContext("b2b", "DE", {"I1": days_past_due})
    return LearntPolicy(Policy(), None).is_decision_day(state, ON, context)


@pytest.mark.parametrize(("days_past_due", "kwargs", "asked"), [
    (12, {}, True),
    (0, {}, True),
    (-7, {}, True),
    (-8, {}, False),
    (12, {"contacted": 1}, False),
    (12, {"contacted": 5}, True),
    (12, {"disputed": True}, False),
    (-3, {"opted_out": frozenset({"email", "sms", "phone", "letter"})}, False),
], ids=["overdue", "due-today", "due-in-7-days", "due-in-8-days",
        "contacted-yesterday", "contacted-5-days-ago", "disputed", "opted-out-of-every-channel"])
def test_the_learnt_policy_is_asked_whenever_it_could_act_near_the_due_date(
        days_past_due, kwargs, asked):
    """Every debtor-day with an invoice overdue or due within 7 days on which the guard allows
    an action other than wait (the policy may remind before the due date)."""
    assert _asked(days_past_due, **kwargs) is asked


def test_the_off_policy_check_can_be_run_on_a_sample_of_debtors():
    """``ope_debtors``: the check replays every option of every decision it checks, so a large
    book is checked on a hash sample of its debtors; the figures say how many."""
    got = run_backtest(10, 100, 7, history_days=120, oracle=False, ope=True, ope_debtors=3,
                       policy=Policy(exploration={"timing": 0.0}))
    check = got.ope
    assert check.debtors == 3 < check.decided_debtors <= 10
    assert check.decisions > 0 and math.isfinite(check.dr) and math.isfinite(check.simulated)


def test_p_late_is_scored_beside_the_simple_references(result):
    """On the future's invoices, each forecast the first morning the future sees it."""
    check = result.forecast
    assert check.invoices > 20 and 0 < check.late_share < 1
    assert set(check.auc) == {"model", "laplace", "shrunk", "recent"}
    assert all(0.0 <= v <= 1.0 for v in check.auc.values())
    assert check.best_reference[0] in {"laplace", "shrunk", "recent"}
    assert 1.0 <= check.prior.strength <= 100.0 and 0 < check.prior.rate < 1
    assert set(check.brier) == set(check.ece) == set(check.auc)
    assert set(check.days_mae) == {"model", "median"}
    assert all(v >= 0 for v in check.days_mae.values())
    assert check.gap_closed != check.gap_closed  # NaN: no truth without truth_replays
