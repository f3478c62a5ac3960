"""One shape for every error the service answers, and the handlers that give it.

Every 4xx and 5xx the app writes is ``{"detail": "<field>: <problem>", "errors": [{"loc":
[...], "msg": "...", "field": "...", "problem": "..."}, ...]}`` (docs/api.md, "Errors"):

- ``loc`` is the place as a list, FastAPI's way: ``["body", "debtors", 0, "open_invoices",
  1, "amount"]``; a header is ``["header", "authorization"]``;
- ``msg`` says what is wrong with it;
- ``field`` is the same place written one way everywhere, ``debtors[0].open_invoices[1].amount``
  (``body`` for the body as a whole), and ``problem`` is ``msg`` again: both were the
  shape's only keys before ``loc`` and ``msg`` came, and clients read them;
- ``detail`` is the first entry as one sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

Loc = Sequence[str | int]
#: Where FastAPI puts what it read: not part of the field's own path.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
#: Starlette's words for the statuses it raises itself (404, 405, ...), in the service's.
_STARLETTE = {
    "Not Found": "no such path: the service answers POST /recommend, POST /feedback, "
                 "GET /health, GET /metrics, GET /docs, GET /redoc, GET /openapi.json",
    "Method Not Allowed": "this path does not take that method (see GET /openapi.json)",
    "Content Too Large": None,  # worded by the service's own 413 below
}


def field_of(loc: Loc) -> str:
    """``loc`` written as one path: ``("body", "debtors", 0, "history", "payments", 3,
    "amount")`` → ``debtors[0].history.payments[3].amount``; the body itself is ``body``."""
    out = ""
    for i, part in enumerate(loc):
        if i == 0 and part in _SOURCES and len(loc) > 1:
            if part != "body":
                out = str(part)
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def entry(loc: Loc, msg: str, **more: int) -> dict:
    """One error of the shape: ``loc``, ``msg``, and the same as ``field`` and ``problem``
    (``more``: the ``line`` and ``column`` of a body that is not JSON)."""
    loc = list(loc) or ["body"]
    return {"loc": loc, "msg": msg, "field": field_of(loc), "problem": msg} | more


def problem(status_code: int, errors: Iterable[dict], *, detail: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The error answer: ``errors`` (of :func:`entry`) and ``detail``, the first as a sentence
    (``<field>: <msg>`` unless given)."""
    errors = list(errors) or [entry(["body"], "invalid")]
    first = errors[0]
    detail = detail or f"{first['field']}: {first['msg']}"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=status_code,
                        headers=headers)


def said(status_code: int, sentence: str, loc: Loc = ("body",), *,
         headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer from one sentence ``"<field>: <problem>"`` (or a bare problem, placed at
    ``loc``), as the middlewares and older raisers write them; ``detail`` is the sentence."""
    return problem(status_code, [_parsed(sentence, loc)], detail=sentence, headers=headers)


class Refused(HTTPException):
    """A request refused at one place, ``raise Refused(422, ["body", "payments", 3,
    "amount"], "non-positive amount")``, or at several (``more``: further ``(loc, msg)``)."""

    def __init__(self, status_code: int, loc: Loc, msg: str, *,
                 more: Iterable[tuple[Loc, str]] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, f"{field_of(loc)}: {msg}", headers=headers)
        self.errors = [entry(loc, msg)] + [entry(at, why) for at, why in more]


def _parsed(sentence: str, loc: Loc) -> dict:
    """``"payments[3].amount: non-positive amount"`` as an entry at that place (a sentence
    without a recognisable place stays whole, at ``loc``)."""
    head, sep, rest = sentence.partition(": ")
    path = _path(head) if sep else None
    if path is None:
        return entry(loc, sentence)
    return entry(["body", *path] if path != ["body"] else ["body"], rest)


def _path(text: str) -> list[str | int] | None:
    """``debtors[0].history.payments[3].amount`` (or FastAPI's ``debtors.0.amount``) as a
    list; None when ``text`` is not such a path (a sentence with a colon in it)."""
    if not text or " " in text or "'" in text:
        return None
    out: list[str | int] = []
    for part in text.replace("[", ".").replace("]", "").split("."):
        if not part:
            return None
        out.append(int(part) if part.isdigit() else part)
    if not isinstance(out[0], str) or not out[0].replace("_", "").isalnum():
        return None
    return out


def _json_error(exc: RequestValidationError) -> JSONResponse | None:
    """The 400 of a body that is not JSON, with the line and column of the first fault."""
    broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if broken is None:
        return None
    at = broken["loc"][-1] if broken.get("loc") else None
    why = (broken.get("ctx") or {}).get("error") or broken.get("msg")
    doc = exc.body if isinstance(exc.body, str) else None
    if isinstance(at, int) and doc is not None:
        line = doc.count("\n", 0, at) + 1
        column = at - (doc.rfind("\n", 0, at) + 1) + 1
        return problem(400, [entry(["body"], f"not valid JSON at line {line}, column {column} "
                                   f"(character {at}): {why}", line=line, column=column)])
    if isinstance(at, int):
        msg = f"not valid JSON at character {at}: {why}"
    else:
        msg = f"not valid JSON: {why}"
    return problem(400, [entry(["body"], msg)])


def install(app: FastAPI) -> None:
    """Give every error the app raises the one shape (FastAPI's validation errors, an
    ``HTTPException`` of a route, Starlette's 404 and 405, the body limit's 413)."""

    @app.exception_handler(StarletteHTTPException)
    async def readable_http_error(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if isinstance(exc, Refused):
            return problem(exc.status_code, exc.errors, headers=headers)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's words for a body json.loads could not even start on
            return said(400, "body: not valid JSON (not UTF-8 text, or nested too deeply)")
        if exc.status_code == 413:
            limit = request.app.state.settings.max_body_bytes
            return said(413, f"body: over {limit} bytes (PAYCADENCE_MAX_BODY_BYTES)")
        text = _STARLETTE.get(str(exc.detail)) or str(exc.detail)
        return said(exc.status_code, text, ["path"] if exc.status_code in (404, 405)
                    else ["body"], headers=headers)

    @app.exception_handler(RequestValidationError)
    async def readable_422(request: Request, exc: RequestValidationError):
        not_json = _json_error(exc)
        if not_json is not None:  # not JSON at all: 400 (docs/api.md), not a field's 422
            return not_json
        return problem(422, [entry(e["loc"], e["msg"].removeprefix("Value error, "))
                             for e in exc.errors()])


def refuse_unknown_keys(found: list[tuple[list, str]], setting: str) -> None:
    """Refuse a body with keys no field names (422 listing each), unless ``setting`` (the
    service's ``PAYCADENCE_UNKNOWN_KEYS``) is ``ignore``."""
    if not found or setting == "ignore":
        return
    (loc, key), *rest = found
    raise Refused(422, loc, _unknown(key), more=[(at, _unknown(k)) for at, k in rest])


def _unknown(key: str) -> str:
    return (f"unknown key '{key}': no field of this object has that name (a typo? the fields "
            "are in GET /openapi.json)")
