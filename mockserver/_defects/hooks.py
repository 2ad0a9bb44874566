"""Hook builders and readers shared by the stage modules."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mockserver._defects.defect import Hook

__all__ = ["choices", "copied", "fragments", "message_calls", "without"]


def copied(change: Callable[[Any], None]) -> Hook:
    """A hook applying the in-place ``change`` to a deep copy of its value."""

    def hook(value: Any) -> Any:
        value = copy.deepcopy(value)
        change(value)
        return value

    return hook


def without(*keys: str, when: Callable[[dict[str, Any]], bool] = lambda body: True) -> Hook:
    """A hook leaving ``keys`` out of the dicts for which ``when`` holds (others pass as is)."""
    return lambda body: {k: v for k, v in body.items() if k not in keys} if when(body) else body


def choices(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices of a chunk; [] when it has none or they are not a list."""
    found = chunk.get("choices")
    return found if isinstance(found, list) else []


def message_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of every message of a non-stream answer."""
    return [
        call
        for choice in body.get("choices") or []
        for call in (choice.get("message") or {}).get("tool_calls") or []
    ]


def fragments(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (choice, tool-call delta fragment) of a stream, in stream order."""
    return [
        (choice, fragment)
        for chunk in chunks
        for choice in chunk.get("choices") or []
        for fragment in (choice.get("delta") or {}).get("tool_calls") or []
    ]
