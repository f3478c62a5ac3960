"""Every feature has a plain-language template, and the sentences read as a manager expects."""

from __future__ import annotations

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


@pytest.mark.parametrize("feature", FEATURES)
def test_every_template_reads_a_row_of_nulls(feature):
    assert describe(feature, dict.fromkeys(FEATURES))
