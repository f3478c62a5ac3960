"""The simulator: seeded, contract-valid, rule-abiding, with exact propensities and realism."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from paycadence.config import Policy, Rules
from paycadence.data import Decision, settlements, simulate
from paycadence.guard import audit_actions

EPS = 0.10


@pytest.fixture(scope="module")
def small():
    return simulate(120, days=400, seed=5, exploration_share=EPS)


def _audit(result, policy=None):
    t = result.tables
    return audit_actions(t.actions.to_dicts(), t.invoices.to_dicts(), t.disputes.to_dicts(),
                         t.debtors.to_dicts(), policy)


def test_same_seed_same_company_other_seed_other_company(small):
    again = simulate(120, days=400, seed=5, exploration_share=EPS)
    for (name, a), (_, b) in zip(small.tables.items(), again.tables.items(), strict=True):
        assert a.equals(b), name
    other = simulate(120, days=400, seed=6, exploration_share=EPS)
    assert not other.tables.invoices.equals(small.tables.invoices)


def test_tables_keep_the_contract(small):
    t = small.tables
    assert t.invoices["invoice_id"].is_unique().all()
    assert (t.invoices["amount"] > 0).all() and (t.payments["amount"] > 0).all()
    assert (t.invoices["due_date"] >= t.invoices["issue_date"]).all()
    assert set(t.actions["channel"].unique()) <= {"email", "sms", "letter", "phone",
                                                  "payment_plan", "collection"}
    assert t.actions["propensity"].is_between(0, 1, closed="right").all()
    paid = t.payments.group_by("invoice_id").agg(pl.col("amount").sum()).join(
        t.invoices.select("invoice_id", "amount", "issue_date"), on="invoice_id",
        suffix="_invoice")
    assert (paid["amount"] <= paid["amount_invoice"] + 0.01).all()
    early = t.payments.join(t.invoices.select("invoice_id", "issue_date"), on="invoice_id")
    assert (early["paid_on"] >= early["issue_date"]).all()
    assert (t.payments["paid_on"].dt.weekday() <= 5).all(), "no payments on weekends"


def test_no_rule_is_ever_broken(small):
    assert _audit(small) == []


def test_stricter_rules_are_followed_too():
    policy = Policy(rules=Rules(min_days_between_contacts=7, max_contacts_per_30_days=2,
                                min_reminders_before_collection=3,
                                min_days_overdue_for_collection=45))
    result = simulate(60, days=300, seed=2, policy=policy)
    assert _audit(result, policy) == []


def test_logged_propensities_are_exact(small):
    d = small.decisions
    k = None
    schedule = d.filter(~pl.col("explored"))
    explored = d.filter(pl.col("explored"))
    assert explored.height > 0
    # a schedule action has (1 - e) + e/k, an explored one e/k, for the same k
    for row in explored.head(50).to_dicts():
        k = round(EPS / row["propensity"])
        assert row["propensity"] == pytest.approx(EPS / k)
    for row in schedule.filter(pl.col("propensity") < 1).head(50).to_dicts():
        k = round(EPS / (row["propensity"] - (1 - EPS)))
        assert row["propensity"] == pytest.approx(1 - EPS + EPS / k)
    share = d["explored"].mean()
    assert 0.03 < share < 0.10  # e minus the draws that land on the schedule's own action
    logged = small.tables.actions.join(
        d.filter(pl.col("action") != "wait").select(
            pl.col("decided_on").alias("sent_on"), "propensity",
            pl.col("invoice_ids").str.split(";").alias("invoice_id")).explode("invoice_id"),
        on=["invoice_id", "sent_on"], suffix="_decision")
    assert (logged["propensity"] - logged["propensity_decision"]).abs().max() < 1e-6


def test_kinds_pay_as_described(small):
    t = small.tables
    s = t.invoices.lazy().join(settlements(t.invoices.lazy(), t.payments.lazy()),
                               on="invoice_id").collect().join(
        small.truth.select("debtor_id", "kind"), on="debtor_id")
    s = s.filter(pl.col("due_date") < t.last_date - dt.timedelta(days=60)).with_columns(
        late=pl.col("settled_on").is_null() | (pl.col("settled_on") > pl.col("due_date")))
    share = dict(s.group_by("kind").agg(pl.col("late").mean()).iter_rows())
    assert share["punctual"] < 0.3
    assert share["slow_but_sure"] > 0.7 and share["defaulting"] > 0.7


def test_reminders_raise_the_payment_rate(small):
    """Payments are more frequent in the week after a reminder than in the week before it."""
    t = small.tables
    reminders = t.actions.filter(pl.col("channel").is_in(["email", "sms", "letter", "phone"]))
    first = reminders.group_by("invoice_id").agg(pl.col("sent_on").min())
    paid = settlements(t.invoices.lazy(), t.payments.lazy()).collect().join(first,
                                                                            on="invoice_id")
    after = paid.filter((pl.col("settled_on") > pl.col("sent_on"))
                        & (pl.col("settled_on") <= pl.col("sent_on") + dt.timedelta(days=7)))
    before = paid.filter((pl.col("settled_on") <= pl.col("sent_on"))
                         & (pl.col("settled_on") > pl.col("sent_on") - dt.timedelta(days=7)))
    assert after.height > 2 * before.height


def test_disputed_invoices_are_not_contacted_while_open(small):
    t = small.tables
    joined = t.actions.join(t.disputes, on="invoice_id").filter(
        (pl.col("sent_on") >= pl.col("opened_on"))
        & (pl.col("resolved_on").is_null() | (pl.col("sent_on") < pl.col("resolved_on"))))
    assert joined.height == 0


def test_opt_outs_behaviour_changes_and_partials_exist():
    result = simulate(300, days=400, seed=9)
    assert result.tables.debtors["opted_out"].is_not_null().sum() > 5
    assert result.truth["changed_on"].is_not_null().sum() > 3
    assert result.tables.payments.group_by("invoice_id").len().filter(
        pl.col("len") > 1).height > 10
    assert set(result.truth["segment"]) == {"b2b", "b2c"}


class AlwaysWait:
    def is_decision_day(self, state, on):
        return True

    def decide(self, state, on, context):
        return Decision("wait", (), 1.0)


def test_another_policy_changes_actions_not_the_company(small):
    waited = simulate(120, days=400, seed=5, logging_policy=AlwaysWait())
    assert waited.tables.actions.height == 0
    assert waited.tables.invoices.equals(small.tables.invoices)
    assert waited.tables.debtors.equals(small.tables.debtors)
