"""Slow and stalled clients: bounded time for a request's headers and body, so no connection is held forever.

uvicorn bounds only the idle time between two requests of a keep-alive connection (``timeout_keep_alive``),
and only until the next byte arrives: a client that connects and never sends a full request line and
headers, or declares ``Content-Length: 60000`` and sends 20 bytes, holds its connection (and a file
descriptor) for ever, and enough of them exhaust the server's descriptors so that ``GET /health`` fails for
everyone. Two guards:

- :func:`guarded_protocol`: uvicorn's HTTP protocol with a header deadline. From the moment a connection
  opens (or a keep-alive connection finished its previous response), the request's headers must be complete
  within ``header_timeout_s``, however slowly they trickle in; otherwise it is answered 408 (JSON) and closed.
- :class:`BodyTimeoutMiddleware`: once the headers are in, the whole body must arrive within
  ``body_timeout_s``; otherwise 408 with a JSON ``detail`` and ``Connection: close``.

With ``Settings.http_max_connections`` (uvicorn's ``limit_concurrency``) they bound what stalled clients hold.
The protocol also answers uvicorn's own 400 for a malformed request (a NUL in the path, a bad Content-Length)
with a JSON ``detail``, like every other error of the service.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _408(detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _base_protocol() -> type:
    """uvicorn's fast protocol (httptools) when installed, as uvicorn's "auto" picks, else h11's."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def guarded_protocol(header_timeout_s: float) -> type:
    """uvicorn's HTTP protocol class with a deadline on each request's headers (see the module's doc)."""
    base: Any = _base_protocol()
    late = _408(f"Request headers not received within {header_timeout_s:g} s (setting RAG_HTTP_HEADER_TIMEOUT_S).")

    class HeaderDeadlineProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def _in_request(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is not None and not cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            transport = getattr(self, "transport", None)
            if transport is None or transport.is_closing() or self._in_request():
                return
            try:
                transport.write(late)
            finally:
                transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if not transport.is_closing():
                self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_request():  # the headers are in: the body has its own deadline (the middleware)
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            transport = getattr(self, "transport", None)
            if transport is not None and not transport.is_closing():
                self._arm()  # the next request's headers, on this keep-alive connection

        def send_400_response(self, msg: str) -> None:  # uvicorn's own 400 (a malformed request): JSON too
            detail = f"Invalid request: malformed HTTP request ({msg})."
            body = json.dumps({"detail": detail}).encode()
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode("ascii")
                + body
            )
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


class BodyTimeout(HTTPException):
    """An HTTPException, so FastAPI's body reader re-raises it unchanged and it is answered as JSON."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            status_code=408,
            detail=f"The request body was not received within {seconds:g} s (setting RAG_HTTP_BODY_TIMEOUT_S).",
            headers={"Connection": "close"},
        )


class BodyTimeoutMiddleware:
    """408 JSON when a request's body is not all received within ``seconds`` of its headers (pure ASGI)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # waiting for a disconnect after the body: not the client's delay
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                raise BodyTimeout(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout as exc:  # normally turned into a response inside the app already
            if started:
                raise
            response = JSONResponse(status_code=408, content={"detail": exc.detail}, headers=exc.headers)
            await response(scope, receive, send)
