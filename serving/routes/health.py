"""``GET /health``: the process is up; whether models are loaded or the fallback serves."""

from __future__ import annotations

from fastapi import APIRouter

from paycadence.serving.deps import EngineDep
from paycadence.serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def get_health(engine: EngineDep) -> dict:
    loaded = engine.models is not None
    return {"status": "degraded" if engine.degraded else "ok", "models_loaded": loaded,
            "model_version": engine.version,
            "detail": engine.failing or engine.detail,
            "stored_days_ready": engine.ready_days()}
