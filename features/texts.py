"""Plain-language wording of every feature, used in explanations (docs/features.md lists them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping


def _n(v: float | None) -> int:
    return 0 if v is None or (isinstance(v, float) and math.isnan(v)) else int(round(v))


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


_WEEKDAYS = {1: "Monday", 2: "Tuesday", 3: "Wednesday", 4: "Thursday", 5: "Friday",
             6: "Saturday", 7: "Sunday"}


def _late_last_5(row: Mapping) -> str:
    n = min(_n(row.get("n_settled")), 5)
    if n == 0:
        return "no paid invoice on record yet"
    return f"paid {_n(row.get('n_late_last_5'))} of the last {n} invoices late"


def _days_past_due(row: Mapping) -> str:
    d = _n(row.get("days_past_due"))
    if d > 0:
        return f"{d} days past due"
    if d == 0:
        return "due today"
    return f"due in {-d} days"


def _since(key: str, what: str) -> Callable[[Mapping], str]:
    def text(row: Mapping) -> str:
        v = row.get(key)
        return f"no {what} yet" if _missing(v) else f"last {what} {_n(v)} days ago"
    return text


def _trend(row: Mapping) -> str:
    v = row.get("late_trend")
    if _missing(v):
        return "too little history to see a trend"
    pts = int(round(100 * v))
    if pts > 0:
        return f"pays late more often lately: {pts} points above its long-run rate"
    if pts < 0:
        return f"pays late less often lately: {-pts} points below its long-run rate"
    return "pays as it always has"


def _share(key: str, fmt: str, none: str) -> Callable[[Mapping], str]:
    def text(row: Mapping) -> str:
        v = row.get(key)
        return none if _missing(v) else fmt.format(pct=int(round(100 * v)))
    return text


def _num(key: str, fmt: str, none: str = "") -> Callable[[Mapping], str]:
    def text(row: Mapping) -> str:
        v = row.get(key)
        if _missing(v):
            return none or fmt.format(v=0)
        return fmt.format(v=v)
    return text


#: feature → function of the feature row giving one plain sentence.
TEMPLATES: dict[str, Callable[[Mapping], str]] = {
    "amount": _num("amount", "invoice of {v:,.2f}"),
    "term_days": _num("term_days", "payment term of {v:.0f} days"),
    "days_past_due": _days_past_due,
    "age_days": _num("age_days", "issued {v:.0f} days ago"),
    "share_paid": _share("share_paid", "{pct}% of the invoice already paid", "nothing paid yet"),
    "reminders_invoice": _num("reminders_invoice", "{v:.0f} reminders sent for this invoice"),
    "days_since_contact_invoice": _since("days_since_contact_invoice",
                                         "reminder for this invoice"),
    "disputed_open": lambda r: "invoice is disputed" if _n(r.get("disputed_open")) else
    "no open dispute on this invoice",
    "in_collection": lambda r: "already with the collection agency" if _n(r.get("in_collection"))
    else "not with a collection agency",
    "plan_offered": lambda r: "a payment plan was offered" if _n(r.get("plan_offered")) else
    "no payment plan offered yet",
    "n_settled": _num("n_settled", "{v:.0f} invoices paid so far"),
    "share_late": _share("share_late", "paid {pct}% of all its invoices late",
                         "no paid invoice on record yet"),
    "mean_days_late": _num("mean_days_late", "usually pays around {v:.0f} days after the due date",
                           "no payment record yet"),
    "median_days_late": _num("median_days_late",
                             "half of its invoices were paid within {v:.0f} days of the due date",
                             "no payment record yet"),
    "n_late_last_5": _late_last_5,
    "share_late_last_5": _late_last_5,
    "mean_days_late_last_5": _num("mean_days_late_last_5",
                                  "paid its last invoices {v:.0f} days after due on average",
                                  "no recent payment record"),
    "late_trend": _trend,
    "days_late_trend": _num("days_late_trend",
                            "recent payments {v:+.0f} days against its long-run average",
                            "too little history to see a trend"),
    "n_open": _num("n_open", "{v:.0f} open invoices"),
    "debtor_open_amount": _num("debtor_open_amount", "{v:,.2f} open in total"),
    "overdue_amount": _num("overdue_amount", "{v:,.2f} overdue in total"),
    "n_open_overdue": _num("n_open_overdue", "{v:.0f} invoices overdue"),
    "max_days_past_due": _num("max_days_past_due", "oldest open invoice {v:.0f} days past due"),
    "contacts_30d": _num("contacts_30d", "{v:.0f} contacts in the last 30 days"),
    "days_since_contact": _since("days_since_contact", "contact"),
    "n_disputes": _num("n_disputes", "{v:.0f} disputes raised so far"),
    "tenure_days": _num("tenure_days", "customer for {v:.0f} days"),
    "is_b2c": lambda r: "consumer customer" if _n(r.get("is_b2c")) else "business customer",
    "late_last_5_due": _share("late_last_5_due",
                              "{pct}% of its last invoices due were paid late or are still open",
                              "no invoice due yet"),
    "behaviour_change": lambda r: "pays markedly worse than it used to: a sudden change"
    if _n(r.get("behaviour_change")) else "pays as it usually does",
    **{f"resp_{c}": _share(f"resp_{c}", "paid within a week after {pct}% of its " + c
                           + " reminders", f"no {c} reminder on record")
       for c in ("email", "sms", "letter", "phone")},
    "n_partial": _num("n_partial", "{v:.0f} invoices paid in parts"),
    "n_broken_plans": _num("n_broken_plans", "{v:.0f} payment plans broken"),
    "amount_vs_usual": _num("amount_vs_usual", "{v:.1f} times its usual invoice amount",
                            "first invoice: no usual amount yet"),
    "reminders_debtor": _num("reminders_debtor", "{v:.0f} reminder days in its history"),
    "n_disputes_open": _num("n_disputes_open", "{v:.0f} disputes open"),
    "country_code": lambda r: "country on record" if not _missing(r.get("country_code"))
    else "country unknown",
    "due_weekday": lambda r: "due on a " + _WEEKDAYS.get(_n(r.get("due_weekday")), "day"),
    "due_month_end": lambda r: "due at the end of a month" if _n(r.get("due_month_end"))
    else "due before the month's end",
    "as_of_weekday": lambda r: "decided on a " + _WEEKDAYS.get(_n(r.get("as_of_weekday")), "day"),
}

def describe(feature: str, row: Mapping) -> str:
    """Plain-language sentence for ``feature`` given the feature row it was computed in."""
    return TEMPLATES[feature](row)
