"""A mock OpenAI-compatible chat-completions server (aiohttp)."""

from __future__ import annotations

from mockserver._app import create_app
from mockserver._config import DEFAULT_MODEL, MockConfig
from mockserver._defects import DEFECTS, Defect
from mockserver._dialects import DIALECTS, Dialect
from mockserver._server import MockServer, serve_forever

__all__ = [
    "DEFAULT_MODEL",
    "DEFECTS",
    "DIALECTS",
    "Defect",
    "Dialect",
    "MockConfig",
    "MockServer",
    "create_app",
    "serve_forever",
]
