"""Many concurrent streams against one mock, a third of the clients leaving mid-stream: every
other stream ends with [DONE], and the server logs no traceback and leaks no task or socket."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import aiohttp
import pytest

from mockserver import MockConfig, create_app, start_site

from ..conftest import captured_logs

STREAMS = 1000
LEAVE_EVERY = 3  # every third client disconnects after its first events
LEAVE_AFTER = 3  # events read before leaving
FD_TOLERANCE = 10
BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Hi there!"}],
    "stream": True,
}


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def server_log():
    """The records of the server's loggers (aiohttp, mockserver, asyncio) during the test."""
    with captured_logs("aiohttp", "mockserver", "asyncio") as records:
        yield records


async def one_stream(session, url, leave):
    """Read one stream to its end (the last event), or leave after a few events (None)."""
    async with session.post(url, json=BODY) as response:
        assert response.status == 200
        events = 0
        last = b""
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            events += 1
            last = line
            if leave and events == LEAVE_AFTER:
                response.close()  # drop the connection mid-stream
                return None
        return last


async def settle(condition, timeout=10.0):
    """Wait until ``condition()`` holds (the server finishing handlers and closing sockets)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts fds in /proc/self/fd")
@pytest.mark.timeout(120)
async def test_a_thousand_streams_a_third_leaving_midway(server_log):
    # One event per write, 5 ms apart: a client that leaves does so while its stream is written.
    runner, port = await start_site(create_app(MockConfig(itl=0.005)), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        tasks_before = len(asyncio.all_tasks())
        fds_before = open_fds()
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            results = await asyncio.gather(
                *(one_stream(session, url, i % LEAVE_EVERY == 0) for i in range(STREAMS))
            )
        elapsed = time.monotonic() - started
        left = [r for i, r in enumerate(results) if i % LEAVE_EVERY == 0]
        completed = [r for i, r in enumerate(results) if i % LEAVE_EVERY != 0]
        assert left == [None] * len(left)
        assert completed == [b"data: [DONE]\n"] * len(completed)
        await settle(lambda: len(asyncio.all_tasks()) <= tasks_before)
        assert len(asyncio.all_tasks()) == tasks_before, asyncio.all_tasks()
        await settle(lambda: open_fds() <= fds_before + FD_TOLERANCE)
        assert open_fds() <= fds_before + FD_TOLERANCE
        assert elapsed < 120, elapsed  # a safety net: nothing waited for a client that left
    finally:
        await runner.cleanup()
    noisy = [r for r in server_log if r.exc_info or r.levelno >= logging.WARNING]
    assert noisy == [], "\n".join(logging.Formatter().format(r) for r in noisy[:5])
    # The server saw every leaving client go while it was still writing that client's stream.
    gone = [r for r in server_log if r.getMessage().startswith("the client left during POST")]
    assert len(gone) == len(left)
