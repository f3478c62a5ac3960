"""``POST /recommend``: the next action for one or many debtors."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Response, status

from paycadence.models.recommend import (
    NonFiniteOutputError,
    book_cash_forecast,
    refuse_non_finite,
)
from paycadence.serving.deps import Authorized, EngineDep, MetricsDep
from paycadence.serving.schemas import ERRORS, RecommendRequest, RecommendResponse

router = APIRouter(tags=["recommend"], dependencies=[Authorized], responses=ERRORS)


@router.post("/recommend", response_model=RecommendResponse)
def post_recommend(body: RecommendRequest, engine: EngineDep, metrics: MetricsDep) -> Response:
    """Recommend each debtor's next action as of ``as_of`` (stateless with ``history``).

    The answer is written with orjson straight from the recommendations, which
    :func:`paycadence.models.recommend` builds in the documented shape (``RecommendResponse``,
    checked against the contract's JSON Schema and by schemathesis in the tests): validating it
    again through pydantic took a fifth of a 1,000-debtor call. A non-finite number in it
    (never within the bounds of paycadence.bounds, tested) refuses the call with 422 naming
    the debtor and field rather than answering ``null`` where the schema wants a number.
    """
    recs = engine.recommend(body.as_of, body.debtors)
    cash = book_cash_forecast(recs, body.as_of)
    try:  # orjson would write an infinity as null, which breaks the response's schema
        refuse_non_finite(recs, cash, where="POST /recommend")
    except NonFiniteOutputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    metrics.count_recommendations(recs)
    payload = {"recommendations": recs, "cash_forecast": cash}
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")
