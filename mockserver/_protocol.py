"""The server's connections: protocol errors answered in the OpenAI error envelope, bounded
header, body and write waits, idle keep-alive connections closed, a cap on open connections
that sheds stalled ones first, and floods logged at most once per interval, not per connection.

The rules, and why:

- **Header timeout.** A connection's first request must have all its headers within
  ``header_timeout`` of the connection's start (a client that connects and sends nothing is
  closed then, without an answer: there is no request to answer); a later request's, within
  ``header_timeout`` of its first byte. Between requests ``idle_timeout`` applies: a keep-alive
  connection may stay quiet that long, as HTTP clients pool connections.
- **Write timeout.** A write that makes no progress for ``write_timeout`` (the transport holds
  more than its high-water mark and does not drain to its low-water mark: the client reads
  nothing) aborts the connection; the answer's next write raises, which stops it.
- **The cap.** Past ``connection_cap()`` open connections, a new one closes the oldest that
  wait on their client (idle, a request arriving, an answer unread), else the oldest being
  answered, else those just opened: a flood of answers nobody reads must not lock out
  ``GET /health``, and a connection gets FIRST_BYTE_GRACE to send its request before a flood
  of new connections may close it. Never the new one.
- **Pipelining.** The bytes of one read are parsed up to each header block's end in turn, so
  the requests before a malformed one keep their place: each gets its own answer, then the
  malformed one gets its 4xx and the connection closes (HTTP/1.1 answers pipelined requests in
  order, RFC 9112 section 9.3.2). Nothing after the malformed request is parsed.
- **No path.** ``CONNECT`` and ``OPTIONS *`` get 405 with ``Allow`` (the router matches paths
  only and would answer aiohttp's text/plain 404).
- **The quick path.** A read on an idle connection whose parser holds nothing is first offered
  to the app's quick path (:mod:`mockserver._quick`, :mod:`mockserver._quick_reads`): a repeated
  chat completion is answered there, written at once, access-logged and counted as aiohttp
  would; a head it would take is held a moment for its body; anything else is parsed as
  usual. A read that holds one whole request is fed to the parser in one piece (it cannot lose
  a request before a malformed one).

aiohttp answers what its HTTP parser rejects itself, in text/plain, from
``RequestHandler.handle_error``, with no documented hook
(https://github.com/aio-libs/aiohttp/issues/3287), and has no header, body or write timeout.
So this module, and only this one (with :mod:`mockserver._quick_reads`, the RequestHandler
its connection builds on), subclasses ``RequestHandler``, ``web.Server`` and
``web.AppRunner`` (aiohttp 3.14). It reads these private names: RequestHandler's
``_request_count``, ``_messages``, ``_waiter``, ``_request_in_progress``, ``_force_close``,
``_close``, ``_manager``, ``_upgraded``, ``_logging_enabled`` and, to answer on the quick path
as its request loop does after an answer, ``_keepalive``, ``_keepalive_timeout``,
``_next_keepalive_close_time``, ``_keepalive_handle``, ``_process_keepalive``; Server's
``_kwargs``, ``_loop`` and ``_connections``; and the parser-error message type ``_ErrInfo``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from mockserver._access_log import AccessLogger
from mockserver._config import ConnectionLimits
from mockserver._errors import ApiError, error_body, error_response
from mockserver._quick import QUICK_PATH, QuickPath
from mockserver._quick_reads import QuickReads
from mockserver._reads import one_request, pieces
from mockserver._rejections import not_a_path, protocol_error, unsupported_encoding

__all__ = ["MockRunner", "Throttled"]

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


class _BodyUnreadable(ApiError, TimeoutError):
    """A body that will not arrive whole (too slow, or its chunked framing broke): an ApiError
    for the handler reading it, and a TimeoutError so that aiohttp's lingering read after the
    answer stops quietly and closes the connection."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(status, message, code=code, headers={"Connection": "close"})


class _Warnings:
    """A server's throttled flood warnings."""

    def __init__(self) -> None:
        self.bad_requests = Throttled("malformed request from %s: %d %s")
        self.shed = Throttled("%d connections open, the cap; closed one for a new one")
        self.write_stalls = Throttled(
            "a client read nothing of its answer for %g s: closed its connection"
        )


# Seconds a new connection has to send its first byte before the cap counts it as stalled.
FIRST_BYTE_GRACE = 1.0


class _Connection(QuickReads):
    """One client connection, with the header, body and write deadlines of ``limits``, whose
    reads are offered to the app's quick path first (see :class:`QuickReads`)."""

    __slots__ = (
        "_body_timer",
        "_header_timer",
        "_heard",
        "_limits",
        "_opened",
        "_payload",
        "_rejected",
        "_warnings",
        "_write_timer",
        "shed",
    )

    def __init__(
        self,
        manager: web.Server,
        limits: ConnectionLimits,
        warnings: _Warnings,
        quick: QuickPath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._start_quick_reads(quick)
        self._limits, self._warnings = limits, warnings
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._payload: StreamReader | None = None  # the body of the last request parsed
        self._heard = False  # a byte came from the client
        self._opened = self._loop.time()
        self._rejected = False  # a malformed request was queued: nothing after it is parsed
        self.shed = False  # closed to make room for another connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.transport is not None:  # not shed at once: the first headers' deadline runs
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._headers_late, 0
            )

    async def start(self) -> None:
        """aiohttp's request loop, unless the connection was closed before it began (shed
        past the cap in the turn it was accepted: aiohttp would fail an assertion)."""
        if self._manager is not None and self.transport is not None:
            await super().start()

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return  # the connection closes once the malformed request is answered
        if self._quick is not None:
            unanswered = self._offer(data)
            if unanswered is None:
                return  # answered on the quick path, or a head held for its body
            data = unanswered
        self._parse(data)

    def _parse(self, data: bytes, since: float | None = None) -> None:
        """Feed ``data`` to aiohttp's parser: in one piece when it holds one whole request,
        else cut after each header block; then note whether the parser holds nothing. A body
        left on its way is bounded from ``since`` (a head held by the quick path), else now."""
        self._heard = self._heard or bool(data)
        count, pending = self._request_count, self._payload if self._body_pending() else None
        fed = pending.total_bytes if pending is not None else 0
        if pending is None and one_request(data):
            self._receive(data)
            ended = self._request_count != count  # its headers, and the body they announce
        else:
            for piece in pieces(data):
                self._receive(piece)
                if self._rejected or self._force_close or self._close:
                    break
            # the body on its way, all of this read and no more
            ended = pending is not None and pending.total_bytes - fed == len(data)
        if data:
            self._clean = ended and not self._body_pending()
        self._time_body(since)

    def _receive(self, data: bytes) -> None:
        count, body_before = self._request_count, self._body_pending()
        super().data_received(data)
        if self._request_count != count:  # headers complete (or rejected)
            self._cancel_header_timer()
            self._headers_done(self._request_count - count)
        elif data and self._header_timer is None and not body_before and not self._body_pending():
            # bytes of a new request's headers: they must all arrive in time (bytes after the
            # end of a body or of headers may be the next request's: the idle timeout bounds
            # those, as it closes a connection whose next request has not arrived whole)
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._headers_late, count
            )

    def _head_whole(self) -> None:
        """A head is whole (held for its body, or answered on the quick path): its header
        deadline is over."""
        self._heard = True
        self._cancel_header_timer()

    def _body_pending(self) -> bool:
        return self._payload is not None and not self._payload.is_eof()

    def _headers_done(self, new: int) -> None:
        queued = list(self._messages)[-new:] if new <= len(self._messages) else []
        for message, payload in queued:
            self._header_block_done(message, payload)
            if self._rejected:
                return

    def _header_block_done(
        self, message: RawRequestMessage | _ErrInfo, payload: StreamReader
    ) -> None:
        if isinstance(message, _ErrInfo) and self._body_pending():
            # the framing of a body being read broke: that request gets the 400, alone
            self._messages.remove((message, payload))
            self._rejected = True
            assert self._payload is not None
            text = message.message.strip().splitlines()[0] if message.message.strip() else ""
            self._payload.set_exception(
                _BodyUnreadable(400, f"Malformed request body framing: {text}", "bad_request")
            )
            return
        if isinstance(message, _ErrInfo):
            self._rejected = True
            return
        encoding = unsupported_encoding(message)
        if encoding is not None:  # aiohttp would pass the body on undecoded
            rejected = ContentEncodingError(f"content-encoding: {encoding}")
            at = self._messages.index((message, payload))
            self._messages[at] = (_ErrInfo(415, rejected, rejected.message), EMPTY_PAYLOAD)
            self._rejected = True
            return
        self._payload = payload
        if self._body_timer is not None:  # the last body's: this one gets its own
            self._body_timer.cancel()
            self._body_timer = None

    def _time_body(self, since: float | None = None) -> None:
        """Bound a body on its way by ``body_timeout`` from the end of its headers (this read,
        or ``since``), ending the bound once it is whole: a body read with its headers costs no
        timer."""
        payload, timer, wait = self._payload, self._body_timer, self._limits.body_timeout
        if payload is not None and not payload.is_eof() and timer is None:
            due = (self._loop.time() if since is None else since) + wait
            self._body_timer = self._loop.call_at(due, self._body_late, payload)
        elif (payload is None or payload.is_eof()) and timer is not None:
            timer.cancel()
            self._body_timer = None

    def _headers_late(self, count: int) -> None:
        self._header_timer = None
        if self._request_count != count or self.transport is None:
            return
        if self._request_in_progress or self._messages:  # answering the one before: wait
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._headers_late, count
            )
            return
        if count == 0 and not self._heard:  # nothing came: there is no request to answer
            self.force_close()
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

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark: the client reads too slowly.
        Unless it drains to the low-water mark within the write timeout, the connection
        is aborted (the answer's next write then raises ConnectionResetError)."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self._loop.call_later(self._limits.write_timeout, self._write_late)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_late(self) -> None:
        self._write_timer = None
        if self.transport is not None and self.writing_paused:
            self._warnings.write_stalls(self._limits.write_timeout)
            self.shed = True  # its answer is not access-logged: counted in the warning
            self.transport.abort()  # close() would wait for the buffer to drain

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._quick_lost()
        self._cancel_header_timer()
        for timer in (self._body_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._body_timer = self._write_timer = None
        super().connection_lost(exc)

    def stalled(self) -> bool:
        """Whether the connection waits on its client: idle, its headers or its body on the
        way, or its answer not read (writes paused). Those are shed first when connections
        run out."""
        if self.transport is None or self._force_close:
            return False  # closing already
        waiting = self._waiter is not None and not self._waiter.done()
        if waiting or not self._request_count:
            return True  # waiting for a request: idle, its headers on the way, or new
        return self._body_pending() or self.writing_paused  # a request handled, or queued

    def shed_rank(self) -> int:
        """Which connections the cap closes first (the lowest, oldest first): 0 waits on its
        client, 1 is being answered, 2 opened less than FIRST_BYTE_GRACE ago and nothing
        came yet (its request is likely on its way: under a flood of new connections it
        would otherwise be closed before it could send it)."""
        if not self.stalled():
            return 1
        fresh = self._loop.time() - self._opened < FIRST_BYTE_GRACE
        return 2 if fresh and not self._heard and not self._request_count else 0

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
            self._warnings.bad_requests(request.remote, error.status, error.message)
        response = error_response(error)
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's Server making :class:`_Connection` s and keeping at most ``limits``'s cap of
    them open. Past the cap the connections of the lowest :meth:`_Connection.shed_rank` close,
    oldest first: those waiting on their client, else those being answered (never the new
    one: a flood of answers nobody reads must not lock out ``GET /health``), up to one in 64
    of the cap at once, so that finding them, a pass over all connections, is paid once per
    that many accepts. Requests naming no path are answered here."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnectionLimits,
        quick: QuickPath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(self._handle, **kwargs)
        self._app_handler = handler
        self.quick = quick
        self.limits, self.cap = limits, limits.connection_cap()
        self.batch = max(1, min(self.cap, 1 << 20) // 64)
        self.warnings = _Warnings()
        # the connections whose transport is open, oldest first (aiohttp's _connections keeps
        # a connection until its handler returns, which may be long after its transport closed)
        self._open: dict[RequestHandler, None] = {}
        self._shedding: set[RequestHandler] = set()  # closed here, their transport not yet

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        error = not_a_path(request)
        if error is not None:
            return error_response(error)
        response: web.StreamResponse = await self._app_handler(request)
        return response

    def __call__(self) -> RequestHandler:
        return _Connection(
            self, self.limits, self.warnings, self.quick, loop=self._loop, **self._kwargs
        )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._open.pop(handler, None)
        self._shedding.discard(handler)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        if len(self._open) - len(self._shedding) <= self.cap:
            return
        ranks: tuple[list[_Connection], ...] = ([], [], [])
        for other in self._open:  # those closing free their descriptors within a turn
            if other is not handler and isinstance(other, _Connection) and other.transport:
                ranks[other.shed_rank()].append(other)
        live = sum(map(len, ranks))
        if live < self.cap:
            return
        victims = next(rank for rank in ranks if rank) if live else [handler]
        self.warnings.shed(live)
        for victim in victims[: self.batch]:
            self._shed(victim)

    def _shed(self, victim: RequestHandler) -> None:
        if isinstance(victim, _Connection):
            victim.shed = True  # its answer (a 499 at most) is not access-logged: a flood
        if victim.transport is not None and victim.transport.get_write_buffer_size():
            victim.transport.abort()  # close() would wait for a client that does not read
        self._shedding.add(victim)
        victim.force_close()


class MockRunner(web.AppRunner):
    """An AppRunner whose server is :class:`_Server` (connections with ``limits``); idle
    keep-alive connections close after ``limits.idle_timeout``. The app's quick path
    (``app[QUICK_PATH]``) answers on its connections unless the app has response-prepare
    hooks (they would not run there)."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        kwargs.setdefault("access_log_class", AccessLogger)
        super().__init__(app, keepalive_timeout=limits.idle_timeout, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        quick = None if self.app.on_response_prepare else self.app.get(QUICK_PATH)
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limits=self._limits,
            quick=quick,
            **made._kwargs,
        )
