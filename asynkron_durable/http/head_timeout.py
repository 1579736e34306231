"""`serve`'s HTTP/1.1 protocol: uvicorn's h11 one, but a connection whose request headers are not in
within a deadline is closed.

uvicorn arms no timer on a new connection, and the first byte of a request cancels its keep-alive
timer; so a client that connects and sends nothing, or half its headers, holds the connection for
ever (and `serve`'s 500 of them would make every other request a 503). The deadline runs from the
connection's start, and again from the end of each response, until the request's headers are
complete; the body has its own deadline (`BodyLimit`, 408).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["head_timeout_protocol"]


def head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """The protocol class for `uvicorn.Config(http=...)` that closes connections whose request
    headers take longer than `seconds`."""
    if not seconds > 0:
        raise ValueError(f"the header timeout must be positive seconds, got {seconds!r}")

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the headers are in (or the request failed)
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():  # the next request on this connection
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            self._cancel_head_timer()
            if self.conn.their_state is h11.IDLE:
                self._head_timer = self.loop.call_later(seconds, self._head_late)

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

    return HeadTimeoutProtocol
