"""Every feature has a plain-language template, and the sentences read as a manager expects."""

from __future__ import annotations

import re

import pytest

from paycadence.features import FEATURES, TEMPLATES, describe


def test_every_feature_has_a_template():
    assert set(FEATURES) <= set(TEMPLATES)


@pytest.mark.parametrize(
    ("feature", "row", "text"),
    [
        ("n_late_last_5", {"n_settled": 7, "n_late_last_5": 4},
         "paid 4 of the last 5 invoices late"),
        ("n_late_last_5", {"n_settled": 0}, "no paid invoice on record yet"),
        ("days_past_due", {"days_past_due": -3.0}, "due in 3 days"),
        ("days_past_due", {"days_past_due": 19.0}, "19 days past due"),
        ("late_trend", {"late_trend": 0.4},
         "pays late more often lately: 40 points above its long-run rate"),
        ("days_since_contact", {"days_since_contact": None}, "no contact yet"),
        ("share_paid", {"share_paid": 0.4}, "40% of the invoice already paid"),
    ],
    ids=["late-last-5", "no-history", "not-due", "overdue", "trend", "no-contact", "partial"],
)
def test_sentences(feature, row, text):
    assert describe(feature, row) == text


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("mean_days_late", 8.0, "usually pays around 8 days after the due date"),
        ("mean_days_late", -20.0, "usually pays around 20 days before the due date"),
        ("mean_days_late", 0.0, "usually pays on the due date"),
        ("mean_days_late", -0.4, "usually pays on the due date"),
        ("mean_days_late", 1.2, "usually pays around 1 day after the due date"),
        ("mean_days_late", -1.0, "usually pays around 1 day before the due date"),
        ("median_days_late", 3.0,
         "half of its invoices were paid no later than 3 days after the due date"),
        ("median_days_late", -20.0,
         "half of its invoices were paid at least 20 days before the due date"),
        ("median_days_late", 0.0, "half of its invoices were paid by the due date"),
        ("mean_days_late_last_5", 12.0, "paid its last invoices 12 days after due on average"),
        ("mean_days_late_last_5", -6.0, "paid its last invoices 6 days before due on average"),
        ("mean_days_late_last_5", 0.0, "paid its last invoices on the due date on average"),
        ("days_late_trend", 9.0, "recent payments 9 days later than its long-run average"),
        ("days_late_trend", -9.0, "recent payments 9 days earlier than its long-run average"),
        ("days_late_trend", 0.2, "recent payments in line with its long-run average"),
        ("max_days_past_due", 47.0, "oldest open invoice 47 days past due"),
        ("max_days_past_due", 0.0, "oldest open invoice due today"),
        ("max_days_past_due", -5.0, "nothing overdue: the next open invoice is due in 5 days"),
        ("days_past_due", -1.0, "due in 1 day"),
        ("days_past_due", 0.0, "due today"),
        ("late_trend", -0.25, "pays late less often lately: 25 points below its long-run rate"),
        ("late_trend", 0.0, "pays as it always has"),
    ],
    ids=lambda v: str(v),
)
def test_days_either_side_of_the_due_date(feature, value, text):
    assert describe(feature, {feature: value}) == text


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("days_past_due", 1.0, "1 day past due"),
        ("term_days", 1.0, "payment term of 1 day"),
        ("term_days", 30.0, "payment term of 30 days"),
        ("term_days", 0.0, "due on the day it was issued"),
        ("age_days", 1.0, "issued 1 day ago"),
        ("age_days", 0.0, "issued today"),
        ("days_since_contact", 1.0, "last contact 1 day ago"),
        ("days_since_contact_invoice", 6.0, "last reminder for this invoice 6 days ago"),
        ("tenure_days", 1.0, "customer for 1 day"),
        ("tenure_days", 0.0, "new customer"),
        ("max_days_past_due", 1.0, "oldest open invoice 1 day past due"),
        ("late_trend", 0.01, "pays late more often lately: 1 point above its long-run rate"),
        ("reminders_invoice", 1, "1 reminder sent for this invoice"),
        ("reminders_invoice", 2, "2 reminders sent for this invoice"),
        ("reminders_invoice", 0, "no reminder sent for this invoice yet"),
        ("n_settled", 1, "1 invoice paid so far"),
        ("n_settled", 12, "12 invoices paid so far"),
        ("n_open", 1, "1 open invoice"),
        ("n_open_overdue", 1, "1 invoice overdue"),
        ("contacts_30d", 1, "1 contact in the last 30 days"),
        ("contacts_30d", 0, "no contact in the last 30 days"),
        ("n_disputes", 1, "1 dispute raised so far"),
        ("n_partial", 1, "1 invoice paid in parts"),
        ("n_broken_plans", 1, "1 payment plan broken"),
        ("n_broken_plans", 0, "no payment plan broken"),
        ("reminders_debtor", 1, "1 reminder day in its history"),
        ("reminders_debtor", 14, "14 reminder days in its history"),
        ("n_disputes_open", 1, "1 dispute open"),
        ("share_paid", 0.0, "nothing paid yet"),
    ],
    ids=lambda v: str(v),
)
def test_one_is_singular_and_zero_reads_as_none(feature, value, text):
    assert describe(feature, {feature: value}) == text


@pytest.mark.parametrize(
    ("row", "text"),
    [
        ({"n_settled": 1, "n_late_last_5": 1}, "paid its only settled invoice late"),
        ({"n_settled": 1, "n_late_last_5": 0}, "paid its only settled invoice on time"),
        ({"n_settled": 3, "n_late_last_5": 0}, "paid none of the last 3 invoices late"),
        ({"n_settled": 9, "n_late_last_5": 5}, "paid 5 of the last 5 invoices late"),
    ],
    ids=["one-late", "one-on-time", "none-late", "all-late"],
)
def test_late_among_the_last_five(row, text):
    assert describe("n_late_last_5", row) == text
    assert describe("share_late_last_5", row) == text


#: a minus sign before a number, a "-0", or a count of one with a plural noun
_BAD = re.compile(r"(^|\s)[-+]\d|-0\b|\b1 (days|points|invoices|reminders|contacts|disputes"
                  r"|plans|reminder days)\b")


#: features that are days (or a share difference) either side of zero; the rest never go below it
SIGNED = {"days_past_due", "mean_days_late", "median_days_late", "mean_days_late_last_5",
          "days_late_trend", "max_days_past_due", "late_trend", "tenure_days"}


@pytest.mark.parametrize(
    ("feature", "value"),
    [(f, v) for f in FEATURES for v in (-400.0, -20.0, -1.0, -0.4, 0.0, 0.4, 1.0, 20.0)
     if v >= 0 or f in SIGNED],
)
def test_no_template_prints_a_signed_number_or_one_plural(feature, value):
    row = dict.fromkeys(FEATURES, value)
    row["n_settled"] = 7
    text = describe(feature, row)
    assert not _BAD.search(text), f"{feature}={value}: {text!r}"


@pytest.mark.parametrize("feature", FEATURES)
def test_every_template_reads_a_row_of_nulls(feature):
    assert describe(feature, dict.fromkeys(FEATURES))
