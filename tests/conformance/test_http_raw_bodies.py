"""A body sent as given goes on a connection of its own: uvicorn (llama-cpp-python's server)
closes the connection after malformed JSON without saying Connection: close, and the next
request on it, perhaps another check's, got "Connection reset by peer"."""

from __future__ import annotations

import asyncio

import aiohttp

from conformance._http import Endpoint, send

ANSWERS = {
    b"/bad": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr",
    b"/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


async def _two_requests() -> tuple[int | None, int | None, str | None]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if b"content-length" in line.lower()
        )
        await reader.readexactly(length)
        answer = ANSWERS[head.split(b" ")[1]]
        if b"connection: close" in head.lower():  # as HTTP/1.1 servers do (RFC 9112 9.6)
            answer = answer.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        writer.write(answer)
        await writer.drain()
        if b"/bad" in head.split(b"\r\n")[0]:
            # uvicorn closes such a connection without a word, a moment after the answer: a
            # request sent on it in that moment is reset
            await reader.read(1)
            writer.transport.abort()
            return
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint(f"http://127.0.0.1:{port}", "m", timeout=5)
    connector = aiohttp.TCPConnector(limit=1)
    async with server, aiohttp.ClientSession(connector=connector) as session:
        bad = await send(session, endpoint, "POST", "/bad", raw=b'{"messages": [}')
        ok = await send(session, endpoint, "POST", "/ok", body={})
    return bad.status, ok.status, ok.error


def test_the_request_after_malformed_json_gets_its_answer():
    assert asyncio.run(_two_requests()) == (500, 200, None)
