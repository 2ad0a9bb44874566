"""The access log of a foreground server (``chatcompat mock``): one line per request, at a
few microseconds each.

Logging each request through :mod:`logging` (a LogRecord, the caller's frame looked up, the
time formatted, a write and a flush per line) cost the CLI mock about 40 us of CPU per request,
as much as the answer itself (``bench/mock_throughput.py``: 0.65x / 0.48x a bare aiohttp handler
for streams / non-stream answers, issue 14). Here a request's fields are kept in a buffer, and
the buffer made into lines by f-strings (the time formatted once per second) and written in
one write at most every ``FLUSH_INTERVAL`` seconds by the event loop, and at the server's stop.
The lines read as the ``logging`` ones did (``logging.basicConfig``'s "%(asctime)s %(name)s
%(message)s" over :class:`AccessLogger`'s message); other log records are
written at once, so a warning may come up to ``FLUSH_INTERVAL`` before the lines of the requests
before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mockserver._redaction import redact_url

__all__ = [
    "FLUSH_INTERVAL",
    "LOGGER_NAME",
    "AccessLines",
    "AccessLogger",
    "buffered_access_logger",
]

FLUSH_INTERVAL = 0.1  # seconds a line may wait in the buffer
LOGGER_NAME = "aiohttp.access"  # the name the lines carry, as aiohttp's access logger's


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log line without its own timestamp, with credentials in the query
    string (``?api-key=...``) written as ``[REDACTED]``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if getattr(request.protocol, "shed", False) or not self.logger.isEnabledFor(logging.INFO):
            return  # a shed one is counted in the cap's throttled warning instead
        message = _message(
            request.remote,
            request.method,
            request.path_qs,
            request.version,
            response.status,
            response.body_length,
            time,
            request.headers.get("User-Agent", "-"),
        )
        self.logger.info("%s", message)


def _message(
    remote: str | None,
    method: str,
    path: str,
    version: tuple[int, int],
    status: int,
    length: int,
    took: float,
    agent: str,
) -> str:
    """A request's access line after its time and logger name, as aiohttp's (its default
    format, credentials in the query ``[REDACTED]``): both loggers here write it."""
    if "?" in path:
        path = redact_url(path)
    major, minor = version
    request = f"{method} {path} HTTP/{major}.{minor}"
    return f'{remote} "{request}" {status} {length} {took:.3f}s "{agent}"'


class AccessLines:
    """Lines written to ``out`` in batches: at most ``interval`` seconds after the first line
    of a batch (on the running event loop), and at :meth:`flush`. A request's fields are kept
    as they are and made into its line in the batch (:meth:`request`), where the code and
    the data it touches are warm: formatted one by one between two requests, the same lines
    cost the CLI mock about 6 us of CPU each (``bench/mock_throughput.py``)."""

    def __init__(self, out: TextIO, interval: float = FLUSH_INTERVAL) -> None:
        self.out, self.interval = out, interval
        self._lines: list[_Fields] = []
        self._second = -1  # the whole second _stamp says
        self._stamp = ""

    def _asctime(self, clock: float) -> str:
        """``clock`` as ``logging`` writes asctime ("2026-11-30 12:45:01,123"), local time."""
        second = int(clock)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((clock - second) * 1000):03d}"

    def request(self, name: str, *fields: object) -> None:
        """Keep the line of one request, made at the next write: ``name`` (the logger's), then
        remote address, method, path as sent, HTTP version (major, minor), status, body
        bytes, seconds taken and User-Agent; the time is now."""
        if not self._lines:
            asyncio.get_running_loop().call_later(self.interval, self.flush)
        self._lines.append((time.time(), name, *fields))

    def flush(self) -> None:
        """Write the lines kept so far, in one write."""
        if self._lines:
            kept, self._lines = self._lines, []
            self.out.write("\n".join(map(self._line, kept)) + "\n")
            self.out.flush()

    def _line(self, kept: _Fields) -> str:
        clock, name, *fields = kept
        return f"{self._asctime(clock)} {name} {_message(*fields)}"


# time, logger name, remote, method, path, (major, minor), status, body bytes, seconds, agent
_Fields = tuple[Any, ...]


def buffered_access_logger(
    lines: AccessLines, name: str = LOGGER_NAME
) -> type[AbstractAccessLogger]:
    """An aiohttp access logger class (``AppRunner(access_log_class=...)``) that writes each
    request's line to ``lines``, after the time and ``name`` (a worker's: "[PID] " first):
    the fields of :class:`AccessLogger` (credentials in the query
    redacted; shed connections not logged). Its ``fields`` method logs a request answered
    without aiohttp's request objects (:mod:`mockserver._quick`)."""

    class BufferedAccessLogger(AbstractAccessLogger):
        @property
        def enabled(self) -> bool:
            return True

        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if getattr(request.protocol, "shed", False):
                return  # counted in the cap's throttled warning instead
            lines.request(
                name,
                request.remote,
                request.method,
                request.raw_path,  # as sent: no URL object built
                request.version,
                response.status,
                response.body_length,
                time,
                request.headers.get("User-Agent", "-"),
            )

        def fields(self, *fields: object) -> None:
            """Log a request by its fields, in the order of :meth:`AccessLines.request`."""
            lines.request(name, *fields)

    return BufferedAccessLogger
