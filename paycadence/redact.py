"""Credentials never leave the process: redact them from URIs and from free text.

Every place that prints, logs, stores (an MLflow tag) or reports a URI or an exception's text
passes it through :func:`redact` first. A URI's password (``scheme://user:PASSWORD@host``) and
secret-looking query parameters (``?password=…``, ``token``, ``key``, ``secret``,
``signature``, ``sig``, ``credential``) become ``***``.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://user:password@host — the password may hold anything but '@', '/' and whitespace
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<secret>[^/\s]*)@")
# ?password=... or &sig=... in a URI's query string, or password=... in a DSN
_PARAM = re.compile(
    r"(?P<head>(?:^|[?&;\s])(?:[A-Za-z_\-]*(?:password|passwd|pwd|token|secret|key|"
    r"signature|sig|credential)[A-Za-z_\-]*)=)(?P<secret>[^&;\s'\"]+)",
    re.IGNORECASE)


def redact(text: object) -> str:
    """``text`` (a URI, a message, an exception) as a string with every credential masked.

    >>> redact("postgresql://app:s3cret@db:5432/ar")
    'postgresql://app:***@db:5432/ar'
    >>> redact("https://host/x?sig=abc&v=1")
    'https://host/x?sig=***&v=1'
    """
    out = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", str(text))
    return _PARAM.sub(lambda m: f"{m['head']}{MASK}", out)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, arguments, traceback) is :func:`redact`-ed."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (the root by default) a redacting formatter that keeps
    its format."""
    for handler in (logger or logging.getLogger()).handlers:
        fmt = handler.formatter
        if isinstance(fmt, RedactingFormatter) or getattr(fmt, "redacts", False):
            continue
        redacting = RedactingFormatter()
        if fmt is not None:
            redacting._fmt, redacting._style = fmt._fmt, fmt._style
            redacting.datefmt = fmt.datefmt
        handler.setFormatter(redacting)
