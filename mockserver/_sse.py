"""Server-sent events: encoding (the pipeline's "encode" stage for streams) and the writers
every stream goes through: :func:`write_stream` for events made beforehand,
:func:`write_as_made` for events that come while they are made."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

from aiohttp import web

__all__ = [
    "DONE",
    "SSE_CONTENT_TYPE",
    "SSE_HEADERS",
    "encode_chunk",
    "encode_chunks",
    "encode_data",
    "encode_error",
    "encode_error_line",
    "open_stream",
    "write_as_made",
    "write_stream",
]

DONE = b"data: [DONE]\n\n"
SSE_CONTENT_TYPE = "text/event-stream"
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


def encode_chunks(chunks: Iterable[dict[str, Any]]) -> bytes:
    """The events of ``chunks``, joined: what one write sends."""
    return b"".join(map(encode_chunk, chunks))


def encode_error(body: dict[str, Any]) -> bytes:
    """The event carrying an error envelope ``body`` in a 200 stream: ``data: {"error": ...}``
    (``json.dumps``' default separators, as OpenAI writes it)."""
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def encode_error_line(body: dict[str, Any]) -> bytes:
    """An error envelope ``body`` as an ``error: {...}`` line of a 200 stream (as llama.cpp's
    server has sent a stream's error): a field no event-stream parser reads, so clients see none."""
    return b"error: " + json.dumps(body).encode() + b"\n\n"


async def open_stream(
    request: web.Request,
    *,
    content_type: str = SSE_CONTENT_TYPE,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """A started 200 stream (the SSE headers sent, with ``headers``), for events to follow."""
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **(headers or {})})
    response.content_type = content_type
    response.charset = "utf-8"
    await response.prepare(request)
    return response


async def write_stream(
    request: web.Request,
    events: Iterable[bytes],
    *,
    content_type: str = SSE_CONTENT_TYPE,
    headers: dict[str, str] | None = None,
    delays: Sequence[float] | None = None,
    end: str = "eof",
) -> web.StreamResponse:
    """Send ``events`` as a 200 stream: without ``delays`` in one write, else one write per
    event once its pause (from the previous event's due time, at least half its length) is over;
    ``end`` "eof" completes the body, "close" closes the connection mid-body (FIN), "reset"
    aborts it (TCP RST)."""
    if delays is None and end == "eof":  # the instant path: a plain response, one write
        all_headers = {**SSE_HEADERS, **(headers or {})}
        return web.Response(
            body=b"".join(events), headers=all_headers, content_type=content_type, charset="utf-8"
        )
    response = await open_stream(request, content_type=content_type, headers=headers)
    if delays is None:
        await response.write(b"".join(events))
    else:  # pauses count from the previous due time (a late wake-up is made up), but never
        # shrink below half their length (a server running late spaces events, not bursts them)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for event, delay in zip(events, delays, strict=True):
            deadline += delay
            pause = max(deadline - loop.time(), delay / 2)
            if pause > 0:
                await asyncio.sleep(pause)
            await response.write(event)
    if end == "eof":
        await response.write_eof()
    else:
        _cut(request, reset=end == "reset")
    return response


async def write_as_made(
    request: web.Request, events: AsyncGenerator[bytes, None], *, headers: dict[str, str]
) -> web.StreamResponse:
    """Send ``events`` as a 200 stream (with ``headers``), each as soon as it comes; ``events``
    is closed when the stream ends early (the client left)."""
    response = await open_stream(request, headers=headers)
    async with contextlib.aclosing(events):
        async for data in events:
            await response.write(data)
    await response.write_eof()
    return response


def _cut(request: web.Request, *, reset: bool) -> None:
    """Close the connection under a started stream: FIN, or RST (SO_LINGER 0, then abort)."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
