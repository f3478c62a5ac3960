"""uvicorn's HTTP/1.1 protocol for ``paycadence serve``: Nagle's algorithm off, a deadline for
each request's headers, and a cap on the connections and requests in flight.

With ``--workers`` uvicorn binds the listening socket itself (protocol number 0) and hands it to
its worker processes; asyncio then leaves ``TCP_NODELAY`` off on the accepted connections
(it only sets it on sockets whose protocol reads as TCP). A small response then waits for the
client's delayed ACK: every call took 40 ms more (``GET /health`` 0.9 ms with one worker,
44 ms with two). This protocol sets ``TCP_NODELAY`` itself when a connection is made.

uvicorn times out an idle keep-alive connection but not one that sends its headers a byte at a
time (slowloris): this protocol closes a connection whose request headers have not all arrived
``PAYCADENCE_HEADER_TIMEOUT_SECONDS`` after its first byte (or after the connection was made).
The body has its own deadline in the app (``PAYCADENCE_BODY_TIMEOUT_SECONDS``, 408). Above
``PAYCADENCE_LIMIT_CONCURRENCY`` connections or requests in flight, uvicorn answers 503.
"""

from __future__ import annotations

import logging
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

from paycadence.config import get_settings

logger = logging.getLogger(__name__)


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` with ``TCP_NODELAY``, a header deadline and a concurrency cap."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_seconds
        if self.limit_concurrency is None and settings.limit_concurrency > 0:
            self.limit_concurrency = settings.limit_concurrency
        self._headers_timer = None

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not a TCP socket after all: leave it as it is
                pass
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if not self._in_request():  # a next request on a kept-alive connection starts
            self._await_headers()
        super().data_received(data)
        if self._in_request():
            self._stop_waiting()

    def connection_lost(self, exc) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        """Whether a request's headers have arrived and its answer is not complete."""
        return self.cycle is not None and not self.cycle.response_complete

    def _await_headers(self) -> None:
        if self.header_timeout > 0 and self._headers_timer is None:
            self._headers_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        if self._in_request() or self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        logger.warning("%s sent no complete request headers within %.0f s: connection closed",
                       client, self.header_timeout)
        self.transport.close()
