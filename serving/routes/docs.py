"""``/docs``, ``/redoc`` and ``/openapi.json``, behind the token like the API they describe.

FastAPI's own documentation routes take no dependency, so the app turns them off and serves
them here. With a token set, a browser cannot open ``/docs`` (it sends no bearer header): fetch
``/openapi.json`` with the header instead (docs/operations.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from paycadence.serving.deps import Authorized

router = APIRouter(include_in_schema=False, dependencies=[Authorized])


@router.get("/openapi.json")
async def get_openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def get_docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} — API")


@router.get("/redoc")
async def get_redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} — API")
