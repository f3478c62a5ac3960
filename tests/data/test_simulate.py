"""The simulator: seeded, contract-valid, rule-abiding, with exact propensities and realism."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict

import polars as pl
import pytest

from paycadence.config import (
    CHANNELS,
    CONTACT_CHANNELS,
    Exploration,
    PaymentPlan,
    Policy,
    Rules,
)
from paycadence.data import (
    COLUMNS,
    Decision,
    ScheduleLoggingPolicy,
    read_clean,
    settlements,
    simulate,
    write_simulation,
)
from paycadence.data.sim_engine import PolicyError
from paycadence.data.sim_world import KINDS, reminder_boost
from paycadence.guard import DebtorState, InvoiceState, allowed_actions, audit_actions

EPS = 0.10
N, DAYS, SEED = 200, 450, 5
START = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def small():
    return simulate(N, days=DAYS, seed=SEED, exploration_share=EPS)


class AlwaysWait:
    """Never acts (asked on the schedule's decision days, having no rule of its own)."""

    def decide(self, state, on, context):
        return Decision("wait", (), 1.0)


@pytest.fixture(scope="module")
def waited():
    return simulate(N, days=DAYS, seed=SEED, logging_policy=AlwaysWait())


def _audit(result, policy=None):
    t = result.tables
    return audit_actions(t.actions.to_dicts(), t.invoices.to_dicts(), t.disputes.to_dicts(),
                         t.debtors.to_dicts(), policy)


def _settled(result) -> pl.DataFrame:
    t = result.tables
    return (t.invoices.lazy().join(settlements(t.invoices.lazy(), t.payments.lazy()),
                                   on="invoice_id").collect()
            .join(result.truth.select("debtor_id", "kind", "changed_on", "segment"),
                  on="debtor_id"))


# -- determinism -----------------------------------------------------------------------------
def test_same_seed_same_company_other_seed_other_company(small):
    again = simulate(N, days=DAYS, seed=SEED, exploration_share=EPS)
    for (name, a), (_, b) in zip(small.tables.items(), again.tables.items(), strict=True):
        assert a.equals(b), name
    assert small.decisions.equals(again.decisions)
    assert small.truth.equals(again.truth)
    other = simulate(N, days=DAYS, seed=SEED + 1, exploration_share=EPS)
    assert not other.tables.invoices.equals(small.tables.invoices)
    assert not other.tables.payments.equals(small.tables.payments)


def test_fewer_debtors_are_a_prefix_of_more():
    """Each debtor has its own streams: the first 20 of 40 debtors are the 20 of a 20 run."""
    few, more = simulate(20, days=200, seed=3), simulate(40, days=200, seed=3)
    ids = few.tables.debtors["debtor_id"].implode()
    assert few.tables.invoices.equals(more.tables.invoices.filter(
        pl.col("debtor_id").is_in(ids)))
    assert few.decisions.equals(more.decisions.filter(pl.col("debtor_id").is_in(ids)))


def test_a_run_stopped_early_is_the_start_of_the_whole_run():
    """``until`` stops the runs on a day and keeps every draw: the rows before it are those of
    the whole run (the off-policy check's truth simulates only a decision's reward window)."""
    whole = simulate(30, days=300, seed=4, exploration_share=0.3)
    cut = dt.date(2024, 1, 1) + dt.timedelta(days=170)
    early = simulate(30, days=300, seed=4, exploration_share=0.3, until=cut)
    dated = {"invoices": "issue_date", "payments": "paid_on", "actions": "sent_on",
             "disputes": "opened_on"}
    for name, column in dated.items():
        mine, theirs = getattr(early.tables, name), getattr(whole.tables, name)
        assert mine.height > 0 and mine[column].max() < cut
        assert mine.equals(theirs.filter(pl.col(column) < cut)), name
    assert early.decisions.equals(whole.decisions.filter(pl.col("decided_on") < cut))
    assert early.tables.debtors.equals(whole.tables.debtors)


# -- the contract ----------------------------------------------------------------------------
def test_tables_keep_the_contract(small):
    t = small.tables
    for name, frame in t.items():
        assert dict(frame.schema) == COLUMNS[name], name
    assert t.debtors["debtor_id"].is_unique().all() and t.invoices["invoice_id"].is_unique().all()
    assert (t.invoices["amount"] > 0).all() and (t.payments["amount"] > 0).all()
    for frame in (t.invoices, t.payments):
        assert ((frame["amount"] * 100).round(6) % 1 == 0).all(), "amounts in cents"
    assert (t.invoices["due_date"] >= t.invoices["issue_date"]).all()
    assert set(t.actions["channel"].unique()) <= set(CHANNELS)
    assert t.actions["propensity"].is_between(0, 1, closed="right").all()
    contacts = t.actions.filter(pl.col("channel").is_in(CONTACT_CHANNELS))
    assert (contacts["step"] >= 1).all() and contacts["step"].null_count() == 0
    paid = t.payments.group_by("invoice_id").agg(pl.col("amount").sum(),
                                                 pl.col("paid_on").min()).join(
        t.invoices.select("invoice_id", "issue_date", pl.col("amount").alias("billed")),
        on="invoice_id")
    assert paid.height == t.payments["invoice_id"].n_unique(), "payments for known invoices"
    assert (paid["amount"] <= paid["billed"] + 0.01).all()
    assert (paid["paid_on"] >= paid["issue_date"]).all()
    end = START + dt.timedelta(days=DAYS)
    assert t.last_date < end
    assert (t.disputes["opened_on"].is_not_null()).all()
    assert (t.disputes.drop_nulls("resolved_on").select(
        pl.col("resolved_on") > pl.col("opened_on")).to_series()).all()
    opted = {c for cell in t.debtors["opted_out"].drop_nulls() for c in cell.split(";")}
    assert opted <= {"sms", "phone"}
    assert set(t.invoices["currency"]) <= {"EUR", "GBP"}


def test_b2b_payments_land_on_bank_days(small):
    t = small.tables
    b2b = small.truth.filter(pl.col("segment") == "b2b")["debtor_id"].implode()
    pays = t.payments.join(t.invoices.select("invoice_id", "debtor_id"), on="invoice_id")
    days = pays.filter(pl.col("debtor_id").is_in(b2b))["paid_on"].dt.weekday()
    assert days.len() > 100 and (days <= 5).all()
    b2c = pays.filter(~pl.col("debtor_id").is_in(b2b))["paid_on"].dt.weekday()
    assert (b2c > 5).any(), "consumers pay online at weekends"


def test_written_files_read_back_identical(small, tmp_path):
    paths = write_simulation(small, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        ["debtors.csv", "invoices.csv", "payments.csv", "actions.csv", "disputes.csv",
         "decisions.csv", "truth.csv"])
    first = (tmp_path / "invoices.csv").read_text().splitlines()[1].split(",")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first[2]), "ISO dates"
    back = read_clean(tmp_path)
    for (name, a), (_, b) in zip(small.tables.items(), back.items(), strict=True):
        assert a.equals(b), name
    decisions = pl.read_csv(tmp_path / "decisions.csv", try_parse_dates=True)
    assert decisions.height == small.decisions.height


# -- rules -----------------------------------------------------------------------------------
def test_no_rule_is_ever_broken(small):
    assert _audit(small) == []


def test_stricter_rules_are_followed_too():
    policy = Policy(rules=Rules(min_days_between_contacts=7, max_contacts_per_30_days=2,
                                min_reminders_before_collection=4,
                                min_days_overdue_for_collection=60),
                    payment_plan=PaymentPlan(min_reminders_before_offer=2, installments=4))
    result = simulate(80, days=400, seed=2, policy=policy, exploration_share=0.3)
    assert result.tables.actions.height > 100
    assert (result.tables.actions["channel"] == "collection").any()
    assert _audit(result, policy) == []


def test_disputed_invoices_are_neither_contacted_nor_paid_while_open(small):
    t = small.tables
    assert t.disputes.height > 5
    spans = t.disputes.with_columns(pl.col("resolved_on").fill_null(dt.date(9999, 1, 1)))
    inside = (pl.col("opened_on") <= pl.col("on")) & (pl.col("on") < pl.col("resolved_on"))
    contacted = t.actions.rename({"sent_on": "on"}).join(spans, on="invoice_id").filter(inside)
    assert contacted.height == 0
    paid = t.payments.rename({"paid_on": "on"}).join(spans, on="invoice_id").filter(inside)
    assert paid.height == 0


class _Reckless:
    """Phones about every invoice every day, whatever the rules say."""

    def is_decision_day(self, state, on, context):
        return bool(state.invoices)

    def decide(self, state, on, context):
        return Decision("phone", tuple(i.invoice_id for i in state.invoices), 1.0)


def test_a_policy_that_breaks_a_rule_is_stopped():
    with pytest.raises(PolicyError, match="refused by the guard"):
        simulate(10, days=120, seed=1, logging_policy=_Reckless())


# -- propensities ----------------------------------------------------------------------------
def test_logged_propensities_are_exact():
    """The schedule's own ε-exploration; with ``exploration.timing`` off, so that every row is
    a schedule decision day (the timing rows are checked in test_timing_exploration.py)."""
    no_timing = Policy(exploration=Exploration(timing=0.0))
    small = simulate(N, days=DAYS, seed=SEED, exploration_share=EPS, policy=no_timing)
    d = small.decisions
    expected = (1 - EPS) * (pl.col("action") == pl.col("schedule_action")) + EPS / pl.col(
        "n_allowed")
    assert (d["propensity"] - d.select(expected).to_series()).abs().max() < 1e-12
    calm = d.filter(~pl.col("explored"))
    assert (calm["action"] == calm["schedule_action"]).all()
    off = d.filter(pl.col("explored") & (pl.col("action") != pl.col("schedule_action")))
    assert off.height > 50
    assert ((off["propensity"] - EPS / off["n_allowed"]).abs() < 1e-12).all()
    n, share = d.height, d["explored"].mean()
    assert abs(share - EPS) < 4 * math.sqrt(EPS * (1 - EPS) / n)
    # every action row carries its decision's propensity
    per_row = d.filter(pl.col("action") != "wait").select(
        pl.col("decided_on").alias("sent_on"), pl.col("propensity").alias("p_decision"),
        pl.col("invoice_ids").str.split(";").alias("invoice_id")).explode("invoice_id")
    logged = small.tables.actions.join(per_row, on=["invoice_id", "sent_on"])
    assert logged.height == small.tables.actions.height
    assert (logged["propensity"] == logged["p_decision"]).all()


def _rebuild_states(result, sample: pl.DataFrame) -> list[tuple[dict, DebtorState]]:
    """Each sampled decision's DebtorState rebuilt from the five tables alone."""
    t = result.tables
    invoices = defaultdict(list)
    for r in t.invoices.iter_rows(named=True):
        invoices[r["debtor_id"]].append(r)
    pays, acts, disputes = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in t.payments.iter_rows(named=True):
        pays[r["invoice_id"]].append(r)
    for r in t.actions.iter_rows(named=True):
        acts[r["invoice_id"]].append(r)
    for r in t.disputes.iter_rows(named=True):
        disputes[r["invoice_id"]].append(r)
    opted = {r["debtor_id"]: frozenset((r["opted_out"] or "").split(";")) - {""}
             for r in t.debtors.iter_rows(named=True)}
    out = []
    for row in sample.iter_rows(named=True):
        on, states, days = row["decided_on"], [], set()
        for inv in invoices[row["debtor_id"]]:
            i = inv["invoice_id"]
            contacts = {a["sent_on"] for a in acts[i]
                        if a["sent_on"] < on and a["channel"] in CONTACT_CHANNELS}
            days |= contacts
            rest = round(inv["amount"] - sum(p["amount"] for p in pays[i] if p["paid_on"] < on),
                         2)
            if inv["issue_date"] > on or rest <= 0.004:
                continue
            disputed = any(x["opened_on"] <= on and (x["resolved_on"] is None
                                                     or x["resolved_on"] > on)
                           for x in disputes[i])
            handed = any(a["channel"] == "collection" and a["sent_on"] < on for a in acts[i])
            states.append(InvoiceState(i, inv["due_date"], rest, len(contacts), disputed,
                                       handed))
        out.append((row, DebtorState(row["debtor_id"], tuple(states), tuple(sorted(days)),
                                     opted[row["debtor_id"]])))
    return out


def test_allowed_actions_rederived_from_the_tables_match_the_log(small):
    """Rebuilt from the exported tables only, the guard allows exactly k actions, the logged
    one among them, and the logged step is the invoice's reminder number."""
    sample = small.decisions.sample(400, seed=1)
    policy = Policy()
    for row, state in _rebuild_states(small, sample):
        allowed = allowed_actions(state, row["decided_on"], policy)
        assert len(allowed) == row["n_allowed"], row
        assert row["action"] in allowed, row
        if row["action"] != "wait":
            assert set(row["invoice_ids"].split(";")) <= set(allowed[row["action"]]), row
        if row["action"] in CONTACT_CHANNELS:
            contacts = {i.invoice_id: i.contacts for i in state.invoices}
            assert row["step"] == 1 + max(contacts[i] for i in row["invoice_ids"].split(";"))


# -- behaviour -------------------------------------------------------------------------------
def test_kinds_pay_as_described(small):
    s = _settled(small).filter(
        pl.col("changed_on").is_null()
        & (pl.col("due_date") < START + dt.timedelta(days=DAYS - 90))
    ).with_columns(late=pl.col("settled_on").is_null() | (pl.col("settled_on")
                                                            > pl.col("due_date")))
    share = dict(s.group_by("kind").agg(pl.col("late").mean()).iter_rows())
    assert share["punctual"] < 0.2
    assert share["slow_but_sure"] > 0.75 and share["defaulting"] > 0.85
    assert share["punctual"] < share["forgetful"] < share["slow_but_sure"]
    never = dict(s.group_by("kind").agg(pl.col("settled_on").is_null().mean()).iter_rows())
    assert never["defaulting"] > 0.3 > never["slow_but_sure"]
    parts = dict(s.group_by("kind").agg((pl.col("n_payments") > 1).mean()).iter_rows())
    assert parts["cash_strapped"] > 0.3 > parts["punctual"]


def test_forgetful_debtors_pay_soon_after_a_reminder(small):
    first = small.tables.actions.filter(pl.col("step") == 1).group_by("invoice_id").agg(
        pl.col("sent_on").min())
    s = _settled(small).filter(pl.col("changed_on").is_null()).join(first, on="invoice_id")
    s = s.filter(pl.col("settled_on").is_null() | (pl.col("settled_on") >= pl.col("sent_on")))
    soon = s.with_columns(soon=(pl.col("settled_on") - pl.col("sent_on")).dt.total_days() <= 7)
    share = dict(soon.group_by("kind").agg(pl.col("soon").fill_null(False).mean()).iter_rows())
    assert share["forgetful"] > 0.45
    assert share["forgetful"] > 2 * share["defaulting"]
    assert share["forgetful"] > share["slow_but_sure"]


def test_reminders_raise_the_chance_of_payment(small, waited):
    """Same company, same random numbers: of the invoices still open two days past due, far
    more are paid in the following week when the schedule reminds than when nobody does."""
    rate = {}
    for name, result in (("schedule", small), ("wait", waited)):
        s = _settled(result).filter(
            (pl.col("due_date") < START + dt.timedelta(days=DAYS - 20))
            & (pl.col("settled_on").is_null()
               | (pl.col("settled_on") > pl.col("due_date") + dt.timedelta(days=2))))
        hit = (pl.col("settled_on") <= pl.col("due_date") + dt.timedelta(days=9)).fill_null(False)
        rate[name] = dict(s.group_by("kind").agg(hit.mean()).iter_rows())
        rate[name]["all"] = s.select(hit.mean()).item()
    assert rate["schedule"]["all"] > 2 * rate["wait"]["all"]
    assert rate["schedule"]["forgetful"] > 0.4 > 0.15 > rate["wait"]["forgetful"]
    assert rate["schedule"]["defaulting"] < 0.1


def test_a_reminder_boost_fades_and_tires():
    response = {"email": 1.0, "sms": 1.0, "letter": 1.0, "phone": 1.0}
    one = [(0, "email")]
    assert reminder_boost(response, 1.0, one, 0) == 0, "acts from the next day"
    assert reminder_boost(response, 1.0, one, 1) > reminder_boost(response, 1.0, one, 8) > 0
    second_alone = reminder_boost(response, 1.0, [(10, "email")], 11)
    second_after_first = reminder_boost(response, 1.0, [(-60, "email"), (10, "email")], 11)
    assert second_after_first < second_alone
    assert reminder_boost(response, 1.0, [(0, "phone")], 1) > reminder_boost(
        response, 1.0, [(0, "email")], 1)
    assert KINDS["forgetful"].response > KINDS["defaulting"].response


def test_the_world_holds_its_rare_traits():
    result = simulate(400, days=400, seed=9, exploration_share=0.0)
    truth = result.truth
    assert 0.05 < result.tables.debtors["opted_out"].is_not_null().mean() < 0.16
    assert truth["changed_on"].is_not_null().sum() >= 8
    assert set(truth["segment"]) == {"b2b", "b2c"} and truth["country"].n_unique() == 5
    shares = dict(truth.group_by("kind").len().with_columns(
        pl.col("len") / truth.height).iter_rows())
    for kind, params in KINDS.items():
        assert abs(shares[kind] - params.share) < 0.06, kind
    assert (result.decisions["propensity"] == 1.0).all(), "ε = 0 never explores"
    inv = result.tables.invoices.join(truth.select("debtor_id", "segment"), on="debtor_id")
    terms = (inv["due_date"] - inv["issue_date"]).dt.total_days()
    assert set(terms.unique()) <= {14, 30, 60}
    med = dict(inv.group_by("segment").agg(pl.col("amount").median()).iter_rows())
    assert med["b2b"] > 5 * med["b2c"]


# -- other policies --------------------------------------------------------------------------
def test_another_policy_changes_actions_not_the_company(small, waited):
    assert waited.tables.actions.height == 0 and small.tables.actions.height > 0
    assert waited.decisions.height > 0 and (waited.decisions["action"] == "wait").all()
    assert waited.tables.invoices.equals(small.tables.invoices)
    assert waited.tables.debtors.equals(small.tables.debtors)
    assert waited.truth.equals(small.truth)
    assert not waited.tables.payments.equals(small.tables.payments)
    # common random numbers: an invoice no run acted on is paid identically in both
    touched = small.tables.actions["invoice_id"].implode()
    same = [r.tables.payments.filter(~pl.col("invoice_id").is_in(touched))
            for r in (small, waited)]
    assert same[0].height > 1000 and same[0].equals(same[1])


class _Spy(ScheduleLoggingPolicy):
    """The schedule, checking what each decision could know."""

    calls = 0

    def decide(self, state, on, context):
        history = context.history()
        assert history.invoices["issue_date"].max() <= on
        assert history.payments.height == 0 or history.payments["paid_on"].max() < on
        assert history.actions.height == 0 or history.actions["sent_on"].max() < on
        resolved = history.disputes["resolved_on"].drop_nulls()
        assert resolved.len() == 0 or resolved.max() <= on
        assert set(context.days_past_due) == {i.invoice_id for i in state.invoices}
        assert all(c[0] < on for c in context.contacts)
        type(self).calls += 1
        return super().decide(state, on, context)


def test_policies_see_only_what_is_known_on_the_morning():
    plain = simulate(15, days=240, seed=4)
    spied = simulate(15, days=240, seed=4, logging_policy=_Spy(Policy(), EPS, seed=4))
    assert _Spy.calls == plain.decisions.height > 0
    assert spied.tables.actions.equals(plain.tables.actions)


def test_another_world_is_another_company_under_the_same_rules():
    """OTHER_WORLD: same contract and rules, different behaviour — a worse book in which
    letters move debtors more than emails; one debtor simulated alone is the same as in the
    whole company."""
    from paycadence.data.sim_world import OTHER_WORLD, PROJECT_WORLD, World

    ours = simulate(150, days=300, seed=3, world=PROJECT_WORLD)
    other = simulate(150, days=300, seed=3, world=OTHER_WORLD)
    assert audit_actions(other.tables.actions.to_dicts(), other.tables.invoices.to_dicts(),
                         other.tables.disputes.to_dicts(), other.tables.debtors.to_dicts(),
                         Policy()) == []
    bad = {"cash_strapped", "defaulting"}
    share = {name: r.truth["kind"].is_in(list(bad)).mean() for name, r in
             (("ours", ours), ("other", other))}
    assert share["other"] > share["ours"]
    assert other.truth["preferred_channel"].to_list() != ours.truth["preferred_channel"].to_list()
    assert OTHER_WORLD.channel_boost["letter"] > OTHER_WORLD.channel_boost["email"]
    assert reminder_boost({"letter": 1.0}, 1.0, [(0, "letter")], 1, OTHER_WORLD) > \
        reminder_boost({"letter": 1.0}, 1.0, [(0, "letter")], 1, PROJECT_WORLD)
    alone = simulate(150, days=300, seed=3, world=OTHER_WORLD, only=[7])
    mine = other.tables.payments.join(other.tables.invoices.select("invoice_id", "debtor_id"),
                                      on="invoice_id").filter(pl.col("debtor_id") == "D00007")
    assert alone.tables.payments.sort("paid_on", "invoice_id").equals(
        mine.drop("debtor_id").sort("paid_on", "invoice_id"))
    with pytest.raises(ValueError, match="shares summing to 1"):
        World(name="broken", kinds={k: KINDS[k] for k in list(KINDS)[:3]})
