"""conformance._http against raw servers that close kept-alive connections as uvicorn does
after a 500 (transformers serve, issue 11): the next request on the pool is sent once more."""

from __future__ import annotations

import asyncio

import aiohttp

from conformance._http import Endpoint, Exchange, send

ERROR = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\n\r\nInternal Server Error"
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request (headers and a Content-Length body); False at the end of the stream."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return False
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)
    return True


async def _exchanges(answer_first: bytes, *, close_always: bool) -> tuple[list[Exchange], int]:
    """Two POSTs over one pooled connection to a server whose first answer is
    ``answer_first`` followed by a close with no Connection: close (every connection closed
    before any answer if ``close_always``); the exchanges and the connections the server saw."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while await _read_request(reader):
                if close_always:
                    break
                writer.write(answer_first if connections == 1 else OK)
                await writer.drain()
                if connections == 1:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint(f"http://127.0.0.1:{port}/v1", "m", timeout=5, read_timeout=5)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            first = await send(session, endpoint, "POST", "/chat/completions", body={"a": 1})
            # at once, on the connection the server is closing (as the next check does)
            second = await send(session, endpoint, "POST", "/chat/completions", body={"a": 2})
    finally:
        server.close()
        await server.wait_closed()
    return [first, second], connections


def test_a_request_on_a_connection_the_server_closed_is_sent_once_more():
    (first, second), connections = asyncio.run(_exchanges(ERROR, close_always=False))
    assert (first.status, first.error) == (500, None)
    assert (second.status, second.error, second.body) == (200, None, b'{"ok": true}')
    assert connections == 2


def test_a_server_that_always_closes_is_recorded_after_two_tries():
    (first, second), connections = asyncio.run(_exchanges(ERROR, close_always=True))
    for exchange in (first, second):
        assert exchange.status is None
        assert exchange.error is not None
    assert connections == 4  # each request tried twice, never more
