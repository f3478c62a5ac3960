"""Request and response models of the HTTP API (CONTRACT.md §4), separate for each direction."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from paycadence.bounds import MAX_AMOUNT, MAX_DAY, MIN_DAY

Channel = Literal["email", "sms", "letter", "phone", "payment_plan", "collection"]
Action = Literal["wait", "email", "sms", "letter", "phone", "payment_plan", "collection"]
Id = Annotated[str, Field(min_length=1, max_length=200)]
#: The bounds are paycadence.bounds' (one set for ingest, /feedback and /recommend).
Amount = Annotated[float, Field(gt=0, lt=MAX_AMOUNT, allow_inf_nan=False)]
#: Dates from MIN_DAY to MAX_DAY; the pattern says so in the OpenAPI schema (JSON Schema has no
#: bounds for dates), so that a generated client knows before it asks.
DAY_PATTERN = r"^(19[7-9][0-9]|2[01][0-9][0-9]|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
assert (MIN_DAY.isoformat(), MAX_DAY.isoformat()) == ("1970-01-01", "2200-12-31"), \
    "DAY_PATTERN spells out the years of paycadence.bounds: change both together"
Day = Annotated[dt.date, Field(ge=MIN_DAY, le=MAX_DAY, json_schema_extra={"pattern": DAY_PATTERN})]
MAX_DEBTORS = 1000
#: Open invoices one debtor may list (``open_invoices``) and invoices its ``history`` may
#: carry; above, the request is refused with 422 naming the debtor. A call's work is linear in
#: them (benchmarks/one_debtor.py: 10,000 open invoices of one debtor take about 0.6 s).
MAX_OPEN_INVOICES = 10_000
MAX_HISTORY_INVOICES = 100_000


#: Incoming rows: unknown extra fields are accepted and ignored, as in the tables; strings
#: are trimmed.
_ROW = ConfigDict(extra="ignore", str_strip_whitespace=True)


class _In(BaseModel):
    """An incoming object (:data:`_ROW`)."""

    model_config = _ROW


#: History and feedback rows are typed dicts, not models: a stateless call carries tens of
#: thousands of them, and pydantic validates a dict in a third of the time it takes to build
#: a model of it (docs/operations.md, "history rows validated as typed dicts"). Same fields,
#: bounds, trimming and unknown keys ignored; a key left out is absent from the dict
#: (:func:`row_dict` fills it with None).


@with_config(_ROW)
class InvoiceRow(TypedDict):
    invoice_id: Id
    debtor_id: NotRequired[Id | None]
    issue_date: Day
    due_date: Day
    amount: Amount
    currency: NotRequired[str | None]


def _due_after_issue(row: dict) -> dict:
    if row["due_date"] < row["issue_date"]:
        raise ValueError("due_date is before issue_date")
    return row


@with_config(_ROW)
class PaymentRow(TypedDict):
    invoice_id: Id
    paid_on: Day
    amount: Amount
    #: the payment's own key (CONTRACT.md §5): two identical payments on one day with two ids
    #: are two payments; without it identical rows of one body are separate occurrences
    payment_id: NotRequired[Id | None]


def _lower(v):
    return v.strip().lower() if isinstance(v, str) else v


@with_config(_ROW)
class ActionRow(TypedDict):
    invoice_id: Id
    sent_on: Day
    channel: Annotated[Channel, BeforeValidator(_lower)]
    step: NotRequired[Annotated[int, Field(ge=1, le=1000)] | None]
    propensity: NotRequired[Annotated[float, Field(gt=0, le=1)] | None]


@with_config(_ROW)
class DisputeRow(TypedDict):
    invoice_id: Id
    opened_on: Day
    resolved_on: NotRequired[Day | None]


def _resolved_after_opened(row: dict) -> dict:
    if row.get("resolved_on") is not None and row["resolved_on"] < row["opened_on"]:
        raise ValueError("resolved_on is before opened_on")
    return row


#: The rows with their checks across fields.
Invoice = Annotated[InvoiceRow, AfterValidator(_due_after_issue)]
Dispute = Annotated[DisputeRow, AfterValidator(_resolved_after_opened)]


#: The tables of typed-dict rows, and each one's kind.
ROW_KINDS = (("invoices", InvoiceRow), ("payments", PaymentRow), ("actions", ActionRow),
             ("disputes", DisputeRow))


def row_dict(row: dict, kind: type) -> dict:
    """A validated row with every field of its typed dict ``kind`` (None where left out)."""
    return {key: row.get(key) for key in kind.__annotations__}


class DebtorRow(_In):
    debtor_id: Id
    country: str | None = None
    segment: str | None = None
    created_on: Day | None = None
    opted_out: str | None = None


class History(_In):
    invoices: Annotated[list[Invoice], Field(
        json_schema_extra={"maxItems": MAX_HISTORY_INVOICES})] = []
    payments: list[PaymentRow] = []
    actions: list[ActionRow] = []
    disputes: list[Dispute] = []


class OpenInvoice(_In):
    invoice_id: Id
    issue_date: Day
    due_date: Day
    amount: Amount
    amount_paid: Annotated[float, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False)] = 0.0
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
    open_invoices: Annotated[list[OpenInvoice], Field(
        json_schema_extra={"maxItems": MAX_OPEN_INVOICES})] = []
    history: History | None = None
    opted_out: list[Literal["email", "sms", "letter", "phone"]] | None = None
    segment: str | None = None
    country: str | None = None
    created_on: Day | None = None

    @model_validator(mode="after")
    def _unique_invoices(self, info: ValidationInfo):
        # the caps (a benchmark may lift them through the validation context)
        context = info.context or {}
        cap = context.get("max_open_invoices", MAX_OPEN_INVOICES)
        if cap is not None and len(self.open_invoices) > cap:
            raise ValueError(f"open_invoices lists {len(self.open_invoices)} invoices, over the "
                             f"limit of {cap} per debtor: send the debtor in several calls or "
                             "only its oldest open invoices")
        cap = context.get("max_history_invoices", MAX_HISTORY_INVOICES)
        if cap is not None and self.history is not None and len(self.history.invoices) > cap:
            raise ValueError(f"history.invoices carries {len(self.history.invoices)} invoices, "
                             f"over the limit of {cap} per debtor")
        ids = [inv.invoice_id for inv in self.open_invoices]
        if len(ids) != len(set(ids)):
            raise ValueError("open_invoices lists an invoice_id twice")
        if self.history is not None:
            known = {inv["invoice_id"] for inv in self.history.invoices} | set(ids)
            for table in ("payments", "actions", "disputes"):
                for i, row in enumerate(getattr(self.history, table)):
                    if row["invoice_id"] not in known:
                        raise ValueError(
                            f"history.{table}[{i}].invoice_id '{row['invoice_id']}' is neither in "
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
        # an invoice belongs to one debtor: the same id under two debtors of one call would mix
        # their rows (one debtor's amount_paid or payments changing the other's open amount)
        owner: dict[str, int] = {}
        for k, d in enumerate(self.debtors):
            mine = {inv.invoice_id for inv in d.open_invoices}
            if d.history is not None:
                mine.update(inv["invoice_id"] for inv in d.history.invoices)
            for invoice_id in mine:
                first = owner.setdefault(invoice_id, k)
                if first != k:
                    raise ValueError(
                        f"invoice_id '{invoice_id}' is listed under two debtors, "
                        f"debtors[{first}] '{self.debtors[first].debtor_id}' and debtors[{k}] "
                        f"'{d.debtor_id}': an invoice belongs to one debtor")
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
    invoices: list[Invoice] = []
    payments: list[PaymentRow] = []
    actions: list[ActionRow] = []
    disputes: list[Dispute] = []


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
    (403, "no token is set and the request arrived on a non-loopback address"),
    (408, "the body did not arrive within PAYCADENCE_BODY_TIMEOUT_SECONDS"),
    (413, "body larger than PAYCADENCE_MAX_BODY_BYTES"),
    (415, "the body is not sent as JSON (Content-Type: application/json)"),
    (422, "a field breaks the contract: `detail` names it"),
)}
