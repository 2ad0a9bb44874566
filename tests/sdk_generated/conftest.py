"""The SDKs' generated chat-completion tests against ``chatcompat mock --validation schema``
(issue 14): one mock for the session, started as users start it, on a free port; the client
fixtures of openai-python's tests/conftest.py (``client``: strict response validation or not,
``async_client``: also over aiohttp), pointed at it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient, OpenAI

from mockserver import MockConfig, MockServer

API_KEY = "My API Key"  # upstream's placeholder key: the mock wants none
LISTENING = re.compile(r"^chatcompat mock listening on (http://\S+)$")


@pytest.fixture(scope="session")
def schema_mock_url():
    """The base URL of ``python -m chatcompat mock --validation schema --port 0``, stopped
    (SIGTERM, then SIGKILL after 10 s) when the session ends."""
    command = [sys.executable, "-m", "chatcompat", "mock", "--validation", "schema", "--port", "0"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        match = LISTENING.match(line)
        assert match, f"unexpected first line from the mock: {line!r}"
        yield match[1]
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@pytest.fixture(scope="session")
def strict_mock():
    """A mock at the default validation level (strict), in a thread of this process."""
    with MockServer(MockConfig()) as server:
        yield server


@pytest.fixture(scope="session")
def client(request, schema_mock_url):
    """Upstream's ``client``: ``request.param`` (default True): strict response validation."""
    strict = getattr(request, "param", True)
    with OpenAI(
        base_url=schema_mock_url, api_key=API_KEY, _strict_response_validation=strict
    ) as client:
        yield client


@pytest.fixture
async def async_client(request, schema_mock_url):
    """Upstream's ``async_client``: ``request.param`` is a bool (strict response validation)
    or ``{"http_client": "aiohttp"}``."""
    param = getattr(request, "param", True)
    strict = param if isinstance(param, bool) else param.get("strict", True)
    http_client = None
    if isinstance(param, dict) and param.get("http_client") == "aiohttp":
        http_client = DefaultAioHttpClient()
    async with AsyncOpenAI(
        base_url=schema_mock_url,
        api_key=API_KEY,
        _strict_response_validation=strict,
        http_client=http_client,
    ) as client:
        yield client
