"""The suite reads every valid SSE framing as a browser does (issue 12 class 6) and tells a
stream that streams from one buffered to its end (class 7)."""

from __future__ import annotations

import json

import pytest

from conformance import CHECKS, Endpoint, run
from conformance._checks.stream_delivery import FRAMING_BREAKS, StreamTiming, stream_timing
from conformance._context import tokens_of
from conformance._http import Exchange
from conformance._sse import parse_stream
from mockserver import DEFECTS

FRAMINGS = sorted(name for name in DEFECTS if name.startswith("sse-"))
PLAIN = [
    b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi: there\\n"}}]}\n\n',
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,'
    b'"total_tokens":5}}\n\n',
    b"data: [DONE]\n\n",
]


def value(data: str) -> object:
    return data if data == "[DONE]" else json.loads(data)


def framed(name: str) -> bytes:
    return b"".join(DEFECTS[name].hooks["events"](list(PLAIN)))


def test_every_framing_variant_has_a_defect_and_a_reason():
    shown = {v for name in FRAMINGS for v in parse_stream(framed(name)).variants}
    assert shown == set(FRAMING_BREAKS)


@pytest.mark.parametrize("name", FRAMINGS, ids=FRAMINGS)
def test_every_framing_reads_as_the_plain_stream(name):
    plain, other = parse_stream(b"".join(PLAIN)), parse_stream(framed(name))
    # the same values (multi-line data joins JSON members with newlines: the same JSON)
    assert [value(e.data) for e in other.events] == [value(e.data) for e in plain.events]
    assert other.problems == []
    assert other.variants and plain.variants == {}


@pytest.mark.parametrize("name", FRAMINGS, ids=FRAMINGS)
def test_tokens_are_counted_whatever_the_framing(name):
    # the budget and each check's cost: before, only lines starting "data: {" were read
    exchange = Exchange("POST", "http://x/v1/chat/completions", None, {}, 200)
    exchange.headers = {"content-type": "text/event-stream"}
    exchange.body = framed(name)
    assert tokens_of(exchange) == 5


# The checks that read the basic stream, the stream twins and the stream usage: the verdicts
# on these must not change with a valid framing (sse_plain_framing aside, which warns).
STREAM_CHECKS = sorted(
    c.id for c in CHECKS.values() if c.group in ("stream", "usage") and c.capability == "core"
)


def statuses(server):
    endpoint = Endpoint(server.base_url, "m", timeout=60)
    result = run(endpoint, STREAM_CHECKS, check_timeout=240)
    return {r.check.id: r.status for r in result.results}, result


@pytest.mark.parametrize("name", FRAMINGS, ids=FRAMINGS)
def test_verdicts_do_not_depend_on_the_framing(start_mock, name):
    clean, _ = statuses(start_mock(models=("m",)))
    framed_run, result = statuses(start_mock(models=("m",), defects=(name,)))
    assert framed_run.pop("sse_plain_framing") == "warning"
    assert clean.pop("sse_plain_framing") == "passed"
    assert framed_run == clean
    assert result.tokens > 0


def timed(arrivals, headers=0.0, body=None):
    exchange = Exchange("POST", "http://x", None, {}, 200)
    exchange.body = body if body is not None else b"".join(PLAIN)
    exchange.headers_at, exchange.arrivals = headers, tuple(arrivals)
    return exchange


def test_stream_timing_maps_each_content_event_to_the_read_that_completed_it():
    sizes = [len(b"".join(PLAIN[: i + 1])) for i in range(len(PLAIN))]
    timing = stream_timing(timed([(sizes[0], 0.1), (sizes[2] - 3, 0.2), (sizes[3], 0.5)]))
    # the role-only event and the usage event add nothing; the content event is whole after
    # the second read (the one that carries its blank line)
    assert timing == StreamTiming(0.0, (0.2,), 0.5)
    assert timing.first_share == pytest.approx(0.4) and timing.reads == 1


def test_stream_timing_description_gives_ttft_and_gaps():
    timing = StreamTiming(0.01, (0.1, 0.2, 0.4), 0.5)
    assert timing.describe() == (
        "3 content events in 3 reads; headers at 0.010 s, time to first token 0.100 s, "
        "end at 0.500 s; inter-event gaps median 0.150 s, max 0.200 s"
    )


def test_timed_clean_mock_is_not_called_buffered(start_mock):
    # a timed stream: ~40 events a few ms apart after a short first token
    server = start_mock(models=("m",), ttft=0.05, itl=0.02)
    result = run(Endpoint(server.base_url, "m", timeout=60), ["stream_not_buffered"])
    assert result.results[0].status == "passed", result.results[0].outcome.text


def test_buffered_timed_stream_warns_with_its_timing(start_mock):
    server = start_mock(models=("m",), ttft=0.05, itl=0.04, defects=("stream-buffered",))
    result = run(Endpoint(server.base_url, "m", timeout=60), ["stream_not_buffered"])
    outcome = result.results[0]
    assert outcome.status == "warning"
    assert "time to first token" in outcome.outcome.text
    assert "inter-event gaps" in outcome.outcome.text
