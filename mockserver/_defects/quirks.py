"""Real-world quirks: defects that each reproduce one behaviour a public report shows a real
OpenAI-compatible server (or proxy) having, at any stage. Every defect here carries its
``report``; defects elsewhere may carry one too (the catalogue is every defect with a report).

Stages as in the package docstring: ``completion`` (dict -> dict), ``chunks``
(list[dict] -> list[dict]), ``error`` ((status, envelope) -> (status, body)).
"""

from __future__ import annotations

from typing import Any

from mockserver._defects.defect import Defect, Hook
from mockserver._defects.hooks import choices, copied, fragments

__all__ = ["DEFECTS"]


def _each_choice(change: Hook) -> Hook:
    """A chunks hook applying ``change`` to every choice of every chunk."""
    return lambda chunks: [
        {**c, "choices": [change(x) for x in choices(c)]} if "choices" in c else c for c in chunks
    ]


def _renamed_finish(old: str | None, new: str) -> Hook:
    """A hook for one choice (of a completion or a chunk) whose finish_reason says ``new``
    where it said ``old`` (None: null or left out)."""

    def change(choice: dict[str, Any]) -> dict[str, Any]:
        return {**choice, "finish_reason": new} if choice.get("finish_reason") == old else choice

    return change


def _completion_choices(change: Hook) -> Hook:
    """A completion hook applying ``change`` to every choice."""
    return lambda body: {**body, "choices": [change(c) for c in body.get("choices") or []]}


def _without_finish_key(choice: dict[str, Any]) -> dict[str, Any]:
    if choice.get("finish_reason") is not None:
        return choice
    return {k: v for k, v in choice.items() if k != "finish_reason"}


def _no_call_index(chunks: list[dict[str, Any]]) -> None:
    for _, fragment in fragments(chunks):
        fragment.pop("index", None)


def _error_as_string(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return (status, {"error": message}) if isinstance(message, str) else answer


DEFECTS = (
    Defect(
        "tool-call-delta-no-index",
        "Streamed tool-call deltas leave out index (mistral.rs, Gemini).",
        {"chunks": copied(_no_call_index)},
        report="https://github.com/EricLBuehler/mistral.rs/pull/1507",
    ),
    Defect(
        "finish-reason-empty",
        'Stream chunks before the finish chunk say finish_reason "" instead of null (SGLang).',
        {"chunks": _each_choice(_renamed_finish(None, ""))},
        report="https://github.com/sgl-project/sglang/issues/3912",
    ),
    Defect(
        "finish-reason-eos",
        'Answers that end on the end of sequence say finish_reason "eos" instead of "stop".',
        {
            "completion": _completion_choices(_renamed_finish("stop", "eos")),
            "chunks": _each_choice(_renamed_finish("stop", "eos")),
        },
        report="https://github.com/openai/openai-dotnet/pull/267",
    ),
    Defect(
        "finish-reason-key-missing",
        "Stream chunks before the finish chunk leave the finish_reason key out (LiteLLM proxy).",
        {"chunks": _each_choice(_without_finish_key)},
        report="https://github.com/BerriAI/liteLLM-proxy/issues/19",
    ),
    Defect(
        "error-as-string",
        'Errors are answered as {"error": "<message>"}: a string, not the error object.',
        {"error": _error_as_string},
        report="https://github.com/microsoft/autogen/pull/757",
    ),
)
