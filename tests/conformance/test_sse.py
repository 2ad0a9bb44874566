from __future__ import annotations

import pytest

from conformance._sse import Event, parse_events


def test_plain_stream():
    events, problems = parse_events(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert events == [Event('{"a":1}', None, 1), Event("[DONE]", None, 3)]
    assert problems == []


@pytest.mark.parametrize(
    "body",
    [
        b"data: x\r\n\r\ndata: [DONE]\r\n\r\n",
        b"data: x\r\rdata: [DONE]\r\r",
        b": keep-alive\n\ndata:x\n\ndata: [DONE]\n\n",
    ],
    ids=["crlf", "cr", "comment-and-no-space"],
)
def test_line_endings_and_comments(body):
    events, problems = parse_events(body)
    assert [e.data for e in events] == ["x", "[DONE]"]
    assert problems == []


def test_multi_line_data_and_event_name():
    events, _ = parse_events(b"event: error\ndata: a\ndata: b\n\n")
    assert events == [Event("a\nb", "error", 1)]


def test_unterminated_last_event_is_not_dispatched():
    events, problems = parse_events(b"data: x\n\ndata: [DONE]\n")
    assert [e.data for e in events] == ["x"]
    assert problems == [
        "the last event (line 3) is not closed by a blank line, so a client never dispatches it"
    ]


def test_stream_cut_mid_line():
    events, problems = parse_events(b'data: x\n\ndata: {"a"')
    assert [e.data for e in events] == ["x"]
    assert problems[0] == "the stream ends in the middle of a line: b'data: {\"a\"'"


def test_unknown_field_and_bad_utf8():
    _, problems = parse_events(b"dta: x\n\ndata: \xff\n\n")
    assert problems == [
        "the stream is not valid UTF-8 at byte 14",
        "line 1 is not an SSE field: 'dta: x'",
    ]
