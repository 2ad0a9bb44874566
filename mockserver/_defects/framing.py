"""Defects of how a stream is delivered: valid SSE framings OpenAI never sends (``events``
stage: the stream's SSE event bytes, [DONE] last, list[bytes] -> list[bytes]), one defect per
variant of the WHATWG event-stream rules, and a stream buffered to its end (``stream_plan``:
the events and the pause before each, StreamPlan -> StreamPlan).

Every framing defect keeps what a spec-following client reads: the same events with the same
data, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mockserver._defects.defect import Defect

__all__ = ["BUFFER_PACE", "DEFECTS"]

BUFFER_PACE = 0.05  # seconds per event a buffering server takes to make an untimed stream

_BOM = b"\xef\xbb\xbf"


def _each(change: Callable[[int, bytes], bytes]) -> Callable[[list[bytes]], list[bytes]]:
    """An events hook applying ``change(position, event)`` to every event."""
    return lambda events: [change(i, event) for i, event in enumerate(events)]


def _data_of(event: bytes) -> bytes:
    """The data of an event the mock wrote as ``data: <data>\\n\\n``."""
    return event.removeprefix(b"data: ").removesuffix(b"\n\n")


def _multi_line(_: int, event: bytes) -> bytes:
    """A JSON event's data over several data: lines (one per member), joined by a client with
    "\\n" back into the same JSON value; other events as they are."""
    data = _data_of(event)
    try:
        value: Any = json.loads(data)
    except ValueError:
        return event
    text = json.dumps(value, ensure_ascii=False, indent=0, separators=(",", ":"))
    return b"".join(b"data: " + line + b"\n" for line in text.encode().split(b"\n")) + b"\n"


def _framing(name: str, doc: str, change: Callable[[int, bytes], bytes]) -> Defect:
    return Defect(name, doc, {"events": _each(change)})


def _buffered(plan: Any) -> Any:
    """A stream plan whose events all go out in one write at its end: after the pauses the
    timing drew, or :data:`BUFFER_PACE` per event when untimed (the headers go out first)."""
    count = sum(event.count(b"\n\n") for event in plan.events)
    wait = sum(plan.delays) if plan.delays else BUFFER_PACE * count
    return plan._replace(events=[b"".join(plan.events)], delays=[wait])


DEFECTS = (
    _framing(
        "sse-bom",
        "Streams open with a UTF-8 byte order mark (valid SSE; OpenAI sends none).",
        lambda i, event: _BOM + event if i == 0 else event,
    ),
    _framing(
        "sse-crlf",
        "Stream lines end in CRLF (valid SSE; OpenAI sends LF).",
        lambda _, event: event.replace(b"\n", b"\r\n"),
    ),
    _framing(
        "sse-cr",
        "Stream lines end in a lone CR (valid SSE; OpenAI sends LF).",
        lambda _, event: event.replace(b"\n", b"\r"),
    ),
    _framing(
        "sse-comments",
        "Streams carry keep-alive comment lines (': PROCESSING', as OpenRouter sends).",
        lambda i, event: (b": PROCESSING\n\n" if i == 0 else b"") + b": keep-alive\n" + event,
    ),
    _framing(
        "sse-data-without-space",
        "Stream events are written data:{...}, without the space after the colon.",
        lambda _, event: b"data:" + _data_of(event) + b"\n\n",
    ),
    _framing(
        "sse-multi-line-data",
        "Each JSON chunk is split over several data: lines (valid SSE: joined with newlines).",
        _multi_line,
    ),
    _framing(
        "sse-event-field",
        "Every stream event carries an 'event: message' line.",
        lambda _, event: b"event: message\n" + event,
    ),
    _framing(
        "sse-id-field",
        "Every stream event carries an 'id:' line with its number.",
        lambda i, event: b"id: %d\n" % i + event,
    ),
    _framing(
        "sse-retry-field",
        "Streams open with a 'retry: 3000' line.",
        lambda i, event: b"retry: 3000\n" + event if i == 0 else event,
    ),
    _framing(
        "sse-field-without-colon",
        "Every stream event starts with a field line without a colon ('id': an empty id).",
        lambda _, event: b"id\n" + event,
    ),
    _framing(
        "sse-unknown-field",
        "Every stream event carries a field SSE does not define ('x-note: mock').",
        lambda _, event: b"x-note: mock\n" + event,
    ),
    Defect(
        "stream-buffered",
        "Streams are held back and sent in one write at their end (the headers go out first).",
        {"stream_plan": _buffered},
    ),
)
