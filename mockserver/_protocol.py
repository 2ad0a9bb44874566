"""The server's connections: protocol errors answered in the OpenAI error envelope, bounded
header and body reads, idle keep-alive connections closed, a cap on open connections that sheds
stalled ones first, and floods logged at most once per interval, not per connection.

aiohttp answers what its HTTP parser rejects itself, in text/plain, from
``RequestHandler.handle_error``, with no documented hook
(https://github.com/aio-libs/aiohttp/issues/3287), and has no header or body timeout. So this
module, and only this one, subclasses ``RequestHandler``, ``web.Server`` and ``web.AppRunner``
(aiohttp 3.14). It reads these private names: RequestHandler's ``_request_count``,
``_messages``, ``_waiter``, ``_request_in_progress``, ``_force_close``; Server's ``_kwargs``,
``_loop`` and ``_connections``; and the parser-error message type ``_ErrInfo``."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from mockserver._config import ACCEPT_BURST, LISTEN_QUEUE, ConnectionLimits
from mockserver._errors import ApiError, error_body, error_response
from mockserver._redaction import redact_url

__all__ = [
    "AccessLogger",
    "MockRunner",
    "Throttled",
    "listen",
    "protocol_error",
    "throttle_accept_errors",
]

log = logging.getLogger("mockserver")
THROTTLE_SECONDS = 10.0  # a recurring warning is logged at most once per this many seconds


class Throttled:
    """A warning logged at most once per ``interval`` seconds, with how many times it happened
    since it was last logged."""

    def __init__(self, message: str, interval: float = THROTTLE_SECONDS) -> None:
        self.message, self.interval = message, interval
        self.count, self.last = 0, -float("inf")

    def __call__(self, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.count += 1
            return
        if self.count:
            log.warning(f"{self.message} (and %d more like it not logged)", *args, self.count)
        else:
            log.warning(self.message, *args)
        self.count, self.last = 0, now


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log line without its own timestamp, with credentials in the query
    string (``?api-key=...``) written as ``[REDACTED]``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if getattr(request.protocol, "shed", False):
            return  # counted in the cap's throttled warning instead
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs "%s"',
            request.remote,
            request.method,
            redact_url(request.path_qs),
            *request.version,
            response.status,
            response.body_length,
            time,
            request.headers.get("User-Agent", "-"),
        )


def protocol_error(status: int, exc: BaseException | None) -> ApiError:
    """The envelope's error for what aiohttp's parser (or its handler machinery) rejected:
    415 for a content encoding it cannot decode here (``br`` without Brotli, ``zstd``), 431
    for a header line over 8,190 bytes or over 128 headers, 400 for any other malformed
    request (bad chunked framing included)."""
    if isinstance(exc, ContentEncodingError):  # raised at the headers: no decoder for it
        # "Can not decode content-encoding: brotli (br). Please install `Brotli`" -> brotli (br)
        reason = exc.message.split(". ")[0].rstrip(".").rpartition("content-encoding: ")[2]
        return ApiError(
            415,
            f"Unsupported Content-Encoding: {reason}; send identity, gzip or deflate.",
            code="unsupported_content_encoding",
        )
    too_many = isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
    if isinstance(exc, LineTooLong) or too_many:
        return ApiError(
            431,
            "Request header fields too large: at most 128 headers of 8,190 bytes each.",
            code="request_header_fields_too_large",
        )
    if status == 400:
        detail = exc.message if isinstance(exc, BadHttpMessage) else "malformed request"
        first = detail.strip().splitlines()[0] if detail.strip() else "malformed request"
        return ApiError(400, f"Malformed HTTP request: {first}", code="bad_request")
    if status >= 500:
        return ApiError(status, "The server had an error processing your request.")
    return ApiError(status, HTTPStatus(status).phrase)


# What aiohttp decodes (br and zstd only with their libraries: else its parser raises
# ContentEncodingError, a 415 too); any other Content-Encoding would reach the app undecoded.
_DECODED = frozenset({"", "identity", "gzip", "deflate", "br", "zstd"})


def _unsupported_encoding(message: object) -> str | None:
    """The Content-Encoding of a parsed request that nobody decodes, else None."""
    headers = getattr(message, "headers", None)
    if headers is None:
        return None
    encoding = str(headers.get("Content-Encoding", "")).strip().lower()
    return None if encoding in _DECODED else encoding


class _BodyUnreadable(ApiError, TimeoutError):
    """A body that will not arrive whole (too slow, or its chunked framing broke): an ApiError
    for the handler reading it, and a TimeoutError so that aiohttp's lingering read after the
    answer stops quietly and closes the connection."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(status, message, code=code, headers={"Connection": "close"})


class _Connection(RequestHandler):
    """One client connection, with the header and body deadlines of ``limits``."""

    __slots__ = ("_bad_requests", "_body_timer", "_header_timer", "_limits", "_payload", "shed")

    def __init__(
        self, manager: web.Server, limits: ConnectionLimits, bad: Throttled, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._limits, self._bad_requests = limits, bad
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._payload: StreamReader | None = None  # the body of the last request parsed
        self.shed = False  # closed to make room for another connection

    def data_received(self, data: bytes) -> None:
        count, body_before = self._request_count, self._body_pending()
        super().data_received(data)
        if self._request_count != count:  # headers complete (or rejected)
            self._cancel_header_timer()
            self._headers_done()
        elif data and self._header_timer is None and not body_before and not self._body_pending():
            # bytes of a new request's headers: they must all arrive in time (bytes after the
            # end of a body or of headers may be the next request's: the idle timeout bounds
            # those, as it closes a connection whose next request has not arrived whole)
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._headers_late, count
            )

    def _body_pending(self) -> bool:
        return self._payload is not None and not self._payload.is_eof()

    def _headers_done(self) -> None:
        message, payload = self._messages[-1] if self._messages else (None, None)
        if isinstance(message, _ErrInfo) and self._body_pending():
            # the framing of a body being read broke: that request gets the 400, alone
            self._messages.pop()
            assert self._payload is not None
            text = message.message.strip().splitlines()[0] if message.message.strip() else ""
            self._payload.set_exception(
                _BodyUnreadable(400, f"Malformed request body framing: {text}", "bad_request")
            )
            return
        encoding = _unsupported_encoding(message)
        if encoding is not None:  # aiohttp would pass the body on undecoded
            rejected = ContentEncodingError(f"content-encoding: {encoding}")
            self._messages[-1] = (_ErrInfo(415, rejected, rejected.message), EMPTY_PAYLOAD)
            payload = None
        self._payload = payload
        if payload is not None and self._body_pending():
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self._loop.call_later(
                self._limits.body_timeout, self._body_late, payload
            )

    def _headers_late(self, count: int) -> None:
        self._header_timer = None
        if self._request_count != count or self.transport is None:
            return
        if self._request_in_progress or self._messages:  # answering the one before: wait
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._headers_late, count
            )
            return
        error = ApiError(
            408,
            f"The request's headers did not arrive within {self._limits.header_timeout:g} s.",
            code="request_timeout",
        )
        body = json.dumps(error_body(error)).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.force_close()  # the transport sends what it holds, then closes

    def _body_late(self, payload: StreamReader) -> None:
        self._body_timer = None
        if not payload.is_eof() and payload.exception() is None:
            message = f"The request body did not arrive within {self._limits.body_timeout:g} s."
            payload.set_exception(_BodyUnreadable(408, message, "request_timeout"))

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    def stalled(self) -> bool:
        """Whether the connection waits on its client: idle, its headers or its body on the
        way (not a request being answered). Those are shed first when connections run out."""
        if self.transport is None or self._force_close:
            return False  # closing already
        if not self._request_in_progress and not self._messages:
            return True
        return self._body_pending()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to what its parser rejected, in the envelope (see
        :func:`protocol_error`); logged in one line, at most once per interval."""
        if request.writer.output_size > 0:  # an answer went out already: aiohttp raises
            return super().handle_error(request, status, exc, message)
        error = protocol_error(status, exc)
        if error.status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            self._bad_requests(request.remote, error.status, error.message)
        response = error_response(error)
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's Server making :class:`_Connection` s and keeping at most ``limits``'s cap of
    them open: past the cap, the oldest stalled connection is closed (else the new one)."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits, self.cap = limits, limits.connection_cap()
        self.bad_requests = Throttled("malformed request from %s: %d %s")
        self.shed = Throttled("%d connections open, the cap; closed a stalled one for a new one")

    def __call__(self) -> RequestHandler:
        return _Connection(self, self.limits, self.bad_requests, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) <= self.cap:
            return
        victim = next(
            (
                other
                for other in self._connections
                if other is not handler and isinstance(other, _Connection) and other.stalled()
            ),
            handler,
        )
        self.shed(len(self._connections) - 1)
        if isinstance(victim, _Connection):
            victim.shed = True  # its answer (a 499 at most) is not access-logged: a flood
        victim.force_close()


class MockRunner(web.AppRunner):
    """An AppRunner whose server is :class:`_Server` (connections with ``limits``); idle
    keep-alive connections close after ``limits.idle_timeout``."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        kwargs.setdefault("access_log_class", AccessLogger)
        super().__init__(app, keepalive_timeout=limits.idle_timeout, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limits=self._limits,
            **made._kwargs,
        )


async def listen(runner: web.AppRunner, host: str, port: int, *, reuse_port: bool) -> int:
    """Serve ``runner`` on every address of ``host`` (port 0: one free port for all); the port.
    Each socket queues up to LISTEN_QUEUE connections in the kernel while asyncio accepts
    ACCEPT_BURST of them per turn of the loop (it takes both from one ``backlog``): a long
    queue drops no connection attempt in a flood, a short burst keeps the descriptors a flood
    takes at once within FD_RESERVE."""
    family = socket.AF_UNSPEC
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    for address_family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(address_family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if address_family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]
            await web.SockSite(runner, sock, backlog=ACCEPT_BURST).start()
        except BaseException:
            sock.close()
            raise
        sock.listen(LISTEN_QUEUE)  # asyncio listened with ACCEPT_BURST
    return int(port)


_ACCEPT_FAILED = "socket.accept() out of system resource"


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Have ``loop`` log its failures to accept a connection (EMFILE: out of file descriptors,
    ENOBUFS, ...) at most once per interval: asyncio logs each one, with a traceback, up to
    100 times per listening socket per turn of the loop. Other errors go where they went."""
    previous = loop.get_exception_handler()
    if getattr(previous, "throttles_accept", False):
        return
    warn = Throttled("cannot accept connections: %s; retrying every second")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            warn(context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.throttles_accept = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
