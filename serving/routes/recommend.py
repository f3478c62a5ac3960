"""``POST /recommend``: the next action for one or many debtors."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Response, status

from paycadence.models.recommend import (
    NonFiniteOutputError,
    book_cash_forecast,
    refuse_non_finite,
)
from paycadence.serving.answers import ERRORS, RecommendResponse
from paycadence.serving.deps import Authorized, EngineDep, MetricsDep, SettingsDep
from paycadence.serving.examples import RECOMMEND_REQUESTS, RECOMMEND_RESPONSE, answer
from paycadence.serving.problems import Refused, refuse_unknown_keys
from paycadence.serving.schemas import RecommendRequest, unknown_keys

router = APIRouter(tags=["recommend"], dependencies=[Authorized], responses=ERRORS)


#: What the OpenAPI document says of the endpoint (the docstring below is for developers).
DESCRIPTION = """The next action for each debtor, as of `as_of`, to be carried out that day.

A debtor is either **stateless** (it carries `history`: its features are computed from it,
nothing stored is read) or **stored** (by `debtor_id` alone: the service's book, the training
data plus `/feedback`; an unknown debtor gets a cold-start recommendation). Up to 1,000
debtors per call. Each answer names the action, the invoices it is about, when to look again,
each open invoice's forecast and 13 weeks of expected cash, the reason in words, and the
`propensity` to send back with the action in `/feedback`.

A key the service does not know (a typo such as `open_invoice`) is refused with 422 naming it.
"""


@router.post("/recommend", response_model=RecommendResponse,
             summary="Recommend each debtor's next dunning action",
             description=DESCRIPTION, responses={200: answer(RECOMMEND_RESPONSE)})
def post_recommend(body: Annotated[RecommendRequest, Body(openapi_examples=RECOMMEND_REQUESTS)],
                   engine: EngineDep, metrics: MetricsDep, settings: SettingsDep) -> Response:
    """Recommend each debtor's next action as of ``as_of`` (stateless with ``history``).

    The answer is written with orjson straight from the recommendations, which
    :func:`paycadence.models.recommend` builds in the documented shape (``RecommendResponse``,
    checked against the contract's JSON Schema and by schemathesis in the tests): validating it
    again through pydantic took a fifth of a 1,000-debtor call. A non-finite number in it
    (never within the bounds of paycadence.bounds, tested) refuses the call with 422 naming
    the debtor and field rather than answering ``null`` where the schema wants a number.

    A key of the request's own objects that no field names (``"open_invoice"`` for
    ``"open_invoices"``) is refused with 422 naming it, unless the service runs with
    ``PAYCADENCE_UNKNOWN_KEYS=ignore``.
    """
    refuse_unknown_keys(unknown_keys(body), settings.unknown_keys)
    recs = engine.recommend(body.as_of, body.debtors)
    cash = book_cash_forecast(recs, body.as_of)
    try:  # orjson would write an infinity as null, which breaks the response's schema
        refuse_non_finite(recs, cash, where="POST /recommend")
    except NonFiniteOutputError as exc:
        raise Refused(status.HTTP_422_UNPROCESSABLE_CONTENT, ["body"], str(exc)) from None
    metrics.count_recommendations(recs)
    payload = {"recommendations": recs, "cash_forecast": cash}
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")
