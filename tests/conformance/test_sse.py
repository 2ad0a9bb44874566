from __future__ import annotations

import pytest

from conformance._sse import Event, parse_events, parse_stream


def test_plain_stream():
    events, problems = parse_events(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert events == [Event('{"a":1}', None, 1, 15), Event("[DONE]", None, 3, 29)]
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
    assert events == [Event("a\nb", "error", 1, 30)]


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


def test_bad_utf8_is_a_problem_and_an_unknown_field_is_ignored():
    # WHATWG: a field the format does not define is ignored (a variant, not a problem)
    stream = parse_stream(b"dta: x\n\ndata: \xff\n\n")
    assert stream.problems == ["the stream is not valid UTF-8 at byte 14"]
    assert [e.data for e in stream.events] == ["\ufffd"]
    assert stream.variants == {"unknown-field": 1}


# The WHATWG event-stream rules, case by case (HTML Living Standard, "Parsing an event stream"
# and "Interpreting an event stream"), with the framing variant each one shows.
WHATWG_CASES = [
    ("bom", b"\xef\xbb\xbfdata: x\n\n", ["x"], {"bom": 1}),
    ("bom-only-once", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [], {"bom": 1, "unknown-field": 1}),
    ("crlf", b"data: x\r\n\r\n", ["x"], {"crlf": 1}),
    ("cr", b"data: x\r\r", ["x"], {"cr": 1}),
    ("mixed-ends", b"data: a\r\ndata: b\rdata: c\n\n", ["a\nb\nc"], None),
    ("comment", b": PROCESSING\n\ndata: x\n\n", ["x"], {"comment": 1}),
    ("comment-inside", b"data: a\n: ping\ndata: b\n\n", ["a\nb"], None),
    ("no-space", b"data:x\n\n", ["x"], {"data-without-space": 1}),
    ("two-spaces", b"data:  x\n\n", [" x"], None),
    ("multi-line", b'data: {"a":\ndata: 1}\n\n', ['{"a":\n1}'], {"multi-line-data": 2}),
    ("no-colon-data", b"data\n\n", [""], {"field-without-colon": 1}),
    ("no-colon-id", b"id\ndata: x\n\n", ["x"], {"field-without-colon": 1, "id": 1}),
    ("empty-data-line", b"data:\n\n", [""], {"data-without-space": 1}),
    ("event", b"event: message\ndata: x\n\n", ["x"], {"event": 1}),
    ("id-retry", b"retry: 3000\nid: 7\ndata: x\n\n", ["x"], {"retry": 1, "id": 2}),
    ("no-data-no-event", b"event: message\nid: 1\n\ndata: x\n\n", ["x"], None),
    ("unknown-field", b"x-note: y\ndata: x\n\n", ["x"], {"unknown-field": 1}),
    ("colon-in-value", b'data: {"a":"b:c"}\n\n', ['{"a":"b:c"}'], {}),
]


@pytest.mark.parametrize(
    ("body", "data", "variants"),
    [case[1:] for case in WHATWG_CASES],
    ids=[case[0] for case in WHATWG_CASES],
)
def test_whatwg_rules(body, data, variants):
    stream = parse_stream(body)
    assert [e.data for e in stream.events] == data
    assert stream.problems == []
    if variants is not None:
        assert stream.variants == variants


def test_event_name_and_last_id_ride_on_the_event():
    stream = parse_stream(b"id: 1\nevent: chunk\ndata: a\n\nid: 2\0\ndata: b\n\n")
    # an id holding U+0000 is ignored: the last id stays "1"
    assert [(e.data, e.event, e.id) for e in stream.events] == [
        ("a", "chunk", "1"),
        ("b", None, "1"),
    ]


def test_event_end_is_the_byte_after_its_blank_line():
    body = b"data: a\r\n\r\n: c\n\ndata: b\n\n"
    ends = [e.end for e in parse_stream(body).events]
    assert ends == [11, len(body)]
    assert body[: ends[0]].endswith(b"\r\n\r\n")
