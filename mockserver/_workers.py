"""Several worker processes serving the mock on one port (SO_REUSEPORT) and the parent that
starts them, forwards SIGINT / SIGTERM to them and stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

from aiohttp import web

from mockserver._access_log import LOGGER_NAME, buffered_access_logger
from mockserver._app import create_app
from mockserver._config import MockConfig
from mockserver._server import access_lines, start_site
from mockserver._signals import stop_on_signals

__all__ = ["LOG_FORMAT", "WORKER_HEADER", "reserve_port", "serve_workers"]

WORKER_HEADER = "x-chatcompat-worker"  # the pid of the worker process that answered
LOG_FORMAT = "%(asctime)s [%(process)d] %(name)s %(message)s"

log = logging.getLogger("mockserver")


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0 = a free port) with SO_REUSEPORT, not listening: it
    keeps the port from other users while the workers bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _tag_worker(request: web.Request, response: web.StreamResponse) -> None:
    """Say which worker answered, in every response's headers."""
    response.headers[WORKER_HEADER] = str(os.getpid())


async def _worker(config: MockConfig, host: str, port: int, ready: Any) -> None:
    """One worker: serve on the shared port until SIGINT, SIGTERM or the parent goes away."""
    app = create_app(config)
    app.on_response_prepare.append(_tag_worker)
    stop = asyncio.Event()
    restore = stop_on_signals(stop)  # within a few seconds, also when the loop is blocked
    lines = access_lines()
    logger = (
        None if lines is None else buffered_access_logger(lines, f"[{os.getpid()}] {LOGGER_NAME}")
    )
    try:
        runner, _ = await start_site(
            app,
            host,
            port,
            access_log=lines is not None,
            access_log_class=logger,
            reuse_port=True,
            limits=config.limits,
        )
        ready.put(os.getpid())
        parent = os.getppid()
        try:
            while not stop.is_set() and os.getppid() == parent:  # an orphan stops by itself
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            await runner.cleanup()
    finally:
        restore()
        if lines is not None:
            lines.flush()


def _worker_main(config: MockConfig, host: str, port: int, ready: Any, level: int) -> None:
    """The target of a worker process; it logs at ``level``."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    asyncio.run(_worker(config, host, port, ready))


def _wait_ready(
    processes: list[multiprocessing.process.BaseProcess],
    ready: Any,
    timeout: float,
    stopping: list[int],
) -> list[int]:
    """The pids of the workers once each has bound the port; raises if one exits first."""
    pids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(pids) < len(processes) and not stopping:
        if not all(p.is_alive() for p in processes):
            raise RuntimeError("a worker exited before it was ready (see its log above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not start within {timeout} s")
        with contextlib.suppress(queue.Empty):
            pids.append(ready.get(timeout=0.2))
    return pids


def serve_workers(
    config: MockConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    *,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    log_level: int = logging.INFO,
) -> int:
    """Serve with ``workers`` processes on one port until SIGINT or SIGTERM (forwarded to the
    workers, which log at ``log_level``: INFO logs each request); the exit status: 0 after a
    signal, 1 if a worker died or did not start."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: list[multiprocessing.process.BaseProcess] = []
    status = 1
    try:
        with reserve_port(host, port) as reserved:
            port = int(reserved.getsockname()[1])
            for _ in range(workers):
                started = context.Process(
                    target=_worker_main, args=(config, host, port, ready, log_level), daemon=True
                )
                started.start()
                processes.append(started)
            pids = _wait_ready(processes, ready, start_timeout, stopping)
        if not stopping:
            print(f"chatcompat mock listening on http://{host}:{port}{config.prefix}", flush=True)
            log.info("%d workers on port %d: pids %s", workers, port, " ".join(map(str, pids)))
        while not stopping and all(p.is_alive() for p in processes):
            wait([p.sentinel for p in processes], timeout=0.5)
        status = 0 if stopping else 1
        if status:
            log.error("a worker exited; stopping the others")
    except (OSError, RuntimeError) as exc:  # the port is taken, a worker did not start
        print(f"chatcompat mock: {exc}", file=sys.stderr)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(stop_timeout)
            if process.is_alive():
                process.kill()
                process.join()
        ready.close()
        ready.join_thread()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
