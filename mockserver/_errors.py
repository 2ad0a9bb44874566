"""The OpenAI error envelope, the exception that carries it, and the answer to any error."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chatcompat.request_rules import RuleViolation

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "ApiError",
    "client_left",
    "error_answer",
    "error_body",
    "error_response",
]

log = logging.getLogger("mockserver")

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer ended

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """An error answer: HTTP status plus the fields of ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        default = "server_error" if status >= 500 else "invalid_request_error"
        self.type = type or _TYPE_BY_STATUS.get(status, default)
        self.headers = headers or {}


def error_body(error: ApiError) -> dict[str, Any]:
    """The OpenAI envelope for ``error``."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_response(error: ApiError) -> web.Response:
    """A JSON response carrying ``error`` in the envelope (closing the connection after it
    when the error's headers say ``Connection: close``)."""
    response = web.Response(
        status=error.status,
        body=json.dumps(error_body(error)).encode(),
        content_type="application/json",
        headers=error.headers,
    )
    if error.headers.get("Connection") == "close":
        response.force_close()  # aiohttp keeps the connection open unless told this way
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorHook = Callable[[web.Request, ApiError], web.StreamResponse]


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    status = exc.status
    if status == 413:
        return ApiError(413, "Request body too large.", code="request_too_large")
    if status == 405:
        allow = exc.headers.get("Allow", "")
        return ApiError(405, f"Method not allowed. Allowed: {allow}.", headers={"Allow": allow})
    if status == 404:
        return ApiError(404, "Unknown request URL. Please check the URL.", code="unknown_url")
    return ApiError(status, exc.reason or "HTTP error")


def client_left(request: web.Request) -> bool:
    """Whether the client of ``request`` has gone (its connection lost or closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def error_answer(request: web.Request, exc: Exception, render: ErrorHook) -> web.StreamResponse:
    """The answer to ``exc``, raised while handling ``request``: an ApiError, a broken request
    rule (400) or one of aiohttp's HTTP errors in the envelope through ``render``; a client
    that left (the reset or closed connection it leaves behind), a 499 that is never sent;
    anything else logged with its traceback and answered as a 500. Redirects (an HTTPException
    under 400) are raised again."""
    if isinstance(exc, ApiError):
        return render(request, exc)
    if isinstance(exc, RuleViolation):  # a request rule an answer source applies
        return render(request, ApiError(400, exc.message, param=exc.param, code=exc.code))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return render(request, _from_http_exception(exc))
    # aiohttp raises RuntimeError("Connection closed.") reading the body of a gone client
    if isinstance(exc, (ConnectionResetError, RuntimeError)) and client_left(request):
        log.debug("the client left during %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)  # never sent: access log only
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return render(request, ApiError(500, "The server had an error processing your request."))
