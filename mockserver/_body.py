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
- it decodes as its ``Content-Encoding`` says (a ``gzip`` header on a body that is not gzip).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from mockserver._errors import ApiError

__all__ = ["CLOSE", "MAX_JSON_DEPTH", "json_path", "parse_json", "read_body"]

CLOSE = {"Connection": "close"}  # an error's headers: the connection closes after it

# A request is about 6 levels deep (messages, parts); a tool's parameters or a response format's
# schema at _schema_limits.MAX_SCHEMA_DEPTH adds 64 at most.
MAX_JSON_DEPTH = 128
# What may hold a surrogate once parsed: a \uD800-\uDFFF escape, or one encoded as UTF-8 bytes.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a pair decodes to one character: any left is lone


async def read_body(request: web.Request) -> bytes:
    """The body of ``request``, its content encoding (gzip, deflate) undone by aiohttp; an
    ApiError 400 when it does not decode as its ``Content-Encoding`` says or cannot be read
    (with :data:`CLOSE`: the connection cannot carry another request)."""
    try:
        return await request.read()
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
    if deep or surrogates:
        _check(value, surrogates=surrogates)
    return value


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
            where = json_path(path)
            raise _not_json(f"it nests deeper than {MAX_JSON_DEPTH} levels (at '{where}')")
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
