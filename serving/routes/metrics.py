"""``GET /metrics``: the Prometheus text format (needs the token when one is set)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from paycadence.serving.deps import Authorized, MetricsDep
from paycadence.serving.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"], dependencies=[Authorized])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}})
def get_metrics(metrics: MetricsDep) -> Response:
    """Requests, latency, recommended actions, fallbacks and stored feedback rows."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
