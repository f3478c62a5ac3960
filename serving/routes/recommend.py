"""``POST /recommend``: the next action for one or many debtors."""

from __future__ import annotations

from fastapi import APIRouter

from paycadence.serving.deps import Authorized, EngineDep
from paycadence.serving.schemas import RecommendRequest, RecommendResponse

router = APIRouter(tags=["recommend"], dependencies=[Authorized])


@router.post("/recommend", response_model=RecommendResponse)
def post_recommend(body: RecommendRequest, engine: EngineDep) -> dict:
    """Recommend each debtor's next action as of ``as_of`` (stateless with ``history``)."""
    return {"recommendations": engine.recommend(body.as_of, body.debtors)}
