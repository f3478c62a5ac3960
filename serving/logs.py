"""JSON log lines and the request id they carry.

``paycadence serve`` hands :func:`log_config` to uvicorn, so that every record — ours, uvicorn's
and the libraries' — leaves the process as one JSON object per line on stderr. The request
middleware (``serving/app.py``) sets the current request id in :data:`request_id_var`; every
record logged while a request is served carries it.

Nothing here logs a request body or a header: the per-request line carries only method, path,
status, duration, request id and client address.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

from paycadence.redact import redact

#: The id of the request being served (``None`` outside a request).
request_id_var: ContextVar[str | None] = ContextVar("paycadence_request_id", default=None)

#: An ``X-Request-ID`` is kept when it is 1-64 of these characters; otherwise a new one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# attributes every LogRecord has; anything else on a record was passed with ``extra=``
# (uvicorn adds ``color_message``, its message with terminal colours, which a JSON line drops)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is short and safe, otherwise a new random id."""
    if header is not None and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, request id, extras.

    Fields passed with ``extra=`` are added as they are (values JSON cannot hold become
    strings); an exception's traceback goes to ``exception``. The line is
    :func:`paycadence.redact.redact`-ed last: no credential in a URI or an exception's text
    (a database URL, a tracking URI) leaves in a log line, whoever logged it.
    """

    redacts = True

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: every logger through one JSON handler on stderr.

    uvicorn's and MLflow's loggers lose their handlers and propagate to the root, so that they
    are formatted the same way (MLflow adds its own handler on import unless
    ``MLFLOW_CONFIGURE_LOGGING=false``, which ``serve`` sets); uvicorn's access log stays off
    (the request middleware logs each request instead, without the query string).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "paycadence.serving.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            # chatty at INFO while loading a model (``serve`` stops MLflow's own handlers)
            "mlflow": {"handlers": [], "level": "WARNING", "propagate": True},
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
