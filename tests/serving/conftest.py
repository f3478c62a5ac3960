"""Build /recommend requests from tables, as a dunning engine would."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from paycadence.data import Tables, known_as_of
from paycadence.features import invoice_features


def _iso(rows: list[dict]) -> list[dict]:
    return [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
            for r in rows]


def request_for(tables: Tables, as_of: dt.date, *, stateless: bool, limit: int | None = None):
    """A request for every debtor with an open invoice on ``as_of`` (stateless: with history)."""
    feats = invoice_features(tables, as_of=as_of)
    debtor_ids = feats["debtor_id"].unique(maintain_order=True).to_list()[:limit]
    debtors = []
    for debtor_id in debtor_ids:
        mine = feats.filter(pl.col("debtor_id") == debtor_id)
        entry = {
            "debtor_id": debtor_id,
            "open_invoices": [
                {"invoice_id": r["invoice_id"], "issue_date": (as_of - dt.timedelta(
                    days=int(r["age_days"]))).isoformat(),
                 "due_date": r["due_date"].isoformat(), "amount": r["amount"],
                 "amount_paid": round(r["amount"] - r["open_amount"], 2)}
                for r in mine.to_dicts()
            ],
        }
        if stateless:
            own = tables.for_debtors([debtor_id])
            entry["history"] = {
                name: _iso(known_as_of(getattr(own, name), as_of, table=name).select(
                    [c for c in getattr(own, name).columns if c != "debtor_id"
                     or name == "invoices"]).to_dicts())
                for name in ("invoices", "payments", "actions", "disputes")
            }
            opted = own.debtors["opted_out"].to_list()
            entry["opted_out"] = [c for c in (opted[0] or "").split(";") if c] if opted else []
            if own.debtors.height:
                entry["segment"] = own.debtors["segment"][0]
                entry["country"] = own.debtors["country"][0]
                created = own.debtors["created_on"][0]
                entry["created_on"] = created.isoformat() if created else None
        debtors.append(entry)
    return {"as_of": as_of.isoformat(), "debtors": debtors}


@pytest.fixture(scope="session")
def build_request():
    """``request_for(tables, as_of, stateless=..., limit=...)`` as a fixture."""
    return request_for
