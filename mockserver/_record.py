"""The recording proxy of ``chatcompat record``: forwards each request to the upstream API,
streams the answer back as it arrives and writes the exchange as a cassette, with API keys and
configured secrets redacted (also a secret split across two writes)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from mockserver._body import read_body
from mockserver._cassettes import (
    REDACTED,
    SECRET_HEADERS,
    UNSTORED_HEADERS,
    Cassette,
    Write,
    parse_request_body,
    save_cassette,
)
from mockserver._errors import ApiError, error_response
from mockserver._redaction import (
    MIN_HEADER_SECRET,
    query_secrets,
    redact,
    redact_json,
    redact_text,
    redact_url,
    redact_writes,
    request_secrets,
)

__all__ = [
    "MIN_HEADER_SECRET",
    "RecordConfig",
    "create_record_app",
    "record_exchange",
    "redact",
    "redact_writes",
    "serve_recorder",
]

log = logging.getLogger("mockserver.record")


@dataclass(frozen=True)
class RecordConfig:
    upstream: str  # the upstream API base, e.g. https://api.openai.com/v1
    directory: str  # where cassettes are written
    prefix: str = "/v1"  # the recorder's API base: the path after it is appended to upstream
    secrets: tuple[str, ...] = ()  # also redacted wherever they appear
    timeout: float = 600.0  # seconds of upstream silence before a request is given up

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with it, got {self.prefix!r}")


RECORD = web.AppKey("record", RecordConfig)
SESSION = web.AppKey("session", aiohttp.ClientSession)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _field_value(value: str) -> str:
    """``value`` with each control character but HTAB replaced by a space, as RFC 9110
    section 5.5 has a recipient do with CR, LF and NUL (field-content allows none of the others
    either): aiohttp refuses to send them, which made an upstream's bad header a 500."""
    return _CONTROL.sub(" ", value)


def _upstream_headers(upstream: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The upstream answer's headers as they can be sent on (see :func:`_field_value`)."""
    return [(name, _field_value(value)) for name, value in upstream.headers.items()]


def _stored_headers(headers: Iterable[tuple[str, str]], secrets: Sequence[str]) -> dict[str, str]:
    """Headers worth keeping: no hop-by-hop ones, secret ones as ``[REDACTED]``."""
    kept: dict[str, str] = {}
    for name, value in headers:
        if name.lower() in UNSTORED_HEADERS:
            continue
        if name.lower() in SECRET_HEADERS:
            kept[name] = REDACTED
        else:
            kept[name] = redact(value.encode("utf-8"), secrets).decode("utf-8", errors="replace")
    return kept


def _file_name(method: str, path: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[:60] or "root"
    return f"{now}-{method.lower()}-{slug}-{uuid.uuid4().hex[:8]}.json"


def _upstream_url(config: RecordConfig, request: web.Request) -> tuple[str, str]:
    """The request's path after the recorder's prefix, and the upstream URL it is sent to."""
    path = request.path
    if config.prefix and (path == config.prefix or path.startswith(config.prefix + "/")):
        path = path[len(config.prefix) :]
    url = config.upstream.rstrip("/") + path
    if request.rel_url.raw_query_string:  # as sent: decoding would turn %2B into + into space
        url += "?" + request.rel_url.raw_query_string
    return path, url


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, headers: list[tuple[str, str]]
) -> tuple[web.StreamResponse, list[Write], float]:
    """Stream ``upstream``'s answer back to ``request`` as it arrives, with ``headers`` (its
    headers as they can be sent on): the response (its end not yet written), its writes (each
    with the seconds since the previous one, the first since the headers) and the loop time of
    the last."""
    answer_headers = CIMultiDict((k, v) for k, v in headers if k.lower() not in UNSTORED_HEADERS)
    reason = _field_value(upstream.reason) if upstream.reason else None
    response = web.StreamResponse(status=upstream.status, reason=reason, headers=answer_headers)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    writes, last = [], loop.time()
    async for data in upstream.content.iter_any():
        now = loop.time()
        writes.append(Write(now - last, data))
        last = now
        await response.write(data)
    return response, writes, last


async def proxy(request: web.Request) -> web.StreamResponse:
    """Forward one request upstream, stream the answer back, and store it as a cassette."""
    try:
        raw = await read_body(request)
    except ApiError as unreadable:  # a body that is not what its Content-Encoding says
        return error_response(unreadable)
    return await record_exchange(request, raw, request.app[RECORD], request.app[SESSION])


async def record_exchange(
    request: web.Request,
    raw: bytes,
    config: RecordConfig,
    session: aiohttp.ClientSession,
    *,
    key: str | None = None,
) -> web.StreamResponse:
    """Forward ``request`` (its body ``raw``) to ``config.upstream`` with ``session``, stream
    the answer back and store the exchange as a cassette in ``config.directory``, redacted;
    ``key`` (when set) goes upstream as ``Authorization: Bearer <key>`` instead of the
    client's credentials. An unreachable upstream is a 502 in the envelope."""
    path, url = _upstream_url(config, request)
    forward = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in UNSTORED_HEADERS
    )
    forward["Accept-Encoding"] = "identity"
    if key is not None:
        forward["Authorization"] = f"Bearer {key}"
    query = request.rel_url.raw_query_string
    secrets = [*config.secrets, *request_secrets(request.headers, query)]
    secrets += [key] if key else []
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        upstream = await session.request(
            request.method, url, data=raw or None, headers=forward, allow_redirects=False
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = redact_text(str(exc), [*secrets, *query_secrets(query)])
        log.warning("upstream %s failed: %s", redact_url(url), reason)
        error = ApiError(502, f"The upstream {config.upstream} could not be reached: {reason}.")
        return error_response(error)
    async with upstream:
        wait = loop.time() - started
        headers = _upstream_headers(upstream)
        response, writes, last = await _relay(request, upstream, headers)
    stream = upstream.headers.get("Content-Type", "").startswith("text/event-stream")
    if stream:
        stored = redact_writes(writes, secrets)
    else:
        body = redact(b"".join(w.data for w in writes), secrets)
        stored = (Write(last - started - wait, body),)
    cassette = Cassette(
        method=request.method,
        path=path,
        body=redact_json(parse_request_body(redact(raw, secrets)), secrets),
        status=upstream.status,
        headers=_stored_headers(headers, secrets),
        writes=stored,
        stream=stream,
        request_headers=_stored_headers(request.headers.items(), secrets),
        wait=wait,
    )
    saved = save_cassette(cassette, config.directory, _file_name(request.method, path))
    log.info("recorded %s %s -> %s %s", request.method, path, upstream.status, saved)
    await response.write_eof()  # after the cassette is saved: a client that has the whole
    return response  # answer finds the cassette


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    """One upstream session per app, closed at cleanup."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=app[RECORD].timeout)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=True) as session:
        app[SESSION] = session
        yield


def create_record_app(config: RecordConfig) -> web.Application:
    """The recording proxy as an aiohttp application (every method, every path)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[RECORD] = config
    app.cleanup_ctx.append(_client_session)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def serve_recorder(config: RecordConfig, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Record in the foreground until SIGINT or SIGTERM."""
    from mockserver._server import run_until_signalled  # _server imports the mock's app

    run_until_signalled(
        create_record_app(config),
        host,
        port,
        lambda bound: (
            f"chatcompat record: http://{host}:{bound}{config.prefix} -> "
            f"{config.upstream}, cassettes in {config.directory}"
        ),
    )
