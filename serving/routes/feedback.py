"""``POST /feedback``: new invoices, payments, actions and disputes, stored durably."""

from __future__ import annotations

import logging
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Body, HTTPException, status

from paycadence.data import COLUMNS, Tables, validate_rows
from paycadence.errors import PaycadenceError
from paycadence.serving.answers import ERRORS, FeedbackResponse, Problem
from paycadence.serving.deps import Authorized, EngineDep, MetricsDep, SettingsDep, StoreDep
from paycadence.serving.examples import FEEDBACK_REQUESTS, FEEDBACK_RESPONSE, answer
from paycadence.serving.problems import Refused, refuse_unknown_keys
from paycadence.serving.schemas import ROW_KINDS, FeedbackRequest, row_dict, unknown_keys
from paycadence.serving.store import PAYMENT_KEY, StoreUnavailableError

logger = logging.getLogger(__name__)
UNAVAILABLE = {503: {"model": Problem,
                     "description": "the database could not be read or take the rows: "
                                    "nothing stored; try again after `Retry-After` seconds",
                     "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                 "description": "seconds to wait"}}}}
#: What a caller hears when the feedback database cannot store its rows.
STORE_DOWN = "feedback not stored, try again: the feedback database is unavailable"
#: Seconds a client is told to wait before posting again when the database is unavailable.
RETRY_AFTER_SECONDS = 5


def unavailable(exc: StoreUnavailableError) -> HTTPException:
    """The 503 of a store error: nothing stored, try again (``Retry-After``). The database's
    own words (its host, its user, the driver's text) go to the log, not to the caller."""
    logger.error("feedback not stored: %s", exc)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                         STORE_DOWN,
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
router = APIRouter(tags=["feedback"], dependencies=[Authorized],
                   responses=ERRORS | UNAVAILABLE)


#: What the OpenAPI document says of the endpoint (the docstring below is for developers).
DESCRIPTION = """New invoices, payments, actions and disputes, stored durably: once the answer
is 200, a crash loses none of them. Send each action carried out with the recommendation's
`propensity`, so that the book's own log can be learnt from.

Rows follow the contract's tables (extra columns are ignored). A re-post stores nothing twice
(`duplicates` counts what was already stored); send `payment_id` when two identical payments may
arrive in separate calls. A row that breaks a rule, or a payment, action or dispute of an invoice
the service does not know, refuses the whole body with 422 naming the row: nothing is stored.
So does a top-level key that names no table (`paymnts`).
"""


@router.post("/feedback", response_model=FeedbackResponse,
             summary="Store what happened: new invoices, payments, actions, disputes",
             description=DESCRIPTION, responses={200: answer(FEEDBACK_RESPONSE)})
def post_feedback(body: Annotated[FeedbackRequest, Body(openapi_examples=FEEDBACK_REQUESTS)],
                  engine: EngineDep, store: StoreDep, metrics: MetricsDep,
                  settings: SettingsDep) -> dict:
    """Validate the rows, commit them to the store, then answer; a re-post stores nothing twice.

    Every row passes ingest's row rules (CONTRACT.md §1), and is normalised as ingest does
    (trimmed, channels lower-case, currency and country upper-case, currency ``EUR`` when
    absent). Payments, actions and disputes must name an invoice that is stored, known from
    the training data, or posted in the same body. A row that breaks a rule makes the answer a
    422 naming the row and field, and nothing of the body is stored; so does a top-level key
    that names no table (``"paymnts"``), unless the service runs with
    ``PAYCADENCE_UNKNOWN_KEYS=ignore``. The 200 comes only after the database committed the
    rows (docs/api.md, "Feedback durability").
    """
    refuse_unknown_keys(unknown_keys(body), settings.unknown_keys)
    rows = {"debtors": [r.model_dump() for r in body.debtors]} | {
        name: [row_dict(r, kind) for r in getattr(body, name)] for name, kind in ROW_KINDS}
    for i, inv in enumerate(rows["invoices"]):
        if not inv.get("debtor_id"):
            raise Refused(status.HTTP_422_UNPROCESSABLE_CONTENT,
                          ["body", "invoices", i, "debtor_id"], "required in feedback")
    rows, repeated = _checked(rows)
    posted = {r["invoice_id"] for r in rows["invoices"]}
    referenced = {r["invoice_id"] for n in ("payments", "actions", "disputes") for r in rows[n]}
    unknown = referenced - posted - set(engine.stored.invoices["invoice_id"].to_list())
    if unknown:
        try:
            unknown -= store.known_invoice_ids(unknown)
        except StoreUnavailableError as exc:
            raise unavailable(exc) from None
    if unknown:
        for name in ("payments", "actions", "disputes"):
            for i, r in enumerate(rows[name]):
                if r["invoice_id"] in unknown:
                    raise Refused(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                  ["body", name, i, "invoice_id"],
                                  f"unknown invoice '{r['invoice_id']}'")
    try:
        stored, dupes, new = store.add(rows)
    except StoreUnavailableError as exc:
        raise unavailable(exc) from None
    dupes = {name: n + repeated.get(name, 0) for name, n in dupes.items()}
    engine.add_feedback(Tables.from_frames(**{name: _frame(name, new[name])
                                              for name in new if new[name]}))
    logger.info("feedback stored: %s (duplicates %s)", stored, dupes)
    metrics.count_feedback(stored)
    return {"stored": stored, "duplicates": dupes}


def _frame(name: str, rows: list[dict]) -> pl.DataFrame:
    """Stored rows as a frame; payments keep their ``payment_key`` (the engine tells two
    identical payments of one body apart by it)."""
    schema = COLUMNS[name] | ({PAYMENT_KEY: pl.String()} if name == "payments" else {})
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema,
                        orient="row")


def _checked(rows: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Ingest's row rules on each table of the body.

    Returns
    -------
    (clean, repeated)
        The normalised rows per table, and per table the rows dropped because the same key
        came earlier in the body (counted as duplicates, as a re-post would be).

    Raises
    ------
    HTTPException
        422 naming the first row that breaks a rule, ``payments[3].amount: non-positive
        amount``.
    """
    clean, repeated = {}, {}
    for name, batch in rows.items():
        if not batch:
            clean[name] = []
            continue
        for i, r in enumerate(batch):
            for col, value in r.items():
                if isinstance(value, str) and "\x00" in value:
                    raise Refused(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                  ["body", name, i, col], "contains a NUL character")
        frame = pl.DataFrame([{c: r.get(c) for c in COLUMNS[name]} for r in batch],
                             schema=COLUMNS[name], orient="row")
        try:
            good, bad = validate_rows(name, frame, offset=0, file=name)
        except PaycadenceError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        bad = bad.filter(~pl.col("reason").str.starts_with("duplicate "))
        if bad.height:
            row, reason = bad["row"][0], bad["reason"][0]
            named = [c for c in COLUMNS[name] if c in reason]
            field = min(named, key=reason.find) if named else None
            raise Refused(status.HTTP_422_UNPROCESSABLE_CONTENT,
                          ["body", name, row] + ([field] if field else []), reason)
        clean[name] = good.select(list(COLUMNS[name])).to_dicts()
        repeated[name] = len(batch) - good.height
    return clean, repeated
