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
from paycadence.models.policy import (
    PATIENCE_DAYS,
    PAYING_DAYS,
    PAYING_EXTRA_DAYS,
    VALUE_CHANNELS,
    InvoiceRisk,
    PaymentRecord,
    decide,
    decide_value,
)

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
        "among": draw(st.sampled_from(["near_best", "all"]))})


def _check_distribution(choice, state, policy):
    """The decision's whole distribution: probabilities sum to one, the chosen action's is its
    propensity, no action in it breaks a rule, and near-best exploration never contacts on a
    day the greedy choice waits."""
    from paycadence.models.policy import CONTACTS

    probs = {a: p for a, (p, _) in choice.options.items()}
    assert abs(sum(probs.values()) - 1.0) < 1e-9
    assert choice.action in probs and abs(probs[choice.action] - choice.propensity) < 1e-12
    assert tuple(choice.options[choice.action][1]) == tuple(choice.invoice_ids)
    for action, (_, ids) in choice.options.items():
        assert violations(action, ids, state, D0, policy) == []
    greedy = max(probs, key=probs.get) if policy.exploration.share < 0.5 else None
    if policy.exploration.among == "near_best" and greedy == "wait":
        assert not set(probs) & set(CONTACTS), "exploring never adds a contact"


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


@given(state=states(), policy=policies(),
       p=st.lists(st.floats(0, 1), min_size=5, max_size=5), merits=st.booleans())
@settings(max_examples=300, deadline=None)
def test_decide_breaks_no_rule_whatever_the_scores(state, policy, p, merits):
    risks = {inv.invoice_id: InvoiceRisk(inv.invoice_id, p[i], p[-1 - i], 10.0)
             for i, inv in enumerate(state.invoices)}
    choice = decide(state, risks, D0, policy, merits_plan=merits)
    assert choice.action in ACTIONS
    assert violations(choice.action, choice.invoice_ids, state, D0, policy) == []
    assert 0 < choice.propensity <= 1
    assert choice.next_review_on > D0
    _check_distribution(choice, state, policy)


@given(state=states(), policy=policies(),
       p=st.lists(st.floats(0, 1), min_size=5, max_size=5), merits=st.booleans(),
       up=st.lists(st.floats(-1, 1), min_size=25, max_size=25),
       worth=st.lists(st.floats(0, 1e5), min_size=5, max_size=5),
       resp=st.lists(st.none() | st.floats(0, 1), min_size=4, max_size=4),
       days_late=st.floats(-30, 400),
       record=st.none() | st.builds(PaymentRecord, st.floats(0, 50),
                                    st.none() | st.floats(-30, 400) | st.just(float("nan")),
                                    st.floats(0, 3),
                                    st.none() | st.floats(0, 400) | st.just(float("nan"))))
@settings(max_examples=300, deadline=None)
def test_adaptive_decision_breaks_no_rule_whatever_the_model_says(state, policy, p, merits, up,
                                                                  worth, resp, days_late,
                                                                  record):
    """Any uplift, any worth, any response history, any forecast: never a rule broken."""
    risks = {inv.invoice_id: InvoiceRisk(inv.invoice_id, p[i], p[-1 - i], days_late)
             for i, inv in enumerate(state.invoices)}
    uplift = {a: {inv.invoice_id: up[5 * j + i] for i, inv in enumerate(state.invoices)}
              for j, a in enumerate(VALUE_CHANNELS)}
    worths = {inv.invoice_id: worth[i] for i, inv in enumerate(state.invoices)}
    responds = dict(zip(("email", "sms", "letter", "phone"), resp, strict=True))
    choice = decide_value(state, risks, D0, policy, uplift=uplift, worth=worths,
                          merits_plan=merits, responds=responds, patient=record)
    assert choice.action in ACTIONS
    assert violations(choice.action, choice.invoice_ids, state, D0, policy) == []
    assert 0 < choice.propensity <= 1
    assert choice.next_review_on > D0
    assert choice.reason
    _check_distribution(choice, state, policy)


def _debtor(contacts=0, past_due=20, last_contact=None, opted=frozenset()):
    inv = InvoiceState("I0", D0 - dt.timedelta(days=past_due), 800.0, contacts, False, False)
    days = () if last_contact is None else (D0 - dt.timedelta(days=last_contact),)
    return DebtorState("D", (inv,), days, opted)


def _quiet():
    return Policy(exploration={"share": 0.0, "seed": 0})


def test_the_channel_worth_most_is_sent():
    state = _debtor(contacts=1, past_due=18, last_contact=16)
    risks = {"I0": InvoiceRisk("I0", 0.9, 0.4, 60.0)}
    uplift = {a: {"I0": 0.01} for a in VALUE_CHANNELS} | {"phone": {"I0": 0.30}}
    choice = decide_value(state, risks, D0, _quiet(), uplift=uplift, worth={"I0": 400.0})
    assert choice.action == "phone"  # 0.30 × 400 − 6.00 beats 0.01 × 400 − 0.05
    assert "phone" in choice.reason
    uplift["phone"]["I0"] = 0.012  # no longer pays for the call
    assert decide_value(state, risks, D0, _quiet(), uplift=uplift,
                        worth={"I0": 400.0}).action != "phone"


def test_a_responsive_debtor_is_reminded_early_on_its_channel():
    state = _debtor(contacts=0, past_due=1)
    risks = {"I0": InvoiceRisk("I0", 0.7, 0.1, 10.0)}
    uplift = {a: {"I0": 0.0} for a in VALUE_CHANNELS}
    quiet = _quiet()
    assert decide_value(state, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0}).action == \
        "wait"  # the schedule's first reminder is at due + 2
    choice = decide_value(state, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0},
                          responds={"sms": 0.8, "email": 0.3})
    assert choice.action == "sms" and "responds" in choice.reason
    opted = _debtor(contacts=0, past_due=1, opted=frozenset({"sms"}))
    assert decide_value(opted, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0},
                        responds={"sms": 0.8}).action == "wait"


def test_a_known_debtor_gets_the_early_cadence_on_its_best_channel():
    risks = {"I0": InvoiceRisk("I0", 0.7, 0.1, 10.0)}
    uplift = {a: {"I0": 0.0} for a in VALUE_CHANNELS}
    quiet = _quiet()

    def ask(state, responds):
        return decide_value(state, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0},
                            responds=responds)

    first = _debtor(contacts=0, past_due=1)
    choice = ask(first, {"email": 0.2, "letter": 0.1, "sms": None, "phone": float("nan")})
    assert choice.action == "email" and "early cadence" in choice.reason
    assert ask(first, {"email": 0.0, "sms": 0.0}).action == "sms"  # a tie: sms first
    assert ask(first, {"email": None, "sms": None}).action == "wait"  # never reminded: schedule
    # the second reminder 10 days after the first (the schedule's is at due + 18)
    assert ask(_debtor(contacts=1, past_due=11, last_contact=10), {"email": 0.2}).action == \
        "email"
    assert ask(_debtor(contacts=1, past_due=11, last_contact=9), {"email": 0.2}).action == "wait"
    # from the third reminder on, the schedule's days again
    assert ask(_debtor(contacts=2, past_due=25, last_contact=12), {"email": 0.2}).action == \
        "wait"


def test_a_reminder_waits_when_the_money_is_coming_anyway():
    state = _debtor(contacts=0, past_due=2)
    soon = {"I0": InvoiceRisk("I0", 0.3, 0.0, 3.0)}  # median: paid in a day
    uplift = {a: {"I0": 0.0} for a in VALUE_CHANNELS}
    choice = decide_value(state, soon, D0, _quiet(), uplift=uplift, worth={"I0": 1.0})
    assert choice.action == "wait" and "can wait" in choice.reason
    late = {"I0": InvoiceRisk("I0", 0.3, 0.0, 3.0)}
    stale = _debtor(contacts=0, past_due=20)  # a week past the grace: remind whatever it says
    assert decide_value(stale, late, D0, _quiet(), uplift=uplift,
                        worth={"I0": 1.0}).action != "wait"


def test_a_debtor_who_pays_late_but_pays_gets_patience_before_collection():
    quiet = _quiet()
    day = quiet.schedule.collection
    state = _debtor(contacts=3, past_due=day, last_contact=day - quiet.schedule.final_notice)
    risks = {"I0": InvoiceRisk("I0", 0.9, 0.5, 80.0)}
    uplift = {a: {"I0": 0.0} for a in VALUE_CHANNELS}

    def action(state, record):
        return decide_value(state, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0},
                            patient=record)

    good = PaymentRecord(n_settled=8, median_days_late=25.0, n_broken_plans=0)
    held = action(state, good)
    assert held.action == "wait" and "pays late but pays" in held.reason
    assert f"{day + PATIENCE_DAYS} days past due" in held.reason
    assert action(state, None).action == "collection"  # no record: the schedule's day
    for bad in (PaymentRecord(2, 25.0, 0), PaymentRecord(8, 55.0, 0), PaymentRecord(8, 25.0, 1),
                PaymentRecord(8, None, 0), PaymentRecord(8, float("nan"), 0)):
        assert action(state, bad).action == "collection", bad  # too few, too late, broke a plan
    later = _debtor(contacts=3, past_due=day + PATIENCE_DAYS, last_contact=30)
    assert action(later, good).action == "collection"  # patience has an end


def test_a_debtor_who_is_still_paying_is_not_handed_over_until_it_stops():
    quiet = _quiet()
    day = quiet.schedule.collection
    risks = {"I0": InvoiceRisk("I0", 0.9, 0.5, 80.0)}
    uplift = {a: {"I0": 0.0} for a in VALUE_CHANNELS}

    def action(past_due, since, n_settled=0, late=None):
        state = _debtor(contacts=3, past_due=past_due, last_contact=20)
        record = PaymentRecord(n_settled, late, 0, since)
        return decide_value(state, risks, D0, quiet, uplift=uplift, worth={"I0": 1.0},
                            patient=record)

    held = action(day, PAYING_DAYS)  # paid something a month ago: still paying
    assert held.action == "wait" and "still paying" in held.reason
    assert f"{day + PAYING_EXTRA_DAYS} days past due" in held.reason
    assert action(day + PAYING_EXTRA_DAYS - 1, 2).action == "wait"
    assert action(day + PAYING_EXTRA_DAYS, 2).action == "collection"  # at most this long
    for stopped in (PAYING_DAYS + 1, None, float("nan")):  # stopped paying, or never paid
        assert action(day, stopped).action == "collection", stopped
    # a good record's 21 days come first; a debtor still paying then waits on to the cap
    assert "pays late but pays" in action(day, 5, 8, 25.0).reason
    assert "still paying" in action(day + PATIENCE_DAYS, 5, 8, 25.0).reason


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
        risks = {inv.invoice_id: InvoiceRisk(inv.invoice_id, scores[t], scores[-t], 5.0)
                 for inv in state.invoices}
        choice = decide(state, risks, on, policy, merits_plan=scores[t] > 0.5)
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


def test_an_invoice_a_hand_over_cannot_pay_for_stays_with_the_company():
    quiet = _quiet()  # collection costs 25.00 + 15%: break-even at 29.41 recovered in full
    day = quiet.schedule.collection
    due = D0 - dt.timedelta(days=day)
    invoices = (InvoiceState("BIG", due, 800.0, 3), InvoiceState("SMALL", due, 29.0, 3))
    risks = {i: InvoiceRisk(i, 0.9, 0.5, 80.0) for i in ("BIG", "SMALL")}
    uplift = {a: {"BIG": 0.0, "SMALL": 0.0} for a in VALUE_CHANNELS}
    last = (D0 - dt.timedelta(days=20),)

    def decide_for(*invs):
        state = DebtorState("D", invs, last, frozenset())
        ids = {i.invoice_id for i in invs}
        return decide_value(state, {k: v for k, v in risks.items() if k in ids}, D0, quiet,
                            uplift={a: {k: v for k, v in u.items() if k in ids}
                                    for a, u in uplift.items()},
                            worth=dict.fromkeys(ids, 1.0))

    both = decide_for(*invoices)
    assert both.action == "collection" and both.invoice_ids == ("BIG",)
    assert "1 smaller one(s) kept" in both.reason and "29.00" in both.reason
    alone = decide_for(invoices[1])
    assert alone.action == "wait" and alone.reason.startswith("not handed to collection")
    just_worth = decide_for(InvoiceState("SMALL", due, 29.5, 3))
    assert just_worth.action == "collection"
