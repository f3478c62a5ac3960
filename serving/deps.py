"""Dependencies shared by the routes, with ``Annotated`` aliases.

They are ``async def``: they only read the app's state, and FastAPI runs a plain ``def``
dependency in its thread pool, one thread hop each per request (with three of them, a fifth
of the event loop's work on a ``/recommend`` call).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from paycadence.config import Settings
from paycadence.serving.engine import Engine
from paycadence.serving.metrics import Metrics
from paycadence.serving.store import FeedbackStore

#: Paths that answer without a token even when one is set (a load balancer's health check).
PUBLIC_PATHS = frozenset({"/health"})
UNAUTHORIZED = "missing or wrong bearer token"


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_store(request: Request) -> FeedbackStore:
    return request.app.state.store


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


NO_TOKEN = ("this service has no PAYCADENCE_API_TOKEN, so it answers only on a loopback "
            "address: set PAYCADENCE_API_TOKEN (then send Authorization: Bearer <token>) to "
            "serve other addresses")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is loopback only: ``localhost``, 127.0.0.0/8, ``::1`` (also written
    ``::ffff:127.0.0.1``). ``0.0.0.0``, ``::``, any other address and any other name are not."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name, or a bracketed address ("[::1]": not what a bind takes)
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def arrived_on_loopback(server: tuple | list | None) -> bool:
    """Whether a request arrived on a loopback address of this host (ASGI ``scope["server"]``).

    A connection on a network address (``0.0.0.0`` binds them all) is not; one without an
    address (a Unix socket, where the server gives None) is local and counts as loopback, as
    does an in-process test client's name (``testserver``: no socket at all).
    """
    if not server:
        return True
    host = str(server[0]).split("%")[0]  # an IPv6 address may carry its zone
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True  # not an address: a Unix socket path or an in-process client's name
    return is_loopback(host)


def token_matches(expected: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>``.

    The comparison takes the same time whatever the given token (both sides are hashed first,
    so that not even the length leaks).
    """
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


async def require_token(request: Request) -> None:
    """Bearer-token check (constant time) when the service was started with a token."""
    token = request.app.state.settings.api_token
    if token and not token_matches(token, request.headers.get("authorization")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED,
                            headers={"WWW-Authenticate": "Bearer"})


EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[FeedbackStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Authorized = Depends(require_token)
