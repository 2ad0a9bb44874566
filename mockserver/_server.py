"""Running the mock: in a background thread (tests, the embedded suite) or in the foreground."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mockserver._access_log import LOGGER_NAME, AccessLines, buffered_access_logger
from mockserver._app import create_app
from mockserver._config import ConnectionLimits, MockConfig
from mockserver._listen import listen, throttle_accept_errors
from mockserver._protocol import MockRunner
from mockserver._signals import stop_on_signals

__all__ = ["MockServer", "access_lines", "run_until_signalled", "serve_forever", "start_site"]


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    access_log_class: type[AbstractAccessLogger] | None = None,
    shutdown_timeout: float = 1.0,
    reuse_port: bool = False,
    limits: ConnectionLimits | None = None,
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 = a free port); the runner and the bound port.
    On cleanup, requests still running get ``shutdown_timeout`` seconds, then are cancelled;
    ``access_log`` logs each request, through ``logging`` (logger "aiohttp.access") unless
    ``access_log_class`` says how (see :mod:`mockserver._access_log`);
    ``reuse_port`` sets SO_REUSEPORT so that several processes can share the port.
    Connections follow ``limits`` (default ``ConnectionLimits()``: header, body and idle
    timeouts, a connection cap; see :mod:`mockserver._protocol`), protocol errors are answered
    in the error envelope, and failures to accept are logged at most every 10 s."""
    # bodies stay encoded: _body.read_body decodes them, checking what aiohttp does not (the
    # trailer of gzip data) and bounding the decoded size
    options: dict[str, object] = {"shutdown_timeout": shutdown_timeout, "auto_decompress": False}
    if not access_log:
        options["access_log"] = None
    elif access_log_class is not None:
        options["access_log_class"] = access_log_class
    throttle_accept_errors(asyncio.get_running_loop())
    runner = MockRunner(app, limits or ConnectionLimits(), **options)
    await runner.setup()
    return runner, await listen(runner, host, port, reuse_port=reuse_port)


class MockServer:
    """The mock on a loopback port in a thread of its own; a context manager that always stops.

    >>> with MockServer(MockConfig()) as server:
    ...     server.base_url  # 'http://127.0.0.1:<port>/v1'
    """

    def __init__(
        self, config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or MockConfig()
        self.host = host
        self.port = port
        self.app: web.Application | None = None  # the application served, once started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The URL clients use as their base (ends with the API prefix)."""
        return f"http://{self.host}:{self.port}{self.config.prefix}"

    def start(self, timeout: float = 10.0) -> MockServer:
        """Start serving; returns once the port is bound (raises if it could not be)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name="chatcompat-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"mock server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError(f"mock server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self.app = create_app(self.config)
            self._runner, self.port = self._loop.run_until_complete(
                start_site(self.app, self.host, self.port, limits=self.config.limits)
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._runner.cleanup())
            pending = asyncio.all_tasks(self._loop)  # handlers cleanup gave up on
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread; safe to call twice."""
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    banner: Callable[[int], str],
    limits: ConnectionLimits | None = None,
) -> None:
    """Serve ``app`` in the foreground until SIGINT or SIGTERM, logging each request to stderr
    (buffered: :mod:`mockserver._access_log`) while the "aiohttp.access" logger is enabled
    for INFO; prints ``banner(bound_port)`` once listening. Connections follow ``limits``
    (see start_site). Stops within a few seconds of the signal, also when a request blocks
    the loop (see ``_signals.stop_on_signals``)."""

    async def main() -> None:
        stop = asyncio.Event()
        restore = stop_on_signals(stop)
        lines = access_lines()
        try:
            runner, bound = await start_site(
                app,
                host,
                port,
                access_log=lines is not None,
                access_log_class=None if lines is None else buffered_access_logger(lines),
                limits=limits,
            )
            print(banner(bound), flush=True)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            restore()
            if lines is not None:
                lines.flush()

    asyncio.run(main())


def access_lines() -> AccessLines | None:
    """The buffer of a foreground server's access log on stderr, or None when the
    "aiohttp.access" logger is not enabled for INFO (``--log-level warning``)."""
    if not logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO):
        return None
    return AccessLines(sys.stderr)


def serve_forever(config: MockConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the mock in the foreground until SIGINT or SIGTERM, logging each request."""
    run_until_signalled(
        create_app(config),
        host,
        port,
        lambda bound: f"chatcompat mock listening on http://{host}:{bound}{config.prefix}",
        config.limits,
    )
