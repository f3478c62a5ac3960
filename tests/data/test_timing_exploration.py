"""Timing exploration of the logging schedule (``exploration.timing``): on the days between the
schedule's, near or past a due date, it contacts with probability ``timing``, exactly logged.

Each morning the simulator shows the policy is recorded by :class:`_Recorder`, which reads the
day's eligibility off the state and the guard itself (not through the policy's helpers), so
the policy's decision days, propensities and draws are checked against an outside account.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from paycadence.config import CONTACT_CHANNELS, Exploration, Policy, Rules, load_policy
from paycadence.data import ScheduleLoggingPolicy, simulate
from paycadence.data.sim_policy import schedule_decision_day, timing_uniforms
from paycadence.errors import ConfigError
from paycadence.guard import allowed_actions, audit_actions

EPS = 0.10
N, DAYS, SEED = 120, 365, 7
#: 4 standard deviations: a correct policy fails a check about once in 16,000 runs.
Z = 4.0


@dataclass(frozen=True)
class Morning:
    schedule: bool  # an invoice reached a schedule step (the schedule decides)
    eligible: bool  # an invoice overdue or due within 7 days, and a contact allowed
    contacts: tuple[str, ...]  # the contacts the guard allows
    n_allowed: int  # actions the guard allows, wait included
    asked: bool  # what the policy told the engine


class _Recorder(ScheduleLoggingPolicy):
    """The logging policy, noting what each morning it is shown was."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mornings: dict[tuple[str, dt.date], Morning] = {}

    def is_decision_day(self, state, on, context):
        asked = super().is_decision_day(state, on, context)
        allowed = allowed_actions(state, on, self.policy)
        contacts = tuple(a for a in CONTACT_CHANNELS if a in allowed)
        near = any(inv.open_amount > 0 and not inv.disputed and not inv.in_collection
                   and inv.due_date <= on + dt.timedelta(days=7) for inv in state.invoices)
        self.mornings[(state.debtor_id, on)] = Morning(
            schedule_decision_day(state, on, self.policy, context), near and bool(contacts),
            contacts, len(allowed), asked)
        return asked


def _policy(timing: float, **rules) -> Policy:
    return Policy(exploration=Exploration(timing=timing), rules=Rules(**rules))


def _run(timing: float, n: int = N, days: int = DAYS, seed: int = SEED, **rules):
    policy = _policy(timing, **rules)
    recorder = _Recorder(policy, EPS, seed)
    result = simulate(n, days=days, seed=seed, policy=policy, logging_policy=recorder)
    return result, recorder.mornings, policy


def _with_mornings(result, mornings: dict) -> pl.DataFrame:
    """The decisions, each with the recorded facts of its morning."""
    rows = [{"debtor_id": d, "decided_on": on, "m_schedule": m.schedule,
             "m_eligible": m.eligible, "m_k": len(m.contacts), "m_n_allowed": m.n_allowed}
            for (d, on), m in mornings.items() if m.asked]
    return result.decisions.join(pl.DataFrame(rows), on=["debtor_id", "decided_on"],
                                 how="left", validate="1:1")


def _audit(result, policy):
    t = result.tables
    return audit_actions(t.actions.to_dicts(), t.invoices.to_dicts(), t.disputes.to_dicts(),
                         t.debtors.to_dicts(), policy)


@pytest.fixture(scope="module", params=[0.02, 0.3], ids=["timing-0.02", "timing-0.3"])
def timed(request):
    result, mornings, policy = _run(request.param)
    return request.param, result, mornings, policy


@pytest.fixture(scope="module")
def untimed():
    return simulate(N, days=DAYS, seed=SEED, exploration_share=EPS, policy=_policy(0.0))


# -- the policy file -------------------------------------------------------------------------
def test_the_default_is_two_percent_in_the_model_and_the_shipped_file():
    assert Policy().exploration.timing == 0.02
    assert load_policy().exploration.timing == 0.02


@pytest.mark.parametrize("value", ["1.5", "-0.1", "often", "[0.1]"],
                         ids=["above-one", "negative", "word", "list"])
def test_the_policy_file_refuses_a_timing_outside_zero_one(value, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(f"exploration:\n  timing: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'exploration\.timing'"):
        load_policy(path)


@pytest.mark.parametrize("value", [0, 1, 0.5])
def test_the_policy_file_takes_a_timing_in_zero_one(value, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(f"exploration:\n  timing: {value}\n", encoding="utf-8")
    assert load_policy(path).exploration.timing == value


def test_the_logging_policy_takes_timing_from_the_file_unless_it_is_the_fixed_schedule():
    policy = _policy(0.25)
    assert ScheduleLoggingPolicy(policy, 0.1).timing == 0.25
    assert ScheduleLoggingPolicy(policy, 0.0).timing == 0.0, "ε = 0: the fixed schedule"
    assert ScheduleLoggingPolicy(policy, 0.0, timing=0.4).timing == 0.4
    with pytest.raises(ValueError, match="timing must be in"):
        ScheduleLoggingPolicy(policy, 0.1, timing=1.2)


# -- when the policy decides -----------------------------------------------------------------
def test_the_engine_is_asked_on_the_schedule_days_and_the_eligible_days_only(timed):
    _, result, mornings, _ = timed
    assert all(m.asked == (m.schedule or m.eligible) for m in mornings.values())
    decided = set(zip(result.decisions["debtor_id"], result.decisions["decided_on"],
                      strict=True))
    assert decided == {key for key, m in mornings.items() if m.asked}
    assert sum(m.eligible and not m.schedule for m in mornings.values()) > 1000


def test_with_timing_zero_only_the_schedule_days_are_asked():
    _, mornings, _ = _run(0.0, n=40, days=300)
    assert mornings and all(m.asked == m.schedule for m in mornings.values())


# -- exact propensities ----------------------------------------------------------------------
def test_every_logged_propensity_is_exact(timed):
    tau, result, mornings, _ = timed
    d = _with_mornings(result, mornings)
    assert (d["n_allowed"] == d["m_n_allowed"]).all()
    on_schedule = d.filter(pl.col("m_schedule"))
    expected = (1 - EPS) * (pl.col("action") == pl.col("schedule_action")) + EPS / pl.col(
        "n_allowed")
    assert (on_schedule["propensity"] - on_schedule.select(expected).to_series()).abs().max() \
        < 1e-12, "the schedule's own days are unchanged"
    between = d.filter(~pl.col("m_schedule"))
    assert between["m_eligible"].all() and (between["schedule_action"] == "wait").all()
    waits = between.filter(pl.col("action") == "wait")
    assert (waits["propensity"] == 1 - tau).all() and not waits["explored"].any()
    contacts = between.filter(pl.col("action") != "wait")
    assert contacts["action"].is_in(list(CONTACT_CHANNELS)).all()
    assert contacts["explored"].all()
    assert ((contacts["propensity"] - tau / contacts["m_k"]).abs() < 1e-12).all()
    # each action row carries its decision's propensity
    rows = contacts.select(pl.col("decided_on").alias("sent_on"), "propensity",
                           pl.col("invoice_ids").str.split(";").alias("invoice_id")
                           ).explode("invoice_id")
    logged = result.tables.actions.join(rows, on=["invoice_id", "sent_on"], suffix="_d")
    assert logged.height >= contacts.height > 0
    assert (logged["propensity"] == logged["propensity_d"]).all()


def test_eligible_days_contact_with_probability_timing_each_channel_with_timing_over_k(timed):
    """Empirically, over many eligible debtor-days: the share of contacts is within a binomial
    interval around ``timing``, and each channel is drawn about ``Σ timing / k`` times."""
    tau, result, mornings, _ = timed
    days = {key: m for key, m in mornings.items() if m.eligible and not m.schedule}
    d = result.decisions.filter(pl.col("action") != "wait")
    drawn = dict(zip(zip(d["debtor_id"], d["decided_on"], strict=True), d["action"],
                     strict=True))
    n = len(days)
    share = sum(key in drawn for key in days) / n
    assert abs(share - tau) < Z * math.sqrt(tau * (1 - tau) / n), (share, n)
    for channel in CONTACT_CHANNELS:
        probs = [tau / len(m.contacts) for m in days.values() if channel in m.contacts]
        seen = sum(drawn.get(key) == channel for key in days)
        mean, var = sum(probs), sum(p * (1 - p) for p in probs)
        assert abs(seen - mean) <= Z * math.sqrt(var) + 1, (channel, seen, mean)


def test_timing_one_contacts_on_every_eligible_day():
    result, mornings, _ = _run(1.0, n=30, days=240)
    d = _with_mornings(result, mornings).filter(~pl.col("m_schedule"))
    assert d.height > 50 and (d["action"] != "wait").all()
    assert ((d["propensity"] - 1.0 / d["m_k"]).abs() < 1e-12).all()


# -- what the log now shows ------------------------------------------------------------------
def _pre_due_contacts(result) -> pl.DataFrame:
    t = result.tables
    return t.actions.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).join(
        t.invoices.select("invoice_id", "due_date"), on="invoice_id").filter(
        pl.col("sent_on") < pl.col("due_date"))


def test_contacts_before_the_due_date_appear_with_timing_and_never_without(timed, untimed):
    _, result, _, _ = timed
    early = _pre_due_contacts(result)
    assert early.height > 10
    assert (early["step"] >= 1).all()
    assert (early["due_date"] - early["sent_on"]).dt.total_days().max() <= 7
    assert _pre_due_contacts(untimed).height == 0
    assert untimed.tables.actions.height > 500, "the schedule still dunned"


def test_a_contact_names_only_invoices_near_or_past_due_unless_it_offers_a_plan(timed):
    _, result, mornings, _ = timed
    d = _with_mornings(result, mornings).filter(
        ~pl.col("m_schedule") & ~pl.col("action").is_in(["wait", "payment_plan"]))
    named = d.select("decided_on", pl.col("invoice_ids").str.split(";").alias("invoice_id")
                     ).explode("invoice_id").join(
        result.tables.invoices.select("invoice_id", "due_date"), on="invoice_id")
    assert named.height >= d.height > 0
    assert (named["due_date"] <= named["decided_on"] + dt.timedelta(days=7)).all()


def test_one_debtor_alone_draws_as_in_the_whole_company():
    """The draws are a function of (seed, debtor, day): reproducible, and one debtor's never
    shift another's."""
    whole = simulate(30, days=240, seed=3, policy=_policy(0.3))
    alone = simulate(30, days=240, seed=3, policy=_policy(0.3), only=[5])
    assert alone.decisions.equals(whole.decisions.filter(pl.col("debtor_id") == "D00005"))
    assert timing_uniforms(3, "D00005", dt.date(2024, 3, 1)) == \
        timing_uniforms(3, "D00005", dt.date(2024, 3, 1))
    assert timing_uniforms(3, "D00005", dt.date(2024, 3, 1)) != \
        timing_uniforms(4, "D00005", dt.date(2024, 3, 1))


# -- the rules still bind --------------------------------------------------------------------
def test_the_guard_audit_finds_no_violation(timed):
    _, result, _, policy = timed
    assert _audit(result, policy) == []
    opted = result.tables.debtors.filter(pl.col("opted_out").is_not_null()).height
    assert opted > 0, "some debtors opted out of a channel"


def test_stricter_rules_bind_under_heavy_timing_exploration():
    result, mornings, policy = _run(0.6, n=60, days=300, min_days_between_contacts=7,
                                    max_contacts_per_30_days=2)
    assert sum(m.eligible and not m.schedule for m in mornings.values()) > 200
    assert result.tables.actions.height > 100
    assert _audit(result, policy) == []
    assert result.tables.disputes.height > 0



# -- the command line -------------------------------------------------------------------------
def test_cli_simulate_reads_timing_from_the_policy_file(tmp_path):
    cli = Path(sys.executable).parent / "paycadence"
    counts = {}
    for value in ("0", "1", "2"):
        path = tmp_path / f"policy-{value}.yaml"
        path.write_text(f"exploration:\n  timing: {value}\n", encoding="utf-8")
        out = tmp_path / value
        r = subprocess.run([str(cli), "simulate", "--out", str(out), "--debtors", "10",
                            "--days", "150", "--policy", str(path), "--quiet"],
                           capture_output=True, text=True, env=dict(os.environ), timeout=300)
        if value == "2":
            assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
            assert "key 'exploration.timing'" in r.stderr
            continue
        assert r.returncode == 0, r.stderr
        actions = pl.read_csv(out / "actions.csv", try_parse_dates=True).join(
            pl.read_csv(out / "invoices.csv", try_parse_dates=True), on="invoice_id")
        counts[value] = (pl.read_csv(out / "decisions.csv").height,
                         actions.filter(pl.col("sent_on") < pl.col("due_date")).height)
    assert counts["1"][0] > counts["0"][0] > 0
    assert counts["1"][1] > 0 and counts["0"][1] == 0, counts
