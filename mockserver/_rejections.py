"""What the connection layer (:mod:`mockserver._protocol`) answers by itself, in the OpenAI
error envelope: what aiohttp's parser rejects, a Content-Encoding nobody decodes, a request
target that names no path."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong

from mockserver._errors import ApiError

__all__ = ["SERVED_METHODS", "not_a_path", "protocol_error", "unsupported_encoding"]


def protocol_error(status: int, exc: BaseException | None) -> ApiError:
    """The envelope's error for what aiohttp's parser (or its handler machinery) rejected:
    415 for a content encoding it cannot decode here (``br`` without Brotli, ``zstd``), 431
    for a header line over 8,190 bytes or over 128 headers, 400 for any other malformed
    request (bad chunked framing included)."""
    if isinstance(exc, ContentEncodingError):  # raised at the headers: no decoder for it
        # "Can not decode content-encoding: brotli (br). Please install `Brotli`" -> brotli (br)
        reason = exc.message.split(". ")[0].rstrip(".").rpartition("content-encoding: ")[2]
        return ApiError(
            415,
            f"Unsupported Content-Encoding: {reason}; send identity, gzip or deflate.",
            code="unsupported_content_encoding",
        )
    too_many = isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
    if isinstance(exc, LineTooLong) or too_many:
        return ApiError(
            431,
            "Request header fields too large: at most 128 headers of 8,190 bytes each.",
            code="request_header_fields_too_large",
        )
    if status == 400:
        detail = exc.message if isinstance(exc, BadHttpMessage) else "malformed request"
        first = detail.strip().splitlines()[0] if detail.strip() else "malformed request"
        return ApiError(400, f"Malformed HTTP request: {first}", code="bad_request")
    if status >= 500:
        return ApiError(status, "The server had an error processing your request.")
    return ApiError(status, HTTPStatus(status).phrase)


# The encodings past the parser: aiohttp's parser raises ContentEncodingError (a 415) for br and
# zstd without their libraries; the mock's servers leave decoding to _body.decode_body
# (auto_decompress off), which decodes gzip and deflate and answers br and zstd with 415 too.
# Any other Content-Encoding is a 415 here.
_DECODED = frozenset({"", "identity", "gzip", "deflate", "br", "zstd"})


def unsupported_encoding(message: object) -> str | None:
    """The Content-Encoding of a parsed request that nobody decodes, else None."""
    headers = getattr(message, "headers", None)
    if headers is None:
        return None
    encoding = str(headers.get("Content-Encoding", "")).strip().lower()
    return None if encoding in _DECODED else encoding


# Methods the mock serves on some URL: the Allow of a request that names no URL.
SERVED_METHODS = "GET, HEAD, POST"


def not_a_path(request: web.BaseRequest) -> ApiError | None:
    """The envelope's error for a request whose target is no path the router can match:
    ``CONNECT host:port`` (a tunnel) or ``OPTIONS *`` (the whole server) get 405 with Allow,
    any other target that does not start with ``/``, 404; None for an ordinary path."""
    if request.method == "CONNECT" or (request.method == "OPTIONS" and request.raw_path == "*"):
        allow = {"Allow": SERVED_METHODS}
        return ApiError(405, f"Method not allowed. Allowed: {SERVED_METHODS}.", headers=allow)
    if not request.raw_path.startswith("/"):
        return ApiError(404, "Unknown request URL. Please check the URL.", code="unknown_url")
    return None
