"""A reader of server-sent event streams that follows the WHATWG event-stream rules exactly
(HTML Living Standard, "Server-sent events", sections "Parsing an event stream" and
"Interpreting an event stream"), and reports both the framing problems that lose events and the
valid framings OpenAI never sends.

The rules followed: the stream is UTF-8 (a leading BOM is dropped); lines end in CRLF, LF or
CR; a blank line dispatches the pending event; a line starting with ":" is a comment; a line
without ":" is a field with an empty value; one space after the colon is dropped; "data" lines
append to the event's data, joined with "\\n"; "event" sets its type, "id" the last event id (a
value holding U+0000 is ignored), "retry" is read only when all digits; any other field is
ignored; an event with no data is not dispatched, nor is one the stream ends before its blank
line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["OPENAI_FRAMING", "Event", "Stream", "parse_events", "parse_stream"]

_LINE_END = re.compile(rb"\r\n|\n|\r")
_BOM = b"\xef\xbb\xbf"
_FIELDS = {"data", "event", "id", "retry"}

# What OpenAI sends: one "data: " line per event, LF line ends, a blank line after each event.
OPENAI_FRAMING = 'data: {json}\\n\\n per event, "data: [DONE]\\n\\n" last'


@dataclass(frozen=True)
class Event:
    data: str  # data lines joined with "\n"
    event: str | None  # the "event:" field, if any ("" when given empty)
    line: int  # 1-based line number where the event starts
    end: int = 0  # byte offset just past the blank line that dispatched it
    id: str = ""  # the last event id when it was dispatched


@dataclass
class Stream:
    """What a client reads from one stream body."""

    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what loses or breaks events
    # valid framings OpenAI never sends: variant name -> the 1-based line it is first seen at
    # (bom, crlf, cr, comment, data-without-space, id, retry, event, multi-line-data,
    # field-without-colon, unknown-field)
    variants: dict[str, int] = field(default_factory=dict)


class _Reader:
    """The state of the WHATWG interpretation while lines are read."""

    def __init__(self, out: Stream) -> None:
        self.out = out
        self.data: list[str] = []
        self.name: str | None = None
        self.last_id = ""
        self.start = 0

    def saw(self, variant: str, number: int) -> None:
        self.out.variants.setdefault(variant, number)

    def dispatch(self, end: int) -> None:
        if self.data:
            self.out.events.append(
                Event("\n".join(self.data), self.name, self.start, end, self.last_id)
            )
        self.data, self.name, self.start = [], None, 0

    def line(self, number: int, line: str) -> None:
        self.start = self.start or number
        if line.startswith(":"):
            self.saw("comment", number)
            return
        name, colon, value = line.partition(":")
        if not colon:
            self.saw("field-without-colon", number)
        elif name == "data" and not value.startswith(" "):
            self.saw("data-without-space", number)
        value = value.removeprefix(" ")
        if name not in _FIELDS:
            self.saw("unknown-field", number)
        elif name == "data":
            if self.data:
                self.saw("multi-line-data", number)
            self.data.append(value)
        else:
            self.saw(name, number)
            if name == "event":
                self.name = value
            elif name == "id" and "\0" not in value:
                self.last_id = value


def parse_stream(body: bytes) -> Stream:
    """The events a client dispatches from ``body``, the framing problems found on the way (an
    event not closed by a blank line is not dispatched, as in a browser; bytes that are not
    UTF-8 read as U+FFFD), and the valid framing variants OpenAI never sends."""
    out = Stream()
    reader = _Reader(out)
    offset = 0
    if body.startswith(_BOM):
        reader.saw("bom", 1)
        offset = len(_BOM)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.problems.append(f"the stream is not valid UTF-8 at byte {exc.start}")
    number = 0
    for number, match in enumerate(_LINE_END.finditer(body, offset), start=1):
        ending = match.group()
        if ending != b"\n":
            reader.saw("crlf" if ending == b"\r\n" else "cr", number)
        raw, offset = body[offset : match.start()], match.end()
        line = raw.decode("utf-8", "replace")
        if line == "":
            reader.dispatch(offset)
        else:
            reader.line(number, line)
    tail = body[offset:]
    if tail:
        out.problems.append(f"the stream ends in the middle of a line: {tail[:80]!r}")
    if reader.data or tail:
        out.problems.append(
            f"the last event (line {reader.start or number + 1}) is not closed by a blank line, "
            "so a client never dispatches it"
        )
    return out


def parse_events(body: bytes) -> tuple[list[Event], list[str]]:
    """The events a client dispatches from ``body`` and the framing problems found on the way
    (see :func:`parse_stream`)."""
    stream = parse_stream(body)
    return stream.events, stream.problems
