"""The request and response examples the OpenAPI document shows for each endpoint.

The tests send every request example to the service and check every response example against
the contract's JSON Schema and the response models (tests/serving/test_openapi_examples.py), so
an example that drifts from the API fails a test.
"""

from __future__ import annotations

import datetime as dt

_OPEN = {"invoice_id": "INV-9", "issue_date": "2026-09-20", "due_date": "2026-10-20",
         "amount": 1250.00, "amount_paid": 0}

RECOMMEND_REQUESTS = {
    "stateless": {
        "summary": "A debtor sent with its history (nothing stored is read)",
        "value": {"as_of": "2026-11-22", "debtors": [{
            "debtor_id": "D-1042",
            "open_invoices": [_OPEN],
            "history": {
                "invoices": [{"invoice_id": "INV-3", "issue_date": "2026-06-01",
                              "due_date": "2026-07-01", "amount": 980.00},
                             {"invoice_id": "INV-9", "issue_date": "2026-09-20",
                              "due_date": "2026-10-20", "amount": 1250.00}],
                "payments": [{"invoice_id": "INV-3", "paid_on": "2026-07-19",
                              "amount": 980.00}],
                "actions": [{"invoice_id": "INV-3", "sent_on": "2026-07-08", "channel": "email",
                             "step": 1, "propensity": 0.95},
                            {"invoice_id": "INV-9", "sent_on": "2026-10-27",
                             "channel": "email", "step": 1, "propensity": 1.0}],
                "disputes": []},
            "opted_out": ["phone"]}]},
    },
    "stored": {
        "summary": "Debtors by id (the service's stored book; an unknown one gets a cold start)",
        "value": {"as_of": "2026-11-22", "debtors": [{"debtor_id": "D-1042"},
                                                      {"debtor_id": "D-2001"}]},
    },
}

_START = dt.date(2026, 11, 22)
_CASH = [{"week": w + 1, "start": (_START + dt.timedelta(days=7 * w)).isoformat(),
          "end": (_START + dt.timedelta(days=7 * w + 6)).isoformat(),
          "expected": x} for w, x in enumerate(
              [312.5, 287.4, 201.0, 120.0, 96.0, 76.8, 61.44, 49.15, 39.32, 31.46, 25.17,
               20.13, 16.11])]

RECOMMEND_RESPONSE = {
    "recommendations": [{
        "debtor_id": "D-1042",
        "action": "sms",
        "invoice_ids": ["INV-9"],
        "step": 2,
        "next_review_on": "2026-11-25",
        "risk": {"p_late": 1.0, "expected_days_late": 44.5, "p_unpaid_90d": 0.08,
                 "p_open_7d": 0.71},
        "invoices": [{"invoice_id": "INV-9", "p_late": 1.0, "p_open_7d": 0.71,
                      "expected_days_late": 44.5,
                      "expected_settled_on": "2026-12-02", "p_unpaid_90d": 0.08,
                      "open_amount": 1250.0,
                      "expected_cash_by_week": [x["expected"] for x in _CASH]}],
        "cash_forecast": _CASH,
        "expected_value": 1128.4,
        "value_vs_wait": 6.3,
        "propensity": 0.93,
        "alternatives": [{"action": "sms", "probability": 0.93, "invoice_ids": ["INV-9"]},
                         {"action": "email", "probability": 0.035, "invoice_ids": ["INV-9"]},
                         {"action": "wait", "probability": 0.035, "invoice_ids": []}],
        "explanation": [{"feature": "share_paid_late_last_5", "value": 0.8, "contribution": 0.21,
                         "effect": "raises", "points": 4.1,
                         "text": "paid 4 of the last 5 invoices late: raises the chance it "
                                 "is still unpaid a week from now by 4 points"}],
        "model_version": "risk:7",
        "reason": "learnt from this book's log: sms is worth +6.30 against waiting (lower "
                  "bound +1.10), over the schedule's email",
        "explored": False,
    }],
    "cash_forecast": _CASH,
}

FEEDBACK_REQUESTS = {
    "outcomes": {
        "summary": "What happened since the last call: a payment, a reminder sent, a dispute",
        "value": {
            "invoices": [{"invoice_id": "INV-12", "debtor_id": "D-1042",
                          "issue_date": "2026-11-20", "due_date": "2026-12-20",
                          "amount": 310.0, "currency": "EUR"}],
            "payments": [{"invoice_id": "INV-12", "paid_on": "2026-11-23", "amount": 310.0,
                          "payment_id": "BANK-88812"}],
            "actions": [{"invoice_id": "INV-12", "sent_on": "2026-11-22", "channel": "sms",
                         "step": 2, "propensity": 0.93}],
            "disputes": [{"invoice_id": "INV-12", "opened_on": "2026-11-22"}],
        },
    },
}

FEEDBACK_RESPONSE = {"stored": {"invoices": 1, "payments": 1, "actions": 1, "disputes": 1},
                     "duplicates": {"invoices": 0, "payments": 0, "actions": 0,
                                    "disputes": 0}}

HEALTH_RESPONSE = {"status": "ok", "models_loaded": True, "model_version": "risk:7",
                   "reason": "ok", "detail": "serving the registered champion",
                   "stored_days_ready": ["2026-11-22"], "book": "acme-nl"}

REFUSED = {"detail": "debtors[0].open_invoice: unknown key 'open_invoice': no field of this "
                     "object has that name (a typo? the fields are in GET /openapi.json)",
           "errors": [{"loc": ["body", "debtors", 0, "open_invoice"],
                       "msg": "unknown key 'open_invoice': no field of this object has that "
                              "name (a typo? the fields are in GET /openapi.json)",
                       "field": "debtors[0].open_invoice",
                       "problem": "unknown key 'open_invoice': no field of this object has "
                                  "that name (a typo? the fields are in GET /openapi.json)"}]}


def answer(example: dict) -> dict:
    """``responses={200: answer(...)}``: the example as the OpenAPI response's content."""
    return {"content": {"application/json": {"example": example}}}
