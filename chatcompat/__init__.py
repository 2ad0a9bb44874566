"""chatcompat: conformance suite and mock server for OpenAI-compatible chat-completion APIs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
