"""The service's edge: every error becomes JSON ``{"detail": "<what went wrong and how to fix it>"}``.

- invalid bodies: 422, the detail names the field; bodies the JSON parser gives up on (nested too deeply,
  a number with too many digits, bytes that are not UTF-8, UTF-16 and UTF-32 included: Python's JSON parser
  would read those, :class:`Utf8JsonRoute` does not) are 422 too, never FastAPI's bare 400;
- bodies over ``Settings.max_request_bytes``: 413 (checked before the body is read when Content-Length is
  given, and while it streams otherwise);
- no usable index: 503 with how to build one;
- anything unexpected: 500 with a generic message (the traceback goes to the server log only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import InvalidQuestion, RagError

log = logging.getLogger("rag.api")

BUILD_HINT = "Build one with `rag index [PATH] --index-dir DIR` and restart the service."


def unavailable_detail(exc: RagError | str) -> str:
    """The 503 message for an index that could not be loaded; always says how to build one."""
    msg = str(exc).strip()
    if "rag index" not in msg:
        msg = f"{msg} {BUILD_HINT}".strip()
    return f"The service has no usable index: {msg}"


# ------------------------------------------------------------------------------------ 422 details
_EXAMPLE = '{"question": "...", "top_k": 3}'
# pydantic error types for a body that is not a JSON object
_NOT_AN_OBJECT = ("model_attributes_type", "dict_type", "model_type")


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
    else:
        where = "body"
    return ".".join(parts) if parts else where


def describe_validation_errors(errors: Sequence[dict[str, Any]]) -> str:
    """One readable sentence per error, e.g. ``question: String should have at least 1 character``."""
    out = []
    for err in errors:
        kind, loc, msg = err.get("type", ""), err.get("loc", ()), str(err.get("msg", "invalid value"))
        if kind == "json_invalid":
            pos = loc[1] if len(loc) > 1 else "?"
            reason = (err.get("ctx") or {}).get("error", "syntax error")
            out.append(f"the request body is not valid JSON ({reason} at character {pos})")
        elif kind in _NOT_AN_OBJECT and _field(loc) == "body":
            out.append(f"the request body must be a JSON object like {_EXAMPLE}")
        elif kind == "missing" and _field(loc) == "body":
            out.append(f"the request body is missing; send a JSON object like {_EXAMPLE}")
        elif kind == "missing":
            out.append(f"{_field(loc)}: field required")
        elif kind == "string_too_short" and (err.get("ctx") or {}).get("min_length") == 1:
            out.append(f"{_field(loc)}: must not be empty or blank")
        elif kind == "extra_forbidden":
            out.append(f"{_field(loc)}: unknown field (allowed: question, top_k)")
        else:
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            out.append(f"{_field(loc)}: {msg}")
    return "Invalid request: " + "; ".join(out) + "."


def _errors_for_json(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # no "input"/"ctx": they can hold anything (even unencodable text); loc/msg/type are enough
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")} for e in errors
    ]


def _not_json_content_type(request: Request, errors: Sequence[dict[str, Any]]) -> str | None:
    """The body was not read as JSON because of its Content-Type (``curl -d`` sends a form type): say so."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    if not any(e.get("type") in _NOT_AN_OBJECT for e in errors):
        return None
    got = f"it was {ctype!r}" if ctype else "none was sent"
    return (
        f"Invalid request: the body must be sent as JSON with the header Content-Type: application/json "
        f"({got}), e.g. curl -H 'content-type: application/json' -d '{_EXAMPLE}'."
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    detail = _not_json_content_type(request, errors) or describe_validation_errors(errors)
    return JSONResponse(status_code=422, content={"detail": detail, "errors": _errors_for_json(errors)})


# FastAPI answers 400 "There was an error parsing the body" when decoding the body raises anything but a
# JSONDecodeError: RecursionError (nesting), ValueError (an integer over Python's 4300-digit limit),
# UnicodeDecodeError (not UTF-8, whatever charset the header declares). No route of ours raises 400.
_PARSE_FAILED = "There was an error parsing the body"


class Utf8Request(Request):
    """A request whose JSON body must be UTF-8: ``json.loads`` of bytes would also read UTF-16 and UTF-32."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads((await self.body()).decode("utf-8"))  # UnicodeDecodeError: a parse failure
        return self._json


class Utf8JsonRoute(APIRoute):
    """A route reading JSON bodies as UTF-8 only (what the README promises: anything else is 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Any]]:
        handler = super().get_route_handler()

        async def utf8_handler(request: Request) -> Any:
            return await handler(Utf8Request(request.scope, request.receive, request._send))

        return utf8_handler


def describe_parse_failure(cause: BaseException | None) -> str:
    """The 422 detail for a body the JSON parser could not handle, naming the problem when it is known."""
    if isinstance(cause, RecursionError):
        problem = "it is nested too deeply"
    elif isinstance(cause, UnicodeError):
        problem = "it is not UTF-8 (JSON bodies must be UTF-8, whatever charset the Content-Type declares)"
    elif isinstance(cause, ValueError) and "digit" in str(cause):
        problem = "it holds a number with too many digits"
    else:
        problem = "nested too deeply, a number with too many digits, or not UTF-8"
    return f"Invalid request: the request body could not be parsed ({problem}). Send a JSON object like {_EXAMPLE}."


def _is_parse_failure(exc: HTTPException) -> bool:
    return exc.status_code == 400 and (exc.detail == _PARSE_FAILED or exc.__cause__ is not None)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if _is_parse_failure(exc):
        return JSONResponse(status_code=422, content={"detail": describe_parse_failure(exc.__cause__)})
    return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)}, headers=exc.headers)


async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
    if isinstance(exc, InvalidQuestion):
        return JSONResponse(status_code=422, content={"detail": f"Invalid request: question: {exc}"})
    log.error("request failed: %s", exc)
    return JSONResponse(status_code=503, content={"detail": unavailable_detail(exc)})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "Internal server error; the server log has details."})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RagError, _rag_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


# ------------------------------------------------------------------------------------ 413
class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader re-raises it unchanged (not as a 400)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        what = f"is {size} bytes; the limit is" if size is not None else "is over the limit of"
        super().__init__(
            status_code=413,
            detail=f"The request body {what} {limit} bytes (setting RAG_MAX_REQUEST_BYTES).",
        )


DRAIN_LIMIT_BYTES = 16 * 1024 * 1024


async def _drain(receive: Receive, limit: int = DRAIN_LIMIT_BYTES) -> None:
    """Read and discard the rest of a request body (up to ``limit`` bytes) before answering 413: a server
    that answers and closes while the client is still sending makes many clients report "connection reset"
    instead of the 413 and its detail. Past the limit the connection is closed anyway."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with 413 JSON (pure ASGI; works on any FastAPI version)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _drain(receive)
            await self._reject(BodyTooLarge(self.max_bytes, int(declared)), scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # normally turned into a response inside the app already
            if started:
                raise
            await _drain(receive)
            await self._reject(exc, scope, receive, send)

    @staticmethod
    async def _reject(exc: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(status_code=413, content={"detail": exc.detail}, headers={"Connection": "close"})
        await response(scope, receive, send)
