from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import conformance
from mockserver import MockConfig, MockServer

# Whether the tests run against the installed package (a wheel in site-packages: tox, CI) rather
# than the source tree (an editable install). hypothesis mixes the constants of local source into
# what it draws and caches them, so a run's draws, and the files it writes, differ between the two.
INSTALLED_PACKAGE = "site-packages" in Path(conformance.__file__).parts

# Tests assert behaviour, not speed: no per-example deadline and no "generation is too slow"
# health check anywhere, so that a busy machine (load average 10 on 2 cores) fails nothing.
settings.register_profile(
    "chatcompat-tests", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("chatcompat-tests")


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The reference model's disk cache (``$CHATCOMPAT_CACHE``) in a folder of this session,
    not the user's ``~/.cache``, unless the variable is set already; the CLI processes tests
    start inherit it."""
    if os.environ.get("CHATCOMPAT_CACHE"):
        yield
        return
    os.environ["CHATCOMPAT_CACHE"] = str(tmp_path_factory.mktemp("chatcompat-cache"))
    try:
        yield
    finally:
        os.environ.pop("CHATCOMPAT_CACHE", None)


@pytest.fixture
def start_mock() -> Iterator[Callable[..., MockServer]]:
    """Start mock servers on free loopback ports; every one is stopped after the test."""
    servers: list[MockServer] = []

    def start(**config: object) -> MockServer:
        server = MockServer(MockConfig(**config))  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mock(start_mock: Callable[..., MockServer]) -> MockServer:
    """A mock server with the default configuration."""
    return start_mock()


class Records(logging.Handler):
    """Keep every record of the loggers it is attached to."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def captured_logs(*names):
    """Every record (DEBUG and up) of the loggers ``names`` while the block runs."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@contextlib.contextmanager
def cli_mock(stderr_path: Path, *args: str) -> Iterator[str]:
    """``chatcompat mock --port 0 ARGS`` as users start it, its stderr in ``stderr_path``:
    yields the URL its banner prints (``http://127.0.0.1:PORT/v1``); stopped by SIGTERM."""
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatcompat", "mock", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split(" on ")[-1].strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
