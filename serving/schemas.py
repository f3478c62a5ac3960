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
from paycadence.currencies import ISO_4217

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



def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if code not in ISO_4217:
        raise ValueError(f"'{value[:40]}' is not an ISO 4217 currency code (EUR, USD, GBP, ...)")
    return code


#: An ISO 4217 code, any case (``eur`` is EUR); the schema lists the codes.
Currency = Annotated[str, AfterValidator(_currency),
                     Field(json_schema_extra={"enum": sorted(ISO_4217)})]
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


class _Strict(BaseModel):
    """An incoming object of the request's own structure (not a table's row): a key it does
    not know is refused with 422 naming it (CONTRACT.md §5), unless the service runs with
    ``PAYCADENCE_UNKNOWN_KEYS=ignore``.

    Pydantic keeps such keys (``extra="allow"``) and :func:`unknown_keys` lists them, so that
    the one setting decides at call time; the OpenAPI schema says ``additionalProperties:
    false``, what a client should send.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True,
                              json_schema_extra={"additionalProperties": False})


#: History and feedback rows are typed dicts, not models: a stateless call carries tens of
#: thousands of them, and pydantic validates a dict in a third of the time it takes to build
#: a model of it (docs/operations.md, "history rows validated as typed dicts"). Same fields,
#: bounds, trimming and unknown keys ignored; a key left out is absent from the dict
#: (:func:`row_dict` fills it with None).


def _d(kind, text: str):
    """``kind`` with the description the OpenAPI document shows."""
    return Annotated[kind, Field(description=text)]


@with_config(_ROW)
class InvoiceRow(TypedDict):
    invoice_id: _d(Id, "the invoice's key")
    debtor_id: NotRequired[_d(Id | None, "the debtor it was sent to (required in /feedback)")]
    issue_date: _d(Day, "the day it was issued")
    due_date: _d(Day, "the day it falls due (not before issue_date)")
    amount: _d(Amount, "its amount, in its currency")
    currency: NotRequired[_d(Currency | None, "ISO 4217 code (EUR when absent)")]


def _due_after_issue(row: dict) -> dict:
    if row["due_date"] < row["issue_date"]:
        raise ValueError("due_date is before issue_date")
    return row


@with_config(_ROW)
class PaymentRow(TypedDict):
    invoice_id: _d(Id, "the invoice it pays")
    paid_on: _d(Day, "the day the money arrived")
    amount: _d(Amount, "how much, in the invoice's currency")
    #: the payment's own key (CONTRACT.md §5): two identical payments on one day with two ids
    #: are two payments; without it identical rows of one body are separate occurrences
    payment_id: NotRequired[_d(Id | None, "the payment's own key: two identical payments on "
                               "one day with two ids are two payments")]


def _lower(v):
    return v.strip().lower() if isinstance(v, str) else v


@with_config(_ROW)
class ActionRow(TypedDict):
    invoice_id: _d(Id, "the invoice the action was about")
    sent_on: _d(Day, "the day it was carried out")
    channel: _d(Annotated[Channel, BeforeValidator(_lower)], "what was done")
    step: NotRequired[_d(Annotated[int, Field(ge=1, le=1000)] | None,
                         "which reminder of the schedule it was (1 = the first)")]
    propensity: NotRequired[_d(Annotated[float, Field(gt=0, le=1)] | None,
                               "the probability with which it was chosen (the recommendation's "
                               "`propensity`): what lets the log be learnt from")]


@with_config(_ROW)
class DisputeRow(TypedDict):
    invoice_id: _d(Id, "the invoice disputed")
    opened_on: _d(Day, "the day the dispute was raised")
    resolved_on: NotRequired[_d(Day | None, "the day it was settled (absent: still open)")]


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
    debtor_id: Id = Field(description="the debtor's key")
    country: str | None = Field(None, description="ISO 3166 country code")
    segment: str | None = Field(None, description="the book's own grouping (e.g. `smb`)")
    created_on: Day | None = Field(None, description="the day the debtor became a customer")
    opted_out: str | None = Field(None, description="channels never to use, `;`-separated "
                                  "(`email;sms`)")


class History(_Strict):
    """The debtor's rows of the contract's tables, as of any day up to ``as_of``."""

    invoices: Annotated[list[Invoice], Field(
        json_schema_extra={"maxItems": MAX_HISTORY_INVOICES},
        description="every invoice of the debtor, paid or not")] = []
    payments: list[PaymentRow] = Field([], description="payments of those invoices")
    actions: list[ActionRow] = Field([], description="reminders and other actions taken")
    disputes: list[Dispute] = Field([], description="disputes raised")


class OpenInvoice(_Strict):
    invoice_id: Id = Field(description="the invoice's key")
    #: an invoices-table column, so that a row of that table may be sent as it is; when given
    #: it must be the debtor's own
    debtor_id: Id | None = Field(None, description="the debtor's own id, when sent")
    issue_date: Day = Field(description="the day it was issued")
    due_date: Day = Field(description="the day it falls due (not before issue_date)")
    amount: Amount = Field(description="its amount, in its currency")
    amount_paid: Annotated[float, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False)] = Field(
        0.0, description="what has been paid of it: authoritative, it replaces the history's "
        "payments of this invoice (below amount: the invoice is open)")
    currency: Currency | None = Field(None, description="ISO 4217 code (EUR when absent)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.due_date < self.issue_date:
            raise ValueError("due_date is before issue_date")
        if self.amount_paid >= self.amount - 0.01:
            raise ValueError("amount_paid settles the invoice: it is not open")
        return self


class DebtorIn(_Strict):
    debtor_id: Id = Field(description="the debtor's key; without `history`, what the service "
                          "stores for it is read (an unknown debtor gets a cold start)")
    open_invoices: Annotated[list[OpenInvoice], Field(
        json_schema_extra={"maxItems": MAX_OPEN_INVOICES},
        description="the debtor's open set: only these are scored and may be named (absent: "
        "whatever the history leaves open on as_of)")] = []
    history: History | None = Field(None, description="the debtor's past (stateless call): its "
                                    "features are computed from it and nothing stored is read")
    opted_out: list[Literal["email", "sms", "letter", "phone"]] | None = Field(
        None, description="channels never to use for this debtor (replaces the stored ones)")
    segment: str | None = Field(None, description="the book's own grouping (e.g. `smb`)")
    country: str | None = Field(None, description="ISO 3166 country code")
    created_on: Day | None = Field(None, description="the day it became a customer")

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
        for inv in self.open_invoices:
            if inv.debtor_id is not None and inv.debtor_id != self.debtor_id:
                raise ValueError(f"open invoice '{inv.invoice_id}' names debtor_id "
                                 f"'{inv.debtor_id}', not this debtor's '{self.debtor_id}'")
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


class RecommendRequest(_Strict):
    as_of: Day = Field(description="the day of the decision: nothing after it is read, and "
                       "the action is to be carried out on it")
    debtors: Annotated[list[DebtorIn], Field(max_length=MAX_DEBTORS)] = Field(
        description="up to 1,000 debtors, each recommended on its own")

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


def unknown_keys(body: RecommendRequest | FeedbackRequest) -> list[tuple[list, str]]:
    """The keys of ``body``'s own objects that no field names, each with its place
    (``(["body", "debtors", 0, "open_invoice"], "open_invoice")``).

    Rows of the tables (``history`` rows, ``/feedback`` rows) are not looked at: a table's
    extra columns are kept and ignored (CONTRACT.md §1), and a typo in a required column is
    refused as missing.
    """
    found: list[tuple[list, str]] = []

    def look(obj: BaseModel | None, loc: list) -> None:
        for key in (obj.model_extra or {}) if obj is not None else ():
            found.append(([*loc, key], key))

    look(body, ["body"])
    for i, debtor in enumerate(body.debtors if isinstance(body, RecommendRequest) else []):
        here = ["body", "debtors", i]
        look(debtor, here)
        look(debtor.history, [*here, "history"])
        for j, inv in enumerate(debtor.open_invoices):
            look(inv, [*here, "open_invoices", j])
    return found


class FeedbackRequest(_Strict):
    """New rows of the contract's tables, stored durably before the answer."""

    debtors: list[DebtorRow] = Field([], description="new or changed debtors")
    invoices: list[Invoice] = Field([], description="new invoices (`debtor_id` required)")
    payments: list[PaymentRow] = Field([], description="payments received")
    actions: list[ActionRow] = Field([], description="actions carried out, with the "
                                     "recommendation's `propensity`")
    disputes: list[Dispute] = Field([], description="disputes raised or resolved")
