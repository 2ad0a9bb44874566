"""``chat_mock_async``: the plugin's fixture for pytest-asyncio users, registered by
``mockserver.pytest_plugin`` only when pytest-asyncio is installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio

from mockserver._app import create_app
from mockserver._config import MockConfig
from mockserver._server import start_site
from mockserver.pytest_plugin import ChatMock, check_replies_used

__all__ = ["chat_mock_async"]


@pytest_asyncio.fixture
async def chat_mock_async(
    chat_mock_config: MockConfig, chat_mock_listen_address: tuple[str, int]
) -> AsyncIterator[ChatMock]:
    """A mock of the test's own, served by the test's event loop (aiohttp, a free port)."""
    host, _ = chat_mock_listen_address
    app = create_app(replace(chat_mock_config, control=True))
    runner, port = await start_site(app, host, 0, limits=chat_mock_config.limits)
    try:
        mock = ChatMock(runner.app, host, port)
        yield mock
        check_replies_used(mock)
    finally:
        await runner.cleanup()
