"""Defects of where the answer is (issue 12, class 4): the answer to a request with one
reasoning switch moved out of ``content`` into a reasoning field.

The answer hooks (``completion``, ``chunks``) do not see the request, so each defect also has a
``request`` hook that notes, for the request being answered, whether the switch is on. The note
is a context variable: aiohttp answers each request in one task, the request hook runs before
the answer hooks in it, and every request sets it afresh (a connection's next request runs in
the same task).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from mockserver._defects.defect import Defect, Hook
from mockserver._defects.hooks import choices

__all__ = ["DEFECTS"]

# defect name -> whether the request being answered in this task triggers it
_TRIGGERED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "mockserver_reasoning_defects", default=frozenset()
)


def _thinking_off(body: dict[str, Any]) -> bool:
    kwargs = body.get("chat_template_kwargs")
    return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False


def _effort_asked(body: dict[str, Any]) -> bool:
    return body.get("reasoning_effort") is not None


def _moved(message: dict[str, Any], field: str, emptied: Any) -> dict[str, Any]:
    """``message`` (or delta) with its text moved to ``field``; content becomes ``emptied``."""
    text = message.get("content")
    if not isinstance(text, str) or not text:
        return message
    return {**message, "content": emptied, field: text}


def _when(
    name: str, asked: Callable[[dict[str, Any]], bool], field: str, emptied: Any
) -> dict[str, Hook]:
    """The hooks of defect ``name``: when ``asked`` holds for the request, the text of its
    answer goes to ``field`` and content becomes ``emptied``, streamed or not."""

    def note(body: dict[str, Any]) -> dict[str, Any]:
        triggered = _TRIGGERED.get() - {name}
        _TRIGGERED.set(triggered | {name} if asked(body) else triggered)
        return body

    def completion(body: dict[str, Any]) -> dict[str, Any]:
        if name not in _TRIGGERED.get():
            return body
        moved = [
            {**c, "message": _moved(c.get("message") or {}, field, emptied)} for c in choices(body)
        ]
        return {**body, "choices": moved}

    def chunks(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if name not in _TRIGGERED.get():
            return stream
        return [
            {
                **c,
                "choices": [
                    {**x, "delta": _moved(x.get("delta") or {}, field, emptied)} for x in choices(c)
                ],
            }
            if "choices" in c
            else c
            for c in stream
        ]

    return {"request": note, "completion": completion, "chunks": chunks}


DEFECTS = (
    Defect(
        "thinking-off-answer-in-reasoning",
        'With chat_template_kwargs {"enable_thinking": false}, the whole answer comes in '
        "reasoning_content and content is null.",
        _when("thinking-off-answer-in-reasoning", _thinking_off, "reasoning_content", None),
    ),
    Defect(
        "reasoning-effort-drops-content",
        'With reasoning_effort set, the answer comes in "reasoning" and content is "".',
        _when("reasoning-effort-drops-content", _effort_asked, "reasoning", ""),
    ),
)
