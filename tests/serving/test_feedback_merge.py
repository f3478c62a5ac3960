"""Outcomes posted to /feedback are learnt from: train merges the feedback store's rows."""

from __future__ import annotations

import datetime as dt

from paycadence.serving.store import FeedbackStore, merge_feedback


def test_feedback_rows_join_the_training_tables_once(tables, tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    inv = tables.invoices.row(0, named=True)
    day = tables.last_date + dt.timedelta(days=1)
    store = FeedbackStore(url)
    store.add({
        "invoices": [{"invoice_id": "FB-1", "debtor_id": inv["debtor_id"], "issue_date": day,
                      "due_date": day + dt.timedelta(days=30), "amount": 99.0,
                      "currency": "EUR"}],
        "payments": [{"invoice_id": inv["invoice_id"], "paid_on": day, "amount": 1.5}],
        "actions": [{"invoice_id": "FB-1", "sent_on": day, "channel": "email", "step": 1,
                     "propensity": 0.95}],
    })
    # a row the tables already hold is not added twice
    pay = tables.payments.row(0, named=True)
    store.add({"payments": [pay]})
    store.close()
    merged, added = merge_feedback(tables, url)
    assert added["invoices"] == 1 and added["payments"] == 1 and added["actions"] == 1
    assert merged.invoices.height == tables.invoices.height + 1
    assert merged.payments.height == tables.payments.height + 1
    assert "FB-1" in merged.actions["invoice_id"].to_list()
    again, added_again = merge_feedback(merged, url)
    assert not any(added_again.values())
    assert again.payments.height == merged.payments.height
