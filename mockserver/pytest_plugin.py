"""The ``chatcompat`` pytest plugin: fixtures only, layered like pytest-httpserver's.

``chat_mock_config`` and ``chat_mock_listen_address`` (session-scoped: override them in a
conftest) → ``chat_mock_server`` (one mock per session, in a thread on a loopback port) →
``chat_mock`` (per test: that server; what a test scripts on it, faults, defects and cassettes,
and the fail-first counts and replay order are reset before and after each test). With
pytest-asyncio, ``chat_mock_async`` runs a mock of the test's own in the test's event loop. A
session hook stops any server left running.

Validation level (``MockConfig.validation``: strict, schema, off): ``--chat-mock-validation``
or the ini option ``chat_mock_validation`` sets the default ``chat_mock_config``'s; the marker
``@pytest.mark.chat_mock_validation("schema")`` sets it for one test on ``chat_mock``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from mockserver._app import (
    CASSETTES,
    CONFIG,
    FAIL_COUNTER,
    SCRIPTED_CASSETTES,
    SCRIPTED_DEFECTS,
    SCRIPTED_FAULTS,
    STATE,
)
from mockserver._cassettes import Cassette, load_cassette, load_directory
from mockserver._config import MockConfig
from mockserver._defects import Defect
from mockserver._faults import FAULT_HEADER, Fault
from mockserver._server import MockServer

__all__ = [
    "ChatMock",
    "chat_mock",
    "chat_mock_config",
    "chat_mock_listen_address",
    "chat_mock_server",
]

SERVERS = pytest.StashKey[list[MockServer]]()  # the servers this plugin started in a session
ASYNC_FIXTURES = "mockserver._pytest_async"  # chat_mock_async, registered with pytest-asyncio


class ChatMock:
    """One test's handle on a running mock: its URLs and what the test scripts on it."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.config = app[CONFIG]
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """The URL clients use as their base (ends with the API prefix, ``/v1`` by default)."""
        return f"http://{self.host}:{self.port}{self.config.prefix}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` under the API prefix (``url("/models")``)."""
        return self.base_url + path

    def fault(self, spec: str) -> Fault:
        """Inject the fault ``spec`` (``status=429;retry-after-ms=50``, ``fail-first=2;...``,
        ``disconnect-after=3``) into the following requests until the test ends; a bad spec is
        a ValueError here."""
        return self.app[SCRIPTED_FAULTS].add(spec)

    @staticmethod
    def fault_headers(spec: str) -> dict[str, str]:
        """The request headers that inject ``spec`` into one request only."""
        return {FAULT_HEADER: spec}

    def defect(self, name: str) -> Defect:
        """Break the mock as the defect ``name`` does (``mockserver.DEFECTS``, the quirks of
        ``mockserver.QUIRKS``) for the following requests until the test ends; an unknown name
        is a ValueError here."""
        return self.app[SCRIPTED_DEFECTS].add(name)

    @staticmethod
    def defect_headers(*names: str) -> dict[str, str]:
        """The request headers that break one request only as the defects ``names`` do."""
        return {FAULT_HEADER: "defect=" + ",".join(names)}

    def load_cassettes(self, *paths: str | os.PathLike[str], loose: bool = False) -> list[Cassette]:
        """Replay the cassettes of ``paths`` (cassette files, or folders of ``*.json`` ones) to
        the requests they match until the test ends, before the configured ones; ``loose``
        matches them by model, messages and stream only."""
        if self.config.mode != "replay":
            raise ValueError(f"cassettes replay in replay mode, not in {self.config.mode!r} mode")
        cassettes = [c for path in map(Path, paths) for c in _read_cassettes(path)]
        self.app[SCRIPTED_CASSETTES].add(cassettes, loose=loose)
        return cassettes

    def reset(self) -> None:
        """Drop the scripted faults, defects and loaded cassettes; restart every fail-first
        count and the replay order of the configured cassettes."""
        self.app[SCRIPTED_FAULTS].clear()
        self.app[SCRIPTED_DEFECTS].clear()
        self.app[FAIL_COUNTER].clear()
        self.app[SCRIPTED_CASSETTES].clear()
        self.app[CASSETTES].rewind()
        self.app[STATE].set_validation(self.config.validation)

    def set_validation(self, level: str) -> None:
        """Validate the following requests at ``level`` (``strict``, ``schema``, ``off``:
        ``MockConfig.validation``) until the test ends; a ValueError for an unknown level."""
        self.app[STATE].set_validation(level)


def _read_cassettes(path: Path) -> list[Cassette]:
    """The cassettes of a file, or of a folder's ``*.json`` files."""
    if path.is_dir():
        return load_directory(path)
    return [load_cassette(path.read_text(encoding="utf-8"), str(path))]


VALIDATION_HELP = (
    "validation level of the default chat_mock_config: strict (OpenAI's 400 rules), schema "
    "(whatever OpenAI's published request schema accepts), off (any JSON object)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--chat-mock-validation`` and the ini option ``chat_mock_validation``."""
    parser.addoption(
        "--chat-mock-validation", choices=("strict", "schema", "off"), help=VALIDATION_HELP
    )
    parser.addini("chat_mock_validation", VALIDATION_HELP, default="strict")


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's list of servers; declare the marker; add ``chat_mock_async`` when
    pytest-asyncio is installed."""
    config.stash[SERVERS] = []
    config.addinivalue_line(
        "markers", "chat_mock_validation(level): the chat_mock's validation level for the test"
    )
    if importlib.util.find_spec("pytest_asyncio") is not None:
        config.pluginmanager.import_plugin(ASYNC_FIXTURES)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop any server this plugin started that is still running."""
    for server in session.config.stash.get(SERVERS, []):
        server.stop()


@pytest.fixture(scope="session")
def chat_mock_config(pytestconfig: pytest.Config) -> MockConfig:
    """The configuration of the session's mock (override this fixture to change it): the
    defaults, at the validation level of ``--chat-mock-validation`` or the ini option."""
    level = pytestconfig.getoption("chat_mock_validation") or pytestconfig.getini(
        "chat_mock_validation"
    )
    return MockConfig(validation=str(level))


@pytest.fixture(scope="session")
def chat_mock_listen_address() -> tuple[str, int]:
    """Where the mocks listen: loopback, a free port (port 0)."""
    return ("127.0.0.1", 0)


@pytest.fixture(scope="session")
def chat_mock_server(
    request: pytest.FixtureRequest,
    chat_mock_config: MockConfig,
    chat_mock_listen_address: tuple[str, int],
) -> Iterator[MockServer]:
    """The session's mock server, serving from a thread; stopped when the session ends."""
    host, port = chat_mock_listen_address
    server = MockServer(chat_mock_config, host, port)
    request.config.stash[SERVERS].append(server)
    with server:
        yield server


@pytest.fixture
def chat_mock(request: pytest.FixtureRequest, chat_mock_server: MockServer) -> Iterator[ChatMock]:
    """The session's mock for one test, what earlier tests scripted forgotten; at the level
    of the test's ``chat_mock_validation`` marker, if any."""
    assert chat_mock_server.app is not None, "the session's mock server is not running"
    mock = ChatMock(chat_mock_server.app, chat_mock_server.host, chat_mock_server.port)
    mock.reset()
    marker = request.node.get_closest_marker("chat_mock_validation")
    if marker is not None:
        mock.set_validation(*marker.args, **marker.kwargs)
    yield mock
    mock.reset()
