"""Errors while answering: a client that left mid-answer is no server error."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from mockserver import start_site
from mockserver._errors import CLIENT_CLOSED_REQUEST, error_answer

from ..conftest import captured_logs


@pytest.fixture
def server_log():
    """The records of the server's loggers (aiohttp, mockserver) during the test."""
    with captured_logs("aiohttp", "mockserver") as records:
        yield records


async def settle(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_a_client_leaving_mid_stream_is_no_error(server_log):
    written = asyncio.Event()
    gone = asyncio.Event()
    handled = []

    async def stream(request):
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"data: {}\n\n")
        written.set()
        await gone.wait()
        for _ in range(100):  # the client is gone: a write fails
            await response.write(b"data: {}\n\n")
            await asyncio.sleep(0.01)
        return response

    @web.middleware
    async def outcome(request, handler):
        response = await handler(request)
        handled.append(response.status)
        return response

    @web.middleware
    async def errors(request, handler):
        try:
            return await handler(request)
        except Exception as exc:
            return error_answer(request, exc, lambda r, e: web.Response())

    app = web.Application(middlewares=[outcome, errors])
    app.router.add_post("/stream", stream)
    runner, port = await start_site(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(f"http://127.0.0.1:{port}/stream")
            await written.wait()
            response.close()
        gone.set()
        await settle(lambda: handled)
        assert handled == [CLIENT_CLOSED_REQUEST]
    finally:
        await runner.cleanup()
    assert [r.getMessage() for r in server_log] == ["the client left during POST /stream"]
