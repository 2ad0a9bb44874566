"""The request log: every request a mock received (but those to its control routes), for tests
to assert on (the pytest plugin's ``chat_mock.requests``, ``GET /_chatcompat/requests``).

An entry keeps what arrived as it arrived (method, path and query, the raw header pairs, the
body bytes, the time) and is read lazily: credentials come out redacted as ``chatcompat record``
stores them (:data:`~mockserver._cassettes.SECRET_HEADERS` as ``[REDACTED]``, credential query
parameters too), the body parsed as cassettes store it. Logging costs one small object and a
deque append per request; the log keeps the newest entries within its bounds. A mock keeps
it when its control routes are on (``MockConfig.control``: always in the pytest plugin).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from mockserver._cassettes import REDACTED, SECRET_HEADERS, parse_request_body
from mockserver._redaction import redact_url

__all__ = ["LoggedRequest", "RequestLog"]


class LoggedRequest:
    """One request as the mock received it; ``status`` is its answer's, once it is known."""

    __slots__ = ("_headers", "_path_qs", "method", "raw", "status", "time")

    def __init__(
        self, method: str, path_qs: str, headers: tuple[tuple[bytes, bytes], ...], raw: bytes
    ) -> None:
        self.method = method
        self._path_qs = path_qs
        self._headers = headers
        self.raw = raw  # the body bytes (decoded from its Content-Encoding) of an API route
        self.time = time.time()  # when it arrived, seconds since the epoch
        self.status: int | None = None

    @property
    def path(self) -> str:
        """The path, without the query."""
        return self._path_qs.partition("?")[0]

    @property
    def url(self) -> str:
        """The path and query, credential parameters redacted."""
        return redact_url(self._path_qs)

    @property
    def headers(self) -> dict[str, str]:
        """The headers (a repeated name: its last value), credential headers redacted."""
        shown = {}
        for name, value in self._headers:
            key = name.decode("latin-1")
            secret = key.lower() in SECRET_HEADERS
            shown[key] = REDACTED if secret else value.decode("utf-8", errors="replace")
        return shown

    @property
    def body(self) -> Any:
        """The body: its JSON value, else its text; None when empty."""
        return parse_request_body(self.raw)

    def as_json(self) -> dict[str, Any]:
        """The entry as the control route lists it."""
        return {
            "method": self.method,
            "path": self.path,
            "url": self.url,
            "headers": self.headers,
            "body": self.body,
            "time": self.time,
            "status": self.status,
        }

    def __repr__(self) -> str:
        return f"<LoggedRequest {self.method} {self.url} -> {self.status}>"


class RequestLog:
    """The newest requests, oldest first: at most ``size`` of them and ``max_bytes`` of their
    bodies (appended from the server's thread, read and cleared from the test's)."""

    def __init__(self, size: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: deque[LoggedRequest] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0  # of the bodies kept

    def add(
        self, method: str, path_qs: str, headers: tuple[tuple[bytes, bytes], ...], raw: bytes
    ) -> LoggedRequest:
        """Log one request (the oldest ones dropped past the bounds); the entry (its status
        is set once the answer is known)."""
        entry = LoggedRequest(method, path_qs, headers, raw)
        entries = self._entries
        entries.append(entry)
        self._bytes += len(raw)
        while len(entries) > self._size or (self._bytes > self._max_bytes and len(entries) > 1):
            self._bytes -= len(entries.popleft().raw)
        return entry

    def entries(self) -> list[LoggedRequest]:
        """The logged requests, oldest first."""
        return list(self._entries)

    def clear(self) -> None:
        """Forget every logged request."""
        self._entries.clear()
        self._bytes = 0
