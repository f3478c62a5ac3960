"""``GET /health``: the process is up; whether models are loaded or the fallback serves.

It answers without a token (a load balancer's check), so it says no more than a stranger may
know: the status, the model version served and a short reason code with a fixed sentence.
A caller presenting the service's bearer token also gets the operator's detail (which model
and alias, why a load failed), with every credential redacted.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from paycadence.books import BOOK_TAG
from paycadence.redact import redact
from paycadence.serving.answers import Health
from paycadence.serving.deps import EngineDep, token_matches
from paycadence.serving.examples import HEALTH_RESPONSE, answer

router = APIRouter(tags=["health"])

#: What each reason code means, in the words an unauthenticated caller gets.
REASONS = {
    "ok": "the champion model serves",
    "no_model": "no champion model is registered or reachable: the rule-based fallback serves",
    "model_invalid": "the champion's model files failed their checks: the rule-based "
                     "fallback serves",
    "model_output_not_finite": "the model gave a non-finite forecast: the rule-based "
                               "fallback serves",
    "reload_failed": "a newly promoted model failed to load: the previous model still serves",
    "registry_unreachable": "the model registry cannot be reached: the loaded model serves",
    "model_failing": "the model failed at predict time: the rule-based fallback serves",
}


@router.get("/health", response_model=Health,
            summary="Whether the service is up and which model serves",
            description="Answers while the process is up, without a token. `status` is "
                        "`degraded` when the rule-based fallback (or an older model) serves; "
                        "`reason` gives the code.",
            responses={200: answer(HEALTH_RESPONSE)})
def get_health(engine: EngineDep, request: Request) -> dict:
    code = engine.reason
    token = request.app.state.settings.api_token
    if token and token_matches(token, request.headers.get("authorization")):
        detail = redact(engine.failing or engine.detail)
    else:
        detail = REASONS.get(code, code.replace("_", " "))
    return {"status": "degraded" if engine.degraded else "ok",
            "models_loaded": engine.models is not None, "model_version": engine.version,
            "reason": code, "detail": detail, "stored_days_ready": engine.ready_days(),
            "book": engine.tags.get(BOOK_TAG) if engine.models is not None else None}
