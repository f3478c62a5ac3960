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


def _days(n: int) -> str:
    """``n`` calendar days in words, singular for one: "1 day", "20 days" (``n`` ≥ 0)."""
    return f"{n} day" if n == 1 else f"{n} days"


def _late_last_5(row: Mapping) -> str:
    n = min(_n(row.get("n_settled")), 5)
    if n == 0:
        return "no paid invoice on record yet"
    late = _n(row.get("n_late_last_5"))
    if n == 1:
        return f"paid its only settled invoice {'late' if late else 'on time'}"
    if late == 0:
        return f"paid none of the last {n} invoices late"
    return f"paid {late} of the last {n} invoices late"


def _days_past_due(row: Mapping) -> str:
    d = _n(row.get("days_past_due"))
    if d > 0:
        return f"{_days(d)} past due"
    if d == 0:
        return "due today"
    return f"due in {_days(-d)}"


def _since(key: str, what: str) -> Callable[[Mapping], str]:
    def text(row: Mapping) -> str:
        v = row.get(key)
        if _missing(v):
            return f"no {what} yet"
        d = _n(v)
        return f"last {what} today" if d <= 0 else f"last {what} {_days(d)} ago"
    return text


def _trend(row: Mapping) -> str:
    v = row.get("late_trend")
    if _missing(v):
        return "too little history to see a trend"
    pts = int(round(100 * v))
    unit = "point" if abs(pts) == 1 else "points"
    if pts > 0:
        return f"pays late more often lately: {pts} {unit} above its long-run rate"
    if pts < 0:
        return f"pays late less often lately: {-pts} {unit} below its long-run rate"
    return "pays as it always has"


def _share(key: str, fmt: str, none: str, zero: str = "") -> Callable[[Mapping], str]:
    """``fmt`` with ``{pct}`` (whole percent); ``none`` when null, ``zero`` (if given) at 0%."""
    def text(row: Mapping) -> str:
        v = row.get(key)
        if _missing(v):
            return none
        pct = int(round(100 * v))
        return zero if zero and pct == 0 else fmt.format(pct=pct)
    return text


def _num(key: str, fmt: str, none: str = "") -> Callable[[Mapping], str]:
    def text(row: Mapping) -> str:
        v = row.get(key)
        if _missing(v):
            return none or fmt.format(v=0)
        return fmt.format(v=v)
    return text


def _count(key: str, fmt: str, zero: str) -> Callable[[Mapping], str]:
    """A count: ``fmt`` with ``{n}`` and ``{s}`` (the plural ending, empty for one); ``zero``
    for 0, and for null (a count with no history is 0)."""
    def text(row: Mapping) -> str:
        n = _n(row.get(key))
        return zero if n == 0 else fmt.format(n=n, s="" if n == 1 else "s")
    return text


def _signed_days(key: str, after: str, before: str, on: str, none: str
                 ) -> Callable[[Mapping], str]:
    """Days relative to a date, rounded to whole days: ``after`` (positive), ``before``
    (negative) with ``{d}`` as "N day(s)", ``on`` at 0, ``none`` when null."""
    def text(row: Mapping) -> str:
        v = row.get(key)
        if _missing(v):
            return none
        d = _n(v)
        if d > 0:
            return after.format(d=_days(d))
        if d < 0:
            return before.format(d=_days(-d))
        return on
    return text


def _max_days_past_due(row: Mapping) -> str:
    v = row.get("max_days_past_due")
    if _missing(v):
        return "no open invoice"
    d = _n(v)
    if d > 0:
        return f"oldest open invoice {_days(d)} past due"
    if d == 0:
        return "oldest open invoice due today"
    return f"nothing overdue: the next open invoice is due in {_days(-d)}"


def _tenure(row: Mapping) -> str:
    d = _n(row.get("tenure_days"))
    return f"customer for {_days(d)}" if d > 0 else "new customer"


def _age(row: Mapping) -> str:
    d = _n(row.get("age_days"))
    return f"issued {_days(d)} ago" if d > 0 else "issued today"


def _term(row: Mapping) -> str:
    d = _n(row.get("term_days"))
    return f"payment term of {_days(d)}" if d > 0 else "due on the day it was issued"


#: feature → function of the feature row giving one plain sentence.
TEMPLATES: dict[str, Callable[[Mapping], str]] = {
    "amount": _num("amount", "invoice of {v:,.2f}"),
    "term_days": _term,
    "days_past_due": _days_past_due,
    "age_days": _age,
    "share_paid": _share("share_paid", "{pct}% of the invoice already paid", "nothing paid yet",
                         zero="nothing paid yet"),
    "reminders_invoice": _count("reminders_invoice", "{n} reminder{s} sent for this invoice",
                                "no reminder sent for this invoice yet"),
    "days_since_contact_invoice": _since("days_since_contact_invoice",
                                         "reminder for this invoice"),
    "disputed_open": lambda r: "invoice is disputed" if _n(r.get("disputed_open")) else
    "no open dispute on this invoice",
    "in_collection": lambda r: "already with the collection agency" if _n(r.get("in_collection"))
    else "not with a collection agency",
    "plan_offered": lambda r: "a payment plan was offered" if _n(r.get("plan_offered")) else
    "no payment plan offered yet",
    "n_settled": _count("n_settled", "{n} invoice{s} paid so far", "no invoice paid so far"),
    "share_late": _share("share_late", "paid {pct}% of all its invoices late",
                         "no paid invoice on record yet"),
    "mean_days_late": _signed_days("mean_days_late",
                                   "usually pays around {d} after the due date",
                                   "usually pays around {d} before the due date",
                                   "usually pays on the due date", "no payment record yet"),
    # the median m: half of the invoices were paid on or before due + m
    "median_days_late": _signed_days(
        "median_days_late",
        "half of its invoices were paid no later than {d} after the due date",
        "half of its invoices were paid at least {d} before the due date",
        "half of its invoices were paid by the due date", "no payment record yet"),
    "n_late_last_5": _late_last_5,
    "share_late_last_5": _late_last_5,
    "mean_days_late_last_5": _signed_days("mean_days_late_last_5",
                                          "paid its last invoices {d} after due on average",
                                          "paid its last invoices {d} before due on average",
                                          "paid its last invoices on the due date on average",
                                          "no recent payment record"),
    "late_trend": _trend,
    "days_late_trend": _signed_days("days_late_trend",
                                    "recent payments {d} later than its long-run average",
                                    "recent payments {d} earlier than its long-run average",
                                    "recent payments in line with its long-run average",
                                    "too little history to see a trend"),
    "n_open": _count("n_open", "{n} open invoice{s}", "no open invoice"),
    "debtor_open_amount": _num("debtor_open_amount", "{v:,.2f} open in total"),
    "overdue_amount": _num("overdue_amount", "{v:,.2f} overdue in total"),
    "n_open_overdue": _count("n_open_overdue", "{n} invoice{s} overdue", "no invoice overdue"),
    "max_days_past_due": _max_days_past_due,
    "contacts_30d": _count("contacts_30d", "{n} contact{s} in the last 30 days",
                           "no contact in the last 30 days"),
    "days_since_contact": _since("days_since_contact", "contact"),
    "n_disputes": _count("n_disputes", "{n} dispute{s} raised so far",
                         "no dispute raised so far"),
    "tenure_days": _tenure,
    "is_b2c": lambda r: "consumer customer" if _n(r.get("is_b2c")) else "business customer",
    "late_last_5_due": _share("late_last_5_due",
                              "{pct}% of its last invoices due were paid late or are still open",
                              "no invoice due yet"),
    "behaviour_change": lambda r: "pays markedly worse than it used to: a sudden change"
    if _n(r.get("behaviour_change")) else "pays as it usually does",
    **{f"resp_{c}": _share(f"resp_{c}", "paid within a week after {pct}% of its " + c
                           + " reminders", f"no {c} reminder on record")
       for c in ("email", "sms", "letter", "phone")},
    "n_partial": _count("n_partial", "{n} invoice{s} paid in parts", "no invoice paid in parts"),
    "n_broken_plans": _count("n_broken_plans", "{n} payment plan{s} broken",
                             "no payment plan broken"),
    "amount_vs_usual": _num("amount_vs_usual", "{v:.1f} times its usual invoice amount",
                            "first invoice: no usual amount yet"),
    "reminders_debtor": _count("reminders_debtor", "{n} reminder day{s} in its history",
                               "no reminder in its history"),
    "n_disputes_open": _count("n_disputes_open", "{n} dispute{s} open", "no dispute open"),
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
