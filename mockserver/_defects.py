"""Defect modes: each breaks one behaviour, so that a conformance check can be shown to fail.

A defect is data: its name, the check id that must catch it, a one-line doc and the hooks it
installs at named stages of the answer pipeline. Handlers call :func:`apply` at each stage:

- ``request_raw`` (parsed body, before validation) and ``request`` (validated body, before the
  answer is made): dict -> dict
- ``completion`` (a non-stream answer) and ``models`` (the GET /models listing): dict -> dict
- ``chunks`` (the stream's chunk objects): list[dict] -> list[dict]
- ``events`` (the stream's SSE event bytes, [DONE] last): list[bytes] -> list[bytes]
- ``stream_content_type``: str -> str
- ``error`` (status, envelope): tuple -> tuple
- ``retrieve_unknown`` (whether GET /models/{id} serves an unlisted id): bool -> bool
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFECTS", "Defect", "apply"]

Hook = Callable[[Any], Any]


@dataclass(frozen=True)
class Defect:
    name: str
    caught_by: str  # the conformance check id that must fail against this defect
    doc: str
    hooks: dict[str, Hook] = field(default_factory=dict)  # stage -> value transform
    also_caught_by: tuple[str, ...] = ()  # other checks that see the same broken behaviour


def _set(key: str, value: Any) -> Hook:
    return lambda obj: {**obj, key: value}


def _chunks_without_delta(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = [{k: v for k, v in c.items() if k != "delta"} for c in chunk.get("choices", [])]
    return {**chunk, "choices": choices}


def _numbered_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "id": f"{c['id']}-{i}"} for i, c in enumerate(chunks)]


def _flat_error(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    return status, {"detail": body["error"]["message"]}


def _server_error(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    return (500 if status == 400 else status), body


def _bad_model_entries(listing: dict[str, Any]) -> dict[str, Any]:
    return {**listing, "data": [{"id": m["id"], "object": "model"} for m in listing["data"]]}


_TABLE = (
    Defect(
        "wrong-object",
        "resp_schema",
        'Non-stream answers say object "text_completion" instead of "chat.completion".',
        {"completion": _set("object", "text_completion")},
    ),
    Defect(
        "chunk-without-delta",
        "chunk_schema",
        "Stream chunks carry choices without a delta object.",
        {"chunks": lambda chunks: [_chunks_without_delta(c) for c in chunks]},
    ),
    Defect(
        "missing-done",
        "sse_done",
        "The stream ends without the final data: [DONE] event.",
        {"events": lambda events: events[:-1]},
    ),
    Defect(
        "null-event",
        "sse_done",
        "A data: null event is sent before [DONE].",
        {"events": lambda events: [*events[:-1], b"data: null\n\n", events[-1]]},
    ),
    Defect(
        "stream-content-type",
        "sse_done",
        "Streams are served as application/json instead of text/event-stream.",
        {"stream_content_type": lambda _: "application/json"},
    ),
    Defect(
        "unstable-chunk-id",
        "chunk_meta_stable",
        "Every chunk of a stream carries a different id.",
        {"chunks": _numbered_ids},
    ),
    Defect(
        "flat-error",
        "err_envelope",
        'Errors are answered as {"detail": "..."} instead of the OpenAI envelope.',
        {"error": _flat_error},
        also_caught_by=("models_list",),  # its 404 for an unknown model loses the envelope too
    ),
    Defect(
        "500-on-bad-request",
        "err_4xx_not_5xx",
        "Invalid requests get status 500 instead of 400.",
        {"error": _server_error},
    ),
    Defect(
        "model-list-incomplete",
        "models_list",
        "GET /models lists entries without created and owned_by.",
        {"models": _bad_model_entries},
    ),
    Defect(
        "unknown-model-200",
        "models_list",
        "GET /models/{id} answers 200 for a model it does not serve.",
        {"retrieve_unknown": lambda _: True},
    ),
)

DEFECTS: dict[str, Defect] = {d.name: d for d in _TABLE}


def apply(defects: Iterable[str], stage: str, value: Any) -> Any:
    """``value`` passed through the hook of every active defect at ``stage``."""
    for name in defects:
        hook = DEFECTS[name].hooks.get(stage)
        if hook is not None:
            value = hook(value)
    return value
