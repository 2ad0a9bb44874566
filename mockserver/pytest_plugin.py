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

A test queues replies (``chat_mock.reply``: a reply left unused fails the test), reads the
request log (``requests``, ``last_request``, ``assert_called``, ``assert_called_with``), and
with a record mode (the ``chat_mock`` marker, ``--chat-mock-record-mode``, the ini options) gets
a mock of its own in front of an upstream. The plugin's mocks serve the control routes.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mockserver._app import CONFIG, SCRIPTED_CASSETTES, SCRIPTED_DEFECTS, SCRIPTED_FAULTS, STATE
from mockserver._cassettes import Cassette, load_cassette, load_directory
from mockserver._config import MockConfig
from mockserver._control import reset
from mockserver._defects import Defect
from mockserver._faults import FAULT_HEADER, Fault
from mockserver._replies import Reply
from mockserver._request_log import LoggedRequest
from mockserver._server import MockServer
from mockserver._upstream import RECORD_MODES

__all__ = [
    "ChatMock",
    "chat_mock",
    "chat_mock_config",
    "chat_mock_listen_address",
    "chat_mock_server",
    "check_replies_used",
    "record_config",
]

SERVERS = pytest.StashKey[list[MockServer]]()  # the servers this plugin started in a session
ASYNC_FIXTURES = "mockserver._pytest_async"  # chat_mock_async, registered with pytest-asyncio
ASYNC_MISSING = (
    "chat_mock_async needs pytest-asyncio, which is not installed or not enabled (-p no:asyncio): "
    "pip install pytest-asyncio, or use the chat_mock fixture (a mock in a thread, for sync and "
    "async clients alike)"
)


class ChatMock:
    """One test's handle on a running mock: its URLs and what the test scripts on it."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.config = app[CONFIG]
        self._state = app[STATE]
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

    def reply(
        self,
        content: str | None = None,
        *,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        times: int | None = 1,
        **fields: Any,
    ) -> Reply:
        """Answer the next chat completion request that matches with this reply, ``times``
        times (None: every such request until the test ends); queued replies answer in the
        order they were queued. ``fields``: ``tool_calls`` (``[{"name": ..., "arguments":
        {...}}]``), ``refusal``, ``logprobs``, ``usage``, ``finish_reason``; or ``chunks``
        (the exact stream chunks, stream requests only); or ``status`` with ``error`` (the
        envelope's fields) and ``headers``. Matched by ``model``, ``contains`` (a substring of
        the last user message), ``match`` (a subset of the body), ``predicate`` (the parsed
        body -> bool). A malformed reply is a ValueError here. See ``mockserver._replies``."""
        reply = Reply(content=content, predicate=predicate, times=times, **fields)
        return self._state.replies.add(reply)

    def unused_replies(self) -> list[Reply]:
        """The queued replies with requests left to answer (not those for every request)."""
        return [reply for reply, _ in self._state.replies.unused()]

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request the mock received since the test started, oldest first (method,
        path, url, headers with credentials redacted, body parsed, time, status)."""
        return self._state.requests.entries()

    @property
    def calls(self) -> list[LoggedRequest]:
        """The chat completion requests among :attr:`requests`."""
        path = self.config.prefix + "/chat/completions"
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    @property
    def last_request(self) -> LoggedRequest:
        """The last chat completion request; AssertionError when there was none."""
        calls = self.calls
        if not calls:
            raise AssertionError("the mock received no chat completion request")
        return calls[-1]

    def assert_called(self, times: int | None = None) -> None:
        """AssertionError unless the mock received a chat completion request (``times``:
        exactly that many)."""
        count = len(self.calls)
        if times is None and not count:
            raise AssertionError("expected a chat completion request, the mock received none")
        if times is not None and count != times:
            raise AssertionError(f"expected {times} chat completion request(s), got {count}")

    def assert_called_with(self, **fields: Any) -> None:
        """AssertionError unless the last chat completion request's body has these fields
        with these values (``model="m", stream=True``)."""
        body = self.last_request.body
        differ = {k: body.get(k, "<missing>") for k, v in fields.items() if body.get(k) != v}
        if differ:
            raise AssertionError(f"the last request differs: got {differ}, expected {fields}")

    def reset(self) -> None:
        """Drop the scripted replies, faults, defects and loaded cassettes and the request
        log; restart every fail-first count and the replay order of the configured
        cassettes."""
        reset(self._state)

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
    """The options of validation levels and record modes, and their ini options."""
    group = parser.getgroup("chatcompat", "chatcompat mock")
    group.addoption(
        "--chat-mock-record-mode",
        choices=RECORD_MODES,
        help="record mode of chat_mock with an upstream (overrides the ini option)",
    )
    group.addoption(
        "--chat-mock-validation", choices=("strict", "schema", "off"), help=VALIDATION_HELP
    )
    parser.addini("chat_mock_validation", VALIDATION_HELP, default="strict")
    parser.addini("chat_mock_record_mode", "none | once | new_episodes | all", default="")
    parser.addini("chat_mock_upstream", "the API base chat_mock records from", default="")
    parser.addini(
        "chat_mock_upstream_key_env",
        "the environment variable holding the upstream's API key",
        default="OPENAI_API_KEY",
    )
    parser.addini(
        "chat_mock_cassette_dir",
        "cassette folders per test go under this folder, relative to the test file's",
        default="cassettes",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's list of servers; add ``chat_mock_async`` (with pytest-asyncio,
    else a fixture that fails saying so) and the ``chat_mock`` and
    ``chat_mock_validation`` markers."""
    config.stash[SERVERS] = []
    config.addinivalue_line(
        "markers",
        "chat_mock(record_mode=None, upstream=None, cassettes=None): the record mode, the "
        "upstream and the cassette folder of this test's chat_mock",
    )
    config.addinivalue_line(
        "markers", "chat_mock_validation(level): the chat_mock's validation level for the test"
    )
    asyncio_usable = importlib.util.find_spec("pytest_asyncio") is not None
    if asyncio_usable and config.pluginmanager.has_plugin("asyncio"):
        config.pluginmanager.import_plugin(ASYNC_FIXTURES)
    else:
        config.pluginmanager.register(_AsyncUnavailable(), "chatcompat-async-unavailable")


class _AsyncUnavailable:
    """``chat_mock_async`` where pytest-asyncio is not installed or not enabled."""

    @pytest.fixture
    def chat_mock_async(self) -> ChatMock:
        """Fails: the fixture needs pytest-asyncio."""
        pytest.fail(ASYNC_MISSING, pytrace=False)


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
    """The session's mock server, serving from a thread (its control routes on); stopped
    when the session ends."""
    host, port = chat_mock_listen_address
    server = MockServer(replace(chat_mock_config, control=True), host, port)
    request.config.stash[SERVERS].append(server)
    with server:
        yield server


@pytest.fixture
def chat_mock(
    request: pytest.FixtureRequest,
    chat_mock_config: MockConfig,
    chat_mock_listen_address: tuple[str, int],
) -> Iterator[ChatMock]:
    """The session's mock for one test, what earlier tests scripted forgotten; with a record
    mode (the ``chat_mock`` marker, ``--chat-mock-record-mode`` or the ini options) a mock of
    the test's own in front of the upstream. A queued reply left unused fails the test."""
    recording = record_config(request, chat_mock_config)
    if recording is None:
        server: MockServer = request.getfixturevalue("chat_mock_server")
        yield from _per_test(request, server)
        return
    host, _ = chat_mock_listen_address
    with MockServer(recording, host, 0) as own:
        request.config.stash[SERVERS].append(own)
        yield from _per_test(request, own)


def _per_test(request: pytest.FixtureRequest, server: MockServer) -> Iterator[ChatMock]:
    """``server``'s mock for one test: reset before and after; at the level of the test's
    ``chat_mock_validation`` marker, if any; unused replies fail it."""
    assert server.app is not None, "the mock server is not running"
    mock = ChatMock(server.app, server.host, server.port)
    mock.reset()
    marker = request.node.get_closest_marker("chat_mock_validation")
    if marker is not None:
        mock.set_validation(*marker.args, **marker.kwargs)
    yield mock
    check_replies_used(mock)


def check_replies_used(mock: ChatMock) -> None:
    """Reset ``mock``; fail the test when replies it queued were left unused."""
    unused = mock.unused_replies()
    mock.reset()
    if unused:
        shown = "; ".join(f"{reply.described()}" for reply in unused)
        pytest.fail(f"{len(unused)} scripted reply(ies) left unused: {shown}", pytrace=False)


def record_config(request: pytest.FixtureRequest, base: MockConfig) -> MockConfig | None:
    """``base`` with the test's record mode, upstream, upstream key and cassette folder
    (marker, then command line, then ini); None when the test has no record mode."""
    marker = request.node.get_closest_marker("chat_mock")
    options = dict(marker.kwargs) if marker is not None else {}
    config = request.config
    mode = options.get("record_mode") or config.getoption("chat_mock_record_mode")
    mode = mode or config.getini("chat_mock_record_mode") or None
    if mode is None:
        return None
    upstream = options.get("upstream") or config.getini("chat_mock_upstream") or None
    here = Path(request.node.path).parent
    folder = options.get("cassettes")
    if folder is None:
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        folder = Path(config.getini("chat_mock_cassette_dir")) / request.node.path.stem / name
    key = os.environ.get(config.getini("chat_mock_upstream_key_env")) or None
    return replace(
        base,
        control=True,
        record_mode=mode,
        upstream=upstream,
        upstream_key=key,
        cassettes=(str(here / folder),),
    )
