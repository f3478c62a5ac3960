"""Dependencies shared by the routes, with ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from paycadence.config import Settings
from paycadence.serving.engine import Engine
from paycadence.serving.store import FeedbackStore


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_store(request: Request) -> FeedbackStore:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_token(request: Request) -> None:
    """Bearer-token check (constant time) when the service was started with a token."""
    token = request.app.state.settings.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[FeedbackStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
Authorized = Depends(require_token)
