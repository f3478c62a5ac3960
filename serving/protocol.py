"""uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

With ``--workers`` uvicorn binds the listening socket itself (protocol number 0) and hands it to
its worker processes; asyncio then leaves ``TCP_NODELAY`` off on the accepted connections
(it only sets it on sockets whose protocol reads as TCP). A small response then waits for the
client's delayed ACK: every call took 40 ms more (``GET /health`` 0.9 ms with one worker,
44 ms with two). This protocol sets ``TCP_NODELAY`` itself when a connection is made.
"""

from __future__ import annotations

import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` that turns Nagle's algorithm off on its TCP connection."""

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not a TCP socket after all: leave it as it is
                pass
        super().connection_made(transport)
