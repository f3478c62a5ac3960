"""``POST /feedback``: new invoices, payments, actions and disputes, stored durably."""

from __future__ import annotations

import logging

import polars as pl
from fastapi import APIRouter, HTTPException, status

from paycadence.data import COLUMNS, Tables
from paycadence.serving.deps import Authorized, EngineDep, StoreDep
from paycadence.serving.schemas import FeedbackRequest, FeedbackResponse

logger = logging.getLogger(__name__)
router = APIRouter(tags=["feedback"], dependencies=[Authorized])


@router.post("/feedback", response_model=FeedbackResponse)
def post_feedback(body: FeedbackRequest, engine: EngineDep, store: StoreDep) -> dict:
    """Validate the rows, commit them to the store, then answer; a re-post stores nothing twice.

    Payments, actions and disputes must name an invoice that is stored, known from the
    training data, or posted in the same body; otherwise nothing is stored and the answer is
    422 naming the row.
    """
    rows = {name: [r.model_dump() for r in getattr(body, name)]
            for name in ("debtors", "invoices", "payments", "actions", "disputes")}
    for i, inv in enumerate(rows["invoices"]):
        if not inv.get("debtor_id"):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"invoices[{i}].debtor_id: required in feedback")
    posted = {r["invoice_id"] for r in rows["invoices"]}
    referenced = {r["invoice_id"] for n in ("payments", "actions", "disputes") for r in rows[n]}
    unknown = referenced - posted - set(engine.stored.invoices["invoice_id"].to_list())
    if unknown:
        unknown -= store.known_invoice_ids(unknown)
    if unknown:
        for name in ("payments", "actions", "disputes"):
            for i, r in enumerate(rows[name]):
                if r["invoice_id"] in unknown:
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        f"{name}[{i}].invoice_id: unknown invoice '{r['invoice_id']}'",
                    )
    stored, dupes, new = store.add(rows)
    engine.add_feedback(Tables.from_frames(**{
        name: pl.DataFrame([{c: r.get(c) for c in COLUMNS[name]} for r in new[name]],
                           schema=COLUMNS[name], orient="row")
        for name in new if new[name]
    }))
    logger.info("feedback stored: %s (duplicates %s)", stored, dupes)
    return {"stored": stored, "duplicates": dupes}
