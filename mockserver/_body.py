"""A request body, read once and parsed once, within bounds every reader relies on.

:func:`read_body` reads the bytes of a request (the API routes, through the endpoint) with its
``Content-Encoding`` undone by aiohttp; :func:`parse_json` is the one JSON parse of a request
body, used by validation (``_validation.parse_body``), the cassette matcher and the recorder
(``_cassettes.parse_request_body``). A body that breaks a rule below is a 400 in the OpenAI
envelope (:class:`~mockserver._errors.ApiError`), never a 5xx:

- it nests at most :data:`MAX_JSON_DEPTH` arrays and objects deep: everything after the parse
  (schema validation, ``json.dumps`` of cassette keys, the defects' deep copies) recurses over
  the body, and Python's recursion limit (1,000 frames) would turn a deeper one into a
  ``RecursionError``;
- its strings (object keys included) are Unicode that UTF-8 can encode: a lone surrogate
  (``"\\ud800"``, or the bytes ED A0 80) is refused naming its place in the body, as strict
  parsers do (RFC 8259 section 8.2 leaves unpaired surrogates "unpredictable"; OpenAI and
  Anthropic answer 400, see anomalyco/opencode pull 17758), instead of failing when the answer
  is encoded;
- its numbers are doubles: 1e400 is refused, not read as infinity, and so is an integer past the
  largest double (``1`` and 400 zeros), which Python would keep exact and then fail to turn into
  a float (``OverflowError``) wherever a rule compares it with one;
- it decodes as its ``Content-Encoding`` says (a ``gzip`` header on a body that is not gzip,
  or on gzip data cut short), and decoded it stays within the app's ``client_max_size``.
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from mockserver._errors import ApiError

__all__ = ["CLOSE", "MAX_JSON_DEPTH", "decode_body", "json_path", "parse_json", "read_body"]

CLOSE = {"Connection": "close"}  # an error's headers: the connection closes after it

# A request is about 6 levels deep (messages, parts); a tool's parameters or a response format's
# schema at _schema_limits.MAX_SCHEMA_DEPTH adds 64 at most.
MAX_JSON_DEPTH = 128
# What may hold a surrogate once parsed: a \uD800-\uDFFF escape, or one encoded as UTF-8 bytes.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a pair decodes to one character: any left is lone


async def read_body(request: web.Request) -> bytes:
    """The body of ``request`` with its content encoding (gzip, deflate) undone; an ApiError
    400 when it does not decode as its ``Content-Encoding`` says (a gzip body cut short, its
    trailer missing, included) or cannot be read (with :data:`CLOSE`: the connection cannot
    carry another request), 413 past ``request.client_max_size`` decoded, 415 for ``br`` and
    ``zstd`` (no decoder here). The servers of :func:`mockserver.start_site` leave the body
    encoded (aiohttp's decoder does not check a gzip trailer): it is decoded here; a body that
    aiohttp already decoded is returned as it is."""
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, ContentEncodingError):
            encoding = request.headers.get("Content-Encoding", "")
            message = f"The request body is not the {encoding} data its Content-Encoding says"
        else:
            message = "The request body could not be read"
        # The connection closes after the answer: the rest of the body is not read (aiohttp
        # would read it after the answer, meet the error again and log it as unhandled).
        request.content.feed_eof()
        raise ApiError(
            400,
            f"{message} ({getattr(cause, 'message', None) or cause or exc}).",
            code="invalid_body",
            headers=CLOSE,
        ) from None
    if not raw or getattr(request.content, "total_compressed_bytes", None) is not None:
        return raw  # empty, or decoded by aiohttp (a runner with its auto_decompress on)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    return decode_body(raw, encoding, request.client_max_size)


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded from its content ``encoding`` (RFC 9110 section 8.4.1): ``gzip`` (one
    or more members, each whole with its trailer: RFC 1952), ``deflate`` (zlib, RFC 1950, or
    bare deflate data as some clients send it, as aiohttp reads it too); any other encoding
    as it is. An ApiError 400 when it does not decode, 413 when it decodes past ``limit``
    bytes, 415 for ``br`` and ``zstd``."""
    if encoding in ("br", "zstd"):
        raise ApiError(
            415,
            f"Unsupported Content-Encoding: {encoding}; send identity, gzip or deflate.",
            code="unsupported_content_encoding",
            headers=CLOSE,  # as the connection layer answers it (mockserver._protocol)
        )
    if encoding in ("gzip", "x-gzip"):
        wbits, members = 16 + zlib.MAX_WBITS, True
    elif encoding == "deflate":
        zlib_header = len(raw) > 1 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0
        wbits, members = (zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS), False
    else:
        return raw
    out, rest = bytearray(), raw
    while rest:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise _not_encoded(encoding, str(exc)) from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise ApiError(413, "Request body too large.", code="request_too_large")
        if not decoder.eof:
            raise _not_encoded(encoding, "it ends before its end of stream (cut short)")
        rest = decoder.unused_data
        if rest and not members:
            raise _not_encoded(encoding, "bytes follow its end of stream")
    return bytes(out)


def _not_encoded(encoding: str, reason: str) -> ApiError:
    return ApiError(
        400,
        f"The request body is not the {encoding} data its Content-Encoding says ({reason}).",
        code="invalid_body",
    )


def _not_json(reason: str) -> ApiError:
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        f"but what was sent was not valid JSON: {reason}.)",
    )


class _OutOfRange(ValueError):
    """A number past the largest double: Python reads 1e400 as infinity."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _OutOfRange(text)
    return value


_DIGITS_PAST_DOUBLE = 310  # the largest double has 309 digits: a longer integer is past it
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (_DIGITS_PAST_DOUBLE - 1))  # a body that may hold one


def _integer(text: str) -> int:
    if len(text) > _DIGITS_PAST_DOUBLE:  # also keeps int() off its 4,300-digit limit
        raise _OutOfRange(text)
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise _OutOfRange(text)
    return value


def json_path(path: tuple[str | int, ...]) -> str:
    """``path`` as a parameter name: ``messages[0].content`` (lone surrogates in keys shown
    as ``\\ud800``, so that the name can be encoded)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part.encode("utf-8", "backslashreplace").decode("utf-8")
            text += f".{key}" if text else key
    return text


def _abridged(path: tuple[str | int, ...], head: int = 4, tail: int = 2) -> str:
    """``path`` as :func:`json_path` writes it, its middle left out when it is long:
    ``messages[0][0][0] ... [0][0]`` (a path 128 levels deep would repeat ``[0]`` 128 times)."""
    if len(path) <= head + tail + 1:
        return json_path(path)
    rest = json_path((0, *path[-tail:]))[len("[0]") :]  # the tail as written after a parent
    return f"{json_path(path[:head])} ... {rest}"


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; an ApiError 400 saying why when it is not JSON (NaN and
    Infinity included, and numbers past the largest double, such as 1e400, which Python would
    read as infinity, or an integer of 400 digits: RFC 8259 section 6 expects IEEE 754
    doubles), nests deeper than :data:`MAX_JSON_DEPTH` or holds a lone surrogate."""
    try:
        # integers go through Python only in a body that may hold a long one (3x slower)
        parse_int = _integer if _LONG_DIGITS.search(raw) else None
        value = json.loads(
            raw, parse_constant=_reject_constant, parse_float=_finite, parse_int=parse_int
        )
    except RecursionError:
        raise _not_json(f"it nests deeper than {MAX_JSON_DEPTH} levels") from None
    except _OutOfRange as exc:
        raise _not_json(f"the number {str(exc)[:40]} is past the largest double") from None
    except ValueError as exc:
        raise _not_json(type(exc).__name__) from None
    # only a body with that many brackets can be too deep, only one with these bytes hold one
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    surrogates = _MAYBE_SURROGATE.search(raw) is not None
    offence = _offence(value, surrogates=surrogates) if deep or surrogates else None
    if offence is not None and len(raw) > _PATH_SEARCH_BYTES:  # naming the place costs seconds
        if offence == "deep":
            raise _not_json(f"it nests deeper than {MAX_JSON_DEPTH} levels")
        raise _lone_surrogate(())
    if offence is not None:
        _check(value, surrogates=surrogates)
    return value


_PATH_SEARCH_BYTES = 1 << 20  # a refused body up to 1 MiB is walked again to name the place
_CONTAINERS = (dict, list)


def _offence(value: Any, *, surrogates: bool) -> str | None:
    """``"deep"`` when ``value`` nests deeper than :data:`MAX_JSON_DEPTH`, ``"surrogate"``
    when (``surrogates`` asked) a string or key in it holds a lone surrogate, else None: a level
    at a time, without paths (2,000,000 ``{}`` in 0.6 s where the walk with paths took 3-6 s)."""
    level, depth = [value] if isinstance(value, _CONTAINERS) else [], 1
    while level:
        if depth > MAX_JSON_DEPTH:
            return "deep"
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            if surrogates:
                texts = [*node, *children] if isinstance(node, dict) else children
                if any(isinstance(t, str) and _SURROGATE.search(t) for t in texts):
                    return "surrogate"
            below += [c for c in children if isinstance(c, _CONTAINERS)]
        level, depth = below, depth + 1
    lone = surrogates and isinstance(value, str) and _SURROGATE.search(value) is not None
    return "surrogate" if lone else None


def _check(value: Any, *, surrogates: bool) -> None:
    """Raise the 400 of ``value`` nesting too deep or, with ``surrogates``, of a string in it
    that holds a lone surrogate (depth first, without recursion)."""
    kinds = (dict, list, str) if surrogates else (dict, list)
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _lone_surrogate(path)
            continue
        if len(path) >= MAX_JSON_DEPTH:  # item is at level len(path) + 1
            where = f"at '{_abridged(path)}', level {len(path) + 1}"
            raise _not_json(f"it nests deeper than {MAX_JSON_DEPTH} levels ({where})")
        if isinstance(item, dict):
            for key, child in item.items():
                if surrogates and _SURROGATE.search(key):
                    raise _lone_surrogate((*path, key))
                if isinstance(child, kinds):
                    stack.append((child, (*path, key)))
        else:
            stack.extend((c, (*path, i)) for i, c in enumerate(item) if isinstance(c, kinds))


def _lone_surrogate(path: tuple[str | int, ...]) -> ApiError:
    param = json_path(path) or None
    where = f"'{param}'" if param else "the body"
    return ApiError(
        400,
        f"Invalid unicode in {where}: a string holds a lone surrogate (U+D800 to U+DFFF), "
        "which is not valid Unicode; send well-formed UTF-8.",
        param=param,
        code="invalid_unicode",
    )
