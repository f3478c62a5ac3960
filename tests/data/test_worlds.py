"""The family of simulated worlds: knobs that change the structure, named worlds, drawn ones.

Small companies (tens of debtors, under a year) so that the whole file runs in well under a
minute on two shared cores.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from paycadence.config import Exploration, Policy
from paycadence.data.ingest import ingest
from paycadence.data.sim_policy import ScheduleLoggingPolicy
from paycadence.data.sim_world import (
    AGENCY_WORLD,
    B2B_WORLD,
    CALLS_WORLD,
    EARLY_WORLD,
    KINDS,
    OTHER_WORLD,
    PLANS_WORLD,
    PROJECT_WORLD,
    RESTRAINT_WORLD,
    SOURED_WORLD,
    WORLDS,
    Debtor,
    World,
    contact_multiplier,
    daily_hazard,
    plan_accept_chance,
    recovery_chance,
    reminder_boost,
    resolve_world,
    world_from_seed,
)
from paycadence.data.simulate import simulate, write_simulation
from paycadence.errors import PaycadenceError
from paycadence.training.backtest import NoDunning, outcome

BIN = Path(sys.executable).parent / "paycadence"
START = dt.date(2024, 1, 1)

#: sha256 of the seven tables of ``simulate(40, days=240, seed=s, world=w)`` as CSV, computed
#: with the simulator as it was before the family of worlds (commit d65b457). Computed with
#: ``exploration.timing: 0``: timing exploration (default 0.02, added later) asks on more days,
#: and with it off the output must stay byte-identical.
BEFORE = {
    ("project", 3): "3caf76080bf142051483969fa9a5d95ca5c7a50de3b290b6d0101ba2a34291f8",
    ("project", 7): "0583b29e28db297ac5b51b79c3b8fdcfb29f98a86ed795be21b163d5ff8003cf",
    ("other", 3): "f43981652b330f079409bba411608fcfb149ad9514031b83ad4cc46a2fa6bb3b",
    ("other", 7): "35b88c0f33b765e447d04cd5fdeb4bdfc039a8528c6304992b743201597955e6",
}


def _digest(world: World, seed: int) -> str:
    no_timing = Policy(exploration=Exploration(timing=0.0))
    result = simulate(40, days=240, seed=seed, world=world, policy=no_timing)
    h = hashlib.sha256()
    for name, frame in [*result.tables.items(), ("decisions", result.decisions),
                        ("truth", result.truth)]:
        buf = io.BytesIO()
        frame.write_csv(buf, date_format="%Y-%m-%d")
        h.update(name.encode())
        h.update(buf.getvalue())
    return h.hexdigest()


@pytest.mark.parametrize(("world", "seed"), list(BEFORE), ids=[f"{w}-{s}" for w, s in BEFORE])
def test_project_and_other_worlds_are_byte_identical_to_before(world, seed):
    assert _digest(WORLDS[world], seed) == BEFORE[(world, seed)]


def test_the_family_has_the_named_worlds_and_keeps_the_two_old_ones():
    assert len(WORLDS) >= 8
    assert WORLDS["project"] is PROJECT_WORLD and WORLDS["other"] is OTHER_WORLD
    assert {"restraint", "calls", "plans", "agency", "early", "soured", "b2b"} <= set(WORLDS)
    assert all(name == w.name for name, w in WORLDS.items())


@pytest.mark.parametrize("name", list(WORLDS))
def test_every_named_world_simulates_and_passes_ingest(name, tmp_path):
    result = simulate(25, days=200, seed=5, world=WORLDS[name])
    assert result.tables.invoices.height > 0 and result.tables.payments.height > 0
    write_simulation(result, tmp_path)
    clean = ingest(tmp_path)
    assert clean.quarantine.height == 0, clean.quarantine.head(3)
    assert clean.tables.invoices.height == result.tables.invoices.height


@pytest.mark.parametrize("name", list(WORLDS))
def test_two_policies_meet_the_same_company_in_every_world(name):
    """Common random numbers: the same debtors and invoices whoever decides, and a debtor
    simulated alone is the debtor of the whole company."""
    world = WORLDS[name]
    fixed = simulate(20, days=200, seed=2, world=world,
                     logging_policy=ScheduleLoggingPolicy(Policy(), 0.0, 2))
    none = simulate(20, days=200, seed=2, world=world, logging_policy=NoDunning())
    assert fixed.tables.invoices.equals(none.tables.invoices)
    assert fixed.truth.equals(none.truth)
    alone = simulate(20, days=200, seed=2, world=world, only=[4],
                     logging_policy=ScheduleLoggingPolicy(Policy(), 0.0, 2))
    ids = alone.tables.invoices["invoice_id"]
    assert alone.tables.payments.equals(
        fixed.tables.payments.filter(pl.col("invoice_id").is_in(ids)))


def test_a_drawn_world_is_the_same_for_a_seed_and_differs_between_seeds():
    a, again, b = world_from_seed(11), world_from_seed(11), world_from_seed(12)
    assert a == again and a.name == "seed-11"
    assert a.channel_boost != b.channel_boost
    assert [k.share for k in a.kinds.values()] != [k.share for k in b.kinds.values()]
    assert (a.pre_due_effect, a.b2b_share, a.terms) != (b.pre_due_effect, b.b2b_share, b.terms)
    shares = [[k.share for k in world_from_seed(s).kinds.values()] for s in range(20)]
    assert len({tuple(round(x, 6) for x in row) for row in shares}) == 20
    assert any(world_from_seed(s).recovery_half_life_days is None for s in range(20))
    assert any(world_from_seed(s).recovery_half_life_days is not None for s in range(20))
    assert any(world_from_seed(s).pre_due_effect < 0 for s in range(20))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_drawn_world_simulates_and_passes_ingest(seed, tmp_path):
    result = simulate(20, days=200, seed=seed, world=world_from_seed(seed))
    write_simulation(result, tmp_path)
    assert ingest(tmp_path).quarantine.height == 0


def test_resolve_world_names_seeds_and_refusals():
    assert resolve_world() is PROJECT_WORLD
    assert resolve_world("calls") is CALLS_WORLD
    assert resolve_world(AGENCY_WORLD) is AGENCY_WORLD
    assert resolve_world(None, 4) == world_from_seed(4)
    with pytest.raises(PaycadenceError, match="unknown world 'mars'.*restraint"):
        resolve_world("mars")
    with pytest.raises(PaycadenceError, match="not both"):
        resolve_world("calls", 4)


def test_a_world_refuses_knobs_out_of_range():
    with pytest.raises(ValueError, match="annoyance of disputing"):
        World(name="x", annoyance={"disputing": 1.0})
    with pytest.raises(ValueError, match="unknown kind"):
        World(name="x", channel_by_kind={"grumpy": {"phone": 2.0}})
    with pytest.raises(ValueError, match="terms"):
        World(name="x", terms={"b2b": (30,)})
    with pytest.raises(ValueError, match="recovery_half_life_days"):
        World(name="x", recovery_half_life_days=0.0)


# -- each mechanic does what it claims --------------------------------------------------------
def _debtor(world: World, kind: str = "slow_but_sure", segment: str = "b2c",
            insolvent: bool = False) -> Debtor:
    return Debtor(index=0, debtor_id="D00000", kind=kind, segment=segment, country="NL",
                  created_on=START, subscription=False, billing_day=1, mean_amount=100.0,
                  term_days=14, pace=1.0, slow_lag=20, insolvent=insolvent, preferred="email",
                  response={"email": 1.0, "sms": 1.0, "letter": 1.0, "phone": 1.0},
                  opted_out=(), changed_on=None, kind_after=None, left_on=None, world=world)


def test_a_reminder_before_due_hurts_in_restraint_and_helps_more_in_early():
    """The invoice is due on day 30; one email on day 25 (before due) or day 31 (after)."""
    for world, kind in ((RESTRAINT_WORLD, "punctual"), (EARLY_WORLD, "forgetful")):
        d = _debtor(world, kind)
        alone = daily_hazard(d, kind, -3, [], 27)
        before = daily_hazard(d, kind, -3, [(25, "email")], 27)
        if world is RESTRAINT_WORLD:
            assert 0.0 <= before < alone
        else:
            assert before > alone
        k = world.kinds[kind].response
        pre = reminder_boost(d.response, k, [(25, "email")], 27, world, kind=kind,
                             segment="b2c", due=30)
        post = reminder_boost(d.response, k, [(31, "email")], 33, world, kind=kind,
                              segment="b2c", due=30)
        assert (pre < 0 < post) if world is RESTRAINT_WORLD else pre == pytest.approx(2.5 * post)
    # in the project's world the day of sending does not matter
    d = _debtor(PROJECT_WORLD, "forgetful")
    assert reminder_boost(d.response, 4.0, [(25, "email")], 27, PROJECT_WORLD, due=30) == \
        reminder_boost(d.response, 4.0, [(31, "email")], 33, PROJECT_WORLD, due=30)


def test_annoyance_lowers_the_hazard_with_every_contact_for_the_soured_kind_only():
    """Contacts long ago (their boost gone) still cost a disputing debtor willingness."""
    old = [(0, "email"), (5, "letter"), (10, "phone")]
    disputing = _debtor(SOURED_WORLD, "disputing")
    h = [daily_hazard(disputing, "disputing", 30, old[:n], 100) for n in range(4)]
    assert h[0] > h[1] > h[2] > h[3] > 0
    assert h[3] == pytest.approx(h[0] * 0.65 ** 3)
    assert contact_multiplier(SOURED_WORLD, "punctual", old, 100) == 1.0
    punctual = _debtor(SOURED_WORLD, "punctual")
    assert daily_hazard(punctual, "punctual", 30, old, 100) == pytest.approx(
        daily_hazard(punctual, "punctual", 30, [], 100))
    assert contact_multiplier(SOURED_WORLD, "disputing", old, 6) == pytest.approx(0.65 ** 2)


def test_recovery_falls_with_age_at_hand_over_where_the_world_says_so():
    agency = _debtor(AGENCY_WORLD, "cash_strapped")
    chances = [recovery_chance(agency, "cash_strapped", d) for d in (-5, 0, 15, 50, 90)]
    assert chances[0] == chances[1] == pytest.approx(0.95)
    assert chances[2] == pytest.approx(0.95 / 2)
    assert chances[1] > chances[2] > chances[3] > chances[4]
    b2b = _debtor(B2B_WORLD, "cash_strapped")
    assert recovery_chance(b2b, "cash_strapped", 30) == KINDS["cash_strapped"].recovery
    assert recovery_chance(b2b, "cash_strapped", 120) == pytest.approx(
        KINDS["cash_strapped"].recovery / 2)
    project = _debtor(PROJECT_WORLD, "cash_strapped")
    assert recovery_chance(project, "cash_strapped", 0) == recovery_chance(
        project, "cash_strapped", 200) == KINDS["cash_strapped"].recovery
    insolvent = _debtor(AGENCY_WORLD, "defaulting", insolvent=True)
    assert recovery_chance(insolvent, "defaulting", 0) == pytest.approx(0.15)
    assert plan_accept_chance(insolvent, "defaulting") == 0.0


def test_in_the_calls_world_a_call_moves_debtors_and_nothing_else_does():
    for kind in KINDS:
        d = _debtor(CALLS_WORLD, kind)
        h = {c: daily_hazard(d, kind, 5, [(3, c)], 4) - daily_hazard(d, kind, 5, [], 4)
             for c in ("email", "sms", "letter", "phone")}
        assert h["phone"] > 10 * max(h["email"], h["sms"], h["letter"]), kind
    assert CALLS_WORLD.channel_boost["phone"] > 20 * max(
        CALLS_WORLD.channel_boost[c] for c in ("email", "sms", "letter"))


def test_plans_world_accepts_and_keeps_plans_and_recovers_little():
    d = _debtor(PLANS_WORLD, "cash_strapped")
    assert plan_accept_chance(d, "cash_strapped") > KINDS["cash_strapped"].plan_accept
    assert recovery_chance(d, "cash_strapped", 50) < 0.5 * KINDS["cash_strapped"].recovery


def test_b2b_world_draws_a_b2b_book_with_long_terms_and_big_amounts():
    ours = simulate(60, days=120, seed=9, world=PROJECT_WORLD).truth
    b2b = simulate(60, days=120, seed=9, world=B2B_WORLD).truth
    assert (b2b["segment"] == "b2b").mean() > 0.75 > (ours["segment"] == "b2b").mean()
    assert set(b2b.filter(pl.col("segment") == "b2b")["term_days"]) <= {30, 60, 90}
    assert b2b["term_days"].mean() > 1.5 * ours["term_days"].mean()
    assert b2b["mean_amount"].median() > 3 * ours["mean_amount"].median()


def test_channel_by_segment_scales_a_channel_for_that_segment_only():
    b2b, b2c = _debtor(B2B_WORLD, segment="b2b"), _debtor(B2B_WORLD, segment="b2c")
    lift = {d.segment: daily_hazard(d, "punctual", 5, [(3, "sms")], 4)
            - daily_hazard(d, "punctual", 5, [], 4) for d in (b2b, b2c)}
    assert lift["b2b"] == pytest.approx(0.2 * lift["b2c"])


# -- the worlds as tests of a policy ----------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_in_the_restraint_world_not_dunning_earns_at_least_the_fixed_schedule(seed):
    policy, days = Policy(), 360
    end = START + dt.timedelta(days=days - 1)
    runs = {name: simulate(120, days=days, seed=seed, world=RESTRAINT_WORLD, policy=policy,
                           logging_policy=decider)
            for name, decider in (("fixed", ScheduleLoggingPolicy(policy, 0.0, seed)),
                                  ("none", NoDunning()))}
    fixed, none = (outcome(n, r.tables, policy, start=START, end=end) for n, r in runs.items())
    assert fixed.contacts_per_invoice > 0 and none.contacts_per_invoice == 0
    assert none.net_value >= fixed.net_value
    # ... while in the project's world the schedule earns more than silence
    ours = {name: simulate(120, days=days, seed=seed, policy=policy, logging_policy=decider)
            for name, decider in (("fixed", ScheduleLoggingPolicy(policy, 0.0, seed)),
                                  ("none", NoDunning()))}
    f, n = (outcome(k, r.tables, policy, start=START, end=end) for k, r in ours.items())
    assert f.net_value > n.net_value


def test_a_world_changes_the_engine_only_through_its_knobs():
    """The agency world without its fall of recovery with age recovers more of what the
    schedule hands over at due + 50, with the same draws."""
    flat = dataclasses.replace(AGENCY_WORLD, name="flat", recovery_half_life_days=None)
    policy = Policy()
    got = {}
    for world in (AGENCY_WORLD, flat):
        r = simulate(60, days=300, seed=4, world=world, policy=policy,
                     logging_policy=ScheduleLoggingPolicy(policy, 0.0, 4))
        handed = r.tables.actions.filter(pl.col("channel") == "collection")["invoice_id"]
        assert handed.len() > 5
        got[world.name] = r.tables.payments.filter(pl.col("invoice_id").is_in(handed)).height
    assert got["flat"] > got["agency"]


# -- the command line -------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


def test_cli_simulate_takes_a_world_name_or_a_world_seed(tmp_path):
    for flag, value in (("--world", "restraint"), ("--world-seed", "3")):
        out = tmp_path / value
        r = _cli("simulate", "--out", out, "--debtors", 5, "--days", 60, flag, value, "--quiet")
        assert r.returncode == 0, r.stderr
        assert (out / "invoices.csv").exists() and (out / "truth.csv").exists()
    seeded = pl.read_csv(tmp_path / "3" / "truth.csv")
    direct = simulate(5, days=60, seed=1, world=world_from_seed(3)).truth
    assert seeded["kind"].to_list() == direct["kind"].to_list()


@pytest.mark.parametrize(("command", "args", "message"), [
    ("simulate", ("--world", "mars"), "error: unknown world 'mars'"),
    ("simulate", ("--world", "calls", "--world-seed", "2"),
     "error: give --world or --world-seed, not both"),
    ("backtest", ("--world", "mars"), "error: unknown world 'mars'"),
], ids=["simulate-unknown-name", "simulate-both", "backtest-unknown-name"])
def test_cli_refuses_a_bad_world_in_one_line(tmp_path, command, args, message):
    out = ("--out", tmp_path / "x") if command == "simulate" else ()
    r = _cli(command, *out, "--debtors", 5, "--days", 180, *args)
    assert r.returncode == 2
    assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
