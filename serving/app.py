"""The FastAPI application: ``create_app(settings)`` wires engine, store, routes and middleware.

Middleware, outermost first: request id + one JSON log line + metrics for every request
(:class:`ObserveRequests`); CORS, only for the origins in ``PAYCADENCE_CORS_ORIGINS``; the bearer
token (:class:`RequireToken`, before any body is read), or without a token the loopback rule
(:class:`LoopbackOnly`); a POST's Content-Type must be JSON (:class:`RequireJson`, 415); the
body's deadline (:class:`BodyTimeout`); the body-size limit (by Content-Length,
:class:`LimitContentLength`, then by the bytes read, for a chunked body).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paycadence import __version__
from paycadence.books import registered_name
from paycadence.config import Settings, get_settings, load_policy
from paycadence.errors import ConfigError
from paycadence.serving import problems
from paycadence.serving.deps import (
    NO_TOKEN,
    PUBLIC_PATHS,
    UNAUTHORIZED,
    arrived_on_loopback,
    token_matches,
)
from paycadence.serving.engine import Engine
from paycadence.serving.logs import request_id_from, request_id_var
from paycadence.serving.metrics import UNMATCHED, Metrics
from paycadence.serving.problems import said
from paycadence.serving.routes import docs, feedback, health, metrics, recommend
from paycadence.serving.routes.feedback import RETRY_AFTER_SECONDS, STORE_DOWN
from paycadence.serving.store import FeedbackStore, StoreUnavailableError

logger = logging.getLogger(__name__)
requests_logger = logging.getLogger("paycadence.serving.requests")

_ORIGIN = re.compile(r"https?://([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")


def cors_origins(text: str | None) -> list[str]:
    """The origins of ``PAYCADENCE_CORS_ORIGINS`` (comma-separated ``scheme://host[:port]``).

    Raises
    ------
    ConfigError
        When an entry is not an origin (a path, a wildcard, a missing scheme).
    """
    origins = [o.strip().rstrip("/") for o in (text or "").split(",") if o.strip()]
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"PAYCADENCE_CORS_ORIGINS: '{origin}' is not an origin (write "
                              "scheme://host[:port], e.g. https://ar.example.com; no wildcard)")
    return origins


class RequireToken:
    """Refuse every request but ``/health`` without ``Authorization: Bearer <token>``.

    It answers 401 before the body is read. The routers also depend on ``require_token``, so
    that a route stays protected should this middleware ever be removed.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS
                and not token_matches(self.token, Headers(scope=scope).get("authorization"))):
            response = said(401, UNAUTHORIZED, ["header", "authorization"],
                            headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class LoopbackOnly:
    """Without a token, answer 403 to every request but ``/health`` that arrived on a
    non-loopback address (CONTRACT.md §4), before its body is read.

    ``paycadence serve`` refuses to bind such an address without a token; this is the same
    rule in the app itself, so that the app started any other way (``uvicorn
    paycadence.serving.app:app_from_env --factory --host 0.0.0.0``, behind a proxy on another
    host) does not serve the network without credentials.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.warned = app, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS
                and not arrived_on_loopback(scope.get("server"))):
            if not self.warned:
                self.warned = True
                logger.warning("a request arrived on %s, not a loopback address, and "
                               "PAYCADENCE_API_TOKEN is not set: refused with 403 (every such "
                               "request but /health is)", scope["server"][0])
            response = said(403, NO_TOKEN, ["header", "host"])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyTimeout:
    """Answer 408 and close the connection when a request's body has not fully arrived
    ``seconds`` after its headers (a client trickling its body, slowloris).

    Only the reading of the body is timed: once its last byte is in, ``receive`` is the
    server's own again (it then waits for a disconnect, as long as the answer takes).
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = timed_out = started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):  # no task per chunk, as wait_for makes
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the app's answer to a body cut short: the 408 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except _BodyTimedOut:
            pass
        if timed_out and not started:
            logger.warning("request body of %s %s not received within %.0f s: 408, connection "
                           "closed", scope["method"], scope["path"][:256], self.seconds)
            response = said(408, f"body: not received within {self.seconds:g} s "
                                 "(PAYCADENCE_BODY_TIMEOUT_SECONDS); send it again",
                            headers={"Connection": "close"})
            await response(scope, receive, send)


class _BodyTimedOut(Exception):
    """Raised into the app from ``receive`` when the body's deadline has passed."""


class LimitContentLength:
    """Answer 413 to a request whose ``Content-Length`` is over ``max_body_bytes`` (or not a
    number), before its body is read. A plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` (``@app.middleware``) ran every request through a task group and
    a memory stream."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                response = said(413, f"body: over {self.limit} bytes "
                                     "(PAYCADENCE_MAX_BODY_BYTES)")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequireJson:
    """Answer 415 to a POST whose ``Content-Type`` is not JSON, before its body is read.

    FastAPI reads such a body as no JSON at all and answers "body: Input should be a valid
    dictionary" (a 422 that hides the cause); ``curl -d`` sends form encoding by default.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            given = Headers(scope=scope).get("content-type") or ""
            media = given.split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                shown = given[:80] if given.isprintable() else "?"
                response = said(415, "body: send JSON with 'Content-Type: application/json' "
                                + (f"(got {shown!r})" if given else "(no Content-Type given)"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ObserveRequests:
    """Request id, metrics and one log line for every HTTP request.

    The id is the caller's ``X-Request-ID`` when short and safe, else a new one; it is sent back
    in ``X-Request-ID`` and carried by every record logged while the request is served. The log
    line holds method, path (no query string), status, duration in ms, request id, client
    address and the worker's process id: never a header's value, never the body. Metrics and
    the line are recorded before the last response byte is handed on, so a client that has its
    answer sees them counted.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get("x-request-id"))
        context = request_id_var.set(request_id)
        method, start = scope["method"], time.perf_counter()
        status, done = 500, False

        def finish() -> None:
            nonlocal done
            done = True
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe_request(route, method, status, seconds)
            client = scope.get("client")
            requests_logger.info(
                "%s %s %d", method, scope["path"][:256], status,
                extra={"method": method, "path": scope["path"][:256], "route": route,
                       "status": status, "duration_ms": round(seconds * 1000, 2),
                       "request_id": request_id, "client": client[0] if client else None,
                       "pid": os.getpid()})

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finish()
            await send(message)

        in_progress = self.metrics.in_progress.labels(method)
        in_progress.inc()
        try:
            await self.app(scope, receive, send_observed)
        finally:
            in_progress.dec()
            if not done:  # an error escaped, or the client left before the last byte
                finish()
            request_id_var.reset(context)


def create_app(settings: Settings, *, data_dir: str | Path | None = None) -> FastAPI:
    """Build the app; its lifespan loads the champion (or the fallback) and opens the store.

    Parameters
    ----------
    settings
        Deployment settings (database URL, token, model name and alias, body limit, CORS).
    data_dir
        Clean tables (as written by ``ingest``) that stored-debtor requests read.

    Raises
    ------
    ConfigError
        When ``settings.cors_origins`` names something that is not an origin.
    """
    origins = cors_origins(settings.cors_origins)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        policy = load_policy(settings.policy_file)
        store = FeedbackStore(settings.database_url)
        model_name = registered_name(settings.model_name, settings.book)
        engine = Engine.load(policy, model_name=model_name,
                             alias=settings.model_alias,
                             data_dir=data_dir or settings.data_dir, stored=True)
        # every stored row now; then, before each stored-debtor call, those stored since by
        # any process (another worker or instance on the same database)
        engine.follow(store)
        # today's features and forecasts of every stored debtor (and each next day's from
        # midnight), made in the background
        engine.warm_each_day()
        if settings.model_refresh_seconds > 0:  # a promotion is served without a restart
            engine.watch(model_name, settings.model_alias,
                         settings.model_refresh_seconds)
        app.state.engine, app.state.store, app.state.settings = engine, store, settings
        # what is loaded now (modules, models, settings: ~450,000 objects) lives as long as
        # the process: keep it out of the collector's full passes, which a large call
        # triggers (they took ~60 ms of each call of 200 stateless debtors)
        gc.freeze()
        yield
        gc.unfreeze()
        engine.close()
        store.close()

    # FastAPI's own /docs and /openapi.json take no dependency: routes/docs.py serves them
    app = FastAPI(title="paycadence", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.metrics = Metrics()

    # a body sent without Content-Length (chunked) is counted as it is read
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)

    app.add_middleware(LimitContentLength, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(RequireJson)

    # added last = runs first
    if settings.api_token:
        app.add_middleware(RequireToken, token=settings.api_token)
    else:
        app.add_middleware(LoopbackOnly)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID"], max_age=600)
    app.add_middleware(ObserveRequests, metrics=app.state.metrics)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError):
        # the last line: a store error a route did not turn into its own 503 is still one
        logger.error("feedback store unavailable during %s %s: %s", request.method,
                     request.url.path[:256], exc)
        return said(503, STORE_DOWN, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    problems.install(app)  # every other error: serving/problems.py's one shape
    app.include_router(recommend.router)
    app.include_router(feedback.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(docs.router)
    return app


def app_from_env() -> FastAPI:
    """The app of ``paycadence serve``, built by each uvicorn worker (``factory=True``).

    Settings come from the ``PAYCADENCE_*`` variables; ``serve --data`` passes the clean
    tables as ``PAYCADENCE_DATA_DIR``. Python warnings are logged, so that they too leave as
    JSON lines.
    """
    logging.captureWarnings(True)
    return create_app(get_settings())
