"""Reproductions of a failure: each request a failure is about, recorded whole for the JSON
report (credentials as placeholders), and a ``curl`` command that sends it again as it was sent.

A request record (:func:`request_record`) is JSON data::

    {"method": "POST", "url": "http://HOST/v1/chat/completions",
     "headers": {"Content-Type": "application/json",
                 "Authorization": "Bearer $CHATCOMPAT_API_KEY"},
     "body": "{...}" | null, "body_base64": "..." | null, "stream": bool, "max_time_s": int,
     "seen": {"status": int | null, "content_type": str | null, "body": str | null,
              "error": str | null},
     "curl": "curl -sS -i ..."}

``body`` is the body exactly as sent (JSON text, or the raw text of a raw-body check) when it
is UTF-8 with no control character but tab and LF; else ``body_base64`` holds its bytes. The
run's key is never recorded: a header that carried it holds ``$CHATCOMPAT_API_KEY``, which the
curl command reads from the environment; any other credential is ``<redacted>``.
"""

from __future__ import annotations

import base64
import math
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conformance import _json as strict_json
from conformance._http import KEY_VARIABLE
from conformance._shown import printable, shown

if TYPE_CHECKING:
    from conformance._http import Exchange
    from conformance._outcome import Outcome

__all__ = ["curl_command", "rebased", "repro_of", "request_record"]

_SEEN_EXCERPT = 600  # chars of the answer's body kept in ``seen`` (the middle elided)
# bytes: a longer body goes through stdin (Linux caps one argument at 128 KiB)
_ARGUMENT_LIMIT = 64 * 1024
_EXPECT_AT = 1024 * 1024  # bytes: curl sends "Expect: 100-continue" from here; the suite never did


def _body_text(sent: bytes) -> str | None:
    """``sent`` as text when it can be shown and quoted as it is (UTF-8, no control character
    but tab and LF), else None."""
    try:
        text = sent.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if printable(text) == text else None


def _headers(exchange: Exchange) -> dict[str, str]:
    """The request's headers as sent (aiohttp's Content-Type for a bytes body included), the
    credentials as their placeholders."""
    headers = dict(exchange.sent_headers)
    if exchange.sent is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/octet-stream"  # what aiohttp sends for bytes
    headers.update(exchange.credentials)
    return headers


def _streams(exchange: Exchange, body: str | None) -> bool:
    """Whether the request asked for a stream (a JSON object body with ``"stream": true``) or
    got one."""
    try:
        request = strict_json.loads(body) if body is not None else None
    except ValueError:
        request = None
    asked = isinstance(request, dict) and request.get("stream") is True
    return asked or exchange.content_type == "text/event-stream"


def request_record(exchange: Exchange, *, max_time: float) -> dict[str, Any]:
    """The record of ``exchange``'s request and of what was seen (the module's shape); its
    ``curl`` gives up after ``max_time`` seconds (rounded up)."""
    body = None if exchange.sent is None else _body_text(exchange.sent)
    encoded = None
    if exchange.sent is not None and body is None:
        encoded = base64.b64encode(exchange.sent).decode("ascii")
    record: dict[str, Any] = {
        "method": exchange.method,
        "url": exchange.url,
        "headers": _headers(exchange),
        "body": body,
        "body_base64": encoded,
        "stream": _streams(exchange, body),
        "redirects": bool(exchange.redirects),
        "max_time_s": max(1, math.ceil(max_time)),
        "seen": {
            "status": exchange.status,
            "content_type": exchange.headers.get("content-type"),
            "body": shown(exchange.body, limit=_SEEN_EXCERPT) if exchange.body else None,
            "error": exchange.error,
        },
    }
    record["curl"] = curl_command(record)
    return record


def repro_of(outcome: Outcome, *, max_time: float) -> dict[str, Any] | None:
    """The report's ``repro`` of a check's outcome: ``{"requests": [record, ...]}`` (the
    exchange its failure is about, then the other of a pair), or None when it has none."""
    exchanges = [e for e in (outcome.exchange, outcome.pair) if e is not None]
    if not exchanges:
        return None
    return {"requests": [request_record(e, max_time=max_time) for e in exchanges]}


def rebased(url: str, old_base: str, new_base: str) -> str:
    """``url`` under ``new_base`` instead of ``old_base`` (unchanged when it is not under it)."""
    old = old_base.rstrip("/")
    if url == old or url.startswith(old + "/") or url.startswith(old + "?"):
        return new_base.rstrip("/") + url[len(old) :]
    return url


def _header_argument(name: str, value: str) -> str:
    """``-H`` argument: double quotes where it reads the key from the environment."""
    if KEY_VARIABLE in value:
        return f'"{name}: {value}"'  # the placeholder is all the value holds of the key
    return shlex.quote(f"{name}: {value}")


def curl_command(record: Mapping[str, Any], *, url: str | None = None) -> str:
    """A ``curl`` command (POSIX shell) that sends ``record``'s request again, to ``url`` if
    given: ``-sS -i`` (status and headers shown), ``-N`` for a stream, ``--max-time``, ``-L``
    when the suite followed redirects; the body quoted by :func:`shlex.quote`, through stdin
    when long (``printf``, a shell builtin) or not text (``base64 -d``)."""
    words = ["curl", "-sS", "-i"]
    if record.get("stream"):
        words.append("-N")
    if record.get("redirects"):
        words.append("-L")
    words += ["--max-time", str(record["max_time_s"])]
    body, encoded = record.get("body"), record.get("body_base64")
    sends = body is not None or encoded is not None
    if record["method"] != ("POST" if sends else "GET"):
        words += ["-X", shlex.quote(record["method"])]
    words.append(shlex.quote(url or record["url"]))
    for name, value in record["headers"].items():
        words += ["-H", _header_argument(name, value)]
    size = len(body.encode()) if body is not None else len(encoded or "") * 3 // 4
    if sends and size >= _EXPECT_AT:
        words += ["-H", shlex.quote("Expect:")]
    if encoded is not None:
        return f"printf %s {encoded} | base64 -d | " + " ".join([*words, "--data-binary", "@-"])
    if body is not None and len(body) > _ARGUMENT_LIMIT:
        return f"printf %s {shlex.quote(body)} | " + " ".join([*words, "--data-binary", "@-"])
    if body is not None:
        words += ["--data-raw", shlex.quote(body)]
    return " ".join(words)
