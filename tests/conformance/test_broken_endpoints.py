"""The suite against endpoints broken in ways the mock does not offer: it never hangs or
crashes, and says what it saw."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp import web

from conformance import Endpoint, run
from mockserver import start_site


class RawServer:
    """An aiohttp app on a free loopback port in a thread; always stopped by the fixture."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.runner, self.port = self.loop.run_until_complete(start_site(self.app, "127.0.0.1", 0))
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def stall(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"id": "x"}\n\n')
    await asyncio.sleep(30)
    return response


async def garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"\x00\xffnot json at all", content_type="application/json")


async def html_500(request: web.Request) -> web.Response:
    return web.Response(
        status=500, text="<html>Internal Server Error</html>", content_type="text/html"
    )


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        (stall, "timed out"),
        (garbage, "not JSON"),
        (html_500, "unexpected status"),
    ],
    ids=["stalled-stream", "garbage-body", "html-500"],
)
def test_broken_endpoint_fails_with_a_message(handler, expect):
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    with RawServer(app) as server:
        started = time.monotonic()
        result = run(Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=2, read_timeout=1))
        elapsed = time.monotonic() - started
    # A safety net, not a speed figure: waiting out each 30 s stall would take minutes per run.
    assert elapsed < 120, f"the run took {elapsed:.0f} s"
    assert result.counts["failed"] >= 1
    assert result.counts["passed"] == 0
    messages = "\n".join(r.outcome.text for r in result.results)
    assert expect in messages
    assert "Traceback" not in messages


def test_refused_connection_is_a_failed_check_not_a_crash():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(Endpoint(f"http://127.0.0.1:{port}/v1", "m", timeout=2), ["resp_schema"])
    assert [r.status for r in result.results] == ["failed"]
    assert "no answer came" in result.results[0].message
