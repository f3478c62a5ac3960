"""Point-in-time features: nothing after ``as_of`` matters, and the values match a slow oracle."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from paycadence.data import Tables
from paycadence.features import FEATURES, contact_days, invoice_features
from paycadence.features.pit import features_at

AS_OF = dt.date(2025, 6, 1)
CHANNELS = ["email", "sms", "letter", "phone", "payment_plan", "collection"]


def random_history(seed: int, n_debtors: int = 12, n_invoices: int = 120) -> Tables:
    rng = random.Random(seed)
    start = dt.date(2024, 6, 1)
    debtors = [{"debtor_id": f"D{i}", "segment": rng.choice(["b2b", "b2c"]),
                "created_on": start, "opted_out": None} for i in range(n_debtors)]
    invoices, payments, actions, disputes = [], [], [], []
    for k in range(n_invoices):
        issue = start + dt.timedelta(days=rng.randint(0, 420))
        due = issue + dt.timedelta(days=rng.choice([14, 30]))
        amount = round(rng.uniform(10, 900), 2)
        inv = f"I{k}"
        invoices.append({"invoice_id": inv, "debtor_id": f"D{rng.randrange(n_debtors)}",
                         "issue_date": issue, "due_date": due, "amount": amount})
        if rng.random() < 0.85:
            pay_day = due + dt.timedelta(days=rng.randint(-10, 60))
            if rng.random() < 0.3:
                payments.append({"invoice_id": inv, "paid_on": pay_day, "amount": amount / 2})
                pay_day += dt.timedelta(days=rng.randint(1, 20))
                payments.append({"invoice_id": inv, "paid_on": pay_day, "amount": amount / 2})
            else:
                payments.append({"invoice_id": inv, "paid_on": pay_day, "amount": amount})
        for step in range(rng.randint(0, 3)):
            actions.append({"invoice_id": inv, "sent_on": due + dt.timedelta(days=2 + 16 * step),
                            "channel": rng.choice(CHANNELS), "step": step + 1})
        if rng.random() < 0.1:
            opened = issue + dt.timedelta(days=rng.randint(0, 40))
            resolved = opened + dt.timedelta(days=rng.randint(1, 60)) if rng.random() < 0.7 \
                else None
            disputes.append({"invoice_id": inv, "opened_on": opened, "resolved_on": resolved})
    return Tables.from_frames(
        debtors=pl.DataFrame(debtors), invoices=pl.DataFrame(invoices),
        payments=pl.DataFrame(payments), actions=pl.DataFrame(actions),
        disputes=pl.DataFrame(disputes, schema={"invoice_id": pl.String, "opened_on": pl.Date,
                                                "resolved_on": pl.Date}),
    )


HISTORY = random_history(7)
INVOICE_IDS = HISTORY.invoices["invoice_id"].to_list()
after = st.integers(0, 200).map(lambda d: AS_OF + dt.timedelta(days=d))
strictly_after = st.integers(1, 200).map(lambda d: AS_OF + dt.timedelta(days=d))


@st.composite
def future_rows(draw):
    """Rows dated after what is known on the morning of AS_OF, about old and new invoices."""
    n_new = draw(st.integers(0, 3))
    new_invoices = []
    for k in range(n_new):
        issue = draw(strictly_after)
        new_invoices.append({"invoice_id": f"N{k}", "debtor_id": draw(st.sampled_from(
            ["D0", "D1", "D99"])), "issue_date": issue,
            "due_date": issue + dt.timedelta(days=30), "amount": 100.0})
    ids = st.sampled_from(INVOICE_IDS + [r["invoice_id"] for r in new_invoices])
    payments = [{"invoice_id": draw(ids), "paid_on": draw(after),
                 "amount": draw(st.floats(0.01, 1000))} for _ in range(draw(st.integers(0, 5)))]
    actions = [{"invoice_id": draw(ids), "sent_on": draw(after),
                "channel": draw(st.sampled_from(CHANNELS))}
               for _ in range(draw(st.integers(0, 5)))]
    disputes = [{"invoice_id": draw(ids), "opened_on": draw(strictly_after), "resolved_on": None}
                for _ in range(draw(st.integers(0, 2)))]
    return Tables.from_frames(
        invoices=pl.DataFrame(new_invoices, schema={"invoice_id": pl.String,
                                                    "debtor_id": pl.String,
                                                    "issue_date": pl.Date, "due_date": pl.Date,
                                                    "amount": pl.Float64}),
        payments=pl.DataFrame(payments, schema={"invoice_id": pl.String, "paid_on": pl.Date,
                                                "amount": pl.Float64}),
        actions=pl.DataFrame(actions, schema={"invoice_id": pl.String, "sent_on": pl.Date,
                                              "channel": pl.String}),
        disputes=pl.DataFrame(disputes, schema={"invoice_id": pl.String, "opened_on": pl.Date,
                                                "resolved_on": pl.Date}),
    )


BEFORE = invoice_features(HISTORY, as_of=AS_OF)


@given(extra=future_rows())
@settings(max_examples=60, deadline=None)
def test_rows_after_as_of_never_change_features(extra):
    after_ = invoice_features(HISTORY.concat(extra), as_of=AS_OF)
    assert_frame_equal(BEFORE, after_, check_row_order=False)


@given(shift=st.integers(1, 300))
@settings(max_examples=20, deadline=None)
def test_moving_future_payments_later_never_changes_features(shift):
    """Altering rows dated after AS_OF (payments moved later still) changes nothing."""
    moved = HISTORY.payments.with_columns(
        pl.when(pl.col("paid_on") >= AS_OF).then(pl.col("paid_on") + pl.duration(days=shift))
        .otherwise(pl.col("paid_on")).alias("paid_on"))
    altered = Tables(HISTORY.debtors, HISTORY.invoices, moved, HISTORY.actions, HISTORY.disputes)
    assert_frame_equal(BEFORE, invoice_features(altered, as_of=AS_OF), check_row_order=False)


def test_resolution_after_as_of_is_not_known():
    inv = HISTORY.invoices.row(0, named=True)
    disputes = pl.DataFrame([{"invoice_id": inv["invoice_id"], "opened_on": AS_OF,
                              "resolved_on": AS_OF + dt.timedelta(days=3)}])
    t = Tables.from_frames(debtors=HISTORY.debtors, invoices=HISTORY.invoices.head(1),
                           disputes=disputes)
    assert invoice_features(t, as_of=AS_OF)["disputed_open"].to_list() == [1.0]
    assert invoice_features(t, as_of=AS_OF + dt.timedelta(days=3))["disputed_open"].to_list() == [
        0.0]


def slow_settlements(invoices: list[dict], pays: list[dict]) -> dict:
    """invoice id → the first day its payments reach its amount (within 0.01)."""
    settled = {}
    for inv in invoices:
        total = 0.0
        for p in sorted((p for p in pays if p["invoice_id"] == inv["invoice_id"]),
                        key=lambda p: p["paid_on"]):
            total += p["amount"]
            if total >= inv["amount"] - 0.01:
                settled[inv["invoice_id"]] = p["paid_on"]
                break
    return settled


def oracle(tables: Tables, as_of: dt.date) -> dict[str, dict]:
    """A slow, obvious loop over dict rows computing some features."""
    invoices = tables.invoices.to_dicts()
    pays = [p for p in tables.payments.to_dicts() if p["paid_on"] < as_of]
    acts = [a for a in tables.actions.to_dicts() if a["sent_on"] < as_of]
    owner = {i["invoice_id"]: i["debtor_id"] for i in invoices}
    settled = slow_settlements(invoices, pays)
    out = {}
    for inv in invoices:
        if inv["issue_date"] > as_of or inv["invoice_id"] in settled:
            continue
        d = inv["debtor_id"]
        past = sorted(((settled[i["invoice_id"]], i["invoice_id"], i) for i in invoices
                       if i["debtor_id"] == d and i["issue_date"] <= as_of
                       and i["invoice_id"] in settled), key=lambda t: (t[0], t[1]))
        late = [(s - i["due_date"]).days > 0 for s, _, i in past]
        contact = {"email", "sms", "letter", "phone", "payment_plan"}
        out[inv["invoice_id"]] = {
            "days_past_due": float((as_of - inv["due_date"]).days),
            "n_settled": float(len(past)),
            "share_late": (sum(late) / len(late)) if late else None,
            "n_late_last_5": float(sum(late[-5:])) if late else None,
            "reminders_invoice": float(len({a["sent_on"] for a in acts
                                            if a["invoice_id"] == inv["invoice_id"]
                                            and a["channel"] in contact})),
            "contacts_30d": float(len({a["sent_on"] for a in acts
                                       if owner[a["invoice_id"]] == d and a["channel"] in contact
                                       and a["sent_on"] >= as_of - dt.timedelta(days=30)})),
            "paid": sum(p["amount"] for p in pays if p["invoice_id"] == inv["invoice_id"]),
            "days_since_payment": min((float((as_of - p["paid_on"]).days) for p in pays
                                       if owner[p["invoice_id"]] == d), default=None),
        }
    return out


def test_features_match_a_slow_oracle():
    for as_of in (dt.date(2024, 9, 1), AS_OF, dt.date(2025, 8, 15)):
        fast = {r["invoice_id"]: r for r in invoice_features(HISTORY, as_of=as_of).to_dicts()}
        slow = oracle(HISTORY, as_of)
        assert fast.keys() == slow.keys()
        for inv, want in slow.items():
            got = fast[inv]
            for key in ("days_past_due", "n_settled", "share_late", "n_late_last_5",
                        "reminders_invoice", "contacts_30d", "days_since_payment"):
                if want[key] is None:
                    assert got[key] is None, (inv, key)
                else:
                    assert abs(got[key] - want[key]) < 1e-9, (inv, key, got[key], want[key])
            assert abs(got["amount"] - got["open_amount"] - want["paid"]) < 1e-6


def test_feature_frame_has_every_feature_in_order():
    assert BEFORE.columns[5] == "days_since_payment"  # not a model input
    assert BEFORE.columns[6] == "last_channel"  # read by the value model only
    assert BEFORE.columns[7] == "late_ewm"  # a simple reference's input only
    assert list(BEFORE.columns[8:]) == list(FEATURES)
    assert BEFORE.height > 0


def test_new_behaviour_features_match_a_slow_oracle():
    as_of = AS_OF
    fast = {r["invoice_id"]: r for r in invoice_features(HISTORY, as_of=as_of).to_dicts()}
    invoices = [i for i in HISTORY.invoices.to_dicts() if i["issue_date"] <= as_of]
    pays = [p for p in HISTORY.payments.to_dicts() if p["paid_on"] < as_of]
    acts = [a for a in HISTORY.actions.to_dicts() if a["sent_on"] < as_of]
    owner = {i["invoice_id"]: i["debtor_id"] for i in invoices}
    settled = slow_settlements(invoices, pays)
    for row in fast.values():
        d = row["debtor_id"]
        mine = [i for i in invoices if i["debtor_id"] == d]
        amounts = sorted(i["amount"] for i in mine)
        mid = len(amounts) // 2
        median = amounts[mid] if len(amounts) % 2 else (amounts[mid - 1] + amounts[mid]) / 2
        assert abs(row["amount_vs_usual"] - row["amount"] / median) < 1e-9
        days = {a["sent_on"] for a in acts if owner.get(a["invoice_id"]) == d
                and a["channel"] != "collection"}
        assert row["reminders_debtor"] == len(days)
        emails = [a for a in acts if owner.get(a["invoice_id"]) == d and a["channel"] == "email"
                  and a["sent_on"] <= as_of - dt.timedelta(days=8)]
        if not emails:
            assert row["resp_email"] is None
        else:
            worked = [a for a in emails if a["invoice_id"] in settled
                      and a["sent_on"] <= settled[a["invoice_id"]]
                      <= a["sent_on"] + dt.timedelta(days=7)]
            assert abs(row["resp_email"] - len(worked) / len(emails)) < 1e-9


def test_cold_start_debtor_has_well_defined_features():
    """A debtor with one invoice and no history: counts are 0, history features are null
    (missing, never NaN), nothing raises."""
    t = Tables.from_frames(
        debtors=pl.DataFrame({"debtor_id": ["NEW"]}),
        invoices=pl.DataFrame({"invoice_id": ["N1"], "debtor_id": ["NEW"],
                               "issue_date": [dt.date(2025, 1, 1)],
                               "due_date": [dt.date(2025, 1, 31)], "amount": [50.0]}))
    row = invoice_features(t, as_of=dt.date(2025, 2, 10)).row(0, named=True)
    for f in FEATURES:
        assert not (isinstance(row[f], float) and row[f] != row[f]), f"{f} is NaN"
    assert row["n_settled"] == 0 and row["reminders_debtor"] == 0 and row["n_partial"] == 0
    assert row["share_late"] is None and row["resp_email"] is None
    assert row["behaviour_change"] == 0 and row["amount_vs_usual"] == 1.0


def test_no_feature_is_ever_nan_on_a_whole_company():
    frame = invoice_features(HISTORY, as_of=AS_OF)
    nans = {f: frame[f].is_nan().sum() for f in FEATURES}
    assert all(n == 0 for n in nans.values()), nans


def test_sudden_change_is_flagged_for_debtors_who_changed(sim):
    """Debtors the simulator made worse are flagged far more often after their change."""
    t, truth = sim.tables, sim.truth
    changed = truth.filter(pl.col("changed_on").is_not_null())
    if changed.height == 0:
        return
    flagged_changed, flagged_others = [], []
    for day in (t.last_date - dt.timedelta(days=d) for d in (0, 30, 60)):
        f = invoice_features(t, as_of=day).group_by("debtor_id").agg(
            pl.col("behaviour_change").max())
        f = f.join(truth.select("debtor_id", "changed_on"), on="debtor_id")
        flagged_changed += f.filter(pl.col("changed_on") < day - dt.timedelta(days=60))[
            "behaviour_change"].to_list()
        flagged_others += f.filter(pl.col("changed_on").is_null())["behaviour_change"].to_list()
    assert sum(flagged_changed) / max(len(flagged_changed), 1) > 2 * (
        sum(flagged_others) / max(len(flagged_others), 1))


DAYS = st.lists(st.integers(-300, 60).map(lambda d: AS_OF + dt.timedelta(days=d)),
                min_size=1, max_size=6, unique=True)


@given(days=DAYS)
@settings(max_examples=25, deadline=None)
def test_many_days_at_once_equal_each_day_alone(days):
    """The training table's many-day call gives exactly what each day's own call gives."""
    alone = [invoice_features(HISTORY, as_of=d) for d in days]
    points = pl.concat([f.select("debtor_id", "as_of") for f in alone]).unique()
    together = features_at(HISTORY, points).collect()
    want = pl.concat(alone).sort("as_of", "debtor_id", "due_date", "invoice_id")
    assert_frame_equal(together, want)


@given(extra=future_rows())
@settings(max_examples=30, deadline=None)
def test_rows_after_the_last_day_never_change_a_many_day_table(extra):
    points = pl.DataFrame({"debtor_id": ["D0", "D1", "D2", "D3"] * 3,
                           "as_of": [AS_OF - dt.timedelta(days=k) for k in (0, 45, 150)
                                     for _ in range(4)]})
    before = features_at(HISTORY, points).collect()
    assert_frame_equal(before, features_at(HISTORY.concat(extra), points).collect())


def test_a_debtor_answered_on_one_day_only_sees_that_day():
    """Pairs of other debtors on later days do not leak into a debtor's earlier day."""
    early = AS_OF - dt.timedelta(days=120)
    mixed = pl.DataFrame({"debtor_id": ["D0", "D1", "D1"], "as_of": [early, early, AS_OF]})
    got = features_at(HISTORY, mixed).collect().filter(pl.col("as_of") == early)
    alone = invoice_features(HISTORY, as_of=early).filter(
        pl.col("debtor_id").is_in(["D0", "D1"]))
    assert_frame_equal(got, alone)


@pytest.mark.parametrize("days_back", [0, 45, 150])
def test_each_debtor_within_the_whole_book_equals_that_debtor_alone(days_back):
    """The service computes a day's features for its whole stored book once and serves each
    debtor its rows from them: they must be exactly what the debtor's own history gives."""
    day = AS_OF - dt.timedelta(days=days_back)
    book = invoice_features(HISTORY, as_of=day)
    book_days = contact_days(HISTORY, as_of=day)
    for debtor_id in HISTORY.debtors["debtor_id"].to_list():
        own = HISTORY.for_debtors([debtor_id])
        alone = invoice_features(own, as_of=day,
                                 invoice_ids=own.invoices["invoice_id"].to_list())
        assert_frame_equal(alone, book.filter(pl.col("debtor_id") == debtor_id),
                           check_exact=True)
        assert contact_days(own, as_of=day).get(debtor_id, ()) == book_days.get(debtor_id, ())


def test_last_channel_is_the_latest_contact_and_the_strongest_of_its_day():
    from paycadence.data import Tables
    from paycadence.models.policy.value import CHANNEL_CODE

    d = dt.date
    book = Tables.from_frames(
        debtors=pl.DataFrame({"debtor_id": ["D"]}),
        invoices=pl.DataFrame({"invoice_id": ["A", "B", "C"], "debtor_id": ["D"] * 3,
                               "issue_date": [d(2024, 1, 1)] * 3,
                               "due_date": [d(2024, 1, 31)] * 3, "amount": [100.0] * 3}),
        actions=pl.DataFrame({"invoice_id": ["A", "A", "B", "B", "C"],
                              "sent_on": [d(2024, 2, 2), d(2024, 2, 9), d(2024, 2, 9),
                                          d(2024, 2, 9), d(2024, 2, 20)],
                              "channel": ["email", "letter", "sms", "phone", "collection"]}))
    got = dict(invoice_features(book, as_of=d(2024, 3, 1)).select(
        "invoice_id", "last_channel").iter_rows())
    assert got == {"A": CHANNEL_CODE["letter"], "B": CHANNEL_CODE["phone"], "C": None}
