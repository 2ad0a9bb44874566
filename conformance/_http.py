"""HTTP exchanges with the endpoint under test: bounded in time and size, recorded for reports."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from conformance import _json as strict_json
from conformance._redirects import Redirect, note, redirects_of
from conformance._shown import REDACTED, cut_keeping, inline, redact, redact_bytes, shown

__all__ = ["KEY_VARIABLE", "SECRET_HEADERS", "Endpoint", "Exchange", "send"]

_EXCERPT = 600
# headers whose values are credentials: never recorded, shown as a placeholder
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # e.g. http://127.0.0.1:8000/v1 (no trailing slash)
    model: str
    api_key: str | None = None
    timeout: float = 60.0  # seconds for one whole request, stream included
    read_timeout: float = 30.0  # seconds without a byte before a stream counts as stalled
    max_body_bytes: int = 8 * 1024 * 1024
    capabilities: frozenset[str] = frozenset({"core"})  # what the endpoint claims
    context_length: int | None = None  # tokens, when known (profile or flag)
    reference: str | None = None  # an HF export dir of the model the endpoint serves
    sampling: str = "vllm"  # whose sampling semantics the endpoint claims: vllm | hf | llamacpp
    reference_samples: int = 300  # samples per sampling case in reference mode

    def url(self, path: str) -> str:
        """The absolute URL of API ``path`` (which starts with '/')."""
        return self.base_url.rstrip("/") + path

    def headers(self) -> dict[str, str]:
        """Headers every request carries (the key, when one is set)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _excerpt(data: bytes | str, limit: int = _EXCERPT, *, one_line: bool = False) -> str:
    """``data`` as text, control characters escaped (line breaks too when ``one_line``), its
    middle elided past ``limit`` chars."""
    return shown(data, limit=limit, inline=one_line)


@dataclass
class Exchange:
    """One request and what came back (status None when no answer came)."""

    method: str
    url: str
    sent: bytes | None
    sent_headers: dict[str, str]
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # transport trouble: refused, reset, stalled, too large
    elapsed: float = 0.0  # seconds from sending to the answer's end (or to the trouble)
    timed_out: bool = False  # the endpoint's timeout passed before the answer was whole
    redirects: tuple[Redirect, ...] = ()  # followed before the answer, in order
    headers_at: float | None = None  # seconds from sending to the status and headers
    # after each read of the body: (bytes of the body read so far, seconds from sending), as
    # the client saw them (the key's redaction may shift later offsets by a few bytes)
    arrivals: tuple[tuple[int, float], ...] = ()
    # the credential headers the request carried, their values never recorded: (name, a
    # placeholder: "Bearer $CHATCOMPAT_API_KEY" or "$CHATCOMPAT_API_KEY" for the run's key,
    # "Bearer <redacted>" or "<redacted>" for any other value)
    credentials: tuple[tuple[str, str], ...] = ()

    @property
    def content_type(self) -> str:
        """The media type of the answer, lower case, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def request_id(self) -> str | None:
        """The answer's request id header, if any."""
        return self.headers.get("x-request-id") or self.headers.get("request-id")

    def json(self) -> Any:
        """The body as JSON (raises ValueError when it is not, NaN and Infinity included)."""
        return strict_json.loads(self.body)

    def redacted(self, secret: str | None, *, fragments: bool = True) -> Exchange:
        """A copy with ``secret`` replaced by ``<redacted>`` in the URL, the bodies, the headers
        and the transport error, in every form :func:`~conformance._shown.redact` knows (runs of
        8 or more of its chars too, unless not ``fragments``); the exchange itself, shared
        between checks, is left alone."""
        if not secret:
            return self

        def hide(text: str) -> str:
            return redact(text, secret, fragments=fragments)

        def hide_bytes(data: bytes) -> bytes:
            return redact_bytes(data, secret, fragments=fragments)

        return dataclasses.replace(
            self,
            url=hide(self.url),
            sent=None if self.sent is None else hide_bytes(self.sent),
            sent_headers={k: hide(v) for k, v in self.sent_headers.items()},
            headers={k: hide(v) for k, v in self.headers.items()},
            body=hide_bytes(self.body),
            error=None if self.error is None else hide(self.error),
            redirects=tuple(r.redacted(secret) for r in self.redirects),
        )

    def excerpt(self) -> dict[str, Any]:
        """The exchange as the JSON report gives it: ``{"request": {"method", "url", "body"},
        "response": {"status", "content_type", "request_id", "body", "error", "redirects"}}``;
        bodies are text excerpts (request up to 300 chars, answer up to 600, the middle elided),
        None when there was none; ``status`` is None when no answer came; ``redirects`` lists
        the redirects followed (:meth:`Redirect.as_json`); control characters in any text are
        visible escapes (:func:`~conformance._shown.printable`), and the one-line fields (url,
        content type, request id, error) hold no line break either
        (:func:`~conformance._shown.inline`)."""

        def text(value: str | None) -> str | None:
            return None if value is None else inline(value)

        return {
            "request": {
                "method": self.method,
                "url": inline(self.url),
                "body": None if self.sent is None else _excerpt(self.sent, 300),
            },
            "response": {
                "status": self.status,
                "content_type": text(self.headers.get("content-type")),
                "request_id": text(self.request_id),
                "body": _excerpt(self.body) if self.body else None,
                "error": text(self.error),
                "redirects": [r.as_json() for r in self.redirects],
            },
        }

    def sent_excerpt(self, keep: tuple[str, ...] = (), limit: int = 300) -> str:
        """The body sent, on one line (:func:`~conformance._shown.inline`), cut to ``limit``
        chars in its middle, but the members ``keep`` of a JSON object body (top-level names:
        what a failure is about) whole (:func:`~conformance._shown.cut_keeping`); "" for none."""
        if self.sent is None:
            return ""
        text = shown(self.sent, inline=True)
        try:
            body = strict_json.loads(self.sent) if keep else None
        except ValueError:
            body = None
        members = body if isinstance(body, dict) else {}
        spans = []
        for name in (name for name in keep if name in members):
            member = inline(json.dumps({name: members[name]})[1:-1])
            at = text.find(member)
            if at >= 0:
                spans.append((at, at + len(member)))
        return cut_keeping(text, limit, spans)

    def describe(self, *, keep: tuple[str, ...] = ()) -> list[str]:
        """Report lines: what was sent, the redirects followed and what was seen, the API key
        left out; each what it quotes on one line (:func:`~conformance._shown.inline`: line
        breaks and control characters as visible escapes), so an answer cannot add a line.
        The body sent is cut in its middle, but its members ``keep`` are whole
        (:meth:`sent_excerpt`)."""
        sent = f"Sent: {self.method} {inline(self.url)}"
        if self.sent is not None:
            sent += f" {self.sent_excerpt(keep)}"
        lines = [sent] + [f"Redirected: {r.describe()}" for r in self.redirects]
        if self.status is None:
            return [*lines, f"Seen: no answer ({inline(self.error or '')})"]
        content_type = self.headers.get("content-type", "(no content-type)")
        seen = f"Seen: {self.status} {inline(content_type)}"
        if self.request_id:
            seen += f" request-id {inline(self.request_id)}"
        body = _excerpt(self.body, one_line=True) if self.body else "(empty)"
        lines += [seen, f"Body: {body}"]
        if self.error:
            lines.append(f"Transport: {inline(self.error)}")
        return lines


async def send(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Exchange:
    """Send one request and read the whole answer, never longer than the endpoint's
    timeouts and never more than its byte limit; transport trouble is recorded, not raised.
    Redirects are followed (see :mod:`conformance._redirects`) and recorded. The API key is
    redacted from what is recorded as it comes in (body, headers, error; literal, JSON-escaped
    or percent-encoded), before any check reads it, so that no check's cut can split it."""
    sent = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request_headers = {**endpoint.headers(), **(headers or {})}
    if sent is not None and raw is None:
        request_headers.setdefault("Content-Type", "application/json")
    if raw is not None:
        # A body sent as given (malformed JSON, another content type) goes on a connection of
        # its own: a server may close the connection after such a request without saying
        # Connection: close (uvicorn after an unhandled exception: llama-cpp-python's server),
        # and the next request on it, perhaps another check's, would get the reset.
        request_headers.setdefault("Connection", "close")
    exchange = Exchange(
        method,
        endpoint.url(path),
        sent,
        {k: v for k, v in request_headers.items() if k.lower() not in SECRET_HEADERS},
        credentials=_credentials(request_headers, endpoint.api_key),
    )
    await _receive(session, endpoint, exchange, request_headers)
    exchange = exchange.redacted(endpoint.api_key, fragments=False)
    note(exchange.redirects)
    return exchange


KEY_VARIABLE = "$CHATCOMPAT_API_KEY"  # what a reproduction reads the run's key from


def _credentials(headers: dict[str, str], key: str | None) -> tuple[tuple[str, str], ...]:
    """The credential headers among ``headers``, each as (name, placeholder): the run's ``key``
    becomes :data:`KEY_VARIABLE`, any other value ``<redacted>`` (``Bearer`` kept)."""

    def placeholder(value: str) -> str:
        scheme, _, token = value.partition(" ") if value.startswith("Bearer ") else ("", "", value)
        secret = KEY_VARIABLE if key and token == key else REDACTED
        return f"{scheme} {secret}" if scheme else secret

    return tuple(
        (name, placeholder(value))
        for name, value in headers.items()
        if name.lower() in SECRET_HEADERS
    )


def _stale_connection(exc: BaseException, exchange: Exchange) -> bool:
    """Whether ``exc`` looks like a kept-alive connection the server had already closed: the
    request could not be written or the connection went away before any status line (not a
    failure to connect, and not an answer cut short)."""
    if exchange.status is not None or isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))


async def _receive(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    exchange: Exchange,
    headers: dict[str, str],
) -> None:
    """Send ``exchange``'s request with ``headers`` and record the answer, or the trouble.

    A server may close a kept-alive connection at any time (RFC 9112 section 9.5; uvicorn does
    after every 500 without saying Connection: close), so a request that meets such a closed
    connection before any answer is sent once more, on a new connection of its own (the pool
    may hold more such connections); a second failure is recorded."""
    try:
        await _attempt(session, endpoint, exchange, headers)
        return
    except (aiohttp.ClientError, OSError) as exc:
        if not _stale_connection(exc, exchange):
            exchange.error = f"{type(exc).__name__}: {exc}"
            return
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as fresh:
        try:
            await _attempt(fresh, endpoint, exchange, headers)
        except (aiohttp.ClientError, OSError) as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"


async def _attempt(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    exchange: Exchange,
    headers: dict[str, str],
) -> None:
    """One try of ``_receive``: the answer or the trouble recorded; a transport error before
    the answer's body is raised."""
    timeout = aiohttp.ClientTimeout(
        total=endpoint.timeout,
        sock_connect=min(10.0, endpoint.timeout),
        sock_read=endpoint.read_timeout,
    )
    started = time.monotonic()
    body_parts: list[bytes] = []
    arrivals: list[tuple[int, float]] = []
    size = 0
    try:
        async with session.request(
            exchange.method, exchange.url, data=exchange.sent, headers=headers, timeout=timeout
        ) as response:
            exchange.status = response.status
            exchange.redirects = redirects_of(response)
            exchange.headers = {k.lower(): v for k, v in response.headers.items()}
            exchange.headers_at = time.monotonic() - started
            async for part in response.content.iter_any():
                body_parts.append(part)
                size += len(part)
                arrivals.append((size, time.monotonic() - started))
                if size > endpoint.max_body_bytes:
                    exchange.error = f"answer larger than {endpoint.max_body_bytes} bytes; cut"
                    break
    except TimeoutError:
        waited = time.monotonic() - started
        exchange.error = f"timed out after {waited:.1f} s (stalled or too slow)"
        exchange.timed_out = True
    except aiohttp.ClientPayloadError as exc:
        exchange.error = f"answer cut short: {exc}"
    except (aiohttp.ClientError, OSError) as exc:
        if exchange.status is None:
            raise
        exchange.error = f"{type(exc).__name__}: {exc}"
    finally:
        exchange.body = b"".join(body_parts)
        exchange.arrivals = tuple(arrivals)
        exchange.elapsed = time.monotonic() - started
