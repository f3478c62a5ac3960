"""A straightforward pandas implementation of the core features, the speed baseline.

It computes, as of one date, the same values as :func:`paycadence.features.invoice_features`
for the core features (settlement, payment discipline over all and the last 5 paid invoices,
exposure, contacts): the way one would first write them with pandas groupby/apply.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

CONTACTS = ["email", "sms", "letter", "phone", "payment_plan"]
CORE = ["amount", "term_days", "days_past_due", "age_days", "share_paid", "reminders_invoice",
        "n_settled", "share_late", "mean_days_late", "n_late_last_5", "mean_days_late_last_5",
        "n_open", "debtor_open_amount", "overdue_amount", "contacts_30d"]


def core_features(invoices: pd.DataFrame, payments: pd.DataFrame, actions: pd.DataFrame,
                  as_of: dt.date) -> pd.DataFrame:
    day = pd.Timestamp(as_of)
    inv = invoices[invoices["issue_date"] <= day].copy()
    pay = payments[payments["paid_on"] < day].sort_values(["invoice_id", "paid_on"])
    act = actions[actions["sent_on"] < day]

    daily = pay.groupby(["invoice_id", "paid_on"], as_index=False)["amount"].sum()
    daily["cum"] = daily.groupby("invoice_id")["amount"].cumsum()
    daily = daily.merge(inv[["invoice_id", "amount"]], on="invoice_id", suffixes=("", "_inv"))
    settled = daily[daily["cum"] >= daily["amount_inv"] - 0.01].groupby("invoice_id")[
        "paid_on"].min().rename("settled_on")
    paid = pay.groupby("invoice_id")["amount"].sum().rename("amount_paid")
    inv = inv.join(settled, on="invoice_id").join(paid, on="invoice_id")
    inv["amount_paid"] = inv["amount_paid"].fillna(0.0)

    done = inv[inv["settled_on"].notna()].copy()
    done["days_late"] = (done["settled_on"] - done["due_date"]).dt.days
    done["late"] = (done["days_late"] > 0).astype(float)
    done = done.sort_values(["settled_on", "invoice_id"])

    def history(g: pd.DataFrame) -> pd.Series:
        last = g.tail(5)
        return pd.Series({"n_settled": len(g), "share_late": g["late"].mean(),
                          "mean_days_late": g["days_late"].mean(),
                          "n_late_last_5": last["late"].sum(),
                          "mean_days_late_last_5": last["days_late"].mean()})

    hist = done.groupby("debtor_id").apply(history, include_groups=False)

    open_ = inv[inv["settled_on"].isna()].copy()
    open_["rest"] = (open_["amount"] - open_["amount_paid"]).clip(lower=0)
    open_["days_past_due"] = (day - open_["due_date"]).dt.days
    exposure = open_.groupby("debtor_id").apply(lambda g: pd.Series({
        "n_open": len(g), "debtor_open_amount": g["rest"].sum(),
        "overdue_amount": g.loc[g["due_date"] < day, "rest"].sum()}), include_groups=False)

    contact = act[act["channel"].isin(CONTACTS)].merge(inv[["invoice_id", "debtor_id"]],
                                                       on="invoice_id")
    per_invoice = contact.groupby("invoice_id")["sent_on"].nunique().rename("reminders_invoice")
    recent = contact[contact["sent_on"] >= day - pd.Timedelta(days=30)]
    per_debtor = recent.groupby("debtor_id")["sent_on"].nunique().rename("contacts_30d")

    out = open_.join(per_invoice, on="invoice_id").join(hist, on="debtor_id").join(
        exposure, on="debtor_id").join(per_debtor, on="debtor_id")
    out["term_days"] = (out["due_date"] - out["issue_date"]).dt.days
    out["age_days"] = (day - out["issue_date"]).dt.days
    out["share_paid"] = (out["amount_paid"] / out["amount"]).clip(0, 1)
    for col in ("reminders_invoice", "contacts_30d", "n_settled"):
        out[col] = out[col].fillna(0.0)
    return out[["invoice_id", "debtor_id", *CORE]].astype({c: np.float64 for c in CORE})
