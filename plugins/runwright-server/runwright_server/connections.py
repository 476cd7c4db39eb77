"""Connection timeouts: a socket that does not send a whole request head in time is closed.

uvicorn closes a keep-alive connection that stays idle ``timeout_keep_alive`` seconds after
an answer, but it never times out the request head itself: a client that opens a
connection and sends nothing, or drips its headers a byte a second (slowloris), holds a
socket and a file descriptor for ever. :func:`protocol_class` returns uvicorn's h11
protocol with a head timeout: from the moment a connection opens, or its last answer
completes, the client has ``header_timeout`` seconds to send a complete request line and
headers; otherwise the connection is closed. While a request is being answered the timer
is off (its body is bounded by the body limits).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class _HeadTimeoutH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._waiting_for_head():
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._waiting_for_head() and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def protocol_class(header_timeout: float) -> Any:
    """uvicorn's h11 protocol, closing connections that send no complete head in ``header_timeout`` s."""
    return type("HeadTimeoutH11Protocol", (_HeadTimeoutH11Protocol,), {"header_timeout": header_timeout})
