"""Response models of the HTTP API (CONTRACT.md §4) and the error shape, with the field
descriptions the OpenAPI document shows.

``/recommend``'s answer is written with orjson straight from the recommendations
(serving/routes/recommend.py); these models document it, and the tests check every answer
against them and the contract's JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from paycadence.serving.examples import REFUSED, answer
from paycadence.serving.schemas import Action


class Risk(BaseModel):
    p_late: float = Field(description="probability that the invoice settles after its due "
                          "date (1 once it is past due and open); for the debtor, weighted by "
                          "open amount")
    p_open_7d: float | None = Field(None, description="probability that the invoice is still "
                                    "unpaid 7 days after as_of (docs/models.md); for the "
                                    "debtor, weighted by open amount")
    expected_days_late: float = Field(description="expected days between the due date and "
                                      "settlement (0 for one settled on time)")
    p_unpaid_90d: float = Field(description="probability that the invoice is still open 90 "
                                "days after its due date")


class InvoiceForecast(Risk):
    invoice_id: str = Field(description="one of the debtor's open invoices")
    expected_settled_on: dt.date = Field(description="the day it is expected to be paid")
    open_amount: float = Field(description="what is still to be paid, in its currency")
    expected_cash_by_week: list[float] = Field(
        description="expected payment in each of the next 13 weeks (week 1 starts on as_of)")


class CashWeek(BaseModel):
    week: int = Field(description="1 = as_of and the six days after it")
    start: dt.date = Field(description="the week's first day")
    end: dt.date = Field(description="the week's last day")
    expected: float = Field(description="expected cash in, currency")


class Reason(BaseModel):
    feature: str = Field(description="the forecast's input this factor is about")
    value: float | None = Field(None, description="its value for this invoice")
    contribution: float = Field(description="its exact SHAP value, in log-odds of the figure "
                                "it explains (p_late; p_open_7d once past due)")
    effect: Literal["raises", "lowers"] | None = Field(
        None, description="whether it raises or lowers the risk of paying late")
    points: float | None = Field(
        default=None, description="the factor's size: change of the focus invoice's p_late "
        "(its p_open_7d once past due), in percentage points, against the same forecast "
        "without it")
    text: str = Field(description="the factor in words, with its effect and size")


class Alternative(BaseModel):
    action: Action = Field(description="an action the decision could have drawn today")
    probability: float = Field(description="chance the decision draws this action today")
    invoice_ids: list[str] = Field(description="the open invoices it would be about")


class Recommendation(BaseModel):
    debtor_id: str = Field(description="the debtor, as sent")
    action: Action = Field(description="what to do today (`wait`: nothing)")
    invoice_ids: list[str] = Field(description="the open invoices the action is about "
                                   "(empty for `wait`)")
    step: int | None = Field(None, description="which reminder of the schedule this is "
                             "(1 = the first), where the action is one")
    next_review_on: dt.date = Field(description="when to ask again at the latest")
    risk: Risk = Field(description="the debtor's risk: its open invoices' forecasts, weighted "
                       "by open amount")
    invoices: list[InvoiceForecast] = Field(description="each open invoice's forecast")
    cash_forecast: list[CashWeek] = Field(description="the debtor's expected cash, 13 weeks")
    expected_value: float = Field(
        description="expected present value of the open invoices under the forecasts, net of "
        "the action's cost (and a hand-over's fee), in their currency")
    value_vs_wait: float | None = Field(
        None, description="what the chosen action is worth against waiting, net of its cost, "
        "by the value model learnt from the book's log; null where nothing learnt valued it")
    propensity: float = Field(description="probability with which the service chose this "
                              "action (1.0 when it did not explore)")
    explanation: list[Reason] = Field(description="the factors behind the risk, largest first")
    model_version: str = Field(description="`risk:<version>` of the model that forecast, or "
                               "`fallback` (the rule-based forecasts)")
    reason: str = Field(description="why this action, in one sentence with its values: the "
                        "schedule's, or learnt from the book's log")
    explored: bool = Field(description="whether this decision explored")
    alternatives: list[Alternative] = Field(
        default=[], description="every action the decision could have drawn today, with its "
        "probability (they sum to 1; the chosen one's is `propensity`)")


class RecommendResponse(BaseModel):
    recommendations: list[Recommendation] = Field(description="one per debtor, in the "
                                                  "request's order")
    cash_forecast: list[CashWeek] = Field(
        description="the debtors of this request together, next 13 weeks")


class FeedbackResponse(BaseModel):
    stored: dict[str, int] = Field(description="rows stored, per table posted")
    duplicates: dict[str, int] = Field(description="rows already stored (or repeated in the "
                                       "body), per table posted: skipped")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="`degraded`: answering with the "
                                              "rule-based fallback or an older model")
    models_loaded: bool = Field(description="whether a registered model serves")
    model_version: str = Field(description="`risk:<version>`, or `fallback`")
    reason: str = Field("ok", description="a short code: `ok`, `no_model`, `model_invalid`, "
                        "`model_output_not_finite`, `reload_failed`, `registry_unreachable`, "
                        "`model_failing`")
    detail: str = Field(description="a fixed sentence for the reason; the operator's detail "
                        "(credentials redacted) only to a caller with the bearer token")
    book: str | None = Field(None, description="the book (company) the serving model was "
                             "trained on (paycadence.books); null for the fallback")
    stored_days_ready: list[dt.date] = Field(
        [], description="decision days whose stored book is ready (every stored debtor's "
        "features and forecasts made): calls about stored debtors on them only look rows up")


class FieldProblem(BaseModel):
    """One fault of a refused request (serving/problems.py)."""

    loc: list[str | int] = Field(description="where, as a path from the part of the request "
                                 "it is in: `[\"body\", \"debtors\", 0, \"open_invoices\", 1, "
                                 "\"amount\"]`, `[\"header\", \"authorization\"]`")
    msg: str = Field(description="what is wrong there")
    field: str = Field(description="`loc` written as one path: "
                       "`debtors[0].open_invoices[1].amount` (`body`: the body as a whole)")
    problem: str = Field(description="the same as `msg`")
    line: int | None = Field(None, description="a body that is not JSON: the line of the "
                             "fault (from 1)")
    column: int | None = Field(None, description="a body that is not JSON: the column of the "
                               "fault (from 1)")


class Problem(BaseModel):
    """Every 4xx/5xx answer the service writes: the faults, and the first as a sentence."""

    detail: str = Field(description="the first fault as one sentence, `<field>: <msg>`")
    errors: list[FieldProblem] = Field(description="every fault found (at least one)")


#: The error answers every route documents (the app's handlers give them this shape); the 422
#: shows an example.
ERRORS = {code: {"model": Problem, "description": what} | (
    answer(REFUSED) if code == 422 else {}) for code, what in (
    (400, "the body is not JSON"),
    (401, "missing or wrong bearer token (when the service has a token)"),
    (403, "no token is set and the request arrived on a non-loopback address"),
    (408, "the body did not arrive within PAYCADENCE_BODY_TIMEOUT_SECONDS"),
    (413, "body larger than PAYCADENCE_MAX_BODY_BYTES"),
    (415, "the body is not sent as JSON (Content-Type: application/json)"),
    (422, "a field breaks the contract, or a key names no field: `errors` lists each"),
)}
