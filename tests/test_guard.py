"""The rule guard: allowed actions break no rule, and decisions over random histories neither."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paycadence.config import ACTIONS, Policy, Rules
from paycadence.guard import (
    DebtorState,
    InvoiceState,
    allowed_actions,
    audit_actions,
    violations,
)
from paycadence.models.policy import BookValues, decide
from paycadence.models.policy.value import BANDS, VALUED

D0 = dt.date(2025, 3, 3)


@st.composite
def rules(draw):
    return Rules(
        min_days_between_contacts=draw(st.integers(0, 10)),
        max_contacts_per_30_days=draw(st.integers(1, 8)),
        min_reminders_before_collection=draw(st.integers(0, 4)),
        min_days_overdue_for_collection=draw(st.integers(0, 60)),
        contact_disputed_invoices=draw(st.booleans()),
    )


@st.composite
def policies(draw):
    return Policy(rules=draw(rules()), exploration={
        "share": draw(st.sampled_from([0, 0.05, 0.5, 1.0])), "seed": draw(st.integers(0, 5)),
        "among": draw(st.sampled_from(["near_best", "all"])),
        "timing": draw(st.sampled_from([0, 0.02, 0.5]))},
        learning={"min_support": draw(st.sampled_from([0, 30, 1e9]))})


def _check_distribution(choice, state, policy, values=None):
    """The decision's whole distribution: probabilities sum to one, the chosen action's is its
    propensity, no action in it breaks a rule, and near-best exploration never contacts on a
    day the greedy choice waits but by the timing budget (all of it without a value model; at
    most all of it with one, which does not draw options its log supports)."""
    from paycadence.models.policy import CONTACTS

    probs = {a: p for a, (p, _) in choice.options.items()}
    assert abs(sum(probs.values()) - 1.0) < 1e-9
    assert choice.action in probs and abs(probs[choice.action] - choice.propensity) < 1e-12
    assert tuple(choice.options[choice.action][1]) == tuple(choice.invoice_ids)
    for action, (_, ids) in choice.options.items():
        assert violations(action, ids, state, D0, policy) == []
    greedy = max(probs, key=probs.get) if max(policy.exploration.share,
                                              policy.exploration.timing) < 0.5 else None
    if policy.exploration.among == "near_best" and greedy == "wait":
        contacts = {a: p for a, p in probs.items() if a in CONTACTS}
        # on a day the decision waits, contacts are drawn only by the timing budget
        budget = policy.exploration.timing if contacts else 0
        if values is None:
            assert abs(sum(contacts.values()) - budget) < 1e-9
        else:
            assert sum(contacts.values()) <= budget + 1e-9


@st.composite
def states(draw):
    n = draw(st.integers(0, 5))
    invoices = tuple(
        InvoiceState(
            invoice_id=f"I{i}",
            due_date=D0 + dt.timedelta(days=draw(st.integers(-120, 30))),
            open_amount=draw(st.floats(0.01, 5000)),
            contacts=draw(st.integers(0, 5)),
            disputed=draw(st.booleans()),
            in_collection=draw(st.booleans()),
        )
        for i in range(n)
    )
    days = draw(st.lists(st.integers(1, 45), max_size=6, unique=True))
    opted = draw(st.frozensets(st.sampled_from(["email", "sms", "letter", "phone"])))
    return DebtorState("D", invoices, tuple(sorted(D0 - dt.timedelta(days=d) for d in days)),
                       opted)


@given(state=states(), policy=policies())
@settings(max_examples=300, deadline=None)
def test_every_allowed_action_breaks_no_rule(state, policy):
    for action, ids in allowed_actions(state, D0, policy).items():
        assert violations(action, ids, state, D0, policy) == []


@st.composite
def book_values(draw, ids):
    """Any value model's output for invoices ``ids``, and any support."""
    per_unit = {}
    for i in ids:
        if draw(st.booleans()):
            per_unit[i] = {a: draw(st.floats(0, 1)) for a in (*VALUED, "collection")}
    support = {a: [draw(st.sampled_from([0.0, 10.0, 1e6])) for _ in BANDS]
               for a in (*VALUED[1:], "collection")}
    return BookValues(per_unit, support)


@given(state=states(), policy=policies(), data=st.data())
@settings(max_examples=400, deadline=None)
def test_decide_breaks_no_rule_whatever_the_model_says(state, policy, data):
    """Any values, any support, with or without a value model: never a rule broken, and the
    whole distribution drawn from is exact."""
    values = data.draw(st.none() | book_values([i.invoice_id for i in state.invoices]))
    choice = decide(state, D0, policy, values)
    assert choice.action in ACTIONS
    assert violations(choice.action, choice.invoice_ids, state, D0, policy) == []
    assert 0 < choice.propensity <= 1
    assert choice.next_review_on > D0
    assert choice.reason
    _check_distribution(choice, state, policy, values)


@st.composite
def histories(draw):
    """A debtor's invoices, open dispute spans and a score stream for each day."""
    n = draw(st.integers(1, 4))
    dues = [draw(st.integers(-60, 40)) for _ in range(n)]
    disputes = {}
    for i in range(n):
        if draw(st.booleans()):
            start = draw(st.integers(-30, 60))
            disputes[f"I{i}"] = (D0 + dt.timedelta(days=start),
                                 D0 + dt.timedelta(days=start + draw(st.integers(1, 40))))
    scores = draw(st.lists(st.floats(0, 1), min_size=90, max_size=90))
    opted = draw(st.frozensets(st.sampled_from(["email", "sms", "letter", "phone"])))
    return dues, disputes, scores, opted


@given(history=histories(), policy=policies())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ninety_days_of_decisions_leave_a_clean_log(history, policy):
    """Replay 90 days of decisions; an outside audit of the whole log finds zero violations."""
    dues, disputes, scores, opted = history
    invoices = [{"invoice_id": f"I{i}", "debtor_id": "D",
                 "due_date": D0 + dt.timedelta(days=d)} for i, d in enumerate(dues)]
    log: list[dict] = []
    for t in range(90):
        on = D0 + dt.timedelta(days=t)
        contacts = {}
        for r in log:
            if r["channel"] != "collection":
                contacts.setdefault(r["invoice_id"], set()).add(r["sent_on"])
        collected = {r["invoice_id"] for r in log if r["channel"] == "collection"}
        state = DebtorState(
            "D",
            tuple(InvoiceState(inv["invoice_id"], inv["due_date"], 100.0,
                               len(contacts.get(inv["invoice_id"], ())),
                               inv["invoice_id"] in disputes
                               and disputes[inv["invoice_id"]][0] <= on
                               < disputes[inv["invoice_id"]][1],
                               inv["invoice_id"] in collected) for inv in invoices),
            tuple(sorted({r["sent_on"] for r in log if r["channel"] != "collection"})),
            opted,
        )
        values = BookValues({inv.invoice_id: {a: scores[(t + k) % 90] for k, a in enumerate(
            (*VALUED, "collection"))} for inv in state.invoices},
            {a: [1e6] * len(BANDS) for a in (*VALUED[1:], "collection")})
        choice = decide(state, on, policy, values if scores[t] > 0.3 else None)
        log += [{"invoice_id": i, "sent_on": on, "channel": choice.action}
                for i in choice.invoice_ids]
    found = audit_actions(
        log, invoices,
        [{"invoice_id": k, "opened_on": a, "resolved_on": b} for k, (a, b) in disputes.items()],
        [{"debtor_id": "D", "opted_out": ";".join(sorted(opted))}], policy)
    assert found == []


def _state(**kw):
    inv = InvoiceState("I1", D0 - dt.timedelta(days=40), 500.0, contacts=2)
    base = {"debtor_id": "D", "invoices": (inv,), "contact_days": (), "opted_out": frozenset()}
    return DebtorState(**(base | kw))


@pytest.mark.parametrize(
    ("action", "state", "rule"),
    [
        ("email", _state(contact_days=(D0 - dt.timedelta(days=2),)), "too soon"),
        ("sms", _state(opted_out=frozenset({"sms"})), "opted out"),
        ("collection", _state(invoices=(InvoiceState("I1", D0 - dt.timedelta(days=40), 500.0,
                                                     contacts=1),)), "reminders"),
        ("collection", _state(invoices=(InvoiceState("I1", D0 - dt.timedelta(days=10), 500.0,
                                                     contacts=3),)), "days overdue"),
        ("email", _state(invoices=(InvoiceState("I1", D0, 50.0, disputed=True),)), "dispute"),
        ("email", _state(contact_days=tuple(D0 - dt.timedelta(days=d) for d in (5, 10, 15, 20))),
         "30-day cap"),
        ("payment_plan", _state(invoices=(InvoiceState("I1", D0, 50.0, contacts=2),)), "needs"),
    ],
    ids=["spacing", "opt-out", "collection-reminders", "collection-overdue", "dispute", "cap",
         "plan-amount"],
)
def test_each_rule_is_enforced(action, state, rule):
    policy = Policy()
    assert action not in allowed_actions(state, D0, policy)
    found = violations(action, [inv.invoice_id for inv in state.invoices], state, D0, policy)
    assert any(rule in f for f in found), found


def test_audit_counts_violations_as_the_contract_reads_them():
    invoices = [{"invoice_id": "I1", "debtor_id": "D", "due_date": D0}]
    log = [
        {"invoice_id": "I1", "sent_on": D0 + dt.timedelta(days=1), "channel": "email"},
        {"invoice_id": "I1", "sent_on": D0 + dt.timedelta(days=2), "channel": "sms"},
        {"invoice_id": "I1", "sent_on": D0 + dt.timedelta(days=10), "channel": "collection"},
    ]
    rules = {v.rule for v in audit_actions(log, invoices)}
    assert rules == {"min_days_between_contacts", "min_days_overdue_for_collection"}
    same_day = [{"invoice_id": "I1", "sent_on": D0, "channel": c} for c in ("email", "letter")]
    assert audit_actions(same_day, invoices) == []
