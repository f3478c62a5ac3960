"""``POST /recommend``: the next action for one or many debtors."""

from __future__ import annotations

from fastapi import APIRouter

from paycadence.models.recommend import book_cash_forecast
from paycadence.serving.deps import Authorized, EngineDep, MetricsDep
from paycadence.serving.schemas import ERRORS, RecommendRequest, RecommendResponse

router = APIRouter(tags=["recommend"], dependencies=[Authorized], responses=ERRORS)


@router.post("/recommend", response_model=RecommendResponse)
def post_recommend(body: RecommendRequest, engine: EngineDep, metrics: MetricsDep) -> dict:
    """Recommend each debtor's next action as of ``as_of`` (stateless with ``history``)."""
    recs = engine.recommend(body.as_of, body.debtors)
    metrics.count_recommendations(recs)
    return {"recommendations": recs, "cash_forecast": book_cash_forecast(recs, body.as_of)}
