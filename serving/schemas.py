"""Request and response models of the HTTP API (CONTRACT.md §4), separate for each direction."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Channel = Literal["email", "sms", "letter", "phone", "payment_plan", "collection"]
Action = Literal["wait", "email", "sms", "letter", "phone", "payment_plan", "collection"]
Id = Annotated[str, Field(min_length=1, max_length=200)]
Amount = Annotated[float, Field(gt=0, lt=1e12, allow_inf_nan=False)]
#: Dates from 1970-01-01 to 2200-12-31; the pattern says so in the OpenAPI schema (JSON Schema
#: has no bounds for dates), so that a generated client knows before it asks.
DAY_PATTERN = r"^(19[7-9][0-9]|2[01][0-9][0-9]|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
Day = Annotated[dt.date, Field(ge=dt.date(1970, 1, 1), le=dt.date(2200, 12, 31),
                               json_schema_extra={"pattern": DAY_PATTERN})]
MAX_DEBTORS = 1000


class _In(BaseModel):
    """Incoming rows: unknown extra fields are accepted and ignored, as in the tables."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class InvoiceRow(_In):
    invoice_id: Id
    debtor_id: Id | None = None
    issue_date: Day
    due_date: Day
    amount: Amount
    currency: str | None = None

    @model_validator(mode="after")
    def _due_after_issue(self):
        if self.due_date < self.issue_date:
            raise ValueError("due_date is before issue_date")
        return self


class PaymentRow(_In):
    invoice_id: Id
    paid_on: Day
    amount: Amount


class ActionRow(_In):
    invoice_id: Id
    sent_on: Day
    channel: Channel
    step: Annotated[int, Field(ge=1, le=1000)] | None = None
    propensity: Annotated[float, Field(gt=0, le=1)] | None = None

    @field_validator("channel", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.strip().lower() if isinstance(v, str) else v


class DisputeRow(_In):
    invoice_id: Id
    opened_on: Day
    resolved_on: Day | None = None

    @model_validator(mode="after")
    def _resolved_after_opened(self):
        if self.resolved_on is not None and self.resolved_on < self.opened_on:
            raise ValueError("resolved_on is before opened_on")
        return self


class DebtorRow(_In):
    debtor_id: Id
    country: str | None = None
    segment: str | None = None
    created_on: Day | None = None
    opted_out: str | None = None


class History(_In):
    invoices: list[InvoiceRow] = []
    payments: list[PaymentRow] = []
    actions: list[ActionRow] = []
    disputes: list[DisputeRow] = []


class OpenInvoice(_In):
    invoice_id: Id
    issue_date: Day
    due_date: Day
    amount: Amount
    amount_paid: Annotated[float, Field(ge=0, lt=1e12, allow_inf_nan=False)] = 0.0
    currency: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.due_date < self.issue_date:
            raise ValueError("due_date is before issue_date")
        if self.amount_paid >= self.amount - 0.01:
            raise ValueError("amount_paid settles the invoice: it is not open")
        return self


class DebtorIn(_In):
    debtor_id: Id
    open_invoices: list[OpenInvoice] = []
    history: History | None = None
    opted_out: list[Literal["email", "sms", "letter", "phone"]] | None = None
    segment: str | None = None
    country: str | None = None
    created_on: Day | None = None

    @model_validator(mode="after")
    def _unique_invoices(self):
        ids = [inv.invoice_id for inv in self.open_invoices]
        if len(ids) != len(set(ids)):
            raise ValueError("open_invoices lists an invoice_id twice")
        if self.history is not None:
            known = {inv.invoice_id for inv in self.history.invoices} | set(ids)
            for table in ("payments", "actions", "disputes"):
                for i, row in enumerate(getattr(self.history, table)):
                    if row.invoice_id not in known:
                        raise ValueError(
                            f"history.{table}[{i}].invoice_id '{row.invoice_id}' is neither in "
                            "history.invoices nor in open_invoices"
                        )
        return self


class RecommendRequest(_In):
    as_of: Day
    debtors: Annotated[list[DebtorIn], Field(max_length=MAX_DEBTORS)]

    @model_validator(mode="after")
    def _unique_debtors(self):
        ids = [d.debtor_id for d in self.debtors]
        if len(ids) != len(set(ids)):
            raise ValueError("debtors lists a debtor_id twice")
        return self


class Risk(BaseModel):
    p_late: float
    expected_days_late: float
    p_unpaid_90d: float


class InvoiceForecast(Risk):
    invoice_id: str
    expected_settled_on: dt.date
    open_amount: float
    expected_cash_by_week: list[float] = Field(
        description="expected payment in each of the next 13 weeks (week 1 starts on as_of)")


class CashWeek(BaseModel):
    week: int = Field(description="1 = as_of and the six days after it")
    start: dt.date
    end: dt.date
    expected: float = Field(description="expected cash in, currency")


class Reason(BaseModel):
    feature: str
    value: float | None = None
    contribution: float
    effect: Literal["raises", "lowers"] | None = None
    points: float | None = Field(
        default=None, description="the factor's size: change of the calibrated p_late, in "
        "percentage points, against the same forecast without it")
    text: str


class Alternative(BaseModel):
    action: Action
    probability: float = Field(description="chance the decision draws this action today")
    invoice_ids: list[str]


class Recommendation(BaseModel):
    debtor_id: str
    action: Action
    invoice_ids: list[str]
    step: int | None = None
    next_review_on: dt.date
    risk: Risk
    invoices: list[InvoiceForecast]
    cash_forecast: list[CashWeek]
    expected_value: float
    propensity: float
    explanation: list[Reason]
    model_version: str
    reason: str
    explored: bool
    alternatives: list[Alternative] = Field(
        default=[], description="every action the decision could have drawn today, with its "
        "probability (they sum to 1; the chosen one's is `propensity`)")


class RecommendResponse(BaseModel):
    recommendations: list[Recommendation]
    cash_forecast: list[CashWeek] = Field(
        description="the debtors of this request together, next 13 weeks")


class FeedbackRequest(_In):
    debtors: list[DebtorRow] = []
    invoices: list[InvoiceRow] = []
    payments: list[PaymentRow] = []
    actions: list[ActionRow] = []
    disputes: list[DisputeRow] = []


class FeedbackResponse(BaseModel):
    stored: dict[str, int]
    duplicates: dict[str, int]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    models_loaded: bool
    model_version: str
    #: a short code: ``ok``, ``no_model``, ``model_invalid``, ``model_output_not_finite``,
    #: ``reload_failed``, ``registry_unreachable``, ``model_failing``
    reason: str = "ok"
    #: a fixed sentence for the reason; the operator's detail (credentials redacted) only to
    #: a caller presenting the service's bearer token
    detail: str
    #: decision days whose stored book is ready (every stored debtor's features and forecasts
    #: made for the models served): calls about stored debtors on them only look rows up
    stored_days_ready: list[dt.date] = []


class FieldProblem(BaseModel):
    field: str
    problem: str


class Problem(BaseModel):
    """Every 4xx/5xx answer: one sentence naming the problem (and, for 422, each field)."""

    detail: str
    errors: list[FieldProblem] | None = None


#: The error answers every route documents (the app's handlers give them this shape).
ERRORS = {code: {"model": Problem, "description": what} for code, what in (
    (400, "the body is not JSON"),
    (401, "missing or wrong bearer token (when the service has a token)"),
    (413, "body larger than PAYCADENCE_MAX_BODY_BYTES"),
    (422, "a field breaks the contract: `detail` names it"),
)}
