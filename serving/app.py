"""The FastAPI application: ``create_app(settings)`` wires engine, store and routes."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from paycadence import __version__
from paycadence.config import Settings, load_policy
from paycadence.serving.engine import Engine
from paycadence.serving.routes import feedback, health, recommend
from paycadence.serving.store import FeedbackStore

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, data_dir: str | Path | None = None) -> FastAPI:
    """Build the app; its lifespan loads the champion (or the fallback) and opens the store.

    Parameters
    ----------
    settings
        Deployment settings (database URL, token, model name and alias, body limit).
    data_dir
        Clean tables (as written by ``ingest``) that stored-debtor requests read.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        policy = load_policy(settings.policy_file)
        store = FeedbackStore(settings.database_url)
        engine = Engine.load(policy, model_name=settings.model_name,
                             alias=settings.model_alias,
                             data_dir=data_dir or settings.data_dir, stored=True)
        engine.add_feedback(store.load())
        app.state.engine, app.state.store, app.state.settings = engine, store, settings
        yield
        store.close()

    app = FastAPI(title="paycadence", version=__version__, lifespan=lifespan)
    app.state.settings = settings

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse({"detail": f"body over {settings.max_body_bytes} bytes"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def readable_422(request: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "problem": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "problem": "invalid"}
        return JSONResponse(
            {"detail": f"{first['field'] or 'body'}: {first['problem']}", "errors": errors},
            status_code=422,
        )

    app.include_router(recommend.router)
    app.include_router(feedback.router)
    app.include_router(health.router)
    return app
