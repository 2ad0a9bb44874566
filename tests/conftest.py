from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mockserver import MockConfig, MockServer


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
