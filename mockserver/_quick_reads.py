"""The connection side of the quick path (:mod:`mockserver._quick`): which reads are offered to
it, a head held a moment for the body that follows it, and an answer written and accounted for
as aiohttp's request loop does after an answer.

A read is offered when the connection is idle (aiohttp's request loop waits for a request:
nothing queued, being answered or closing; writes not paused) and aiohttp's parser holds no
byte of an unfinished request (``_clean``: the last read ended a request, or was answered
here). An answer is written here only when the transport's buffer takes it below its
high-water mark (``_room``): then it is done, as aiohttp's is when its write_eof does not wait.

HTTP clients often send a request's head and body in two writes (httpx, under the official
openai clients, does), which can arrive as two reads: a head the quick path would take is then
held, up to ``HOLD_SECONDS`` and ``MAX_HELD`` bytes, until its body is whole; then the request
is answered here, or the held bytes and what followed go to the parser together, as if read at
once. A head whose body does not come in time goes to the parser alone (its body deadline then
runs as usual), and so does a held head when the server shuts down; while a head is held, the
idle timeout does not close the connection.
"""

from __future__ import annotations

import asyncio

from aiohttp.web_protocol import RequestHandler

from mockserver._quick import QuickAnswer, QuickPath

__all__ = ["HOLD_SECONDS", "MAX_HELD", "QuickReads"]

HOLD_SECONDS = 0.05  # a held head waits this long for its body, then goes to the parser
MAX_HELD = 1 << 20  # bytes of head and body held at most (a larger request is parsed as usual)


class QuickReads(RequestHandler):
    """A connection whose reads are offered to ``quick`` first; the subclass parses the rest
    (its ``_parse``) and says when a head is whole (its ``_head_whole``). Reads aiohttp's
    private ``_messages``, ``_request_in_progress``, ``_force_close``, ``_close``,
    ``_upgraded``, ``_keepalive``, ``_logging_enabled``, ``_manager``, ``_request_count`` and
    its keep-alive timer's ``_keepalive_timeout``, ``_next_keepalive_close_time``,
    ``_keepalive_handle``, ``_process_keepalive`` (aiohttp 3.14)."""

    __slots__ = (
        "_clean",
        "_held",
        "_held_at",
        "_held_need",
        "_hold_timer",
        "_log_fields",
        "_quick",
    )

    def _start_quick_reads(self, quick: QuickPath | None) -> None:
        """Offer reads to ``quick`` (None: never), unless the access logger cannot log an
        answer by its fields (only :mod:`mockserver._access_log`'s buffered one can)."""
        logger = self.access_logger if self._logging_enabled else None
        self._log_fields = getattr(logger, "fields", None)
        self._quick = quick if logger is None or self._log_fields is not None else None
        self._clean = True  # the parser holds no byte of a request it has not finished
        self._held = b""  # a head (and the start of its body) waiting for the rest
        self._held_need = 0  # the bytes of the held request: its head and whole body
        self._held_at = 0.0  # when its head came (the loop's time)
        self._hold_timer: asyncio.TimerHandle | None = None

    def _parse(self, data: bytes, since: float | None = None) -> None:
        raise NotImplementedError  # the subclass feeds aiohttp's parser (a body since ``since``)

    def _head_whole(self) -> None:
        raise NotImplementedError  # the subclass stops its header deadline

    def _offer(self, data: bytes) -> bytes | None:
        """None when ``data`` (after a held head) was answered on the quick path or is held;
        else the bytes for the parser."""
        if self._held:
            data = self._held + data
            if len(data) < self._held_need:
                self._held = data  # still short: held until the same deadline
                return None
            whole = len(data) == self._held_need
            self._drop_held()
            if not whole:  # the body and more (the next request): all to the parser
                return data
        quick = self._quick
        if not data or quick is None or not self._clean or not self._idle():
            return data
        found = quick.read(data, self._room())
        if isinstance(found, QuickAnswer):
            self._answer_quickly(found)
            return None
        if found is not None and len(data) + found <= MAX_HELD:
            self._hold(data, len(data) + found)
            return None
        return data

    def _room(self) -> int:
        """Bytes an answer may have so that the transport's buffer stays within its high-water
        mark once it is written: the answer is then done, as aiohttp's is once its write_eof
        returns without waiting for the client to read (past the mark aiohttp would wait,
        the request still in progress, with the deadlines and shutdown that go with it)."""
        transport = self.transport
        assert transport is not None
        high = transport.get_write_buffer_limits()[1]
        return int(high - transport.get_write_buffer_size())

    def _hold(self, data: bytes, need: int) -> None:
        """Hold ``data``, a head and the start of its body, until ``need`` bytes have come or
        HOLD_SECONDS have passed."""
        loop = self._loop
        self._held, self._held_need, self._held_at = data, need, loop.time()
        self._head_whole()
        self._hold_timer = loop.call_later(HOLD_SECONDS, self._release)
        # the request came in time: the idle timeout must not close it while it is held
        hold_end = self._held_at + 2 * HOLD_SECONDS
        self._next_keepalive_close_time = max(self._next_keepalive_close_time, hold_end)

    def close(self) -> None:
        """aiohttp's close (the server shutting down: requests in progress may finish), after
        a held head is parsed: it is a request in progress too."""
        if self._held:
            self._release()
        super().close()

    def _release(self) -> None:
        """Parse the held head and what came of its body (it did not come whole in time); the
        body's deadline counts from the head's arrival."""
        data, since = self._held, self._held_at
        self._drop_held()
        if data and self.transport is not None:
            self._parse(data, since)

    def _quick_lost(self) -> None:
        """The connection is gone: a held head with it."""
        self._drop_held()

    def _drop_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._held = b""

    def _idle(self) -> bool:
        """Whether aiohttp's request loop waits for a request (none queued, being answered, or
        popped and not yet started: answering then would overtake it), and the connection
        stays open after an answer."""
        waiter = self._waiter
        return not (
            waiter is None
            or waiter.done()
            or self._messages
            or self._request_in_progress
            or self._force_close
            or self._close
            or self.transport is None
            or self.writing_paused
            or self._upgraded
            or not self._keepalive
        )

    def _answer_quickly(self, answer: QuickAnswer) -> None:
        """Write ``answer`` and do what aiohttp's request loop does after an answer: count the
        request, log it, push back the idle timeout."""
        loop, started = self._loop, self._loop.time()
        assert self.transport is not None and self._manager is not None
        self._head_whole()
        self._request_count += 1
        self._manager.requests_count += 1
        self.transport.write(answer.data)
        if self._log_fields is not None:
            self._log(started, answer)
        if self._keepalive_timeout:  # as RequestHandler.start after an answer
            close_time = loop.time() + self._keepalive_timeout
            self._next_keepalive_close_time = close_time
            if self._keepalive_handle is None:
                self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)

    def _log(self, started: float, answer: QuickAnswer) -> None:
        """The access-log line of ``answer``, written since ``started``."""
        assert self._log_fields is not None and self._quick is not None
        peer = self.peername  # as aiohttp's request.remote says it
        remote = str(peer[0]) if isinstance(peer, (list, tuple)) else peer and str(peer)
        self._log_fields(
            remote, "POST", self._quick.path, (1, 1), 200, len(answer.data),
            self._loop.time() - started, answer.agent,
        )  # fmt: skip
