"""The quick path: a chat completion request whose body was answered before, answered again by
the connection layer from the answer cache, without aiohttp's request, task and response.

Why: a load test, or a client's test suite, sends the same body again and again; its answer is
kept bytes (:mod:`mockserver._rendered`) that need only a fresh id and time. aiohttp's request
machinery around them (a request object, a task, the router, the response's headers) costs
more CPU than everything else a request takes: ``chatcompat mock`` answered 0.54x the
non-stream and 0.68x the streams a bare aiohttp handler did (``bench/mock_throughput.py``,
issue 14).

What it answers: a request whose bytes come whole on an idle connection (in one read, or a
head and its body in the reads that follow it, :mod:`mockserver._quick_reads`), and which the
usual path would answer with the kept bytes and nothing else:

- ``POST {prefix}/chat/completions HTTP/1.1``, no query string, a prefix of plain path
  characters (one the router would percent-decode keeps the quick path shut);
- headers that aiohttp's parser reads the same way (each ``name: value`` line of visible
  ASCII, at most 8,190 bytes and 100 lines in all, none of aiohttp's ``SINGLETON_HEADERS``
  twice), among those clients send that change nothing (``_QUICK_HEADERS``: ``Host``, which
  must be there, ``User-Agent``, ``Accept``, ``Authorization``, ``Connection: keep-alive``,
  ...) and ``x-`` headers but the fault headers; a ``Content-Length`` that the body fills and
  a ``Content-Type`` (if any) naming JSON;
- the API key, when the server has one, as ``Authorization: Bearer <key>`` (a missing or wrong
  one goes the usual way, to its 401);
- a server without anything that could change the answer: no configured defects or faults,
  timing pauses, control routes (the request log), record mode, response-prepare hooks
  (workers) nor anything a test scripted (replies, faults, defects, cassettes);
- a body within ``max_body_bytes`` and in the answer cache (validated and answered before:
  every cached body is a valid request; the cache is emptied when the validation level
  changes), whose answer fits the transport's buffer below its high-water mark (64 KiB by
  default: a larger answer, or one behind unread bytes, would leave aiohttp waiting for the
  client to read it, the request still in progress).

Anything else, and every request when ``MockConfig.quick_path`` is off (``chatcompat mock
--no-quick-path``), goes the usual way. The answer's bytes are those the usual path writes:
the same status line, headers in the same order (aiohttp's ``Date`` and ``Server``), body and
access-log line; ``tests/mockserver/test_quick_path.py`` holds the two paths to that. One
difference is kept: a client that half-closes its side after its request (``nc -N``) gets its
answer here, where aiohttp closes the connection at the end of input without one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_parser import SINGLETON_HEADERS

from mockserver._api_key import bearer_matches
from mockserver._faults import FAULT_HEADER, FAULT_KEY_HEADER
from mockserver._rendered import Rendered
from mockserver._sse import SSE_HEADERS
from mockserver._state import MockState

__all__ = ["QUICK_PATH", "QuickAnswer", "QuickPath"]

MAX_HEADER_BYTES = 8190  # aiohttp's max_field_size: a longer block may be refused there
MAX_HEADERS = 100  # aiohttp refuses more than 128
MAX_HEAD_BYTES = 1024  # the most an answer's status line and headers take (about 200)
# A header block aiohttp reads as it is: lines of a token, a colon and visible ASCII, spaces
# and tabs (no obs-fold, no control characters, no bytes past 0x7e).
_HEADER_BLOCK = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*")
_HEADER = re.compile(rb"([^:\r\n]+):([^\r\n]*)\r\n")  # the value stripped after: linear time
# Headers aiohttp refuses to see twice (RFC 9110's singletons: a 400)
_SINGLETONS = frozenset(name.encode() for name in SINGLETON_HEADERS)
# The headers a quick request may have: those clients send (curl, wrk, httpx and the openai
# SDKs, browsers' fetch) that change nothing in aiohttp's reading nor in the answer, and any
# x- header but the fault headers. Any other (Upgrade, Expect, Transfer-Encoding,
# Content-Encoding, Proxy-Connection, Sec-WebSocket-Key1, TE, ...): the usual path.
_QUICK_HEADERS = frozenset(
    {
        b"host",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"authorization",
        b"cache-control",
        b"connection",  # "keep-alive" only: HTTP/1.1's default (httpx sends it)
        b"content-length",
        b"content-type",
        b"cookie",
        b"idempotency-key",
        b"openai-beta",
        b"openai-organization",
        b"openai-project",
        b"origin",
        b"pragma",
        b"referer",
        b"traceparent",
        b"tracestate",
        b"baggage",
    }
)
_FAULT_HEADERS = frozenset({FAULT_HEADER.lower().encode(), FAULT_KEY_HEADER.lower().encode()})
# A prefix the quick path can compare as sent: a path of unreserved and sub-delimiter
# characters (no percent-encoding, "?", "#", space or non-ASCII, which the router decodes).
_PLAIN_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*")
MAX_LENGTH_DIGITS = 18  # a Content-Length of more digits (leading zeros aside): the usual path
_JSON_HEAD = "Content-Type: {content_type}\r\nx-request-id: {id}\r\n"
_SSE_HEAD = (
    "".join(f"{name}: {value}\r\n" for name, value in SSE_HEADERS.items())
    + "x-request-id: {id}\r\nContent-Type: {content_type}; charset=utf-8\r\n"
)


class QuickAnswer:
    """One request answered on the quick path: the bytes to write (head and body: what
    aiohttp's ``body_length`` counts, which the access log says), and its User-Agent."""

    __slots__ = ("agent", "data")

    def __init__(self, data: bytes, agent: str) -> None:
        self.data, self.agent = data, agent


@dataclass(frozen=True, slots=True)
class _Head:
    """What the quick path reads of a request's headers."""

    length: int | None  # Content-Length
    json: bool  # no Content-Type, or one naming JSON (else the usual path's 400)
    agent: str  # User-Agent, "-" without one
    authorization: bytes | None  # the first Authorization (aiohttp's headers.get reads it)


def _read_head(block: bytes) -> _Head | None:
    """The headers of ``block`` (the lines after the request line, each ending in CRLF), or
    None when aiohttp would read them otherwise or the usual path would answer otherwise."""
    if _HEADER_BLOCK.fullmatch(block) is None:
        return None
    headers = _HEADER.findall(block)
    if len(headers) > MAX_HEADERS:
        return None
    length = content_type = agent = authorization = None
    seen: set[bytes] = set()
    for name, value in headers:
        name, value = name.lower(), value.strip(b" \t")
        if name not in _QUICK_HEADERS and (not name.startswith(b"x-") or name in _FAULT_HEADERS):
            return None
        if name in _SINGLETONS:
            if name in seen:
                return None
            seen.add(name)
        if name == b"content-length":
            digits = value.lstrip(b"0") or b"0"  # int() refuses over 4,300 digits, zeros too
            if not value.isdigit() or len(digits) > MAX_LENGTH_DIGITS:
                return None
            length = int(digits)
        elif name == b"content-type":
            content_type = value
        elif name == b"user-agent":
            agent = value.decode("ascii")
        elif name == b"authorization":
            authorization = value if authorization is None else authorization
        elif name == b"connection" and value.lower() != b"keep-alive":
            return None
    if b"host" not in seen:  # aiohttp refuses an HTTP/1.1 request without one
        return None
    json = content_type is None or b"json" in content_type.lower()
    return _Head(length, json, "-" if agent is None else agent, authorization)


class QuickPath:
    """The quick path of one server's chat completions (see the module's doc); ``answered``
    counts the requests it answered."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.path = f"{state.config.prefix}/chat/completions"
        # no request line matches a prefix the router would decode: the path stays shut
        plain = _PLAIN_PREFIX.fullmatch(state.config.prefix) is not None
        self.request_line = f"POST {self.path} HTTP/1.1\r\n".encode() if plain else b"\0"
        self.answered = 0

    def open(self) -> bool:
        """Whether nothing on the server could change a kept answer (checked per request: tests
        script replies, faults, defects and cassettes while the server runs)."""
        state = self.state
        config = state.config
        return not (
            state.may_fault
            or state.timed
            or state.replies
            or state.scripted_faults.rules
            or state.request_defects.scripted
            or state.scripted_cassettes.stores
            or state.recorder is not None
            or config.control
        )

    def read(self, data: bytes, room: int) -> QuickAnswer | int | None:
        """The answer to the request that is all of ``data``, if it takes at most ``room``
        bytes; or, when ``data`` is a head the quick path would take and the start of its body,
        how many bytes of the body are still to come; None when the request is not one the
        quick path answers (then aiohttp parses it as usual)."""
        line = self.request_line
        if not data.startswith(line):
            return None
        end = data.find(b"\r\n\r\n", len(line) - 2)
        if end == -1 or end - len(line) > MAX_HEADER_BYTES:
            return None
        head = _read_head(data[len(line) : end + 2])
        if head is None or head.length is None or not head.json:
            return None
        missing = head.length - (len(data) - end - 4)
        if missing < 0 or head.length > self.state.config.max_body_bytes:
            return None  # the body and more; a body past the limit: its 413 at once
        if not self.open() or not self._authorised(head.authorization):
            return None
        if missing:
            return missing
        kept = self.state.answers.get(data[end + 4 :])
        if kept is None or len(kept.body) + MAX_HEAD_BYTES > room:
            return None
        self.answered += 1
        return self._answer(kept, head.agent)

    def _authorised(self, authorization: bytes | None) -> bool:
        """Whether a request with this ``Authorization`` passes the key check (none without a
        key; else the endpoint's rule, :func:`bearer_matches`: a missing or wrong key goes the
        usual way, to its 401). Head values here are ASCII (``_HEADER_BLOCK``)."""
        key = self.state.config.api_key
        if key is None:
            return True
        if not authorization:
            return False
        return bearer_matches(authorization.decode("ascii"), key)

    def _answer(self, kept: Rendered, agent: str) -> QuickAnswer:
        """``kept`` stamped with a fresh id and time, after the headers the usual path sends
        (:func:`mockserver._delivery.send`, ``_sse.write_stream``'s one write)."""
        state = self.state
        body = state.answers.stamp(kept.body, state.ids.completion_id(), int(time.time()))
        template = _SSE_HEAD if kept.stream else _JSON_HEAD
        head = (
            "HTTP/1.1 200 OK\r\n"
            + template.format(content_type=kept.content_type, id=state.ids.request_id())
            + f"Content-Length: {len(body)}\r\nDate: {rfc822_formatted_time()}\r\n"
            f"Server: {SERVER_SOFTWARE}\r\n\r\n"
        )
        return QuickAnswer(head.encode("latin-1") + body, agent)


QUICK_PATH = web.AppKey("quick_path", QuickPath)  # the app's, when MockConfig.quick_path is on
