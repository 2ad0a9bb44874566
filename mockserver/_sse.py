"""Server-sent events: encoding and the one writer every stream goes through."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

__all__ = ["DONE", "SSE_HEADERS", "encode_chunk", "encode_data", "write_stream"]

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def encode_data(data: str) -> bytes:
    """One SSE event whose data is ``data`` (a single line): ``data: <data>\\n\\n``."""
    return b"data: " + data.encode("utf-8") + b"\n\n"


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    """One SSE event carrying ``chunk`` as compact JSON."""
    return encode_data(json.dumps(chunk, ensure_ascii=False, separators=(",", ":")))


async def write_stream(
    request: web.Request,
    events: Iterable[bytes],
    *,
    content_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send ``events`` as a 200 stream, one write per event, then close."""
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **(headers or {})})
    response.content_type = content_type
    response.charset = "utf-8"
    await response.prepare(request)
    for event in events:
        await response.write(event)
    await response.write_eof()
    return response
