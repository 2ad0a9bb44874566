"""A strict reader of server-sent event streams (WHATWG EventSource rules) that also reports
every departure from the framing an OpenAI client expects."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Event", "parse_events"]

_LINE_END = re.compile(rb"\r\n|\n|\r")
_FIELDS = {"data", "event", "id", "retry"}


@dataclass(frozen=True)
class Event:
    data: str  # data lines joined with "\n"
    event: str | None  # the "event:" field, if any
    line: int  # 1-based line number where the event starts


def parse_events(body: bytes) -> tuple[list[Event], list[str]]:
    """The events a client dispatches from ``body``, and the framing problems found on the way
    (an event not closed by a blank line is not dispatched, as in a browser)."""
    problems: list[str] = []
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"the stream is not valid UTF-8 at byte {exc.start}")
    *lines, tail = _LINE_END.split(body)
    if tail:
        problems.append(f"the stream ends in the middle of a line: {tail[:80]!r}")
    events: list[Event] = []
    data: list[str] = []
    name: str | None = None
    start = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.decode("utf-8", "replace")
        if line == "":
            if data:
                events.append(Event("\n".join(data), name, start))
            data, name, start = [], None, 0
            continue
        start = start or number
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        field, _, value = line.partition(":")
        if field not in _FIELDS:
            problems.append(f"line {number} is not an SSE field: {line[:80]!r}")
        elif field == "data":
            data.append(value.removeprefix(" "))
        elif field == "event":
            name = value.removeprefix(" ")
    if data or tail:
        problems.append(
            f"the last event (line {start or len(lines) + 1}) is not closed by a blank line, "
            "so a client never dispatches it"
        )
    return events, problems
