"""``/docs``, ``/redoc`` and ``/openapi.json``, behind the token like the API they describe.

FastAPI's own documentation routes take no dependency, and their pages load Swagger UI and
ReDoc from a CDN: blank on a machine without the internet. The app turns them off and serves
them here, with the scripts, style sheet and icon from the ``fastapi-offline`` package under
``/docs/assets/`` (nothing is fetched from elsewhere; ReDoc without Google's fonts). With a
token set, a browser cannot open ``/docs`` (it sends no bearer header): fetch
``/openapi.json`` with the header instead (docs/operations.md).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from paycadence.serving.deps import Authorized
from paycadence.serving.problems import Refused

router = APIRouter(include_in_schema=False, dependencies=[Authorized])

#: The files ``/docs`` and ``/redoc`` load, and their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


#: The one address ReDoc's script loads by itself (the "API docs by Redocly" logo in its
#: sidebar), and what it loads instead.
_REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/docs/assets/favicon.png")


@cache
def _asset(name: str) -> bytes:
    data = (files("fastapi_offline") / "static" / name).read_bytes()
    return data.replace(*_REDOC_LOGO) if name == "redoc.standalone.js" else data


@router.get("/openapi.json")
async def get_openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def get_docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} — API",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png",
                               # Swagger UI would send the schema to validator.swagger.io
                               swagger_ui_parameters={"validatorUrl": None})


@router.get("/redoc")
async def get_redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} — API",
                          redoc_js_url="/docs/assets/redoc.standalone.js",
                          redoc_favicon_url="/docs/assets/favicon.png",
                          with_google_fonts=False)


@router.get("/docs/assets/{name}")
async def get_asset(name: str) -> Response:
    if name not in ASSETS:
        raise Refused(404, ["path"], f"no such file of the API's documentation: {name[:80]!r}")
    return Response(_asset(name), media_type=ASSETS[name],
                    headers={"Cache-Control": "public, max-age=86400"})
