"""The error middleware: a client that left mid-answer is no server error."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest
from aiohttp import web

from mockserver._errors import CLIENT_CLOSED_REQUEST, error_middleware
from mockserver._server import start_site


class Records(logging.Handler):
    """Keep every record of the loggers it is attached to."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def server_log():
    """The records of the server's loggers (aiohttp, mockserver) during the test."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("aiohttp", "mockserver")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler.records
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


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

    app = web.Application(middlewares=[outcome, error_middleware(lambda r, e: web.Response())])
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
